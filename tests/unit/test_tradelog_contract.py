"""The trade log's contract on the in-memory twin: intents, their conditions, and the invariants under any
interleaving (Hypothesis stateful, 200 examples x 30 steps). The same machine runs on DynamoDB in
tests/integration/test_tradelog_dynamodb.py. Removing any one of the reservation's conditions lets the machine
find an interleaving that breaks an invariant: one test per condition proves it."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from mytrader.adapters.tradelog import RESERVE_CONDITIONS, ReserveParams, StateConflict, SymbolBusy, TradeLog
from mytrader.adapters.tradelog import log as tradelog_log
from mytrader.models import Order, OrderSide
from tests.tradelog_machine import INITIAL, LIMITS, SCENARIOS, TradeLogMachine, pending_decision, run_scenario

TestTradeLogInvariants = TradeLogMachine.TestCase
TestTradeLogInvariants.settings = settings(max_examples=200, stateful_step_count=30, deadline=None,
                                           suppress_health_check=list(HealthCheck))

MUTATION = settings(max_examples=1000, stateful_step_count=30, deadline=None, database=None,
                    phases=[Phase.generate], derandomize=True, suppress_health_check=list(HealthCheck))


def test_every_reservation_condition_has_its_interleaving() -> None:
    assert set(SCENARIOS) == set(RESERVE_CONDITIONS)


@pytest.mark.parametrize("condition", sorted(RESERVE_CONDITIONS))
def test_removing_a_reservation_condition_breaks_an_invariant(condition: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the interleaving that needs this condition, When it runs with every condition, Then all checks hold
    run_scenario(condition)
    # When the reservation loses this one condition, Then the same steps break an invariant
    monkeypatch.delitem(tradelog_log.RESERVE_CONDITIONS, condition)
    with pytest.raises(AssertionError):
        run_scenario(condition)


@pytest.mark.parametrize("condition", ["kill_switch_off", "sizing_equity"])
def test_the_random_search_finds_a_missing_condition_too(condition: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the reservation without a condition, When Hypothesis explores interleavings (no scripted steps),
    # Then it finds one that breaks an invariant on its own
    monkeypatch.delitem(tradelog_log.RESERVE_CONDITIONS, condition)
    with pytest.raises(AssertionError):
        run_state_machine_as_test(TradeLogMachine, settings=MUTATION)


def test_a_stale_read_cannot_reserve() -> None:
    # Given an account read, then changed by another writer
    tl = TradeLog.in_memory()
    tl.ensure_account(INITIAL)
    now = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    tl.begin_day("2024-03-04")
    tl.put_decision(pending_decision("d1", "AAA", now))
    read = tl.account_state()
    tl.set_kill_switch(True)
    tl.set_kill_switch(False)
    order = Order(client_order_id="d1", symbol="AAA", side=OrderSide.BUY, qty=10, submitted_at=now)
    # When a reservation is made from the stale read, Then it is refused as a conflict (the caller re-reads)
    with pytest.raises(StateConflict):
        tl.reserve_entry("d1", order, 10.0, ReserveParams(expected=read, limits=LIMITS, now=now, notional=100.0))


def test_the_symbol_is_claimed_by_the_first_reservation() -> None:
    # Given one symbol reserved for a first decision
    tl = TradeLog.in_memory()
    tl.ensure_account(INITIAL)
    now = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    tl.begin_day("2024-03-04")
    for d in ("d1", "d2"):
        tl.put_decision(pending_decision(d, "AAA", now))
    first = Order(client_order_id="d1", symbol="AAA", side=OrderSide.BUY, qty=10, submitted_at=now)
    tl.reserve_entry("d1", first, 10.0, ReserveParams(expected=tl.account_state(), limits=LIMITS, now=now,
                                                      notional=100.0))
    # When a second decision for the same symbol reserves, Then it is refused: one position or order per symbol
    second = Order(client_order_id="d2", symbol="AAA", side=OrderSide.BUY, qty=10, submitted_at=now)
    with pytest.raises(SymbolBusy):
        tl.reserve_entry("d2", second, 10.0, ReserveParams(expected=tl.account_state(), limits=LIMITS, now=now,
                                                           notional=100.0))
    assert tl.account_state().open_positions == 1
