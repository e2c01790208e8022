"""Alpaca adapters against an HTTP fixture in Alpaca's documented shapes (never the network)."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from mytrader.adapters.alpaca.broker import AlpacaBroker
from mytrader.adapters.alpaca.market_data import AlpacaMarketData
from mytrader.adapters.alpaca.news import AlpacaNewsSource
from mytrader.broker import BrokerError, new_order
from mytrader.errors import DataQualityError
from mytrader.models import OrderSide
from mytrader_tools.embedded import demo as D
from mytrader_tools.embedded.replay import replay
from tests.integration.alpaca_fixture import AlpacaFixture
from tests.integration.test_pipeline_replay import tradelog

NOW = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def alpaca():
    fx = AlpacaFixture()
    yield fx
    fx.close()


def order(coid="d1", qty=5.0):
    return new_order(coid, "AAPL", OrderSide.BUY, qty, NOW, False)


def test_orders_are_placed_once_per_client_order_id(alpaca):
    broker = AlpacaBroker("k", "s", base_url=alpaca.url)
    first = broker.submit(order(), 100.0)
    assert first.status == "filled" and first.filled_qty == 5 and first.filled_avg_price == 10.0
    # a retry of the same client_order_id is answered 422 by Alpaca: the adapter fetches, never re-places
    again = broker.submit(order(), 100.0)
    assert again.broker_order_id == first.broker_order_id and len(alpaca.orders) == 1
    assert broker.get_by_client_order_id("nope") is None


def test_partial_fills_and_errors(alpaca):
    broker = AlpacaBroker("k", "s", base_url=alpaca.url)
    alpaca.fill_mode = "partial"
    assert broker.submit(order("p1", 10), 100.0).status == "partially_filled"
    alpaca.fail_next = [503]
    with pytest.raises(BrokerError) as err:
        broker.submit(order("p2"), 100.0)
    assert err.value.retryable
    alpaca.fail_next = [403]
    with pytest.raises(BrokerError) as err:
        broker.submit(order("p3"), 100.0)
    assert not err.value.retryable
    with pytest.raises(BrokerError, match="unreachable"):
        AlpacaBroker("k", "s", base_url="http://127.0.0.1:9", timeout=0.5).submit(order("p4"), 1.0)


def test_market_data_pages_and_validates(alpaca):
    alpaca.bars["AAPL"] = [{"t": f"2024-01-0{d}T05:00:00Z", "o": 10 + d, "h": 11 + d, "l": 9 + d, "c": 10.5 + d,
                            "v": 1000 * d, "n": 10, "vw": 10.2} for d in (2, 3, 4, 5, 8)]
    s = AlpacaMarketData("k", "s", base_url=alpaca.url).history("AAPL", datetime(2024, 1, 9, tzinfo=UTC))
    assert len(s) == 5 and s.close.tolist()[0] == 12.5
    assert s.time(0) == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)  # stamped at the session close
    alpaca.bars["BAD"] = [{"t": "2024-01-02T05:00:00Z", "o": 10, "h": 9, "l": 11, "c": 10, "v": 5}]
    with pytest.raises(DataQualityError, match="high < low"):
        AlpacaMarketData("k", "s", base_url=alpaca.url).history("BAD", datetime(2024, 1, 9, tzinfo=UTC))
    with pytest.raises(DataQualityError, match="no bars"):
        AlpacaMarketData("k", "s", base_url=alpaca.url).history("NONE", datetime(2024, 1, 9, tzinfo=UTC))


def test_news_source(alpaca):
    alpaca.news = [{"id": 1, "headline": "Apple &amp; partners beat", "summary": "",
                    "created_at": "2024-01-02T13:00:00Z", "symbols": ["AAPL"], "source": "benzinga"},
                   {"id": 2, "headline": "Later", "created_at": "2024-01-03T13:00:00Z", "symbols": ["AAPL"]}]
    alpaca.news += [{"id": 3, "headline": "No date", "symbols": ["AAPL"]},
                    {"id": 4, "headline": "Bad date", "created_at": "yesterday", "symbols": ["AAPL"]},
                    {"id": 5, "headline": None, "created_at": "2024-01-02T12:00:00Z"}, "not an object"]
    source = AlpacaNewsSource("k", "s", base_url=alpaca.url)
    items = source.items("AAPL", datetime(2024, 1, 1, tzinfo=UTC), NOW)
    assert [i.headline for i in items] == ["Apple & partners beat"] and items[0].source == "alpaca:benzinga"
    # malformed items are skipped, each recorded with why
    assert [s.split(":")[0] for s in source.skipped] == ["AAPL news id 3", "AAPL news id 4", "AAPL news id 5",
                                                         "AAPL news id ?"]


def test_executor_with_alpaca_survives_crashes_without_duplicates(make_stack, alpaca):
    # Given the pipeline trading through Alpaca (the fixture) and crashing once after each order is accepted
    stack = make_stack(extra_env={"BROKER": "alpaca", "ALPACA_TRADING_URL": alpaca.url,
                                  "FAULT_CRASH_AFTER_BROKER": "1.0"})
    replay(stack, D.load_series(), date(2011, 1, 3), date(2011, 3, 31))
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
                          "filled_qty": "7", "symbol": "ZZZ"})
    mismatches = stack.invoke("outcomes", {})["position_mismatches"]
    assert mismatches == [{"symbol": "ZZZ", "book": 0.0, "broker": 7.0}]


def test_latest_trade_quote_and_bars_for_the_executor_and_outcomes(alpaca):
    alpaca.last_trade["AAPL"] = 187.25
    alpaca.bars["AAPL"] = [{"t": "2024-01-02T05:00:00Z", "o": 10, "h": 11, "l": 9, "c": 10.5, "v": 1000}]
    md = AlpacaMarketData("k", "s", base_url=alpaca.url)
    assert md.quote("AAPL", NOW) == 187.25
    assert md.bar_at("AAPL", datetime(2024, 1, 3, tzinfo=UTC)) == 0 and len(md.full("AAPL")) == 1
    with pytest.raises(DataQualityError, match="latest trade HTTP 404"):
        md.quote("NONE", NOW)


def test_alpaca_positions_are_signed_quantities(alpaca):
    broker = AlpacaBroker("k", "s", base_url=alpaca.url)
    broker.submit(order("long1", 10), 100.0)
    broker.submit(new_order("short1", "MSFT", OrderSide.SELL, 4, NOW, False), 100.0)
    assert broker.positions() == {"AAPL": 10.0, "MSFT": -4.0}


def test_alpaca_order_states_map_onto_what_the_executor_waits_for(alpaca):
    from mytrader.broker import BROKER_DONE

    # Given orders in each of Alpaca's documented states
    broker = AlpacaBroker("k", "s", base_url=alpaca.url)
    alpaca.fill_mode = "new"
    states = {"new": False, "pending_new": False, "accepted": False, "partially_filled": False,
              "pending_cancel": False, "filled": True, "canceled": True, "expired": True, "rejected": True,
              "done_for_day": True}
    for k, state in enumerate(states):
        broker.submit(order(f"s{k}", 10), 100.0)
        alpaca.orders[-1].update(status=state, filled_qty="3" if state != "new" else "0",
                                 filled_avg_price="99.5" if state != "new" else None)
    # When the executor looks them up, Then it knows which ones will never fill further, and what filled
    for k, (state, done) in enumerate(states.items()):
        placed = broker.get_by_client_order_id(f"s{k}")
        assert placed is not None, state
        assert (placed.status in BROKER_DONE) == done, state
        assert placed.filled_qty == (3.0 if state != "new" else 0.0)
