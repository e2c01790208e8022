"""The trade log's contract on DynamoDB (the embedded AWS): the same state machine as the in-memory run
(tests/tradelog_machine.py), 25 examples x 20 steps, each example on a fresh table. With conflicts injected into
a share of the transactions, the retry paths run too and the invariants still hold."""
from __future__ import annotations

import itertools

import boto3
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from mytrader.adapters.tradelog import TradeLog
from mytrader.adapters.tradelog import log as tradelog_log
from mytrader.stack_spec import TRADE_LOG
from mytrader_tools.embedded.endpoint import DynamoFaults
from mytrader_tools.embedded.stack import create_table
from tests.tradelog_machine import SCENARIOS, TradeLogMachine, run_scenario

_tables = itertools.count()
DYNAMO = settings(max_examples=25, stateful_step_count=20, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))


def _machine_on(embedded) -> type[TradeLogMachine]:
    ddb = boto3.client("dynamodb", region_name=embedded.region)

    class DynamoMachine(TradeLogMachine):
        def make_log(self) -> TradeLog:
            prefix = f"sm{next(_tables)}"
            create_table(ddb, TRADE_LOG, prefix)
            return TradeLog(ddb, TRADE_LOG.name(prefix))

    return DynamoMachine


def test_the_trade_log_contract_holds_on_dynamodb(embedded) -> None:
    run_state_machine_as_test(_machine_on(embedded), settings=DYNAMO)


@pytest.mark.parametrize("rate", [0.15])
def test_the_contract_holds_with_transaction_conflicts_injected(embedded, rate: float) -> None:
    # Given the embedded DynamoDB answering a share of the writes with transaction conflicts
    faults = DynamoFaults(transaction_conflict_rate=rate, write_conflict_rate=rate, seed=7)
    embedded.router.dynamodb_faults = faults
    try:
        # When the state machine runs, Then every invariant holds (conflicts are retried, never booked twice)
        run_state_machine_as_test(_machine_on(embedded), settings=settings(DYNAMO, max_examples=12))
        assert sum(faults.injected.values()) > 0
    finally:
        embedded.router.dynamodb_faults = None


@pytest.mark.parametrize("condition", sorted(SCENARIOS))
def test_each_reservation_condition_is_enforced_by_dynamodb(embedded, condition: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the interleaving that needs this condition, on DynamoDB, When it runs, Then every check holds
    machine = _machine_on(embedded)
    run_scenario(condition, machine)
    # When the condition is left out of the transaction, Then DynamoDB lets the same steps break an invariant
    monkeypatch.delitem(tradelog_log.RESERVE_CONDITIONS, condition)
    with pytest.raises(AssertionError):
        run_scenario(condition, machine)
