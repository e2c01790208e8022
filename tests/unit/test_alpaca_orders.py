"""Alpaca order bodies and the parsers of orders, the account, the clock and FEE activities, and the tick
rounding the bracket prices go through: pure functions, no HTTP."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mytrader.adapters.alpaca.account import parse_account, parse_clock, parse_fee
from mytrader.adapters.alpaca.orders import order_body, parse_order, wire_client_order_id
from mytrader.adapters.alpaca.times import rfc3339
from mytrader.broker import BrokerError, BrokerErrorKind, ExitLegs, new_order
from mytrader.market.ticks import on_tick, price_text, round_to_tick, tick_size, to_tick
from mytrader.models import OrderSide

NOW = datetime(2024, 1, 2, 21, 30, tzinfo=UTC)


def order(qty: float = 5.0):
    return new_order("d1", "AAPL", OrderSide.BUY, qty, NOW, False)


def raw_order(**over):
    base = {"id": "o-1", "client_order_id": "mt-prod-d1", "symbol": "AAPL", "side": "buy", "qty": "5",
            "filled_qty": "0", "filled_avg_price": None, "status": "accepted", "order_class": "simple",
            "type": "market", "submitted_at": "2024-01-02T21:30:00.123456Z", "filled_at": None, "legs": None}
    return {**base, **over}


# -- bodies ----------------------------------------------------------------------------------------------
def test_an_order_without_exits_is_a_day_market_order_for_whole_shares():
    body = order_body(order(), "mt-prod-d1", None)
    assert body == {"symbol": "AAPL", "qty": "5", "side": "buy", "type": "market", "time_in_force": "day",
                    "client_order_id": "mt-prod-d1"}
    assert order_body(order(2.5), "x", ExitLegs())["qty"] == "2.5"  # no legs given: still a simple order


def test_exits_make_a_gtc_bracket_or_oto_with_prices_on_the_tick():
    # Given a stop and a target computed off the tick (sub-penny for a $1+ stock)
    body = order_body(order(), "d1", ExitLegs(stop_loss=95.12345, take_profit=110.005))
    # Then Alpaca gets a bracket whose legs outlive the day, priced in whole cents
    assert body["order_class"] == "bracket" and body["time_in_force"] == "gtc"
    assert body["stop_loss"] == {"stop_price": "95.12"} and body["take_profit"] == {"limit_price": "110.01"}
    only_stop = order_body(order(), "d1", ExitLegs(stop_loss=0.123456))
    assert only_stop["order_class"] == "oto" and only_stop["stop_loss"] == {"stop_price": "0.1235"}
    assert "take_profit" not in only_stop


def test_a_bad_exit_price_or_an_overlong_client_id_is_invalid_before_anything_is_sent():
    with pytest.raises(BrokerError) as err:
        order_body(order(), "d1", ExitLegs(stop_loss=-1.0))
    assert err.value.kind == BrokerErrorKind.INVALID and not err.value.retryable
    assert wire_client_order_id("mt-prod-", "d" * 120) == "mt-prod-" + "d" * 120  # 128: Alpaca's limit
    with pytest.raises(BrokerError, match="128"):
        wire_client_order_id("mt-prod-", "d" * 121)


# -- orders in ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("alpaca", "ours"), [
    ("new", "accepted"), ("pending_new", "accepted"), ("accepted", "accepted"), ("held", "held"),
    ("partially_filled", "partially_filled"), ("filled", "filled"), ("canceled", "canceled"),
    ("expired", "expired"), ("replaced", "replaced"), ("done_for_day", "done_for_day"), ("rejected", "rejected")])
def test_statuses_map_onto_what_the_executor_waits_for(alpaca, ours):
    assert parse_order(raw_order(status=alpaca), "mt-prod-").status == ours


def test_an_order_is_read_with_mytraders_id_utc_times_and_no_price_before_it_fills():
    # Given an after-hours order (Alpaca may report filled_avg_price "0" before it is processed)
    queued = parse_order(raw_order(filled_avg_price="0"), "mt-prod-")
    assert queued.client_order_id == "d1" and queued.filled_avg_price is None and queued.filled_at is None
    assert queued.submitted_at == datetime(2024, 1, 2, 21, 30, 0, 123456, tzinfo=UTC)
    # When it filled at the next open, Then the fill time is the broker's, in UTC
    filled = parse_order(raw_order(status="filled", filled_qty="5", filled_avg_price="187.25",
                                   filled_at="2024-01-03T09:30:00.000123456-05:00"), "mt-prod-")
    assert filled.filled_at == datetime(2024, 1, 3, 14, 30, 0, 123, tzinfo=UTC) and filled.fill_price() == 187.25
    assert parse_order(raw_order(client_order_id="other-d1"), "mt-prod-").client_order_id == "other-d1"


def test_a_bracket_is_read_with_its_legs_named_and_a_replaced_leg_points_at_its_successor():
    legs = [raw_order(id="tp", client_order_id="u1", side="sell", type="limit", limit_price="110.01",
                      status="held", order_class="bracket"),
            raw_order(id="sl", client_order_id="u2", side="sell", type="stop", stop_price="95.12",
                      status="replaced", replaced_by="sl2", order_class="bracket")]
    parent = parse_order(raw_order(order_class="bracket", status="filled", legs=legs), "mt-prod-")
    assert parent.order_class == "bracket" and parent.leg is None
    by_leg = {leg.leg: leg for leg in parent.legs}
    assert by_leg["take_profit"].limit_price == 110.01 and by_leg["take_profit"].status == "held"
    assert by_leg["stop_loss"].stop_price == 95.12 and by_leg["stop_loss"].replaced_by == "sl2"


def test_an_unreadable_order_is_a_retryable_error_not_a_crash():
    with pytest.raises(BrokerError) as err:
        parse_order({"id": "x"}, "")
    assert err.value.retryable and err.value.kind == BrokerErrorKind.UNAVAILABLE


# -- account, clock, fees ------------------------------------------------------------------------------------
def test_the_account_clock_and_fee_activities_parse_from_their_documented_shapes():
    account = parse_account({"status": "ACTIVE", "buying_power": "25000.5", "cash": "25000.5",
                             "equity": "31000", "trading_blocked": False, "account_blocked": False,
                             "trade_suspended_by_user": True})
    assert account.buying_power == 25000.5 and account.blocks_entries() == "broker trading blocked"
    clock = parse_clock({"timestamp": "2024-01-02T16:00:00.123456789-05:00", "is_open": False,
                         "next_open": "2024-01-03T09:30:00-05:00", "next_close": "2024-01-03T16:00:00-05:00"})
    assert clock.timestamp == datetime(2024, 1, 2, 21, 0, 0, 123456, tzinfo=UTC)
    assert clock.next_open == datetime(2024, 1, 3, 14, 30, tzinfo=UTC) and clock.next_open.tzinfo == UTC
    fee = parse_fee({"id": "20240102160000000::a1", "activity_type": "FEE", "date": "2024-01-02",
                     "net_amount": "-0.03", "symbol": "AAPL", "description": "REG/TAF fee"})
    assert fee.amount == -0.03 and fee.symbol == "AAPL" and fee.at == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", [{"status": "ACTIVE"}, {"status": "ACTIVE", "buying_power": "NaN", "cash": "1",
                                                        "equity": "1"},
                                 {"status": "ACTIVE", "buying_power": "1", "cash": "1", "equity": "1",
                                  "trading_blocked": "false"}, None])
def test_an_unreadable_account_is_an_error_so_entries_fail_closed(raw):
    with pytest.raises(BrokerError) as err:
        parse_account(raw)
    assert err.value.retryable


def test_times_go_out_as_utc_after_converting():
    from zoneinfo import ZoneInfo

    new_york = datetime(2024, 1, 2, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    assert rfc3339(new_york) == "2024-01-02T14:30:00Z"
    assert rfc3339(datetime(2024, 1, 2, 9, 30)) == "2024-01-02T09:30:00Z"  # naive: read as UTC, never local


# -- ticks -----------------------------------------------------------------------------------------------------
def test_the_sub_penny_rule():
    assert tick_size(1.0) == Decimal("0.01") and tick_size(0.9999) == Decimal("0.0001")
    assert price_text(187.254999) == "187.25" and price_text(187.255) == "187.26"
    assert price_text(0.99996) == "1.00" and price_text(0.5) == "0.5000" and price_text(3) == "3.00"
    assert on_tick(12.5) and not on_tick(12.505) and not on_tick(float("nan"))
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            to_tick(bad)


@given(st.floats(min_value=0.0001, max_value=1e6, allow_nan=False))
def test_a_rounded_price_is_on_its_tick_and_within_half_a_tick(price):
    rounded = to_tick(price)
    assert on_tick(float(rounded)) and round_to_tick(price) == float(rounded)
    assert abs(rounded - Decimal(repr(price))) <= tick_size(price) / 2 + Decimal("0.00005")
