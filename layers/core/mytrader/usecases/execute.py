"""The executor's domain: risk engine -> broker -> order, fill, position and account in DynamoDB.

Entry, in three steps that survive a crash anywhere:
  1. reserve: one transaction puts the order record and takes a slot on the account item under its
     portfolio-wide conditions (open positions, orders per minute), because message groups of different
     symbols run concurrently;
  2. submit to the broker with client_order_id = decision_id;
  3. record: one transaction writes fill, position, cash, order status and the decision's EXECUTED state.
A redelivery finds the order record, asks the broker for the order by client_order_id and finishes step 3
without placing it again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from mytrader.adapters.tradelog import ConditionFailed, TradeLog
from mytrader.broker import BROKER_DONE, BrokerError, BrokerOrder, new_order
from mytrader.config import TradingConfig
from mytrader.errors import DataQualityError
from mytrader.market.calendar import nyse
from mytrader.models import Action, DecisionStatus, Fill, Order, OrderSide, Position, TradeDecision
from mytrader.portfolio import close_outcome, cooldown_end
from mytrader.risk import AccountState, RiskVerdict, check_entry

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import Item
    from mytrader.ports import Broker, KillSwitch, QuoteSource

log = logging.getLogger(__name__)

STREAK_ATTEMPTS = 5  # concurrent closes racing for the account's stop-out streak


@dataclass(frozen=True)
class ExecDeps:
    """What executing a decision (and closing a position) calls."""
    tradelog: TradeLog
    broker: Broker
    quotes: QuoteSource
    params: KillSwitch
    cfg: TradingConfig
    max_age: timedelta
    idempotent: bool = True


class ExecutionOutcome(StrEnum):
    """The `result` of one execution: a terminal decision state, or why nothing was done this time."""
    EXECUTED = "EXECUTED"
    REJECTED = "REJECTED"
    SKIPPED = "SKIPPED"
    ALREADY_TERMINAL = "already_terminal"  # a redelivery of a decision already decided
    IN_PROGRESS_ELSEWHERE = "in_progress_elsewhere"  # a concurrent delivery holds the order record
    ALREADY_CLOSED = "already_closed"  # the position to close is gone (a duplicate close)


class Halt(StrEnum):
    """What halted new entries, when that is why an entry was rejected."""
    KILL_SWITCH = "kill_switch"
    DAILY_LOSS_LIMIT = "daily_loss_limit"


class ExecutionResult(BaseModel):
    """One execution's result. `response()` is the JSON the executor returns (and the idempotency store keeps):
    the fields that apply, nothing else; `halted_by` feeds the metrics only."""
    model_config = ConfigDict(frozen=True)

    decision_id: str | None = None  # None only for a close without a decision that found the position gone
    symbol: str | None = None
    result: ExecutionOutcome
    status: str | None = None  # already_terminal: the decision's recorded state
    reason: str | None = None
    filled: float | None = None  # accepted by the broker with nothing filled yet: 0
    qty: float | None = None
    price: float | None = None
    closed: str | None = None  # a close: its reason (signal, stop_loss, take_profit, time_limit, ...)
    pnl: float | None = None
    halted_by: Halt | None = Field(default=None, exclude=True)

    def response(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def execute_decision(decision: TradeDecision, now: datetime, deps: ExecDeps) -> ExecutionResult:
    tl = deps.tradelog
    row = tl.get_decision_row(decision.decision_id)
    if row is None:  # the cycle always writes first; a message without its record is recorded now
        tl.put_decision(decision.model_copy(update={"status": DecisionStatus.PENDING}))
    elif row["status"] != DecisionStatus.PENDING.value and deps.idempotent:
        return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.ALREADY_TERMINAL,
                               status=row["status"])
    if now - decision.decided_at > deps.max_age:
        return _finish(tl, decision, DecisionStatus.REJECTED, f"stale: decided {decision.decided_at.isoformat()}, "
                                                               f"older than {deps.max_age}")
    tl.roll_day(now.date().isoformat())
    position = tl.position(decision.symbol)
    if position is not None and _reduces(decision.action, position):
        return close_position(position, decision.decision_id, now, "signal", deps, decision=decision)
    if position is not None:
        return _finish(tl, decision, DecisionStatus.SKIPPED, "already positioned")
    if decision.action == Action.SELL and not deps.cfg.allow_short:
        return _finish(tl, decision, DecisionStatus.SKIPPED, "long-only: nothing to sell")
    return _open_position(decision, now, deps)


def _already_closed(tl: TradeLog, pos: Position, decision: TradeDecision | None) -> ExecutionResult:
    if decision is not None:
        return _finish(tl, decision, DecisionStatus.SKIPPED, "position already closed")
    return ExecutionResult(symbol=pos.symbol, result=ExecutionOutcome.ALREADY_CLOSED)


def _reduces(action: Action, pos: Position) -> bool:
    return (action == Action.SELL and pos.qty > 0) or (action == Action.BUY and pos.qty < 0)


def _finish(tl: TradeLog, decision: TradeDecision, status: DecisionStatus, reason: str,
            halted_by: Halt | None = None) -> ExecutionResult:
    tl.set_status(decision.decision_id, status, reason)
    log.info("decision %s %s: %s", decision.decision_id, status.value, reason)
    return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome(status.value), reason=reason,
                           halted_by=halted_by)


def _halted_by(verdict: RiskVerdict, account: AccountState, kill_switch: bool) -> Halt | None:
    """The halt behind a rejected entry, from the same facts the risk check read (its first three rules)."""
    if verdict.approved:
        return None
    if kill_switch:
        return Halt.KILL_SWITCH
    if verdict.trips_kill_switch or (account.tripped_day and account.tripped_day == account.day):
        return Halt.DAILY_LOSS_LIMIT
    return None


def _open_position(decision: TradeDecision, now: datetime, deps: ExecDeps) -> ExecutionResult:
    tl, cfg = deps.tradelog, deps.cfg
    side = OrderSide.BUY if decision.action == Action.BUY else OrderSide.SELL
    existing = tl.order(decision.decision_id) if deps.idempotent else None
    if existing is not None:  # a redelivery: the order was reserved (and perhaps placed) before
        order = new_order(decision.decision_id, decision.symbol, side, float(existing["qty"]), now, False)
        placed = deps.broker.get_by_client_order_id(decision.decision_id)
        if placed is None:
            placed = deps.broker.submit(order, float(existing["quote"]))
        return _record_entry(decision, order, placed, float(existing["quote"]), now, deps)
    try:
        quote = deps.quotes.quote(decision.symbol, now)
    except DataQualityError as exc:
        return _finish(tl, decision, DecisionStatus.REJECTED, f"no quote: {exc.problem}")
    account = tl.account_state()
    kill = deps.params.kill_switch(fresh=True)
    verdict = check_entry(cfg.risk, account, decision, quote, now, nyse().is_open(now), kill)
    if verdict.trips_kill_switch:
        tl.trip_day(account.day)
    if not verdict.approved:
        return _finish(tl, decision, DecisionStatus.REJECTED, f"risk: {verdict.reason}",
                       halted_by=_halted_by(verdict, account, kill))
    order = new_order(decision.decision_id, decision.symbol, side, verdict.qty, now, False)
    reserved = _reserve(decision, order, quote, account, now, deps)
    if reserved is not None:
        return reserved
    try:
        placed = deps.broker.submit(order, quote)
    except BrokerError as exc:
        if exc.retryable:
            raise
        tl.transact([tl.account_update("ADD open_positions :m", {":m": -1})])
        return _finish(tl, decision, DecisionStatus.REJECTED, f"broker: {exc}")
    return _record_entry(decision, order, placed, quote, now, deps)


def _reserve(decision: TradeDecision, order: Order, quote: float, account: AccountState, now: datetime,
             deps: ExecDeps) -> ExecutionResult | None:
    """Step 1: the order record and a position slot, in one transaction under the portfolio-wide limits.
    None when reserved; otherwise the result of the delivery that could not reserve."""
    tl, cfg = deps.tradelog, deps.cfg
    minute = now.strftime("%Y-%m-%dT%H:%M")
    same_minute = account.orders_minute == minute
    reserve = tl.account_update(
        "ADD open_positions :one, orders_this_minute :one" if same_minute else
        "ADD open_positions :one SET orders_minute = :m, orders_this_minute = :one",
        {":one": 1, ":max": cfg.risk.max_open_positions, ":m": minute, ":rate": cfg.risk.max_orders_per_minute},
        condition="open_positions < :max AND " + ("orders_minute = :m AND orders_this_minute < :rate" if same_minute
                                                   else "orders_minute <> :m"))
    try:
        tl.transact([tl.put({**tl.order_item(decision.decision_id, order, "submitting"), "qty": order.qty,
                             "quote": quote}, condition="attribute_not_exists(pk)" if deps.idempotent else None),
                     reserve])
    except ConditionFailed as exc:
        if exc.reasons[0] == "ConditionalCheckFailed":  # the order record exists: a concurrent delivery
            return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.IN_PROGRESS_ELSEWHERE)
        return _finish(tl, decision, DecisionStatus.REJECTED,
                       "risk: portfolio limit reached concurrently (max_open_positions or max_orders_per_minute)")
    return None


def _record_entry(decision: TradeDecision, order: Order, placed: BrokerOrder, quote: float, now: datetime,
                  deps: ExecDeps) -> ExecutionResult:
    tl = deps.tradelog
    if placed.filled_qty <= 0:  # accepted, not yet filled: outcomes reconciles the fill later
        tl.transact([tl.put({**tl.order_item(decision.decision_id, order, "accepted"), "qty": order.qty,
                             "quote": quote, "gsi2pk": "ORDERS#OPEN", "gsi2sk": decision.decision_id,
                             "filled_qty": 0.0, "filled_notional": 0.0, "filled_fee": 0.0}),
                     tl.status_update(decision.decision_id, DecisionStatus.EXECUTED, "order accepted, awaiting fill")])
        return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.EXECUTED, filled=0)
    sign = 1 if order.side == OrderSide.BUY else -1
    fill = Fill(client_order_id=order.client_order_id, symbol=order.symbol, side=order.side, qty=placed.filled_qty,
                price=placed.fill_price(), fee=placed.fee, filled_at=now)
    pos = Position(symbol=order.symbol, qty=sign * placed.filled_qty, avg_price=fill.price, opened_at=now,
                   decision_id=decision.decision_id, stop_loss=decision.stop_loss, take_profit=decision.take_profit,
                   time_limit_bars=decision.time_horizon_bars,
                   llm_action=decision.advice.decision if decision.advice else None)
    status = "filled" if placed.status == "filled" else "partially_filled"
    once = "attribute_not_exists(pk)" if deps.idempotent else None
    items = [
        tl.put(tl.fill_item(decision.decision_id, fill), condition=once),
        tl.put({"pk": tl.acct_pk, "sk": f"POS#{order.symbol}", "doc": pos.model_dump_json(), "entry_fee": fill.fee,
                "qty": pos.qty}, condition=once),
        tl.account_update("ADD cash :c", {":c": -(sign * fill.qty * fill.price) - fill.fee}),
        tl.put({**tl.order_item(decision.decision_id, order, status), "qty": order.qty, "quote": quote,
                "filled_qty": fill.qty, "filled_notional": fill.qty * fill.price, "filled_fee": fill.fee,
                **({"gsi2pk": "ORDERS#OPEN", "gsi2sk": decision.decision_id} if status != "filled" else {})}),
    ]
    if deps.idempotent:
        items.append(tl.status_update(decision.decision_id, DecisionStatus.EXECUTED,
                                      f"filled {fill.qty} @ {fill.price}"))
    tl.transact(items)
    if not deps.idempotent:
        tl.set_status(decision.decision_id, DecisionStatus.EXECUTED, f"filled {fill.qty} @ {fill.price}")
    return ExecutionResult(decision_id=decision.decision_id, result=ExecutionOutcome.EXECUTED, qty=fill.qty,
                           price=fill.price)


# -- closing a position: claim, submit, settle ----------------------------------------------------------
@dataclass(frozen=True)
class _Close:
    """A close of one position, continued from what its position row records of a close already under way."""
    pos: Position
    row: Item  # the position row; empty when the position is gone
    base: str  # the first closing order's client_order_id; retries after an order ended short suffix -r1, -r2, ...
    reason: str
    owner: str  # the decision this run closes for (a SELL, or the position's own entry for stops and targets)
    starter: str | None  # the decision whose order began the close, when a close is under way
    attempt: int
    done_qty: float
    done_notional: float
    done_fee: float

    @classmethod
    def of(cls, pos: Position, row: Item, client_order_id: str, reason: str,
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
    placed = deps.broker.get_by_client_order_id(close.coid) if deps.idempotent else None
    if placed is None:
        if not close.row and deps.idempotent:  # the position is gone: selling now would open the other side
            return _already_closed(tl, pos, decision)
        submitted = _claim_and_submit(close, order, now, deps, decision, fill_price, quote)
        if isinstance(submitted, ExecutionResult):
            return submitted
        placed = submitted
    _require_complete(close, placed, now, tl)
    return _settle(close, placed, now, exit_ts or now, deps, decision)


def _claim_and_submit(close: _Close, order: Order, now: datetime, deps: ExecDeps, decision: TradeDecision | None,
                      fill_price: float | None, quote: float | None) -> BrokerOrder | ExecutionResult:
    """Quote, claim the position for this close (once), send the closing order."""
    tl, pos = deps.tradelog, close.pos
    if quote is None:
        try:
            quote = deps.quotes.quote(pos.symbol, now)
        except DataQualityError as exc:
            if decision is not None:
                return _finish(tl, decision, DecisionStatus.REJECTED, f"no quote to close: {exc.problem}")
            raise
    if "closing_base" not in close.row and deps.idempotent:
        try:
            tl.mark_closing(pos.symbol, close.base, close.reason, close.owner)
        except ConditionFailed:
            raise BrokerError(f"another close of {pos.symbol} started meanwhile; it is continued on retry",
                              retryable=True) from None
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
    try:
        tl.close_attempt_ended(close.pos.symbol, close.attempt, part, close.owner)
    except ConditionFailed:
        pass  # a concurrent close recorded this attempt already
    raise BrokerError(f"broker {placed.status} close order {coid} with {placed.filled_qty:g} of {remaining:g} "
                      "filled; a new order follows", retryable=True)


def _settle(close: _Close, placed: BrokerOrder, now: datetime, at: datetime, deps: ExecDeps,
            decision: TradeDecision | None) -> ExecutionResult:
    """Book the exit: position gone, fill, outcome, cash and the stop-out streak, in one transaction."""
    tl, cfg, pos, reason = deps.tradelog, deps.cfg, close.pos, close.reason
    price = placed.fill_price()
    exit_price = (close.done_notional + placed.filled_qty * price) / (close.done_qty + placed.filled_qty)
    exit_fee = close.done_fee + placed.fee
    outcome = close_outcome(pos, exit_price, at, exit_fee, float(close.row.get("entry_fee", 0.0)), reason,
                            pos.bars_held + 1)
    cash = pos.qty * exit_price - exit_fee
    fill = Fill(client_order_id=close.coid, symbol=pos.symbol, side=close.side, qty=placed.filled_qty, price=price,
                fee=placed.fee, filled_at=now)
    for _ in range(STREAK_ATTEMPTS):
        # The stop-out streak is read, then written on the condition that no other close changed it meanwhile
        # (the executor and the outcomes function close concurrently); a lost race re-reads and recomputes.
        account = tl.account_state()
        stopouts = account.consecutive_stopouts + 1 if reason == "stop_loss" else 0
        cooldown = account.cooldown_until
        if stopouts >= cfg.risk.max_consecutive_stopouts:
            cooldown, stopouts = cooldown_end(at, cfg.risk.cooldown_bars), 0
        items = [
            tl.delete_position(pos.symbol),
            tl.put(tl.fill_item(close.owner, fill, seq=1 if decision is None else 0)),
            tl.put(tl.outcome_item(outcome)),
            tl.account_update("ADD cash :c, book_equity :p, realized_today :p, realized_total :p, open_positions :m "
                              "SET consecutive_stopouts = :s, cooldown_until = :cd",
                              {":c": cash, ":p": outcome.pnl, ":m": -1, ":s": stopouts,
                               ":cd": cooldown.isoformat() if cooldown else "", ":prev": account.consecutive_stopouts},
                              condition="attribute_not_exists(consecutive_stopouts) OR consecutive_stopouts = :prev"),
        ]
        if decision is not None:
            items.append(tl.status_update(decision.decision_id, DecisionStatus.EXECUTED, f"closed: {reason}"))
        try:
            tl.transact(items)
            break
        except ConditionFailed as exc:
            if exc.reasons[0] == "ConditionalCheckFailed":  # the position is already gone: a duplicate close
                return _already_closed(tl, pos, decision)
            if exc.reasons[3] != "ConditionalCheckFailed":
                raise
    else:
        raise BrokerError(f"close of {pos.symbol} lost the account update {STREAK_ATTEMPTS} times", retryable=True)
    _complete_starter(tl, close)
    return ExecutionResult(decision_id=close.owner, result=ExecutionOutcome.EXECUTED, closed=reason, pnl=outcome.pnl)


def _complete_starter(tl: TradeLog, close: _Close) -> None:
    """The SELL or flatten decision that began this close (its message perhaps dead-lettered) ends EXECUTED too."""
    starter = close.starter
    if not starter or starter in (close.owner, close.pos.decision_id):
        return
    for prior in (DecisionStatus.PENDING, DecisionStatus.DEAD_LETTERED):
        if tl.set_status(starter, DecisionStatus.EXECUTED, f"closed: {close.reason} (completed by a later run)",
                         from_status=prior.value):
            break
