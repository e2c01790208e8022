"""The executor's domain: one RECORDED decision -> the ledger's verdict -> broker -> the trade log's intents.

The message is a pointer; the executor loads the PENDING record the decision cycle stored and executes that
(admission.py: a message that differs from its record, an entry outside the universe, stale or from the future,
is refused; a message with no record is kept as an orphan, never executed).

Entry, in three steps that survive a crash anywhere:
  1. reserve: the trade log takes a position slot, the symbol and the order record in one transaction whose
     conditions restate every hard limit; a lost race re-reads and re-checks (RESERVE_ATTEMPTS), and when the
     attempts run out the message is redelivered (RetryLater), never rejected for a race;
  2. submit to the broker with client_order_id = decision_id;
  3. record: fill, position, cash (by the ledger), order status and the decision's EXECUTED state in one
     transaction. A redelivery finds the order record, asks the broker by client_order_id and finishes step 3.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mytrader import ledger
from mytrader.adapters.tradelog import AlreadyReserved, NotPending, ReserveParams, StateConflict, SymbolBusy, TradeLog
from mytrader.broker import BROKER_DONE, BrokerError, BrokerOrder, new_order
from mytrader.config import TradingConfig
from mytrader.errors import DataQualityError
from mytrader.market.calendar import nyse
from mytrader.market.guard import collar
from mytrader.models import Action, DecisionStatus, Fill, Order, OrderSide, Position, TradeDecision
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
    """Executes the stored record `message` points to (never the message itself)."""
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


def _open_position(decision: TradeDecision, now: datetime, deps: ExecDeps) -> ExecutionResult:
    tl = deps.tradelog
    side = OrderSide.BUY if decision.action == Action.BUY else OrderSide.SELL
    existing = tl.order(decision.decision_id)
    if existing is not None:  # a redelivery: the order was reserved (and perhaps placed) before
        order = new_order(decision.decision_id, decision.symbol, side, float(existing["qty"]), now, False)
        placed = deps.broker.get_by_client_order_id(decision.decision_id)
        if placed is None:
            placed = deps.broker.submit(order, float(existing["quote"]))
        return _record_entry(decision, order, placed, float(existing["quote"]), now, deps)
    try:
        quote = deps.quotes.quote(decision.symbol, now)
    except DataQualityError as exc:
        return _finish(tl, decision.decision_id, DecisionStatus.REJECTED, f"no quote: {exc.problem}")
    off_collar = collar(quote, decision.reference_price, deps.cfg.data_guard.collar_pct)  # a bad print, a bad quote
    if off_collar:
        return _finish(tl, decision.decision_id, DecisionStatus.REJECTED, off_collar)
    reserved = _reserve(decision, side, quote, now, deps)
    if isinstance(reserved, ExecutionResult):
        return reserved
    try:
        placed = deps.broker.submit(reserved, quote)
    except BrokerError as exc:
        if exc.retryable:
            raise
        tl.release_entry(decision.decision_id, decision.symbol, "rejected", f"broker: {exc}")
        return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.REJECTED,
                               reason=f"broker: {exc}")
    return _record_entry(decision, reserved, placed, quote, now, deps)


def _reserve(decision: TradeDecision, side: OrderSide, quote: float, now: datetime,
             deps: ExecDeps) -> Order | ExecutionResult:
    """Step 1: the ledger's verdict on the account as read, then the reservation under the same limits as
    conditions. A refusal names the limit that holds; a lost race re-reads and tries again."""
    tl, limits = deps.tradelog, deps.cfg.risk
    market_open = nyse().is_open(now)
    for _ in range(RESERVE_ATTEMPTS):
        account = tl.account_state()
        owner = tl.symbol_claim_owner(decision.symbol)
        if owner == decision.decision_id:  # another delivery of this very decision reserved it: it finishes it
            return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.IN_PROGRESS_ELSEWHERE)
        verdict = ledger.entry_verdict(limits, account, size_pct=decision.position_size_pct, price=quote, now=now,
                                       market_open=market_open, kill_switch=account.kill_switch,
                                       symbol_busy=owner is not None, decided_equity=decision.sizing_equity)
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
    if placed.filled_qty <= 0:  # accepted, not yet filled: outcomes reconciles the fill later
        tl.record_entry_accepted(decision, order, quote)
        return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.EXECUTED, filled=0)
    fill = Fill(client_order_id=order.client_order_id, symbol=order.symbol, side=order.side, qty=placed.filled_qty,
                price=placed.fill_price(), fee=placed.fee, filled_at=now)
    pos = Position(symbol=order.symbol, qty=ledger.signed(order.side, placed.filled_qty), avg_price=fill.price,
                   opened_at=now, decision_id=decision.decision_id, stop_loss=decision.stop_loss,
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

    With a real broker a close order may fill in parts or be ended short (canceled, expired, rejected). The
    book changes only once the whole position is sold: until then a working order is waited for (a retryable
    error), and an order the broker ended short leaves what it filled on the position and makes way for a new
    order (client_order_id suffixed -r1, -r2, ...) for the rest. The exit price is the average over all of them.
    """
    tl = deps.tradelog
    close = _Close.of(pos, tl.position_row(pos.symbol) or {}, client_order_id, reason, decision)
    order = new_order(close.coid, pos.symbol, close.side, close.remaining, now, True)
    placed = deps.broker.get_by_client_order_id(close.coid)
    if placed is None:
        if not close.row:  # the position is gone: selling now would open the other side
            return _already_closed(tl, pos, decision)
        submitted = _claim_and_submit(close, order, now, deps, decision, fill_price, quote)
        if isinstance(submitted, ExecutionResult):
            return submitted
        placed = submitted
    _require_complete(close, placed, now, tl)
    return _settle(close, placed, now, exit_ts or now, deps, decision)


def _already_closed(tl: TradeLog, pos: Position, decision: TradeDecision | None) -> ExecutionResult:
    if decision is not None:
        return _finish(tl, decision.decision_id, DecisionStatus.SKIPPED, "position already closed")
    return ExecutionResult(symbol=pos.symbol, result=ExecutionOutcome.ALREADY_CLOSED)


def _claim_and_submit(close: _Close, order: Order, now: datetime, deps: ExecDeps, decision: TradeDecision | None,
                      fill_price: float | None, quote: float | None) -> BrokerOrder | ExecutionResult:
    """Quote, claim the position for this close (once), send the closing order."""
    tl, pos = deps.tradelog, close.pos
    if quote is None:
        try:
            quote = deps.quotes.quote(pos.symbol, now)
        except DataQualityError as exc:
            if decision is not None:
                return _finish(tl, decision.decision_id, DecisionStatus.REJECTED, f"no quote to close: {exc.problem}")
            raise
    if "closing_base" not in close.row:
        if not tl.mark_closing(pos.symbol, close.base, close.reason, close.owner, now):
            raise BrokerError(f"another close of {pos.symbol} started meanwhile; it is continued on retry",
                              retryable=True)
    elif not tl.take_close_lease(pos.symbol, close.coid, now, now - CLOSE_LEASE):
        raise BrokerError(f"another run is sending close order {close.coid} of {pos.symbol}; continued on retry",
                          retryable=True)
    return deps.broker.submit(order, quote, fill_price)


def _require_complete(close: _Close, placed: BrokerOrder, now: datetime, tl: TradeLog) -> None:
    """The book moves only once the whole position is sold: a working order is waited for, and an order the
    broker ended short records its part and makes way for the next order (both: a retryable error)."""
    remaining, coid = close.remaining, close.coid
    if placed.filled_qty >= remaining:
        return
    if placed.status not in BROKER_DONE:
        raise BrokerError(f"close order {coid} filled {placed.filled_qty:g} of {remaining:g} so far", retryable=True)
    part = Fill(client_order_id=coid, symbol=close.pos.symbol, side=close.side, qty=placed.filled_qty,
                price=placed.fill_price(), fee=placed.fee, filled_at=now) if placed.filled_qty > 0 else None
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
                fee=placed.fee, filled_at=now)
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


