"""Fractional shares at Alpaca: a fraction only for a long entry (or a close) of an asset Alpaca marks
`fractionable`, as a simple day order without legs (its stop and target stay with MyTrader's outcomes run); whole
shares otherwise. The rule is a pure function; the broker's use of it runs against the Alpaca HTTP fixture (on
127.0.0.1), here given the assets endpoint it lacks."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest

from mytrader.adapters.alpaca.broker import AlpacaBroker
from mytrader.adapters.alpaca.orders import order_body, sendable
from mytrader.broker import BrokerError, BrokerErrorKind, ExitLegs, new_order
from mytrader.models import OrderSide
from tests.integration.alpaca_fixture import AlpacaFixture
from tests.integration.alpaca_fixture_market import refused

AFTER_CLOSE = datetime(2024, 1, 2, 21, 30, tzinfo=UTC)  # Tue 2 Jan 2024, 16:30 New York
OPEN_3 = datetime(2024, 1, 3, 14, 31, tzinfo=UTC)
LEGS = ExitLegs(stop_loss=170.0, take_profit=200.0)


def entry(qty: float, side: OrderSide = OrderSide.BUY, symbol: str = "AAPL", coid: str = "d1"):
    return new_order(coid, symbol, side, qty, AFTER_CLOSE, False)


def close(qty: float):
    return new_order("d1-x", "AAPL", OrderSide.SELL, qty, AFTER_CLOSE, True)


@pytest.mark.parametrize(("order", "fractionable", "qty", "legs"), [
    (entry(2.345678), True, 2.345678, None),  # a long fraction: as it is, no legs
    (entry(2.345678), False, 2.0, LEGS),  # not fractionable: the whole shares, bracketed
    (entry(2.345678, OrderSide.SELL), True, 2.0, LEGS),  # a short entry is never a fraction
    (close(2.345678), False, 2.345678, None),  # a close sells what is held, fraction and all
    (entry(3.0), True, 3.0, LEGS),  # whole shares: unchanged
])
def test_what_alpaca_is_sent_for_an_order(order, fractionable, qty, legs):
    sent, exits = sendable(order, LEGS if not order.reduce_only else None, fractionable)
    assert (sent.qty, exits) == (qty, legs)
    body = order_body(sent, "mt-x", exits)
    if qty != int(qty):  # Alpaca takes a fraction in a simple day market order only
        assert (body["time_in_force"], body["type"], "order_class" in body) == ("day", "market", False)


def test_less_than_one_share_that_cannot_be_a_fraction_is_invalid_before_anything_is_sent():
    with pytest.raises(BrokerError) as err:
        sendable(entry(0.81), LEGS, fractionable=False)
    assert err.value.kind == BrokerErrorKind.INVALID and "not fractionable" in str(err.value)


class _AssetsFixture(AlpacaFixture):
    """The Alpaca fixture with GET /v2/assets/{symbol} (the fields MyTrader reads; 404 for an unknown asset)."""

    def __init__(self, fractionable: dict[str, bool], **kw: Any):
        super().__init__(**kw)
        self.fractionable = fractionable

    def _route(self, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "GET" and path.startswith("/v2/assets/"):
            symbol = unquote(path.split("/")[3])
            if symbol not in self.fractionable:
                return refused(404, "asset not found", 40410000)
            return 200, {"id": f"id-{symbol}", "class": "us_equity", "exchange": "NASDAQ", "symbol": symbol,
                         "status": "active", "tradable": True, "fractionable": self.fractionable[symbol]}
        return super()._route(method, path, q, body)


@pytest.fixture
def alpaca():
    fx = _AssetsFixture({"AAPL": True, "BRK.A": False}, now=AFTER_CLOSE)
    fx.bars["AAPL"] = [{"t": "2024-01-03T05:00:00Z", "o": 184.5, "h": 186, "l": 183, "c": 185, "v": 1e6, "n": 1,
                        "vw": 185}]
    yield fx
    fx.close()


def test_a_fractional_long_entry_of_a_fractionable_asset_goes_as_a_day_order_and_fills(alpaca):
    broker = AlpacaBroker("k", "s", base_url=alpaca.url, order_id_prefix="mt-", retry=alpaca.retry([]))
    # When a fractional entry with a stop and a target is sent after the close
    placed = broker.submit(entry(2.345678), 181.0, exits=LEGS)
    # Then Alpaca got a simple day order for the fraction (no legs: outcomes keeps the stop and target)
    sent = [r.body for r in alpaca.requests if r.method == "POST"]
    assert sent == [{"symbol": "AAPL", "qty": "2.345678", "side": "buy", "type": "market", "time_in_force": "day",
                     "client_order_id": "mt-d1"}]
    assert placed.qty == 2.345678 and placed.legs == []
    # and it fills at the next open, fraction and all
    alpaca.set_time(OPEN_3)
    filled = broker.get_by_client_order_id("d1")
    assert filled is not None and (filled.status, filled.filled_qty) == ("filled", 2.345678)


def test_an_asset_that_is_not_fractionable_gets_whole_shares_and_alpaca_is_asked_once(alpaca):
    broker = AlpacaBroker("k", "s", base_url=alpaca.url, order_id_prefix="mt-", retry=alpaca.retry([]))
    # Given an asset Alpaca does not mark fractionable, and one it does not know
    placed = broker.submit(entry(3.7, symbol="BRK.A"), 10.0, exits=ExitLegs(stop_loss=9.0, take_profit=12.0))
    assert placed.qty == 3.0 and placed.order_class == "bracket"
    assert not broker.fractionable("UNKNOWN")
    # Then each asset was asked once, whatever the number of orders (the flag is kept per container)
    broker.submit(entry(1.5, symbol="BRK.A", coid="d2"), 10.0)
    again = AlpacaBroker("k", "s", base_url=alpaca.url, order_id_prefix="mt-", retry=alpaca.retry([]))
    assert not again.fractionable("UNKNOWN")
    asked = [r.path for r in alpaca.requests if r.path.startswith("/v2/assets/")]
    assert asked == ["/v2/assets/BRK.A", "/v2/assets/UNKNOWN"]


def test_an_asset_flag_that_cannot_be_read_sends_nothing(alpaca):
    broker = AlpacaBroker("k", "s", base_url=alpaca.url, order_id_prefix="mt-", retry=alpaca.retry([], tries=1))
    alpaca.inject(503, path="/v2/assets/", times=-1)
    with pytest.raises(BrokerError) as err:
        broker.submit(entry(2.5), 181.0)
    assert err.value.retryable and not [r for r in alpaca.requests if r.method == "POST"]
