"""Outcomes, once a day after the close (execute.py states the timing): reconcile what the broker did since the
last run (entry orders, closes under way, a bracket's resting legs), then close positions on stop-loss,
take-profit or time limit against the day's completed bar, read the broker's account (entry block, buying power,
fee activities, cash), compare holdings, re-send decisions stuck in PENDING, and sweep the dead letters.

Every step stands alone: one order, position or broker read that fails is counted in `errors` with its reason
and the run goes on to the next one and to the sweeps after it."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mytrader import ledger
from mytrader.adapters.tradelog import TradeLog
from mytrader.broker import BROKER_DONE, BrokerError, BrokerErrorKind, BrokerOrder
from mytrader.errors import DataQualityError
from mytrader.models import DecisionStatus, Fill, OrderSide, Position
from mytrader.portfolio import TIME_LIMIT, exit_on_bar
from mytrader.ports import reports_account, reports_positions
from mytrader.usecases import response_of
from mytrader.usecases.dead_letters import mark_dead_letters
from mytrader.usecases.execute import (
    ExecDeps,
    ExecutionResult,
    auth_block,
    book_leg_fill,
    close_position,
    continue_close,
    filled_leg,
)

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import Row
    from mytrader.market.series import BarSeries
    from mytrader.ports import BarSource, BrokerAccountReporter, DeadLetterQueue, DecisionQueue, PositionReporter

log = logging.getLogger(__name__)

CASH_TOLERANCE = 1.00  # USD: book cash and broker cash further apart than this are reported (fees are cents)
FEE_LOOKBACK = timedelta(days=7)  # fee activities asked for on each run (each booked once, by its id)


@dataclass(frozen=True)
class PositionMismatch:
    """A symbol where the broker holds a quantity the book cannot explain: not the book's quantity, nor the book's
    with any part of the working orders (`working`, signed: what they may still add or sell) already filled."""
    symbol: str
    book: float
    broker: float
    working: float = 0.0


@dataclass(frozen=True)
class CashMismatch:
    """Book cash and the broker's cash differ by more than CASH_TOLERANCE (after the fee activities are booked)."""
    book: float
    broker: float


@dataclass(frozen=True)
class OutcomesResult:
    """One outcomes run. `response()` is the function's JSON: error_reasons only when something failed,
    position_mismatches only when the broker reports its holdings (and could be asked), cash_mismatch and
    broker_block only when the broker reports its account and they apply. A dataclass, not a pydantic model:
    building a model class costs every cold start of the function.

    A position whose bars cannot be read (or whose last bar the data guard does not trust) is checked against
    the broker's quote instead (`checked_on_quote`); when neither can be trusted it is `positions_unchecked`,
    with the reasons, and the outcomes function emits PositionsUnchecked (an alarm at >= 1)."""
    closed: int = 0
    held: int = 0
    positions_unchecked: int = 0
    checked_on_quote: int = 0
    reconciled: int = 0
    working_closes: int = 0  # close orders at the broker not filled yet (queued for the next open)
    resent: int = 0
    dead_lettered: int = 0
    fees_booked: int = 0
    errors: int = 0
    realised_pnl: float = 0.0
    error_reasons: list[str] | None = None
    position_mismatches: list[PositionMismatch] | None = None
    cash_mismatch: CashMismatch | None = None
    broker_block: str | None = None
    unchecked_reasons: list[str] | None = None

    def response(self) -> dict[str, Any]:
        return response_of(self)


class _Run:
    """Tally of one run: closes, held positions, working closes, and each failure with its reason."""

    def __init__(self, tl: TradeLog) -> None:
        self.tl = tl
        self.closed = self.held = self.on_quote = self.reconciled = self.working = 0
        self.realised_pnl = 0.0
        self.errors: list[str] = []
        self.unchecked: list[str] = []
        self.busy: set[str] = set()  # symbols whose close is working at the broker: not checked again this run
        self.resting: set[str] = set()  # symbols whose stop and target rest at the broker (a bracket's legs)

    def closed_one(self, result: ExecutionResult) -> None:
        if result.closed is not None:
            self.closed += 1
            self.realised_pnl = round(self.realised_pnl + (result.pnl or 0.0), 2)
        elif result.filled is not None:  # the close order is working
            self.working += 1

    def failed(self, what: str, exc: Exception) -> None:
        """One step failed: counted with its reason; an auth error also blocks entries (fail closed)."""
        log.error("outcomes: %s failed: %s", what, exc)
        self.errors.append(f"{what}: {exc}"[:200])
        if isinstance(exc, BrokerError) and exc.kind is BrokerErrorKind.AUTH:
            self.tl.block_entries(auth_block(exc))


def run_outcomes(now: datetime, deps: ExecDeps, market: BarSource, queue: DecisionQueue,
                 dead_letters: DeadLetterQueue | None,
                 resend_after: timedelta = timedelta(minutes=10)) -> OutcomesResult:
    tl = deps.tradelog
    tl.begin_day(ledger.day_of(now))  # a loss booked here counts towards today, even before any entry ran
    run = _Run(tl)
    # 1. what the broker did since the last run: fills at today's open are booked before today's bar is checked
    run.reconciled = reconcile_open_orders(tl, deps, now, run.errors)
    for row in tl.position_rows():
        try:
            _reconcile_position(row, now, deps, run)
        except Exception as exc:  # one position: the run goes on
            run.failed(f"reconcile {row['sk'][4:]}", exc)
    # 2. stops, targets and time limits on the day's completed bar
    for row in tl.position_rows():
        if row["sk"][4:] not in run.busy:
            _check_exit(row, now, deps, market, run)
    # 3. the broker's account and holdings
    cash, block, fees = _broker_account(now, deps, run)
    mismatches: list[PositionMismatch] | None = None
    if reports_positions(deps.broker):
        try:
            mismatches = position_mismatches(tl, deps.broker)
        except Exception as exc:  # the check must not stop the sweeps below; it is counted
            run.failed("broker positions", exc)
        for m in mismatches or []:
            log.error("book and broker disagree on %s: book %s (working %s), broker %s", m.symbol, m.book, m.working,
                      m.broker)
    # 4. the sweeps
    resent = _resend_stuck(tl, queue, (now - resend_after).isoformat())
    return OutcomesResult(closed=run.closed, held=run.held, positions_unchecked=len(run.unchecked),
                          checked_on_quote=run.on_quote, unchecked_reasons=run.unchecked or None,
                          reconciled=run.reconciled, working_closes=run.working, resent=resent,
                          dead_lettered=mark_dead_letters(tl, dead_letters, now), fees_booked=fees,
                          errors=len(run.errors), realised_pnl=run.realised_pnl, error_reasons=run.errors or None,
                          position_mismatches=mismatches, cash_mismatch=cash, broker_block=block)


def _reconcile_position(row: Row, now: datetime, deps: ExecDeps, run: _Run) -> None:
    """A close under way is booked once its order filled (or stays working); at a real broker, a resting leg of
    the entry that filled is the close, and legs still resting leave the stop and target to the broker."""
    symbol = row["sk"][4:]
    if "closing_base" in row:
        result = continue_close(row, now, deps)
        if result is not None:
            run.closed_one(result)
            run.busy.add(symbol)  # booked, or still working: not checked again this run
            run.reconciled += result.closed is not None
        return
    if deps.broker.name == "paper":
        return
    pos = Position.model_validate_json(row["doc"])
    entry = deps.broker.get_by_client_order_id(pos.decision_id)
    if entry is None or not entry.legs:
        return
    leg = filled_leg(entry, pos)
    if leg is not None:
        run.closed_one(book_leg_fill(pos, row, leg, now, deps))
        run.reconciled += 1
        run.busy.add(symbol)
    elif any(leg.status not in BROKER_DONE for leg in entry.legs):
        run.resting.add(symbol)


def _check_exit(row: Row, now: datetime, deps: ExecDeps, market: BarSource, run: _Run) -> None:
    """One held position against the last complete bar: closed on its stop, target or time limit, else held.
    Bars that cannot be read, or a last bar the data guard does not trust, leave the broker's quote to decide.
    A position whose stop and target rest at the broker is checked for its time limit only."""
    tl = deps.tradelog
    pos = Position.model_validate_json(row["doc"])
    check = pos.model_copy(update={"stop_loss": None, "take_profit": None}) if pos.symbol in run.resting else pos
    try:
        try:
            s = market.full(pos.symbol)
            i = market.bar_at(pos.symbol, now)
        except Exception as exc:  # a broken file, a feed down: the position is still checked, on the quote
            log.error("bars unavailable for held %s: %s", pos.symbol, exc)
            _check_on_quote(pos, check, now, deps, run, f"bars unreadable ({_why(exc)})")
            return
        if i < 0 or s.time(i) < pos.opened_at:  # no complete bar since the position opened
            run.held += 1
            return
        last_checked = row.get("checked_bar")
        if last_checked is not None and int(s.ts[i]) <= int(last_checked):
            return
        untrusted = _untrusted_bar(s, i, deps)
        if untrusted is not None:
            why, trusted = untrusted
            _check_on_quote(pos, check, now, deps, run, f"bar quarantined ({why})", trusted=trusted,
                            bar_ts=int(s.ts[i]))
            return
        hit = exit_on_bar(check, float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]))
        if hit is None:
            tl.bump_bars_held(pos, int(s.ts[i]))
            run.held += 1
            return
        price, reason = hit
        _close_hit(pos, now, price, reason, deps, run, exit_ts=s.time(i))
    except Exception as exc:
        log.exception("outcome check failed for %s", pos.symbol)
        run.failed(pos.symbol, exc)


def _untrusted_bar(s: BarSeries, i: int, deps: ExecDeps) -> tuple[str, float] | None:
    """The jump filter on bar i (the data guard, as the backtester applies it): why it is not trusted and the last
    trusted close, or None."""
    from mytrader.market.guard import last_trusted_close, tail_flags

    tail = s.slice(0, i + 1)
    flags = tail_flags(tail, deps.cfg.data_guard)
    why = flags.jump[-1]
    if why is None:
        return None
    offset = len(tail) - len(flags.jump)
    return why, last_trusted_close(tail.slice(offset, len(tail)), flags, len(flags.jump) - 1)


def _check_on_quote(pos: Position, check: Position, now: datetime, deps: ExecDeps, run: _Run, why: str,
                    trusted: float | None = None, bar_ts: int | None = None) -> None:
    """The stop, target and time limit (of `check`) against the broker's quote (for the paper broker after the
    close: the day's close); closed at that quote when one is hit. No quote, or one the collar refuses: the
    position is unchecked."""
    from mytrader.market.guard import collar

    try:
        quote = deps.quotes.quote(pos.symbol, now)
    except Exception as exc:  # DataQualityError, a broker outage: nothing to check the position against
        _unchecked(pos, run, f"{why}; no quote ({_why(exc)})")
        return
    off = collar(quote, trusted, deps.cfg.data_guard.collar_pct) if trusted is not None else None
    if off:
        _unchecked(pos, run, f"{why}; quote not trusted ({off})")
        return
    run.on_quote += 1
    hit = exit_on_bar(check, quote, quote, quote, quote)
    if hit is None:
        if bar_ts is not None:
            deps.tradelog.bump_bars_held(pos, bar_ts)
        run.held += 1
        return
    _, reason = hit
    log.warning("%s closed on the broker's quote %s (%s): %s", pos.symbol, quote, reason, why)
    _close_hit(pos, now, quote, reason, deps, run)


def _close_hit(pos: Position, now: datetime, price: float, reason: str, deps: ExecDeps, run: _Run,
               exit_ts: datetime | None = None) -> None:
    """A stop or target filled during the bar at its level (a resting order's fill: the backtester's too). A time
    limit is decided on the bar's close, after it: a market order the broker queues for the next open, as a
    signal exit is (the backtester queues it the same way)."""
    coid = f"{pos.decision_id}-x"
    if reason == TIME_LIMIT:
        run.closed_one(close_position(pos, coid, now, reason, deps, quote=price))
        return
    run.closed_one(close_position(pos, coid, now, reason, deps, fill_price=price, quote=price, exit_ts=exit_ts))


def _unchecked(pos: Position, run: _Run, why: str) -> None:
    log.error("position %s unchecked: %s", pos.symbol, why)
    run.unchecked.append(f"{pos.symbol}: {why}"[:300])


def _why(exc: Exception) -> str:
    return exc.problem if isinstance(exc, DataQualityError) else f"{type(exc).__name__}: {exc}"[:200]


def _broker_account(now: datetime, deps: ExecDeps, run: _Run) -> tuple[CashMismatch | None, str | None, int]:
    """A real broker's account (the paper broker has none): its block on entries and its buying power go on the
    account state (entries are refused while it is blocked, sized on min(book equity, buying power)); its fee
    activities are booked once each; then book cash is compared with the broker's."""
    broker = deps.broker
    if not reports_account(broker):
        return None, None, 0
    try:
        account = broker.account()
    except Exception as exc:  # unread: the block stays as the last run left it (an auth error sets one)
        run.failed("broker account", exc)
        return None, None, 0
    block = account.blocks_entries()
    run.tl.set_broker_account(block, account.buying_power)
    if block:
        log.error("broker account takes no entries: %s", block)
    try:
        fees = _book_fees(run.tl, broker, now)
    except Exception as exc:  # fees unknown: cash is not compared this run
        run.failed("broker fee activities", exc)
        return None, block, 0
    book = run.tl.account_state().cash
    if abs(book - account.cash) > CASH_TOLERANCE:
        log.error("book cash %.2f and broker cash %.2f disagree", book, account.cash)
        return CashMismatch(book=round(book, 2), broker=round(account.cash, 2)), block, fees
    return None, block, fees


def _book_fees(tl: TradeLog, broker: BrokerAccountReporter, now: datetime) -> int:
    return sum(1 for fee in broker.fee_activities(now - FEE_LOOKBACK) if tl.book_fee(fee))


def _resend_stuck(tl: TradeLog, queue: DecisionQueue, cutoff: str) -> int:
    """Decisions still PENDING after the cut-off (a send lost between the write and the queue) go again."""
    resent = 0
    for row in tl.decisions_by_status("PENDING"):
        if row.get("decided_at", "") < cutoff and "doc" in row:
            d = tl.get_decision(row["pk"][4:])
            if d is not None and d.status == DecisionStatus.PENDING:
                queue.send(d)
                resent += 1
    return resent


def position_mismatches(tl: TradeLog, broker: PositionReporter) -> list[PositionMismatch]:
    """Symbols where the broker's quantity is not the book's plus some part of what the working orders have left
    (an entry awaiting fills may have bought up to its unbooked rest; a close under way may have sold up to the
    whole position): a trade made outside MyTrader, or a lost fill. Quantities within ledger.QTY_TOLERANCE are
    equal (a broker's rounding of fractional shares)."""
    held = broker.positions()
    book: dict[str, float] = {}
    working: dict[str, float] = {}
    for r in tl.position_rows():
        sym, qty = r["sk"][4:], float(json.loads(r["doc"])["qty"])
        book[sym] = qty
        if "closing_base" in r:
            working[sym] = working.get(sym, 0.0) - qty
    for r in tl.open_order_rows():
        order = json.loads(r["doc"])
        rest = float(r.get("qty", order["qty"])) - float(r.get("filled_qty", 0.0))
        sign = 1.0 if order["side"] == OrderSide.BUY.value else -1.0
        working[r["symbol"]] = working.get(r["symbol"], 0.0) + sign * max(rest, 0.0)
    out = []
    for sym in sorted(set(book) | set(held) | set(working)):
        b, w, h = book.get(sym, 0.0), working.get(sym, 0.0), held.get(sym, 0.0)
        if not min(b, b + w) - ledger.QTY_TOLERANCE <= h <= max(b, b + w) + ledger.QTY_TOLERANCE:
            out.append(PositionMismatch(symbol=sym, book=b, broker=h, working=w))
    return out


def reconcile_open_orders(tl: TradeLog, deps: ExecDeps, now: datetime, errors: list[str] | None = None) -> int:
    """Entry orders accepted or partly filled: ask the broker by client_order_id and record the fills since the
    last look — their own quantity at their own price (the broker reports a running average), their own fee and
    the broker's `filled_at`. The order row remembers what it has recorded, so a re-run never books a fill twice.
    Once the broker is done with the order it leaves the open set; if nothing ever filled, the position slot
    reserved for it is freed and the decision ends REJECTED with the broker's verdict. Each order stands alone:
    one that fails is logged (and its reason added to `errors`) and the others go on."""
    n = 0
    for row in tl.open_order_rows():
        try:
            n += _reconcile_order(tl, deps, row, now)
        except Exception as exc:
            log.exception("reconciling order %s failed", row.get("client_order_id"))
            if isinstance(exc, BrokerError) and exc.kind is BrokerErrorKind.AUTH:
                tl.block_entries(auth_block(exc))
            if errors is not None:
                errors.append(f"order {row.get('client_order_id')}: {exc}"[:200])
    return n


def _reconcile_order(tl: TradeLog, deps: ExecDeps, row: Row, now: datetime) -> int:
    placed = deps.broker.get_by_client_order_id(row["client_order_id"])
    if placed is None:
        return 0
    decision_id = row["pk"][4:]
    pos_row = tl.position_row(row["symbol"])
    pos = Position.model_validate_json(pos_row["doc"]) if pos_row else None
    recorded = _Recorded.of(row, pos, pos_row)
    new_qty = round(placed.filled_qty - recorded.qty, 9)
    done = placed.status in BROKER_DONE
    if new_qty <= 0 and not done:
        return 0
    fill, position, order_row = None, None, dict(row)
    if new_qty > 0:
        fill, position = _new_fill(tl, decision_id, placed, pos, recorded, new_qty, now)
        order_row.update(filled_qty=placed.filled_qty, filled_notional=recorded.cost + new_qty * fill.price,
                         filled_fee=recorded.fee + fill.fee)
    tl.record_late_fill(decision_id, order_row, fill, position, opens=pos is None,
                        take_slot=pos is None and recorded.qty > 0, done=done,
                        nothing_filled=placed.filled_qty <= 0, status=placed.status)
    return 1


@dataclass(frozen=True)
class _Recorded:
    """What the order row says is booked already: quantity, cost and fee of the fills recorded so far."""
    qty: float
    cost: float
    fee: float

    @classmethod
    def of(cls, row: Row, pos: Position | None, pos_row: Row | None) -> _Recorded:
        # order rows written before they tracked what was recorded: the held position tells it
        qty = float(row.get("filled_qty", abs(pos.qty) if pos else 0.0))
        cost = float(row.get("filled_notional", qty * (pos.avg_price if pos else 0.0)))
        entry_fee: float = pos_row.get("entry_fee", 0.0) if pos_row else 0.0
        fee = float(row.get("filled_fee", entry_fee))
        return cls(qty, cost, fee)


def _new_fill(tl: TradeLog, decision_id: str, placed: BrokerOrder, pos: Position | None, recorded: _Recorded,
              new_qty: float, now: datetime) -> tuple[Fill, Position]:
    """The fill since the last look, at its own price and fee, and the position it grows (or opens) — opened at
    the broker's fill time (for an order queued after the close: the next session's open)."""
    side = OrderSide(placed.side)
    price = (placed.fill_price() * placed.filled_qty - recorded.cost) / new_qty
    fee = max(0.0, placed.fee - recorded.fee)
    at = placed.filled_at or now
    fill = Fill(client_order_id=placed.client_order_id, symbol=placed.symbol, side=side, qty=new_qty,
                price=round(price, 6), fee=fee, filled_at=at)
    if pos is not None:
        held = abs(pos.qty)
        avg = (pos.avg_price * held + fill.price * new_qty) / (held + new_qty)
        return fill, pos.model_copy(update={"qty": ledger.signed(side, held + new_qty), "avg_price": round(avg, 6)})
    d = tl.get_decision(decision_id)
    return fill, Position(symbol=placed.symbol, qty=ledger.signed(side, new_qty), avg_price=fill.price, opened_at=at,
                          decision_id=decision_id, stop_loss=d.stop_loss if d else None,
                          take_profit=d.take_profit if d else None, time_limit_bars=d.time_horizon_bars if d else 10,
                          llm_action=d.advice.decision if d and d.advice else None)
