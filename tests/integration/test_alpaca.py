"""Alpaca adapters against the HTTP fixture in Alpaca's documented shapes (never the network): placing once per
client_order_id, positions, and the pipeline trading through Alpaca."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from mytrader.adapters.alpaca.broker import AlpacaBroker
from mytrader.broker import BrokerError, BrokerErrorKind, new_order
from mytrader.models import OrderSide
from mytrader_tools.embedded import demo as D
from mytrader_tools.embedded.replay import replay
from tests.integration.alpaca_fixture import AlpacaFixture
from tests.integration.test_pipeline_replay import tradelog

NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)  # 10:00 New York, the market open


@pytest.fixture
def alpaca():
    fx = AlpacaFixture(now=NOW)
    yield fx
    fx.close()


def order(coid="d1", qty=5.0, symbol="AAPL", side=OrderSide.BUY):
    return new_order(coid, symbol, side, qty, NOW, False)


def test_orders_are_placed_once_per_client_order_id(alpaca):
    # Given an order Alpaca filled during the session
    broker = AlpacaBroker("k", "s", base_url=alpaca.url, retry=alpaca.retry([]))
    first = broker.submit(order(), 100.0)
    assert first.status == "filled" and first.filled_qty == 5 and first.filled_avg_price == 10.0
    assert first.filled_at == NOW
    # When the same order is sent again (a redelivery), Alpaca answers 422 "client_order_id must be unique"
    again = broker.submit(order(), 100.0)
    # Then the adapter adopts the order it is, and nothing is placed twice
    assert again.broker_order_id == first.broker_order_id and len(alpaca.orders) == 1
    assert broker.get_by_client_order_id("nope") is None


def test_a_duplicate_id_held_by_another_order_is_a_conflict_never_adopted(alpaca):
    # Given Alpaca holds AAPL buy 5 under client id d1 (another stack on the account, or a bug)
    broker = AlpacaBroker("k", "s", base_url=alpaca.url, retry=alpaca.retry([]))
    broker.submit(order("d1", 5), 100.0)
    # When MyTrader sends MSFT sell 3 under the same id
    with pytest.raises(BrokerError) as err:
        broker.submit(order("d1", 3, "MSFT", OrderSide.SELL), 100.0)
    # Then it is a CONFLICT (an alarm), not the AAPL order handed back as if it were this one
    assert err.value.kind == BrokerErrorKind.CONFLICT and not err.value.retryable
    assert "AAPL buy 5" in str(err.value) and "MSFT sell 3" in str(err.value)


def test_the_deployment_prefix_is_sent_and_stripped(alpaca):
    # Given two deployments on one Alpaca account, each with its own prefix
    prod = AlpacaBroker("k", "s", base_url=alpaca.url, order_id_prefix="prod-", retry=alpaca.retry([]))
    test = AlpacaBroker("k", "s", base_url=alpaca.url, order_id_prefix="test-", retry=alpaca.retry([]))
    # When both place MyTrader's same deterministic id
    a, b = prod.submit(order("d1"), 100.0), test.submit(order("d1"), 100.0)
    # Then Alpaca holds two orders, and each deployment reads back its own under MyTrader's id
    assert sorted(o["client_order_id"] for o in alpaca.orders) == ["prod-d1", "test-d1"]
    assert a.client_order_id == b.client_order_id == "d1" and a.broker_order_id != b.broker_order_id
    found = prod.get_by_client_order_id("d1")
    assert found is not None and found.broker_order_id == a.broker_order_id
    with pytest.raises(ValueError):
        AlpacaBroker("k", "s", base_url=alpaca.url, order_id_prefix="p" * 65)


def test_alpaca_positions_are_signed_quantities(alpaca):
    broker = AlpacaBroker("k", "s", base_url=alpaca.url, retry=alpaca.retry([]))
    broker.submit(order("long1", 10), 100.0)
    broker.submit(order("short1", 4, "MSFT", OrderSide.SELL), 100.0)
    assert broker.positions() == {"AAPL": 10.0, "MSFT": -4.0}


def test_executor_with_alpaca_survives_crashes_without_duplicates(make_stack):
    # Given the pipeline trading through Alpaca (the fixture's realistic market on the replay's clock: orders
    # sent while closed wait for the open, fills at the open's price) and crashing after each accepted order
    holder: dict[str, Any] = {}
    start = datetime(2011, 1, 3, 12, tzinfo=UTC)
    alpaca = AlpacaFixture(now=start, clock=lambda: datetime.fromisoformat(holder["stack"].get_param("REPLAY_CLOCK")))
    series = D.load_series()
    alpaca.load_series(series)
    try:
        stack = holder["stack"] = make_stack(extra_env={"BROKER": "alpaca", "ALPACA_TRADING_URL": alpaca.url,
                                                        "FAULT_CRASH_AFTER_BROKER": "1.0"})
        stack.set_param("REPLAY_CLOCK", start.isoformat())
        replay(stack, series, date(2011, 1, 3), date(2011, 3, 31))
        coids = [o["client_order_id"] for o in alpaca.orders]
        assert coids and len(coids) == len(set(coids))  # the broker's own ledger: no order placed twice
        states = tradelog(stack).count_by_status()
        assert states["PENDING"] == 0
        assert len(tradelog(stack).fills()) == len(coids)
        json.dumps(states)
        # and the book agrees with what the broker holds, until someone trades outside MyTrader
        stack.set_param("REPLAY_CLOCK", datetime(2011, 4, 1, 20, 30, tzinfo=UTC).isoformat())
        assert stack.invoke("outcomes", {})["position_mismatches"] == []
        alpaca.orders.append({**alpaca.orders[0], "id": "manual", "client_order_id": "by-hand", "side": "buy",
                              "filled_qty": "7", "symbol": "ZZZ", "legs": None})
        mismatches = stack.invoke("outcomes", {})["position_mismatches"]
        assert [{k: m[k] for k in ("symbol", "book", "broker")} for m in mismatches] == [
            {"symbol": "ZZZ", "book": 0.0, "broker": 7.0}]
    finally:
        alpaca.close()
