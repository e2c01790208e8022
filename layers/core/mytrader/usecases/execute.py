"""The executor's domain: one RECORDED decision -> the ledger's verdict -> broker -> the trade log's intents.

The message is a pointer; the executor loads the PENDING record the decision cycle stored and executes that
(admission.py: a message that differs from its record, an entry outside the universe, stale or from the future,
is refused; a message with no record is kept as an orphan, never executed).

Timing (the same in the backtester, the replay and a deployment):
  - the outcomes run goes once a day after the close (stack_spec.OUTCOMES_SCHEDULE, 16:20 New York; the replay runs
    it 5 minutes and the decisions 10 minutes after the close: any time between the close and the next open is alike):
    it first reconciles what the broker filled since the last run (entries and closes queued the day before fill
    at today's open), then checks the held positions against today's completed bar;
  - the decision cycle follows (stack_spec.DECISION_SCHEDULE, 16:25): it decides on completed daily bars only
    (a bar is stamped at its session's close; an early close is simply earlier) and sends its decisions in symbol
    order;
  - the executor acts on each at once: an entry is sized and risk-checked at the quote it has now (after the close:
    the session's close, which is the decision's bar close) and goes to the broker as a market order, like a signal
    exit. The market is closed, so the broker queues it (`accepted`, nothing filled) and it fills at the next
    session's open. A closed market is never a refusal: an entry is refused only when no session opens before the
    decision goes stale (ledger.Limit.NO_SESSION). The backtester sizes at the close of bar t and fills at the open
    of t+1, in the same order, before the exits on bar t+1.

Working orders are state, not errors: an entry the broker accepted without filling is recorded as working (the
decision EXECUTED, the order open) and a close likewise on its position (the closing decision EXECUTED); the
message succeeds and outcomes books the fills, at the broker's `filled_at`, when they come.

Entry, in three steps that survive a crash anywhere:
  1. reserve: the trade log takes a position slot, the symbol and the order record in one transaction whose
     conditions restate every hard limit; a lost race re-reads and re-checks (RESERVE_ATTEMPTS), and when the
     attempts run out the message is redelivered (RetryLater), never rejected for a race;
  2. submit to the broker with client_order_id = decision_id (at a real broker as a bracket: its stop and target,
     on the tick, rest at the broker as the entry's legs);
  3. record: fill, position, cash (by the ledger), order status and the decision's EXECUTED state in one
     transaction (or the order as working). A redelivery finds the order record, asks the broker by
     client_order_id and finishes step 3.

Broker errors by kind: REFUSED / INVALID / CONFLICT end an entry REJECTED with the broker's code in the reason;
THROTTLED / UNAVAILABLE (and a quote source that cannot answer now) hand the message back for redelivery; AUTH
(keys refused) fails closed: the entry's reservation is withdrawn, entries are blocked on the account state until
outcomes reads the broker's account again, and the message is redelivered (it then meets the block and ends
REJECTED naming it, unless the block was cleared meanwhile). A close honours the error's `retryable` flag; an auth
error on a close is retried (entries are blocked meanwhile).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mytrader import ledger
from mytrader.adapters.tradelog import AlreadyReserved, NotPending, ReserveParams, StateConflict, SymbolBusy, TradeLog
from mytrader.broker import BROKER_DONE, BrokerError, BrokerErrorKind, BrokerOrder, ExitLegs, new_order
from mytrader.config import TradingConfig
from mytrader.errors import DataQualityError
from mytrader.market.guard import collar
from mytrader.market.ticks import round_to_tick
from mytrader.models import Action, DecisionStatus, Fill, Order, OrderSide, Position, TradeDecision
from mytrader.portfolio import next_open
from mytrader.ports import reports_account
from mytrader.usecases import response_of
from mytrader.usecases.admission import AdmissionKind, DecisionMessage, admit

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import Row
    from mytrader.ports import Broker, QuoteSource

log = logging.getLogger(__name__)

RESERVE_ATTEMPTS = 3  # lost races on the account state before the message is handed back for redelivery
CLOSE_LEASE = timedelta(minutes=2)  # a run that took the lease to send a close order and died is replaced after this


class RetryLater(Exception):
    """The reservation lost its race RESERVE_ATTEMPTS times: the message is redelivered (a batch-item failure)."""


@dataclass(frozen=True)
class ExecDeps:
    """What executing a decision (and closing a position) calls."""
    tradelog: TradeLog
    broker: Broker
    quotes: QuoteSource
    cfg: TradingConfig
    max_age: timedelta
    universe: frozenset[str] = field(default_factory=frozenset)
    max_future: timedelta = timedelta(minutes=5)


class ExecutionOutcome(StrEnum):
    """The `result` of one execution: a terminal decision state, or why nothing was done this time."""
    EXECUTED = "EXECUTED"
    REJECTED = "REJECTED"
    SKIPPED = "SKIPPED"
    ALREADY_TERMINAL = "already_terminal"  # a redelivery of a decision already decided
    IN_PROGRESS_ELSEWHERE = "in_progress_elsewhere"  # a concurrent delivery holds the order record
    ALREADY_CLOSED = "already_closed"  # the position to close is gone (a duplicate close)
    ORPHAN = "orphan"  # a message whose decision the decision cycle never recorded: kept, never executed


class Halt(StrEnum):
    """What halted new entries, when that is why an entry was rejected."""
    KILL_SWITCH = "kill_switch"
    DAILY_LOSS_LIMIT = "daily_loss_limit"


@dataclass(frozen=True)
class ExecutionResult:
    """One execution's result. `response()` is the JSON the executor returns (and the idempotency store keeps):
    the fields that apply, nothing else; `halted_by` feeds the metrics only. A dataclass, not a pydantic model:
    building a model class costs every cold start of the executor."""
    result: ExecutionOutcome
    decision_id: str | None = None  # None only for a close without a decision that found the position gone
    symbol: str | None = None
    status: str | None = None  # already_terminal: the decision's recorded state
    reason: str | None = None
    limit: str | None = None  # a refused entry: the hard limit that held (ledger.Limit)
    filled: float | None = None  # accepted by the broker with nothing filled yet: 0
    qty: float | None = None
    price: float | None = None
    closed: str | None = None  # a close: its reason (signal, stop_loss, take_profit, time_limit, ...)
    pnl: float | None = None
    halted_by: Halt | None = None

    def response(self) -> dict[str, Any]:
        return response_of(self, exclude=frozenset({"halted_by"}))


def execute_decision(message: DecisionMessage, now: datetime, deps: ExecDeps) -> ExecutionResult:
    """Executes the stored record `message` points to (never the message itself). A broker refusing MyTrader's
    keys (AUTH) blocks entries on the account state before the error goes on (fail closed)."""
    try:
        return _execute(message, now, deps)
    except BrokerError as exc:
        if exc.kind is BrokerErrorKind.AUTH:
            deps.tradelog.block_entries(auth_block(exc))
        raise


def auth_block(exc: BrokerError) -> str:
    """The account block an auth error sets: cleared by the next outcomes run that reads the broker's account."""
    return f"broker auth: {exc}"[:300]


def _execute(message: DecisionMessage, now: datetime, deps: ExecDeps) -> ExecutionResult:
    tl = deps.tradelog
    row = tl.get_decision_row(message.decision_id)
    tl.begin_day(ledger.day_of(now))
    position = tl.position(message.symbol)
    reduces = position is not None and ledger.reduces(message.action, position.qty)
    # A SELL with nothing held in a long-only book opens nothing (it ends SKIPPED below): not an entry to vet
    never_opens = position is None and message.action == Action.SELL and not deps.cfg.allow_short
    verdict = admit(message, row, now=now, universe=deps.universe, max_age=deps.max_age, max_future=deps.max_future,
                    reduces=reduces or never_opens, cfg=deps.cfg)
    if verdict.kind == AdmissionKind.ORPHAN:
        tl.put_orphan(message.decision_id, "", verdict.reason, now)
        log.error("message for unknown decision %s: %s", message.decision_id, verdict.reason)
        return ExecutionResult(decision_id=message.decision_id, result=ExecutionOutcome.ORPHAN, reason=verdict.reason)
    if verdict.kind == AdmissionKind.TERMINAL:
        return ExecutionResult(decision_id=message.decision_id, result=ExecutionOutcome.ALREADY_TERMINAL,
                               status=verdict.reason)
    if verdict.kind == AdmissionKind.REJECT and not verdict.reject_record:  # the message's fault: the record stays
        log.error("message for %s refused: %s", message.decision_id, verdict.reason)
        return ExecutionResult(decision_id=message.decision_id, result=ExecutionOutcome.REJECTED,
                               reason=verdict.reason)
    if verdict.kind == AdmissionKind.REJECT or verdict.decision is None:
        return _finish(tl, message.decision_id, DecisionStatus.REJECTED, verdict.reason)
    decision = verdict.decision
    if position is not None and reduces:
        return close_position(position, decision.decision_id, now, "signal", deps, decision=decision)
    if position is not None:
        return _finish(tl, decision.decision_id, DecisionStatus.SKIPPED, "already positioned")
    if decision.action == Action.SELL and not deps.cfg.allow_short:
        return _finish(tl, decision.decision_id, DecisionStatus.SKIPPED, "long-only: nothing to sell")
    return _open_position(decision, now, deps)


def _finish(tl: TradeLog, decision_id: str, status: DecisionStatus, reason: str, halted_by: Halt | None = None,
            limit: str | None = None) -> ExecutionResult:
    tl.mark_terminal(decision_id, status, reason)
    log.info("decision %s %s: %s", decision_id, status.value, reason)
    return ExecutionResult(decision_id=decision_id, result=ExecutionOutcome(status.value), reason=reason,
                           halted_by=halted_by, limit=limit)


_HALTS = {ledger.Limit.KILL_SWITCH: Halt.KILL_SWITCH, ledger.Limit.DAILY_LOSS: Halt.DAILY_LOSS_LIMIT}


def broker_reason(exc: BrokerError) -> str:
    """A broker error as a decision's reason: its kind, the broker's words and its code when it sent one."""
    return f"broker {exc.kind.value}: {exc}" + (f" [code {exc.code}]" if exc.code else "")


def exit_legs(decision: TradeDecision, broker: Broker) -> ExitLegs | None:
    """The stop and target an entry rests at a real broker (a bracket), on the instrument's tick. The paper broker
    rests nothing: outcomes checks its positions against each bar, at the price a resting stop would have got."""
    if broker.name == "paper" or (decision.stop_loss is None and decision.take_profit is None):
        return None
    return ExitLegs(stop_loss=round_to_tick(decision.stop_loss) if decision.stop_loss is not None else None,
                    take_profit=round_to_tick(decision.take_profit) if decision.take_profit is not None else None)


def _open_position(decision: TradeDecision, now: datetime, deps: ExecDeps) -> ExecutionResult:
    tl = deps.tradelog
    side = OrderSide.BUY if decision.action == Action.BUY else OrderSide.SELL
    existing = tl.order(decision.decision_id)
    if existing is not None:  # a redelivery: the order was reserved (and perhaps placed) before
        order = new_order(decision.decision_id, decision.symbol, side, float(existing["qty"]), now, False)
        placed = deps.broker.get_by_client_order_id(decision.decision_id)
        if placed is None:
            placed = deps.broker.submit(order, float(existing["quote"]), exits=exit_legs(decision, deps.broker))
        return _record_entry(decision, order, placed, float(existing["quote"]), now, deps)
    try:
        quote = deps.quotes.quote(decision.symbol, now)
    except DataQualityError as exc:
        if exc.retryable:  # the source cannot answer now (throttled, down): not bad data, try again later
            raise RetryLater(f"{decision.decision_id}: no quote for now ({exc.problem})") from None
        return _finish(tl, decision.decision_id, DecisionStatus.REJECTED, f"no quote: {exc.problem}")
    off_collar = collar(quote, decision.reference_price, deps.cfg.data_guard.collar_pct)  # a bad print, a bad quote
    if off_collar:
        return _finish(tl, decision.decision_id, DecisionStatus.REJECTED, off_collar)
    reserved = _reserve(decision, side, quote, now, deps)
    if isinstance(reserved, ExecutionResult):
        return reserved
    try:
        placed = deps.broker.submit(reserved, quote, exits=exit_legs(decision, deps.broker))
    except BrokerError as exc:
        return _entry_refused(decision, exc, deps)
    return _record_entry(decision, reserved, placed, quote, now, deps)


def _entry_refused(decision: TradeDecision, exc: BrokerError, deps: ExecDeps) -> ExecutionResult:
    """The broker did not take the entry: retried (throttled, unavailable), withdrawn and blocked (auth: nothing
    reached the broker), or REJECTED for good with the broker's code (refused, invalid, a conflicting id)."""
    tl = deps.tradelog
    if exc.kind is BrokerErrorKind.AUTH:
        tl.withdraw_entry(decision.decision_id, decision.symbol, auth_block(exc))
        log.error("broker refused MyTrader's keys: entries blocked (%s)", exc)
        raise RetryLater(f"{decision.decision_id}: {broker_reason(exc)}") from exc
    if exc.retryable:
        raise exc
    reason = broker_reason(exc)
    tl.release_entry(decision.decision_id, decision.symbol, "rejected", reason)
    return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.REJECTED, reason=reason)


def _session_ahead(deps: ExecDeps, now: datetime) -> datetime | None:
    """When an order sent now first executes: by the broker's own clock (GET /v2/clock knows unscheduled closures)
    when it has one, else — or when the clock cannot be read — by the exchange calendar."""
    if reports_account(deps.broker):
        try:
            clock = deps.broker.clock()
            return now if clock.is_open else clock.next_open
        except BrokerError as exc:
            log.warning("broker clock unavailable (%s): the exchange calendar decides", exc)
    return next_open(now)


def _reserve(decision: TradeDecision, side: OrderSide, quote: float, now: datetime,
             deps: ExecDeps) -> Order | ExecutionResult:
    """Step 1: the ledger's verdict on the account as read, then the reservation under the same limits as
    conditions. A refusal names the limit that holds; a lost race re-reads and tries again."""
    tl, limits = deps.tradelog, deps.cfg.risk
    in_time = ledger.opens_in_time(_session_ahead(deps, now), decision.decided_at, deps.max_age)
    for _ in range(RESERVE_ATTEMPTS):
        account = tl.account_state()
        owner = tl.symbol_claim_owner(decision.symbol)
        if owner == decision.decision_id:  # another delivery of this very decision reserved it: it finishes it
            return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.IN_PROGRESS_ELSEWHERE)
        verdict = ledger.entry_verdict(limits, account, size_pct=decision.position_size_pct, price=quote, now=now,
                                       opens_in_time=in_time, kill_switch=account.kill_switch,
                                       symbol_busy=owner is not None, decided_equity=decision.sizing_equity,
                                       fractional=ledger.sizes_fractional(deps.cfg.fractional_shares, side))
        if verdict.trips_daily_loss:
            tl.trip_daily_loss(account.day)
        if not verdict.approved:
            return _finish(tl, decision.decision_id, DecisionStatus.REJECTED, f"risk: {verdict.reason}",
                           halted_by=_HALTS.get(verdict.limit), limit=verdict.limit)
        order = new_order(decision.decision_id, decision.symbol, side, verdict.qty, now, False)
        try:
            tl.reserve_entry(decision.decision_id, order, quote,
                             ReserveParams(expected=account, limits=limits, now=now, notional=verdict.qty * quote))
            return order
        except AlreadyReserved:
            return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.IN_PROGRESS_ELSEWHERE)
        except NotPending:
            row = tl.get_decision_row(decision.decision_id)
            return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.ALREADY_TERMINAL,
                                   status=str(row["status"]) if row else None)
        except (StateConflict, SymbolBusy):
            continue  # re-read: either a limit now holds (and is named) or the next attempt wins
    raise RetryLater(f"{decision.decision_id}: the account changed under {RESERVE_ATTEMPTS} reservations")


def _record_entry(decision: TradeDecision, order: Order, placed: BrokerOrder, quote: float, now: datetime,
                  deps: ExecDeps) -> ExecutionResult:
    tl = deps.tradelog
    if placed.filled_qty <= 0:  # accepted, not yet filled (queued for the next open): outcomes books the fill
        tl.record_entry_accepted(decision, order, quote)
        return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.EXECUTED, filled=0)
    filled_at = placed.filled_at or now
    fill = Fill(client_order_id=order.client_order_id, symbol=order.symbol, side=order.side, qty=placed.filled_qty,
                price=placed.fill_price(), fee=placed.fee, filled_at=filled_at)
    pos = Position(symbol=order.symbol, qty=ledger.signed(order.side, placed.filled_qty), avg_price=fill.price,
                   opened_at=filled_at, decision_id=decision.decision_id, stop_loss=decision.stop_loss,
                   take_profit=decision.take_profit, time_limit_bars=decision.time_horizon_bars,
                   llm_action=decision.advice.decision if decision.advice else None)
    status = "filled" if placed.status == "filled" else "partially_filled"
    tl.record_entry_fill(decision, order, fill, pos, quote, status)
    return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.EXECUTED, qty=fill.qty,
                           price=fill.price)


# -- closing a position: claim, submit, settle ----------------------------------------------------------
@dataclass(frozen=True)
class _Close:
    """A close of one position, continued from what its position row records of a close already under way."""
    pos: Position
    row: Row  # the position row; empty when the position is gone
    base: str  # the first closing order's client_order_id; retries after an order ended short suffix -r1, -r2, ...
    reason: str
    owner: str  # the decision this run closes for (a SELL, or the position's own entry for stops and targets)
    starter: str | None  # the decision whose order began the close, when a close is under way
    attempt: int
    done_qty: float
    done_notional: float
    done_fee: float

    @classmethod
    def of(cls, pos: Position, row: Row, client_order_id: str, reason: str,
           decision: TradeDecision | None) -> _Close:
        # A close already under way (its order claimed the position) is continued, never doubled by a second order.
        return cls(pos=pos, row=row, base=row.get("closing_base") or client_order_id,
                   reason=row.get("closing_reason") or reason,
                   owner=decision.decision_id if decision is not None else pos.decision_id,
                   starter=row.get("closing_owner"), attempt=int(row.get("close_attempt", 0)),
                   done_qty=float(row.get("closing_qty", 0.0)), done_notional=float(row.get("closing_notional", 0.0)),
                   done_fee=float(row.get("closing_fee", 0.0)))

    @property
    def coid(self) -> str:
        return self.base if self.attempt == 0 else f"{self.base}-r{self.attempt}"

    @property
    def side(self) -> OrderSide:
        return OrderSide.SELL if self.pos.qty > 0 else OrderSide.BUY

    @property
    def remaining(self) -> float:
        return round(abs(self.pos.qty) - self.done_qty, 9)


def close_position(pos: Position, client_order_id: str, now: datetime, reason: str, deps: ExecDeps,
                   decision: TradeDecision | None = None, fill_price: float | None = None, quote: float | None = None,
                   exit_ts: datetime | None = None) -> ExecutionResult:
    """Reduce-only close (signal, stop, target, time limit, flatten): never blocked by the kill switch.

    With a real broker a close order may wait (queued after the close), fill in parts or be ended short
    (canceled, expired, rejected). The book changes only once the whole position is sold: until then the order is
    recorded as working on the position (the result has `filled`, no `closed`) and outcomes reconciles it; an
    order the broker ended short leaves what it filled on the position and makes way for a new order
    (client_order_id suffixed -r1, -r2, ...) for the rest (a retryable error). The exit price is the average over
    all of them. At a real broker the entry's resting legs are cancelled first — or, when one has filled, that
    fill is the close and no order is sent.
    """
    tl = deps.tradelog
    close = _Close.of(pos, tl.position_row(pos.symbol) or {}, client_order_id, reason, decision)
    order = new_order(close.coid, pos.symbol, close.side, close.remaining, now, True)
    placed = deps.broker.get_by_client_order_id(close.coid)
    if placed is None:
        if not close.row:  # the position is gone: selling now would open the other side
            return _already_closed(tl, pos, decision)
        closed_by_leg = _legs_first(close, now, deps, decision)
        if closed_by_leg is not None:
            return closed_by_leg
        submitted = _claim_and_submit(close, order, now, deps, decision, fill_price, quote)
        if isinstance(submitted, ExecutionResult):
            return submitted
        placed = submitted
    return _progress(close, placed, now, deps, decision, exit_ts)


def continue_close(row: Row, now: datetime, deps: ExecDeps) -> ExecutionResult | None:
    """Outcomes' look at a close under way on the position `row`: booked when its order filled, still working, or
    None when the broker has no such order yet (its sender will send it; nothing is sent from here)."""
    pos = Position.model_validate_json(row["doc"])
    close = _Close.of(pos, row, str(row["closing_base"]), str(row.get("closing_reason") or "signal"), None)
    placed = deps.broker.get_by_client_order_id(close.coid)
    if placed is None:
        return None
    return _progress(close, placed, now, deps, None, None)


def _progress(close: _Close, placed: BrokerOrder, now: datetime, deps: ExecDeps, decision: TradeDecision | None,
              exit_ts: datetime | None) -> ExecutionResult:
    working = _working_or_ended(close, placed, now, deps.tradelog, decision)
    if working is not None:
        return working
    return _settle(close, placed, now, exit_ts or placed.filled_at or now, deps, decision)


def _already_closed(tl: TradeLog, pos: Position, decision: TradeDecision | None) -> ExecutionResult:
    if decision is not None:
        return _finish(tl, decision.decision_id, DecisionStatus.SKIPPED, "position already closed")
    return ExecutionResult(symbol=pos.symbol, result=ExecutionOutcome.ALREADY_CLOSED)


def _legs_first(close: _Close, now: datetime, deps: ExecDeps, decision: TradeDecision | None) -> ExecutionResult | None:
    """Before a close order goes to a real broker: a resting leg of the entry that has filled is the close (booked,
    nothing sent); the legs still working are cancelled, then looked at once more (a leg may fill meanwhile)."""
    if deps.broker.name == "paper":
        return None
    entry = deps.broker.get_by_client_order_id(close.pos.decision_id)
    if entry is None or not entry.legs:
        return None
    working = [leg for leg in entry.legs if leg.status not in BROKER_DONE]
    for leg in working:
        deps.broker.cancel(leg.broker_order_id)
    if working:
        entry = deps.broker.get_by_client_order_id(close.pos.decision_id) or entry
    filled = filled_leg(entry, close.pos)
    if filled is None:
        return None
    booked = book_leg_fill(close.pos, close.row, filled, now, deps)
    if decision is not None:
        return _finish(deps.tradelog, decision.decision_id, DecisionStatus.SKIPPED,
                       f"the position closed on its {booked.closed} leg at the broker")
    return booked


def filled_leg(entry: BrokerOrder, pos: Position) -> BrokerOrder | None:
    """The entry's leg that sold the whole position at the broker, if one did."""
    return next((leg for leg in entry.legs if leg.filled_qty >= abs(pos.qty) - 1e-9 and leg.filled_qty > 0), None)


def book_leg_fill(pos: Position, row: Row, leg: BrokerOrder, now: datetime, deps: ExecDeps) -> ExecutionResult:
    """The position closed by its resting stop or target at the broker: booked at the leg's price, fee and time."""
    tl = deps.tradelog
    at = leg.filled_at or now
    reason = leg.leg or ("stop_loss" if leg.stop_price is not None else "take_profit")
    fill = Fill(client_order_id=leg.client_order_id or f"{pos.decision_id}-{reason}", symbol=pos.symbol,
                side=leg.side, qty=leg.filled_qty, price=leg.fill_price(), fee=leg.fee, filled_at=at)
    try:
        done = tl.record_close(pos, fill, exit_price=fill.price, exit_fee=leg.fee,
                               entry_fee=float(row.get("entry_fee", 0.0)), reason=reason, at=at, owner=pos.decision_id,
                               limits=deps.cfg.risk, fill_seq=1)
    except StateConflict as exc:
        raise BrokerError(f"leg close of {pos.symbol}: {exc}", retryable=True) from None
    if done is None:
        return ExecutionResult(symbol=pos.symbol, result=ExecutionOutcome.ALREADY_CLOSED)
    return ExecutionResult(decision_id=pos.decision_id, result=ExecutionOutcome.EXECUTED, closed=reason,
                           pnl=done.outcome.pnl)


def _claim_and_submit(close: _Close, order: Order, now: datetime, deps: ExecDeps, decision: TradeDecision | None,
                      fill_price: float | None, quote: float | None) -> BrokerOrder | ExecutionResult:
    """Quote (the paper broker's price; a market order at a real broker needs none), claim the position for this
    close (once), send the closing order."""
    tl, pos = deps.tradelog, close.pos
    if quote is None and deps.broker.name == "paper":
        try:
            quote = deps.quotes.quote(pos.symbol, now)
        except DataQualityError as exc:
            if decision is not None and not exc.retryable:
                return _finish(tl, decision.decision_id, DecisionStatus.REJECTED, f"no quote to close: {exc.problem}")
            raise RetryLater(f"close of {pos.symbol}: no quote for now ({exc.problem})") from None
    if "closing_base" not in close.row:
        if not tl.mark_closing(pos.symbol, close.base, close.reason, close.owner, now):
            raise BrokerError(f"another close of {pos.symbol} started meanwhile; it is continued on retry",
                              retryable=True)
    elif not tl.take_close_lease(pos.symbol, close.coid, now, now - CLOSE_LEASE):
        raise BrokerError(f"another run is sending close order {close.coid} of {pos.symbol}; continued on retry",
                          retryable=True)
    try:
        return deps.broker.submit(order, quote if quote is not None else 0.0, fill_price)
    except BrokerError as exc:
        if exc.retryable or exc.kind is BrokerErrorKind.AUTH:
            raise
        return _close_refused(close, exc, deps, decision)


def _close_refused(close: _Close, exc: BrokerError, deps: ExecDeps,
                   decision: TradeDecision | None) -> ExecutionResult:
    """The broker refused the close order for good: nothing of it exists at the broker, so the position is freed for
    the next close (a new order id); the closing decision ends REJECTED with the broker's reason."""
    tl = deps.tradelog
    if close.done_qty <= 0:
        tl.abandon_close(close.pos.symbol, close.base)
    log.error("broker refused close order %s of %s: %s", close.coid, close.pos.symbol, exc)
    if decision is None:
        raise exc
    return _finish(tl, decision.decision_id, DecisionStatus.REJECTED, f"close refused: {broker_reason(exc)}")


def _working_or_ended(close: _Close, placed: BrokerOrder, now: datetime, tl: TradeLog,
                      decision: TradeDecision | None) -> ExecutionResult | None:
    """None when the whole position is sold. An order still working is recorded as working (the closing decision
    EXECUTED, the message done); an order the broker ended short records its part and makes way for the next
    order (a retryable error)."""
    remaining, coid = close.remaining, close.coid
    if placed.filled_qty >= remaining:
        return None
    if placed.status not in BROKER_DONE:
        tl.record_close_working(close.pos.symbol, coid, placed.status,
                                decision.decision_id if decision is not None else None)
        return ExecutionResult(decision_id=close.owner, result=ExecutionOutcome.EXECUTED, filled=placed.filled_qty,
                               reason=f"close order {coid} {placed.status}: {placed.filled_qty:g} of {remaining:g} "
                                      "filled, awaiting the rest")
    part = Fill(client_order_id=coid, symbol=close.pos.symbol, side=close.side, qty=placed.filled_qty,
                price=placed.fill_price(), fee=placed.fee,
                filled_at=placed.filled_at or now) if placed.filled_qty > 0 else None
    tl.close_attempt_ended(close.pos.symbol, close.attempt, part, close.owner)  # False: a concurrent close did it
    raise BrokerError(f"broker {placed.status} close order {coid} with {placed.filled_qty:g} of {remaining:g} "
                      "filled; a new order follows", retryable=True)


def _settle(close: _Close, placed: BrokerOrder, now: datetime, at: datetime, deps: ExecDeps,
            decision: TradeDecision | None) -> ExecutionResult:
    """Book the exit through the trade log: position and claim gone, fill, outcome, and the account by the ledger
    (cash, equity, realised P&L, slot, stop-out streak and cooldown), in one transaction."""
    tl, pos = deps.tradelog, close.pos
    price = placed.fill_price()
    exit_price = (close.done_notional + placed.filled_qty * price) / (close.done_qty + placed.filled_qty)
    fill = Fill(client_order_id=close.coid, symbol=pos.symbol, side=close.side, qty=placed.filled_qty, price=price,
                fee=placed.fee, filled_at=placed.filled_at or now)
    try:
        done = tl.record_close(pos, fill, exit_price=exit_price, exit_fee=close.done_fee + placed.fee,
                               entry_fee=float(close.row.get("entry_fee", 0.0)), reason=close.reason, at=at,
                               owner=close.owner, limits=deps.cfg.risk, fill_seq=1 if decision is None else 0,
                               decision_id=decision.decision_id if decision is not None else None)
    except StateConflict as exc:
        raise BrokerError(f"close of {pos.symbol}: {exc}", retryable=True) from None
    if done is None:  # the position is already gone: a duplicate close
        return _already_closed(tl, pos, decision)
    _complete_starter(tl, close)
    return ExecutionResult(decision_id=close.owner, result=ExecutionOutcome.EXECUTED, closed=close.reason,
                           pnl=done.outcome.pnl)


def _complete_starter(tl: TradeLog, close: _Close) -> None:
    """The SELL or flatten decision that began this close (its message perhaps dead-lettered) ends EXECUTED too."""
    starter = close.starter
    if not starter or starter in (close.owner, close.pos.decision_id):
        return
    for prior in (DecisionStatus.PENDING, DecisionStatus.DEAD_LETTERED):
        if tl.mark_terminal(starter, DecisionStatus.EXECUTED, f"closed: {close.reason} (completed by a later run)",
                            from_status=prior.value):
            break
