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
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mytrader.adapters.tradelog import ConditionFailed, TradeLog
from mytrader.broker import BROKER_DONE, BrokerError, BrokerOrder, new_order
from mytrader.config import TradingConfig
from mytrader.errors import DataQualityError
from mytrader.market.calendar import nyse
from mytrader.models import Action, DecisionStatus, Fill, OrderSide, Position, TradeDecision
from mytrader.portfolio import close_outcome, cooldown_end
from mytrader.risk import check_entry

log = logging.getLogger(__name__)


class CrashInjected(RuntimeError):
    """Fault injection on the embedded AWS: the executor 'dies' after the broker accepted an order."""


def _should_crash(deps: ExecDeps, key: str) -> bool:
    """Deterministic per order: crashes at most once per client_order_id (per container), for a share of orders."""
    rate = deps.crash_after_broker
    if rate <= 0 or key in deps.crashed or random.Random(key).random() >= rate:
        return False
    deps.crashed.add(key)
    return True


STREAK_ATTEMPTS = 5  # concurrent closes racing for the account's stop-out streak


@dataclass
class ExecDeps:
    tradelog: TradeLog
    broker: object
    quotes: object  # .quote(symbol, at)
    params: object
    cfg: TradingConfig
    max_age: timedelta
    idempotent: bool = True
    crash_after_broker: float = 0.0
    broker_error_rate: float = 0.0
    crashed: set[str] = field(default_factory=set)  # fault injection memory (embedded AWS only)
    broker_faults: list[str] = field(default_factory=list)


def execute_decision(decision: TradeDecision, now: datetime, deps: ExecDeps) -> dict:
    tl = deps.tradelog
    row = tl.get_decision_row(decision.decision_id)
    if row is None:  # the cycle always writes first; a message without its record is recorded now
        tl.put_decision(decision.model_copy(update={"status": DecisionStatus.PENDING}))
    elif row["status"] != DecisionStatus.PENDING.value and deps.idempotent:
        return {"decision_id": decision.decision_id, "result": "already_terminal", "status": row["status"]}
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


def _already_closed(tl: TradeLog, pos: Position, decision: TradeDecision | None) -> dict:
    if decision is not None:
        return _finish(tl, decision, DecisionStatus.SKIPPED, "position already closed")
    return {"symbol": pos.symbol, "result": "already_closed"}


def _reduces(action: Action, pos: Position) -> bool:
    return (action == Action.SELL and pos.qty > 0) or (action == Action.BUY and pos.qty < 0)


def _finish(tl: TradeLog, decision: TradeDecision, status: DecisionStatus, reason: str) -> dict:
    tl.set_status(decision.decision_id, status, reason)
    log.info("decision %s %s: %s", decision.decision_id, status.value, reason)
    return {"decision_id": decision.decision_id, "result": status.value, "reason": reason}


def _open_position(decision: TradeDecision, now: datetime, deps: ExecDeps) -> dict:
    tl, cfg = deps.tradelog, deps.cfg
    side = OrderSide.BUY if decision.action == Action.BUY else OrderSide.SELL
    existing = tl.order(decision.decision_id) if deps.idempotent else None
    if existing is not None:
        order = new_order(decision.decision_id, decision.symbol, side, float(existing["qty"]), now, False)
        placed = deps.broker.get_by_client_order_id(decision.decision_id)
        if placed is None:
            placed = _submit(deps, order, float(existing["quote"]))
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
        return _finish(tl, decision, DecisionStatus.REJECTED, f"risk: {verdict.reason}")
    order = new_order(decision.decision_id, decision.symbol, side, verdict.qty, now, False)
    minute = now.strftime("%Y-%m-%dT%H:%M")
    same_minute = account.orders_minute == minute
    reserve = tl.account_update(
        "ADD open_positions :one, orders_this_minute :one" if same_minute else
        "ADD open_positions :one SET orders_minute = :m, orders_this_minute = :one",
        {":one": 1, ":max": cfg.risk.max_open_positions, ":m": minute, ":rate": cfg.risk.max_orders_per_minute},
        condition="open_positions < :max AND " + ("orders_minute = :m AND orders_this_minute < :rate" if same_minute
                                                   else "orders_minute <> :m"))
    try:
        tl.transact([tl.put({**tl.order_item(decision.decision_id, order, "submitting"), "qty": order.qty, "quote": quote},
                            condition="attribute_not_exists(pk)" if deps.idempotent else None), reserve])
    except ConditionFailed as exc:
        if exc.reasons[0] == "ConditionalCheckFailed":  # the order record exists: a concurrent delivery
            return {"decision_id": decision.decision_id, "result": "in_progress_elsewhere"}
        return _finish(tl, decision, DecisionStatus.REJECTED,
                       "risk: portfolio limit reached concurrently (max_open_positions or max_orders_per_minute)")
    try:
        placed = _submit(deps, order, quote)
    except BrokerError as exc:
        if exc.retryable:
            raise
        tl.transact([tl.account_update("ADD open_positions :m", {":m": -1})])
        return _finish(tl, decision, DecisionStatus.REJECTED, f"broker: {exc}")
    return _record_entry(decision, order, placed, quote, now, deps)


def _submit(deps: ExecDeps, order, quote: float, fill_price: float | None = None) -> BrokerOrder:
    if deps.broker_error_rate and random.Random(f"{order.client_order_id}:{len(deps.broker_faults)}").random() \
            < deps.broker_error_rate:
        deps.broker_faults.append(order.client_order_id)
        raise BrokerError("injected broker fault (HTTP 503)", retryable=True)
    placed = deps.broker.submit(order, quote, fill_price)
    if _should_crash(deps, order.client_order_id):
        raise CrashInjected(f"injected crash after the broker accepted {order.client_order_id}")
    return placed


def _record_entry(decision: TradeDecision, order, placed: BrokerOrder, quote: float, now: datetime,
                  deps: ExecDeps) -> dict:
    tl = deps.tradelog
    if placed.filled_qty <= 0:  # accepted, not yet filled: outcomes reconciles the fill later
        tl.transact([tl.put({**tl.order_item(decision.decision_id, order, "accepted"), "qty": order.qty, "quote": quote,
                             "gsi2pk": "ORDERS#OPEN", "gsi2sk": decision.decision_id, "filled_qty": 0.0,
                             "filled_notional": 0.0, "filled_fee": 0.0}),
                     tl.status_update(decision.decision_id, DecisionStatus.EXECUTED, "order accepted, awaiting fill")])
        return {"decision_id": decision.decision_id, "result": "EXECUTED", "filled": 0}
    sign = 1 if order.side == OrderSide.BUY else -1
    fill = Fill(client_order_id=order.client_order_id, symbol=order.symbol, side=order.side, qty=placed.filled_qty,
                price=placed.filled_avg_price, fee=placed.fee, filled_at=now)
    pos = Position(symbol=order.symbol, qty=sign * placed.filled_qty, avg_price=placed.filled_avg_price, opened_at=now,
                   decision_id=decision.decision_id, stop_loss=decision.stop_loss, take_profit=decision.take_profit,
                   time_limit_bars=decision.time_horizon_bars,
                   llm_action=decision.advice.decision if decision.advice else None)
    status = "filled" if placed.status == "filled" else "partially_filled"
    items = [
        tl.put(tl.fill_item(decision.decision_id, fill), condition="attribute_not_exists(pk)" if deps.idempotent else None),
        tl.put({"pk": tl.acct_pk, "sk": f"POS#{order.symbol}", "doc": pos.model_dump_json(), "entry_fee": fill.fee,
                "qty": pos.qty}, condition="attribute_not_exists(pk)" if deps.idempotent else None),
        tl.account_update("ADD cash :c", {":c": -(sign * fill.qty * fill.price) - fill.fee}),
        tl.put({**tl.order_item(decision.decision_id, order, status), "qty": order.qty, "quote": quote,
                "filled_qty": fill.qty, "filled_notional": fill.qty * fill.price, "filled_fee": fill.fee,
                **({"gsi2pk": "ORDERS#OPEN", "gsi2sk": decision.decision_id} if status != "filled" else {})}),
    ]
    if deps.idempotent:
        items.append(tl.status_update(decision.decision_id, DecisionStatus.EXECUTED, f"filled {fill.qty} @ {fill.price}"))
    tl.transact(items)
    if not deps.idempotent:
        tl.set_status(decision.decision_id, DecisionStatus.EXECUTED, f"filled {fill.qty} @ {fill.price}")
    return {"decision_id": decision.decision_id, "result": "EXECUTED", "qty": fill.qty, "price": fill.price}


def close_position(pos: Position, client_order_id: str, now: datetime, reason: str, deps: ExecDeps,
                   decision: TradeDecision | None = None, fill_price: float | None = None, quote: float | None = None,
                   exit_ts: datetime | None = None) -> dict:
    """Reduce-only close (signal, stop, target, time limit, flatten): never blocked by the kill switch.

    With a real broker a close order may fill in parts or be ended short (canceled, expired, rejected). The
    book changes only once the whole position is sold: until then a working order is waited for (a retryable
    error), and an order the broker ended short leaves what it filled on the position and makes way for a new
    order (client_order_id suffixed -r1, -r2, ...) for the rest. The exit price is the average over all of them.
    """
    tl, cfg = deps.tradelog, deps.cfg
    side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
    row = tl.position_row(pos.symbol) or {}
    # A close already under way (its order claimed the position) is continued, never doubled by a second order.
    base = row.get("closing_base") or client_order_id
    reason = row.get("closing_reason") or reason
    starter = row.get("closing_owner")
    attempt = int(row.get("close_attempt", 0))
    done_qty, done_notional, done_fee = (float(row.get(k, 0.0)) for k in ("closing_qty", "closing_notional",
                                                                           "closing_fee"))
    remaining = round(abs(pos.qty) - done_qty, 9)
    coid = base if attempt == 0 else f"{base}-r{attempt}"
    owner = decision.decision_id if decision is not None else pos.decision_id
    order = new_order(coid, pos.symbol, side, remaining, now, True)
    placed = deps.broker.get_by_client_order_id(coid) if deps.idempotent else None
    if placed is None:
        if not row and deps.idempotent:  # the position is gone: selling now would open the other side
            return _already_closed(tl, pos, decision)
        if quote is None:
            try:
                quote = deps.quotes.quote(pos.symbol, now)
            except DataQualityError as exc:
                if decision is not None:
                    return _finish(tl, decision, DecisionStatus.REJECTED, f"no quote to close: {exc.problem}")
                raise
        if "closing_base" not in row and deps.idempotent:
            try:
                tl.mark_closing(pos.symbol, base, reason, owner)
            except ConditionFailed:
                raise BrokerError(f"another close of {pos.symbol} started meanwhile; it is continued on retry",
                                  retryable=True) from None
        placed = _submit(deps, order, quote, fill_price)
    if placed.filled_qty < remaining:
        if placed.status not in BROKER_DONE:
            raise BrokerError(f"close order {coid} filled {placed.filled_qty:g} of {remaining:g} so far", retryable=True)
        part = Fill(client_order_id=coid, symbol=pos.symbol, side=side, qty=placed.filled_qty,
                    price=placed.filled_avg_price, fee=placed.fee, filled_at=now) if placed.filled_qty > 0 else None
        try:
            tl.close_attempt_ended(pos.symbol, attempt, part, owner)
        except ConditionFailed:
            pass  # a concurrent close recorded this attempt already
        raise BrokerError(f"broker {placed.status} close order {coid} with {placed.filled_qty:g} of {remaining:g} "
                          "filled; a new order follows", retryable=True)
    exit_price = (done_notional + placed.filled_qty * placed.filled_avg_price) / (done_qty + placed.filled_qty)
    exit_fee = done_fee + placed.fee
    entry_fee = float(row.get("entry_fee", 0.0))
    at = exit_ts or now
    outcome = close_outcome(pos, exit_price, at, exit_fee, entry_fee, reason, pos.bars_held + 1)
    cash = pos.qty * exit_price - exit_fee
    fill = Fill(client_order_id=coid, symbol=pos.symbol, side=side, qty=placed.filled_qty,
                price=placed.filled_avg_price, fee=placed.fee, filled_at=now)
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
            tl.put(tl.fill_item(owner, fill, seq=1 if decision is None else 0)),
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
    if starter and starter not in (owner, pos.decision_id):  # the SELL or flatten decision that began this close,
        for prior in (DecisionStatus.PENDING, DecisionStatus.DEAD_LETTERED):  # its message perhaps dead-lettered
            if tl.set_status(starter, DecisionStatus.EXECUTED, f"closed: {reason} (completed by a later run)",
                             from_status=prior.value):
                break
    return {"decision_id": owner, "result": "EXECUTED", "closed": reason, "pnl": outcome.pnl}
