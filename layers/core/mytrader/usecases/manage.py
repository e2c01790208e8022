"""Outcomes: close positions on stop-loss, take-profit or time limit, reconcile broker orders, re-send
decisions stuck in PENDING, and mark dead-lettered decisions."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mytrader import ledger
from mytrader.adapters.tradelog import TradeLog
from mytrader.broker import BROKER_DONE, BrokerOrder
from mytrader.errors import DataQualityError
from mytrader.models import DecisionStatus, Fill, OrderSide, Position
from mytrader.portfolio import exit_on_bar
from mytrader.ports import reports_positions
from mytrader.usecases import response_of
from mytrader.usecases.dead_letters import mark_dead_letters
from mytrader.usecases.execute import ExecDeps, close_position

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import Row
    from mytrader.market.series import BarSeries
    from mytrader.ports import BarSource, DeadLetterQueue, DecisionQueue, PositionReporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PositionMismatch:
    """A symbol where the book and the broker hold different quantities."""
    symbol: str
    book: float
    broker: float


@dataclass(frozen=True)
class OutcomesResult:
    """One outcomes run. `response()` is the function's JSON: error_reasons only when something failed,
    position_mismatches only when the broker reports its holdings (and could be asked). A dataclass, not a
    pydantic model: building a model class costs every cold start of the function.

    A position whose bars cannot be read (or whose last bar the data guard does not trust) is checked against
    the broker's quote instead (`checked_on_quote`); when neither can be trusted it is `positions_unchecked`,
    with the reasons, and the outcomes function emits PositionsUnchecked (an alarm at >= 1)."""
    closed: int = 0
    held: int = 0
    positions_unchecked: int = 0
    checked_on_quote: int = 0
    reconciled: int = 0
    resent: int = 0
    dead_lettered: int = 0
    errors: int = 0
    realised_pnl: float = 0.0
    error_reasons: list[str] | None = None
    position_mismatches: list[PositionMismatch] | None = None
    unchecked_reasons: list[str] | None = None

    def response(self) -> dict[str, Any]:
        return response_of(self)


class _Stops:
    """Tally of the stop / target / time-limit sweep."""

    def __init__(self) -> None:
        self.closed = self.held = self.on_quote = 0
        self.realised_pnl = 0.0
        self.error_reasons: list[str] = []
        self.unchecked: list[str] = []


def run_outcomes(now: datetime, deps: ExecDeps, market: BarSource, queue: DecisionQueue,
                 dead_letters: DeadLetterQueue | None,
                 resend_after: timedelta = timedelta(minutes=10)) -> OutcomesResult:
    tl = deps.tradelog
    tl.begin_day(ledger.day_of(now))  # a loss booked here counts towards today, even before any entry ran
    stops = _Stops()
    for row in tl.position_rows():
        _check_exit(row, now, deps, market, stops)
    errors = list(stops.error_reasons)
    # the paper broker fills at submission, so only a real broker can leave orders open
    reconciled = reconcile_open_orders(tl, deps, now) if deps.broker.name != "paper" else 0
    mismatches: list[PositionMismatch] | None = None
    if reports_positions(deps.broker):
        try:
            mismatches = position_mismatches(tl, deps.broker)
        except Exception as exc:  # the check must not stop the sweeps below; it is counted
            log.exception("broker positions unavailable")
            errors.append(f"broker positions: {exc}"[:200])
        for m in mismatches or []:
            log.error("book and broker disagree on %s: book %s, broker %s", m.symbol, m.book, m.broker)
    resent = _resend_stuck(tl, queue, (now - resend_after).isoformat())
    return OutcomesResult(closed=stops.closed, held=stops.held, positions_unchecked=len(stops.unchecked),
                          checked_on_quote=stops.on_quote, unchecked_reasons=stops.unchecked or None,
                          reconciled=reconciled, resent=resent,
                          dead_lettered=mark_dead_letters(tl, dead_letters), errors=len(errors),
                          realised_pnl=stops.realised_pnl, error_reasons=errors or None,
                          position_mismatches=mismatches)


def _check_exit(row: Row, now: datetime, deps: ExecDeps, market: BarSource, stops: _Stops) -> None:
    """One held position against the last complete bar: closed on its stop, target or time limit, else held.
    Bars that cannot be read, or a last bar the data guard does not trust, leave the broker's quote to decide."""
    tl = deps.tradelog
    pos = Position.model_validate_json(row["doc"])
    try:
        try:
            s = market.full(pos.symbol)
            i = market.bar_at(pos.symbol, now)
        except Exception as exc:  # a broken file, a feed down: the position is still checked, on the quote
            log.error("bars unavailable for held %s: %s", pos.symbol, exc)
            _check_on_quote(pos, now, deps, stops, f"bars unreadable ({_why(exc)})")
            return
        if i < 0 or s.time(i) < pos.opened_at:  # no complete bar since the position opened
            stops.held += 1
            return
        last_checked = row.get("checked_bar")
        if last_checked is not None and int(s.ts[i]) <= int(last_checked):
            return
        untrusted = _untrusted_bar(s, i, deps)
        if untrusted is not None:
            why, trusted = untrusted
            _check_on_quote(pos, now, deps, stops, f"bar quarantined ({why})", trusted=trusted, bar_ts=int(s.ts[i]))
            return
        hit = exit_on_bar(pos, float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]))
        if hit is None:
            tl.bump_bars_held(pos, int(s.ts[i]))
            stops.held += 1
            return
        price, reason = hit
        closed = close_position(pos, f"{pos.decision_id}-x", now, reason, deps, fill_price=price, quote=price,
                                exit_ts=s.time(i))
        stops.closed += 1
        stops.realised_pnl = round(stops.realised_pnl + (closed.pnl or 0.0), 2)
    except Exception as exc:
        log.exception("outcome check failed for %s", pos.symbol)
        stops.error_reasons.append(f"{pos.symbol}: {exc}"[:200])


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


def _check_on_quote(pos: Position, now: datetime, deps: ExecDeps, stops: _Stops, why: str,
                    trusted: float | None = None, bar_ts: int | None = None) -> None:
    """The stop, target and time limit against the broker's quote (for the paper broker: the last trusted price);
    closed at that quote when one is hit. No quote, or one the collar refuses: the position is unchecked."""
    from mytrader.market.guard import collar

    try:
        quote = deps.quotes.quote(pos.symbol, now)
    except Exception as exc:  # DataQualityError, a broker outage: nothing to check the position against
        _unchecked(pos, stops, f"{why}; no quote ({_why(exc)})")
        return
    off = collar(quote, trusted, deps.cfg.data_guard.collar_pct) if trusted is not None else None
    if off:
        _unchecked(pos, stops, f"{why}; quote not trusted ({off})")
        return
    stops.on_quote += 1
    hit = exit_on_bar(pos, quote, quote, quote, quote)
    if hit is None:
        if bar_ts is not None:
            deps.tradelog.bump_bars_held(pos, bar_ts)
        stops.held += 1
        return
    _, reason = hit
    log.warning("%s closed on the broker's quote %s (%s): %s", pos.symbol, quote, reason, why)
    closed = close_position(pos, f"{pos.decision_id}-x", now, reason, deps, fill_price=quote, quote=quote)
    stops.closed += 1
    stops.realised_pnl = round(stops.realised_pnl + (closed.pnl or 0.0), 2)


def _unchecked(pos: Position, stops: _Stops, why: str) -> None:
    log.error("position %s unchecked: %s", pos.symbol, why)
    stops.unchecked.append(f"{pos.symbol}: {why}"[:300])


def _why(exc: Exception) -> str:
    return exc.problem if isinstance(exc, DataQualityError) else f"{type(exc).__name__}: {exc}"[:200]


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
    """Symbols where the book and the broker hold different quantities (a trade made outside MyTrader, a lost
    fill). Symbols with an order still working — an entry awaiting fills or a close under way — are left out:
    there the two legitimately differ until the order ends."""
    held = broker.positions()
    rows = tl.position_rows()
    busy = {r["sk"][4:] for r in rows if "closing_base" in r} | {r["symbol"] for r in tl.open_order_rows()}
    book = {r["sk"][4:]: float(json.loads(r["doc"])["qty"]) for r in rows}
    return [PositionMismatch(symbol=sym, book=book.get(sym, 0.0), broker=held.get(sym, 0.0))
            for sym in sorted((set(book) | set(held)) - busy) if abs(book.get(sym, 0.0) - held.get(sym, 0.0)) > 1e-9]


def reconcile_open_orders(tl: TradeLog, deps: ExecDeps, now: datetime) -> int:
    """Entry orders accepted or partly filled: ask the broker by client_order_id and record the fills since the
    last look — their own quantity at their own price (the broker reports a running average) and their own
    fee. The order row remembers what it has recorded, so a re-run never books a fill twice. Once the broker is
    done with the order it leaves the open set; if nothing ever filled, the position slot reserved for it is
    freed and the decision ends REJECTED with the broker's verdict."""
    n = 0
    for row in tl.open_order_rows():
        placed = deps.broker.get_by_client_order_id(row["client_order_id"])
        if placed is None:
            continue
        decision_id = row["pk"][4:]
        pos_row = tl.position_row(row["symbol"])
        pos = Position.model_validate_json(pos_row["doc"]) if pos_row else None
        recorded = _Recorded.of(row, pos, pos_row)
        new_qty = round(placed.filled_qty - recorded.qty, 9)
        done = placed.status in BROKER_DONE
        if new_qty <= 0 and not done:
            continue
        fill, position, order_row = None, None, dict(row)
        if new_qty > 0:
            fill, position = _new_fill(tl, decision_id, placed, pos, recorded, new_qty, now)
            order_row.update(filled_qty=placed.filled_qty, filled_notional=recorded.cost + new_qty * fill.price,
                             filled_fee=recorded.fee + fill.fee)
        tl.record_late_fill(decision_id, order_row, fill, position, opens=pos is None,
                            take_slot=pos is None and recorded.qty > 0, done=done,
                            nothing_filled=placed.filled_qty <= 0, status=placed.status)
        n += 1
    return n


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
    """The fill since the last look, at its own price and fee, and the position it grows (or opens)."""
    side = OrderSide(placed.side)
    price = (placed.fill_price() * placed.filled_qty - recorded.cost) / new_qty
    fee = max(0.0, placed.fee - recorded.fee)
    fill = Fill(client_order_id=placed.client_order_id, symbol=placed.symbol, side=side, qty=new_qty,
                price=round(price, 6), fee=fee, filled_at=now)
    if pos is not None:
        held = abs(pos.qty)
        avg = (pos.avg_price * held + fill.price * new_qty) / (held + new_qty)
        return fill, pos.model_copy(update={"qty": ledger.signed(side, held + new_qty), "avg_price": round(avg, 6)})
    d = tl.get_decision(decision_id)
    return fill, Position(symbol=placed.symbol, qty=ledger.signed(side, new_qty), avg_price=fill.price, opened_at=now,
                          decision_id=decision_id, stop_loss=d.stop_loss if d else None,
                          take_profit=d.take_profit if d else None, time_limit_bars=d.time_horizon_bars if d else 10)
