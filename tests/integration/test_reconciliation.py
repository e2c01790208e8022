"""Orders a real broker fills later, in parts, or never: the outcomes run books each fill once, at its own
price, and releases what an order that never filled had reserved (embedded AWS, scripted broker)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from mytrader.models import DecisionStatus
from mytrader.usecases.execute import ExecutionOutcome, ExecutionResult, execute_decision
from mytrader.usecases.manage import reconcile_open_orders
from tests.integration.execution_fakes import NOW, ScriptedBroker, buy, exec_deps, pointer, trade_log


@pytest.fixture
def world(stack):
    tl, broker = trade_log(stack), ScriptedBroker()
    deps = exec_deps(tl, broker)
    result = execute_decision(pointer(tl, buy(tl)), NOW, deps)
    # accepted, nothing filled yet
    assert result == ExecutionResult(decision_id="d-abc", result=ExecutionOutcome.EXECUTED, filled=0)
    assert result.response() == {"decision_id": "d-abc", "result": "EXECUTED", "filled": 0}
    return tl, broker, deps, broker.orders["d-abc"].qty


def test_fills_in_parts_are_booked_once_each_at_their_own_price(world):
    tl, broker, deps, qty = world
    # Given the broker fills 4 shares at 100.00
    broker.report("d-abc", "partially_filled", 4, 100.0, fee=0.04)
    # When outcomes reconciles, twice (a re-run must not book the fill again)
    assert reconcile_open_orders(tl, deps, NOW) == 1
    assert reconcile_open_orders(tl, deps, NOW) == 0
    # Then one fill of 4 at 100 is booked and the position holds 4
    pos = tl.position("ABC")
    assert (pos.qty, pos.avg_price) == (4, 100.0) and len(tl.fills()) == 1
    # Given the rest fills and the broker now reports the running average over all shares
    rest = qty - 4
    avg = (4 * 100.0 + rest * 103.0) / qty
    broker.report("d-abc", "filled", qty, avg, fee=0.04 + 0.06)
    # When outcomes reconciles again
    assert reconcile_open_orders(tl, deps, NOW + timedelta(minutes=15)) == 1
    # Then the second fill is the remaining shares at their own price (103), the position's average is the
    # broker's, cash paid equals what the broker charged, and the order has left the open set
    fills = sorted(tl.fills(), key=lambda f: f.qty == 4)
    assert (fills[0].qty, round(fills[0].price, 6), round(fills[0].fee, 6)) == (rest, 103.0, 0.06)
    pos = tl.position("ABC")
    assert pos.qty == qty and round(pos.avg_price, 6) == round(avg, 6)
    assert round(tl.position_entry_fee("ABC"), 6) == 0.1
    account = tl.account_state()
    assert round(account.cash, 4) == round(100_000.0 - qty * avg - 0.1, 4) and account.open_positions == 1
    assert reconcile_open_orders(tl, deps, NOW + timedelta(minutes=30)) == 0


@pytest.mark.parametrize("verdict", ["canceled", "expired", "rejected"])
def test_an_order_that_never_fills_frees_its_slot_and_ends_rejected(world, verdict):
    tl, broker, deps, _ = world
    assert tl.account_state().open_positions == 1  # reserved when the order was placed
    # Given the broker gives up on the order with nothing filled
    broker.report("d-abc", verdict)
    # When outcomes reconciles
    assert reconcile_open_orders(tl, deps, NOW) == 1
    # Then the reservation is released, nothing was booked, the decision says why, and the order is closed
    assert tl.account_state().open_positions == 0 and tl.position("ABC") is None and tl.fills() == []
    row = tl.get_decision_row("d-abc")
    assert row["status"] == DecisionStatus.REJECTED.value and verdict in row["status_reason"]
    assert reconcile_open_orders(tl, deps, NOW) == 0


def test_a_partly_filled_order_that_expires_keeps_what_filled(world):
    tl, broker, deps, _ = world
    # Given 3 shares filled, then the day order expires
    broker.report("d-abc", "partially_filled", 3, 99.5)
    reconcile_open_orders(tl, deps, NOW)
    broker.report("d-abc", "expired", 3, 99.5)
    # When outcomes reconciles
    assert reconcile_open_orders(tl, deps, NOW + timedelta(hours=6)) == 1
    # Then the 3 shares stay held, booked once, and the order leaves the open set with its slot still in use
    assert tl.position("ABC").qty == 3 and len(tl.fills()) == 1
    assert tl.account_state().open_positions == 1
    assert tl.get_decision_row("d-abc")["status"] == DecisionStatus.EXECUTED.value
    assert reconcile_open_orders(tl, deps, NOW + timedelta(hours=7)) == 0


def test_ops_status_shows_orders_awaiting_fills_and_closes_under_way(world, stack):
    from mytrader_tools.ops import Ops

    tl, broker, deps, qty = world
    # Given an entry order the broker has partly filled
    broker.report("d-abc", "partially_filled", 4, 100.0)
    reconcile_open_orders(tl, deps, NOW)
    # When an operator asks for the status
    status = Ops(stack.prefix).status()
    # Then the order awaiting the rest of its fill is listed with what filled so far
    assert status["open_orders"] == [{"client_order_id": "d-abc", "symbol": "ABC", "status": "partially_filled",
                                      "qty": qty, "filled_qty": 4.0}]
    assert status["positions"][0]["qty"] == 4 and status["closing"] == []
