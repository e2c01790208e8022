"""Alpaca's faults and refusals by class, injected into the fixture: throttling and outages are retried within a
bound (waiting as Alpaca's rate-limit headers say, on a fake sleep) and then retryable; keys, account refusals,
invalid requests are not — each with Alpaca's code in the reason. Market data and news keep "try later"
(DataUnavailable) apart from bad data."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mytrader.adapters.alpaca.broker import AlpacaBroker
from mytrader.adapters.alpaca.market_data import AlpacaMarketData
from mytrader.adapters.alpaca.news import AlpacaNewsSource
from mytrader.broker import BrokerError, BrokerErrorKind, new_order
from mytrader.errors import DataQualityError, DataUnavailable
from mytrader.models import OrderSide
from tests.integration.alpaca_fixture import AlpacaFixture

NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)  # 10:00 New York, the market open


@pytest.fixture
def alpaca():
    fx = AlpacaFixture(now=NOW)
    fx.last_trade["AAPL"] = 187.25
    yield fx
    fx.close()


@pytest.fixture
def slept():
    return []


@pytest.fixture
def broker(alpaca, slept):
    return AlpacaBroker("k", "s", base_url=alpaca.url, retry=alpaca.retry(slept))


def order(coid="d1", qty=5.0):
    return new_order(coid, "AAPL", OrderSide.BUY, qty, NOW, False)


def test_a_429_is_retried_after_the_reset_alpaca_announces(alpaca, broker, slept):
    # Given Alpaca throttles the next order post and says the window resets in 3 s
    alpaca.inject(429, path="/v2/orders", method="POST", reset_in=3)
    # When the order is sent, Then it waits until the reset (on the fake sleep) and is placed once
    assert broker.submit(order(), 187.25).status == "filled"
    assert slept == [3.0] and len(alpaca.orders) == 1
    posts = [r for r in alpaca.requests if r.method == "POST"]
    assert len(posts) == 2


def test_throttled_beyond_the_bound_is_a_retryable_throttled_error(alpaca, broker, slept):
    alpaca.inject(429, path="/v2/positions", times=-1, reset_in=30)
    with pytest.raises(BrokerError) as err:
        broker.positions()
    assert err.value.kind == BrokerErrorKind.THROTTLED and err.value.retryable
    assert slept == [5.0, 5.0]  # each wait capped, 3 tries in all


def test_outages_are_retried_then_retryable_unavailable(alpaca, broker, slept):
    alpaca.inject(503, path="/v2/orders:by_client_order_id", times=2)
    assert broker.get_by_client_order_id("nothing") is None  # the third try answered
    assert slept == [1.0, 2.0]
    alpaca.inject(500, path="/v2/account", times=-1)
    with pytest.raises(BrokerError) as err:
        broker.account()
    assert err.value.kind == BrokerErrorKind.UNAVAILABLE and err.value.retryable


def test_an_order_alpaca_took_whose_answer_was_lost_is_adopted_on_the_retry(alpaca, broker, slept):
    # Given Alpaca places the order but the connection drops before the answer
    alpaca.inject(200, path="/v2/orders", method="POST", lose_answer=True)
    # When the adapter retries, Alpaca says the id is taken; it is the same order, so it is adopted
    placed = broker.submit(order(), 187.25)
    assert placed.status == "filled" and len(alpaca.orders) == 1 and slept == [1.0]


def test_wrong_keys_are_an_auth_error_that_no_retry_fixes(alpaca, slept):
    alpaca.valid_keys = ("rotated-key", "rotated-secret")
    stale = AlpacaBroker("k", "s", base_url=alpaca.url, retry=alpaca.retry(slept))
    with pytest.raises(BrokerError) as err:
        stale.submit(order(), 187.25)
    assert err.value.kind == BrokerErrorKind.AUTH and not err.value.retryable and err.value.code == "40110000"
    assert slept == [] and alpaca.orders == []


@pytest.mark.parametrize(("code", "message"), [
    (40310000, "potential wash trade detected. use complex orders"),
    (40310100, "trade denied due to pattern day trading protection"),
])
def test_account_refusals_are_terminal_with_alpacas_code_in_the_reason(alpaca, broker, code, message):
    alpaca.inject(403, path="/v2/orders", method="POST", code=code, message=message)
    with pytest.raises(BrokerError) as err:
        broker.submit(order(), 187.25)
    assert err.value.kind == BrokerErrorKind.REFUSED and not err.value.retryable
    assert err.value.code == str(code) and str(code) in str(err.value) and message in str(err.value)


def test_buying_power_is_alpacas_to_refuse(alpaca, broker):
    with pytest.raises(BrokerError) as err:
        broker.submit(order(qty=1000), 187.25)  # $187k on a $100k cash account
    assert err.value.kind == BrokerErrorKind.REFUSED and "insufficient buying power" in str(err.value)


def test_an_invalid_request_is_terminal(alpaca, broker):
    alpaca.inject(422, path="/v2/orders", method="POST", code=40010001, message="qty must be > 0")
    with pytest.raises(BrokerError) as err:
        broker.submit(order(), 187.25)
    assert err.value.kind == BrokerErrorKind.INVALID and not err.value.retryable


def test_a_throttled_quote_is_try_later_not_bad_data(alpaca, slept):
    # Given the latest-trade endpoint throttled beyond the retries
    md = AlpacaMarketData("k", "s", base_url=alpaca.url, retry=alpaca.retry(slept), now=lambda: alpaca.now)
    alpaca.inject(429, path="/v2/stocks/AAPL/trades/latest", times=-1)
    # Then the quote raises DataUnavailable: retryable, so an entry waits instead of being rejected for good
    with pytest.raises(DataUnavailable) as err:
        md.quote("AAPL", NOW)
    assert err.value.retryable and isinstance(err.value, DataQualityError) and len(slept) == 2
    # while a quote Alpaca has no price for stays bad data (not retryable)
    with pytest.raises(DataQualityError) as bad:
        md.quote("NONE", NOW)
    assert not bad.value.retryable and "HTTP 404" in str(bad.value)
    alpaca.faults.clear()
    assert md.quote("AAPL", NOW) == 187.25
    assert [r.query.get("feed") for r in alpaca.requests if r.path.endswith("/latest")][-1] == "iex"


def test_bars_and_news_outages_are_try_later(alpaca, slept):
    md = AlpacaMarketData("k", "s", base_url=alpaca.url, retry=alpaca.retry(slept), now=lambda: alpaca.now)
    alpaca.inject(503, path="/v2/stocks/", times=-1)
    with pytest.raises(DataUnavailable):
        md.history("AAPL", NOW)
    news = AlpacaNewsSource("k", "s", base_url=alpaca.url, retry=alpaca.retry(slept))
    alpaca.inject(0, path="/v1beta1/news", times=-1)  # the connection drops every time
    with pytest.raises(DataUnavailable, match="unreachable"):
        news.items("AAPL", NOW.replace(hour=0), NOW)
    # and keys the data API refuses are bad data for now (HTTP 403), not retried
    alpaca.faults.clear()
    alpaca.valid_keys = ("other", "keys")
    slept.clear()
    with pytest.raises(DataQualityError, match="HTTP 403") as err:
        md.history("AAPL", NOW)
    assert not err.value.retryable and slept == []
