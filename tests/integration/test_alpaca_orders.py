"""Orders as Alpaca really handles them, against the fixture's realistic market: queued after hours and filled at
the next open, day orders expiring, whole-share partial fills, brackets whose legs rest and fill, cancel and
replace, and a resting leg holding the shares a plain sell would need."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from mytrader.adapters.alpaca.broker import AlpacaBroker
from mytrader.broker import BROKER_DONE, BrokerError, BrokerErrorKind, ExitLegs, new_order
from mytrader.models import OrderSide
from tests.integration.alpaca_fixture import AlpacaFixture

AFTER_CLOSE = datetime(2024, 1, 2, 21, 30, tzinfo=UTC)  # Tue 2 Jan 2024, 16:30 New York
OPEN_3, CLOSE_3 = datetime(2024, 1, 3, 14, 30, tzinfo=UTC), datetime(2024, 1, 3, 21, 0, tzinfo=UTC)
OPEN_4, CLOSE_4 = datetime(2024, 1, 4, 14, 30, tzinfo=UTC), datetime(2024, 1, 4, 21, 0, tzinfo=UTC)


def bar(day: int, o: float, h: float, lo: float, c: float) -> dict:
    return {"t": f"2024-01-0{day}T05:00:00Z", "o": o, "h": h, "l": lo, "c": c, "v": 1e6, "n": 1000, "vw": c}


@pytest.fixture
def alpaca():
    fx = AlpacaFixture(now=AFTER_CLOSE)
    fx.bars["AAPL"] = [bar(2, 180, 182, 179, 181), bar(3, 184.5, 186, 183, 185)]
    yield fx
    fx.close()


@pytest.fixture
def broker(alpaca):
    return AlpacaBroker("k", "s", base_url=alpaca.url, order_id_prefix="mt-", retry=alpaca.retry([]))


def buy(coid="d1", qty=10.0):
    return new_order(coid, "AAPL", OrderSide.BUY, qty, AFTER_CLOSE, False)


def looked_up(broker, coid):
    found = broker.get_by_client_order_id(coid)
    assert found is not None
    return found


def test_an_order_sent_after_the_close_is_accepted_then_fills_at_the_next_open(alpaca, broker):
    # Given the market closed (16:30 New York)
    # When an entry is sent
    placed = broker.submit(buy(), 181.0)
    # Then Alpaca queues it: accepted, nothing filled, no price yet — a working order, not a failure
    assert (placed.status, placed.filled_qty, placed.filled_avg_price) == ("accepted", 0.0, None)
    assert placed.status not in BROKER_DONE and alpaca.orders[0]["status"] == "accepted"
    # When the next session opens
    alpaca.set_time(OPEN_3.replace(minute=31))
    filled = looked_up(broker, "d1")
    # Then it filled at that open, at the open's price, stamped by the broker at the open
    assert (filled.status, filled.filled_qty, filled.fill_price(), filled.filled_at) == ("filled", 10, 184.5, OPEN_3)


def test_a_day_order_partly_filled_at_the_open_fills_whole_shares_and_expires_at_the_close(alpaca, broker):
    # Given the market fills only 3.7 shares' worth of the next open's auction (whole-share orders fill whole)
    alpaca.market.partial_next = [3.7]
    broker.submit(buy(qty=10), 181.0)
    alpaca.set_time(OPEN_3)
    part = looked_up(broker, "d1")
    assert (part.status, part.filled_qty) == ("partially_filled", 3.0)
    # When the session closes with the rest unfilled
    alpaca.set_time(CLOSE_3)
    # Then the day order expired with what filled: final, the book takes the 3 shares
    done = looked_up(broker, "d1")
    assert (done.status, done.filled_qty) == ("expired", 3.0) and done.status in BROKER_DONE


def test_during_the_session_an_order_may_answer_new_and_show_its_fill_on_the_next_read(alpaca, broker):
    alpaca.set_time(OPEN_3.replace(hour=15))
    alpaca.market.post_reports_fill = False
    placed = broker.submit(buy(), 184.0)
    assert placed.status == "accepted" and placed.filled_qty == 0
    assert looked_up(broker, "d1").status == "filled"


@pytest.mark.parametrize(("day4", "price", "at"), [
    (bar(4, 178, 179, 172, 173), 175.0, CLOSE_4),  # the day's low crossed the stop: filled at the stop
    (bar(4, 170, 171, 168, 169), 170.0, OPEN_4),  # gapped through the stop: filled at the open
])
def test_a_bracket_rests_its_stop_at_the_broker_and_the_stop_fills_like_the_backtest(alpaca, broker, day4, price, at):
    alpaca.bars["AAPL"].append(day4)
    # Given an entry sent after the close as a bracket (stop 175, target 195)
    placed = broker.submit(buy(), 181.0, exits=ExitLegs(stop_loss=175.0, take_profit=195.0))
    assert placed.order_class == "bracket" and {leg.leg for leg in placed.legs} == {"stop_loss", "take_profit"}
    assert all(leg.status == "held" for leg in placed.legs)  # held until the entry fills
    # When the entry fills at the next open, Then the legs rest (and nothing touched them on day 3)
    alpaca.set_time(CLOSE_3)
    entry = looked_up(broker, "d1")
    assert entry.status == "filled" and [leg.status for leg in entry.legs] == ["accepted", "accepted"]
    # When day 4 trades through the stop
    alpaca.set_time(CLOSE_4)
    legs = {leg.leg: leg for leg in looked_up(broker, "d1").legs}
    # Then the stop sold the position at the broker, and the target was canceled with it (one cancels other)
    stop = legs["stop_loss"]
    assert (stop.status, stop.filled_qty, stop.fill_price(), stop.filled_at) == ("filled", 10, price, at)
    assert legs["take_profit"].status == "canceled"
    assert broker.positions() == {}
    # And the sell's regulatory fees arrive as an end-of-day FEE activity (SEC on the notional, TAF per share)
    fees = broker.fee_activities(AFTER_CLOSE)
    assert [(f.symbol, f.amount, f.at) for f in fees] == [("AAPL", -0.06, CLOSE_4)]  # 0.05 SEC + 0.01 TAF


def test_the_target_fills_when_the_high_reaches_it(alpaca, broker):
    alpaca.bars["AAPL"].append(bar(4, 186, 196, 185, 190))
    broker.submit(buy(), 181.0, exits=ExitLegs(stop_loss=175.0, take_profit=195.0))
    alpaca.set_time(CLOSE_4)
    legs = {leg.leg: leg for leg in looked_up(broker, "d1").legs}
    assert (legs["take_profit"].status, legs["take_profit"].fill_price()) == ("filled", 195.0)
    assert legs["stop_loss"].status == "canceled"


def test_a_stop_is_moved_by_replace_and_the_legs_are_canceled_before_a_plain_close(alpaca, broker):
    # Given a filled bracket whose legs rest
    broker.submit(buy(), 181.0, exits=ExitLegs(stop_loss=175.0, take_profit=195.0))
    alpaca.set_time(OPEN_3.replace(hour=16))
    stop = next(leg for leg in looked_up(broker, "d1").legs if leg.leg == "stop_loss")
    # When the stop is raised (off the tick: it is rounded)
    moved = broker.replace_stop(stop.broker_order_id, 180.004)
    # Then Alpaca answers the replacing order; the old one ended `replaced`, pointing at it
    assert moved.stop_price == 180.0 and moved.leg == "stop_loss" and moved.broker_order_id != stop.broker_order_id
    old = broker.get_order(stop.broker_order_id)
    assert old is not None and (old.status, old.replaced_by) == ("replaced", moved.broker_order_id)
    assert old.status in BROKER_DONE
    legs = {leg.leg: leg for leg in looked_up(broker, "d1").legs}
    assert legs["stop_loss"].broker_order_id == moved.broker_order_id
    # When a signal exit sells while the legs still hold the shares, Then Alpaca refuses it
    sell = new_order("x1", "AAPL", OrderSide.SELL, 10, OPEN_3, True)
    with pytest.raises(BrokerError) as err:
        broker.submit(sell, 185.0)
    assert err.value.kind == BrokerErrorKind.REFUSED and "insufficient qty available" in str(err.value)
    # So the legs are canceled first (one cancels both), a second cancel is no error, and the sell goes through
    broker.cancel(moved.broker_order_id)
    broker.cancel(moved.broker_order_id)
    legs = {leg.leg: leg.status for leg in looked_up(broker, "d1").legs}
    assert legs == {"stop_loss": "canceled", "take_profit": "canceled"}
    assert broker.submit(new_order("x2", "AAPL", OrderSide.SELL, 10, OPEN_3, True), 185.0).status == "filled"
    with pytest.raises(BrokerError) as err:
        broker.cancel("no-such-order")
    assert err.value.kind == BrokerErrorKind.NOT_FOUND
    with pytest.raises(BrokerError) as err:
        broker.replace_stop(moved.broker_order_id, 181.0)  # canceled: not replaceable
    assert err.value.kind == BrokerErrorKind.INVALID


def test_bracket_prices_on_the_wrong_side_of_the_price_are_invalid(alpaca, broker):
    with pytest.raises(BrokerError) as err:
        broker.submit(buy(), 181.0, exits=ExitLegs(stop_loss=182.0, take_profit=195.0))
    assert err.value.kind == BrokerErrorKind.INVALID and "stop_loss.stop_price" in str(err.value)
    assert alpaca.orders == []


def test_an_oco_exit_pair_attached_after_the_fill_rests_and_one_cancels_the_other(alpaca, broker):
    # Given a position bought at the open, and an OCO exit pair posted for it (the other way to rest exits)
    broker.submit(buy(), 181.0)
    alpaca.set_time(OPEN_3.replace(hour=16))
    alpaca.bars["AAPL"].append(bar(4, 186, 196, 185, 190))
    resp = requests.post(f"{alpaca.url}/v2/orders", headers={"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"},
                         json={"symbol": "AAPL", "qty": "10", "side": "sell", "type": "limit", "time_in_force": "gtc",
                               "order_class": "oco", "client_order_id": "mt-d1-oco",
                               "take_profit": {"limit_price": "195"}, "stop_loss": {"stop_price": "175"}}, timeout=5)
    assert resp.status_code == 200
    oco = looked_up(broker, "d1-oco")
    assert (oco.order_class, oco.leg, oco.limit_price, [leg.leg for leg in oco.legs]) == (
        "oco", "take_profit", 195.0, ["stop_loss"])
    # When day 4's high reaches the target
    alpaca.set_time(CLOSE_4)
    # Then the target sold at its limit and the stop was canceled
    done = looked_up(broker, "d1-oco")
    assert (done.status, done.fill_price(), done.legs[0].status) == ("filled", 195.0, "canceled")
    assert broker.positions() == {}
