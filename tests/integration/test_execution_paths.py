"""The executor's refusals and failures on the real trade log (embedded AWS): each ends in a stated terminal
state or a retry, and never leaves a position slot or cash booked for an order that did not happen."""
from __future__ import annotations

from datetime import timedelta

import pytest

from mytrader.adapters.tradelog import TradeLog
from mytrader.broker import BrokerError, BrokerErrorKind, new_order
from mytrader.config import RiskLimits, TradingConfig
from mytrader.models import Action, DecisionStatus, OrderSide, Position
from mytrader.usecases.execute import ExecDeps, ExecutionOutcome, close_position, execute_decision
from mytrader.usecases.manage import PositionMismatch, position_mismatches
from mytrader_tools.ops import Ops
from tests.integration.execution_fakes import (
    NOW,
    Quotes,
    ScriptedBroker,
    buy,
    exec_deps,
    pointer,
    position_of,
    trade_log,
)


def status(tl, decision_id="d-abc") -> tuple[str, str]:
    row = tl.get_decision_row(decision_id)
    return row["status"], row["status_reason"]


def test_a_broker_refusal_rejects_the_decision_and_frees_the_slot(stack):
    # Given a broker that refuses the order for good (HTTP 403: not retryable)
    tl = trade_log(stack)
    deps = exec_deps(tl, ScriptedBroker(refuse=BrokerError("alpaca rejected the order: HTTP 403", retryable=False,
                                                           kind=BrokerErrorKind.REFUSED)))
    # When the executor handles a BUY
    result = execute_decision(pointer(tl, buy(tl)), NOW, deps)
    # Then the decision ends REJECTED with the broker's words, and no slot or cash stays booked
    assert result.result is ExecutionOutcome.REJECTED
    assert status(tl) == ("REJECTED", "broker refused: alpaca rejected the order: HTTP 403")
    account = tl.account_state()
    assert (account.open_positions, account.cash) == (0, 100_000.0) and tl.position("ABC") is None


def test_a_broker_outage_is_retried_and_the_redelivery_places_the_order_once(stack):
    # Given a broker answering 503 (retryable)
    tl = trade_log(stack)
    broker = ScriptedBroker(refuse=BrokerError("alpaca HTTP 503", retryable=True), fill_on_submit=100.0)
    deps = exec_deps(tl, broker)
    decision = buy(tl)
    # When the executor handles the BUY, it raises for SQS to redeliver, the decision still PENDING
    with pytest.raises(BrokerError):
        execute_decision(pointer(tl, decision), NOW, deps)
    assert status(tl)[0] == "PENDING"
    # And when the broker is back and the message comes again
    broker.refuse = None
    result = execute_decision(pointer(tl, decision), NOW + timedelta(seconds=30), deps)
    # Then it fills once, with one slot taken
    assert result.result is ExecutionOutcome.EXECUTED and len(broker.orders) == 1 and len(tl.fills()) == 1
    assert tl.account_state().open_positions == 1


def test_no_quote_rejects_the_entry_without_touching_the_account(stack):
    # Given no usable quote for the symbol
    tl = trade_log(stack)
    broker = ScriptedBroker(fill_on_submit=100.0)
    deps = exec_deps(tl, broker, quotes=Quotes(price=None))
    # When the executor handles a BUY
    execute_decision(pointer(tl, buy(tl)), NOW, deps)
    # Then it is REJECTED naming the data problem, and no order was sent
    state, reason = status(tl)
    assert state == "REJECTED" and reason.startswith("no quote: no trade")
    assert broker.orders == {} and tl.account_state().open_positions == 0


def test_the_last_free_slot_goes_to_one_of_two_entries(stack):
    # Given one position slot left and two BUYs for different symbols
    tl = trade_log(stack)
    deps = exec_deps(tl, ScriptedBroker(fill_on_submit=100.0), cfg=TradingConfig(risk=RiskLimits(max_open_positions=1)))
    first, second = buy(tl, "AAA", "d-aaa"), buy(tl, "BBB", "d-bbb")
    # When both are executed
    execute_decision(pointer(tl, first), NOW, deps)
    execute_decision(pointer(tl, second), NOW, deps)
    # Then exactly one trades; the other is REJECTED by the limit, which it names
    assert status(tl, "d-aaa")[0] == "EXECUTED"
    assert status(tl, "d-bbb") == ("REJECTED", "risk: max_open_positions 1")
    assert tl.account_state().open_positions == 1


def test_a_close_the_broker_has_not_filled_yet_is_working_and_changes_nothing(stack):
    # Given a held position and a broker that accepts the closing order without filling it
    tl = trade_log(stack)
    broker = ScriptedBroker(fill_on_submit=100.0)
    deps = exec_deps(tl, broker)
    execute_decision(pointer(tl, buy(tl)), NOW, deps)
    broker.fill_on_submit = None
    pos: Position = position_of(tl)
    cash = tl.account_state().cash
    # When outcomes closes it on its stop
    working = close_position(pos, "d-abc-x", NOW + timedelta(hours=1), "stop_loss", deps, quote=95.0)
    # Then the close is working (no error) and nothing was booked meanwhile
    assert working.filled == 0 and working.closed is None and tl.position("ABC") == pos
    assert tl.account_state().cash == cash and len(tl.fills()) == 1
    # And when the broker reports the fill, the next look books the exit once
    broker.report("d-abc-x", "filled", abs(pos.qty), 95.0)
    result = close_position(pos, "d-abc-x", NOW + timedelta(hours=2), "stop_loss", deps, quote=95.0)
    assert result.result is ExecutionOutcome.EXECUTED and tl.position("ABC") is None
    assert tl.account_state().open_positions == 0
    assert DecisionStatus.EXECUTED.value == status(tl)[0]


def held(tl: TradeLog, deps: ExecDeps, broker: ScriptedBroker) -> Position:
    """A BUY filled at 100, then a broker that accepts closing orders without filling them."""
    execute_decision(pointer(tl, buy(tl)), NOW, deps)
    broker.fill_on_submit = None
    return position_of(tl)


def test_a_close_filled_in_part_waits_for_the_rest(stack):
    tl = trade_log(stack)
    broker = ScriptedBroker(fill_on_submit=100.0)
    deps = exec_deps(tl, broker)
    pos = held(tl, deps, broker)
    qty = abs(pos.qty)
    close_position_at = NOW + timedelta(hours=1)
    # Given the closing order is working with part of it filled
    close_position(pos, "d-abc-x", close_position_at, "take_profit", deps, quote=110.0)
    broker.report("d-abc-x", "partially_filled", qty - 1, 110.0)
    # When the close is looked at again, Then it still waits and the book has not moved
    again = close_position(pos, "d-abc-x", close_position_at, "take_profit", deps, quote=110.0)
    assert again.filled == qty - 1 and f"{qty - 1:g} of {qty:g} filled" in (again.reason or "")
    assert tl.position("ABC") == pos and tl.account_state().open_positions == 1


def test_a_close_the_broker_rejects_is_sent_again_as_a_new_order(stack):
    tl = trade_log(stack)
    broker = ScriptedBroker(fill_on_submit=100.0)
    deps = exec_deps(tl, broker)
    pos = held(tl, deps, broker)
    # Given the broker rejects the closing order outright
    close_position(pos, "d-abc-x", NOW + timedelta(hours=1), "stop_loss", deps, quote=95.0)
    broker.report("d-abc-x", "rejected")
    with pytest.raises(BrokerError, match="broker rejected close order d-abc-x with 0"):
        close_position(pos, "d-abc-x", NOW + timedelta(hours=1), "stop_loss", deps, quote=95.0)
    # When the close runs again (the next outcomes run) and the new order fills
    broker.fill_on_submit = 94.0
    result = close_position(pos, "d-abc-x", NOW + timedelta(hours=2), "stop_loss", deps, quote=94.0)
    # Then a second order was sent under a new client order id, and the position is closed at its price
    assert sorted(broker.orders) == ["d-abc", "d-abc-x", "d-abc-x-r1"]
    assert result.result is ExecutionOutcome.EXECUTED and tl.position("ABC") is None
    assert result.pnl is not None and round(result.pnl, 6) == round(abs(pos.qty) * (94.0 - 100.0), 6)


def test_a_close_ended_short_keeps_its_part_and_the_exit_averages_both_orders(stack):
    tl = trade_log(stack)
    broker = ScriptedBroker(fill_on_submit=100.0)
    deps = exec_deps(tl, broker)
    pos = held(tl, deps, broker)
    qty = abs(pos.qty)
    cash_before = tl.account_state().cash
    # Given the first closing order fills 4 shares at 95 and then expires
    close_position(pos, "d-abc-x", NOW + timedelta(hours=1), "stop_loss", deps, quote=95.0)
    broker.report("d-abc-x", "expired", 4, 95.0, fee=0.4)
    with pytest.raises(BrokerError, match="a new order follows"):
        close_position(pos, "d-abc-x", NOW + timedelta(hours=1), "stop_loss", deps, quote=95.0)
    # When the rest is sold by a new order at 94
    broker.fill_on_submit = 94.0
    result = close_position(pos, "d-abc-x", NOW + timedelta(hours=2), "stop_loss", deps, quote=94.0)
    # Then the new order was for the rest only, and the book closed the whole position at the average exit
    assert broker.orders["d-abc-x-r1"].qty == qty - 4
    exit_avg = (4 * 95.0 + (qty - 4) * 94.0) / qty
    (outcome,) = tl.outcomes()
    assert round(outcome.exit_price, 6) == round(exit_avg, 6) and tl.position("ABC") is None
    assert round(tl.account_state().cash - cash_before, 6) == round(qty * exit_avg - 0.4, 6)
    assert sorted(f.qty for f in tl.fills()) == sorted([qty, 4, qty - 4])  # the entry and both exit orders
    assert result.result is ExecutionOutcome.EXECUTED


def sell(tl, decision_id: str = "d-sell"):
    d = buy(tl, decision_id=decision_id, record=False).model_copy(update={"action": Action.SELL, "stop_loss": None,
                                                            "take_profit": None, "position_size_pct": 0.0})
    tl.put_decision(d)
    return d


def test_a_stop_seen_while_a_sell_order_works_continues_that_order_instead_of_selling_twice(stack):
    tl = trade_log(stack)
    broker = ScriptedBroker(fill_on_submit=100.0)
    deps = exec_deps(tl, broker)
    pos = held(tl, deps, broker)
    # Given a SELL decision whose closing order the broker is still working (the SELL is done: EXECUTED)
    decision = sell(tl)
    assert execute_decision(pointer(tl, decision), NOW + timedelta(minutes=5), deps).filled == 0
    assert status(tl, "d-sell")[0] == "EXECUTED"
    # When the outcomes run sees the stop hit meanwhile
    assert close_position(pos, "d-abc-x", NOW + timedelta(minutes=15), "stop_loss", deps, quote=94.0).filled == 0
    # Then no second sell order went out, and operators see the close under way
    assert sorted(broker.orders) == ["d-abc", "d-sell"]
    assert Ops(stack.prefix).status()["closing"] == [{"symbol": "ABC", "close_order": "d-sell", "reason": "signal",
                                                      "attempt": 0, "closed_qty": 0.0}]
    # And when the broker then fills the SELL's order, the next outcomes run books it as the signal's close
    broker.report("d-sell", "filled", abs(pos.qty), 96.0)
    result = close_position(pos, "d-abc-x", NOW + timedelta(minutes=30), "stop_loss", deps, quote=94.0)
    (outcome,) = tl.outcomes()
    assert result.result is ExecutionOutcome.EXECUTED
    assert outcome.exit_reason == "signal" and outcome.exit_price == 96.0
    assert status(tl, "d-sell")[0] == "EXECUTED" and tl.position("ABC") is None
    assert sorted(broker.orders) == ["d-abc", "d-sell"]


def test_a_close_of_a_position_already_gone_sends_nothing(stack):
    tl = trade_log(stack)
    broker = ScriptedBroker(fill_on_submit=100.0)
    deps = exec_deps(tl, broker)
    execute_decision(pointer(tl, buy(tl)), NOW, deps)
    pos = position_of(tl)
    close_position(pos, "d-abc-x", NOW + timedelta(hours=1), "take_profit", deps, quote=110.0)
    # When a stale copy of the position is closed again under another order id
    result = close_position(pos, "d-abc-y", NOW + timedelta(hours=2), "stop_loss", deps, quote=94.0)
    # Then nothing is sent to the broker: selling now would open a short
    assert result.result is ExecutionOutcome.ALREADY_CLOSED and "d-abc-y" not in broker.orders


def test_book_and_broker_are_compared_allowing_for_the_orders_still_working(stack):
    tl = trade_log(stack)
    broker = ScriptedBroker(fill_on_submit=100.0)
    deps = exec_deps(tl, broker)
    pos = held(tl, deps, broker)
    # Given book and broker agree
    assert position_mismatches(tl, broker) == []
    # When a close is under way and the broker has sold part of it, Then that is no mismatch yet
    close_position(pos, "d-abc-x", NOW + timedelta(hours=1), "stop_loss", deps, quote=95.0)
    broker.report("d-abc-x", "partially_filled", 2, 95.0)
    assert position_mismatches(tl, broker) == []
    # But a position the book does not know (bought at the broker by hand) is reported
    broker.fill_on_submit = 50.0
    broker.submit(new_order("manual", "XYZ", OrderSide.BUY, 3, NOW, False), 50.0)
    assert position_mismatches(tl, broker) == [PositionMismatch(symbol="XYZ", book=0.0, broker=3.0)]
