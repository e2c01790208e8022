"""Market data and news from Alpaca as the fixture serves them (honouring start, end, feed, limit, opaque page
tokens): completed daily bars only, the SIP feed within the free plan's 15-minute window, times sent as UTC,
and the account, clock and FEE activities read through the broker."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mytrader.adapters.alpaca.broker import AlpacaBroker
from mytrader.adapters.alpaca.market_data import AlpacaMarketData
from mytrader.adapters.alpaca.news import AlpacaNewsSource
from mytrader.errors import DataQualityError
from tests.integration.alpaca_fixture import AlpacaFixture

NEW_YORK = ZoneInfo("America/New_York")
CLOSE_9 = datetime(2024, 1, 9, 21, 0, tzinfo=UTC)  # Tue 9 Jan 2024, 16:00 New York


def daily(days: list[int]) -> list[dict]:
    return [{"t": f"2024-01-{d:02d}T05:00:00Z", "o": 10 + d, "h": 11 + d, "l": 9 + d, "c": 10.5 + d,
             "v": 1000 * d, "n": 10, "vw": 10.2} for d in days]


@pytest.fixture
def alpaca():
    fx = AlpacaFixture(now=CLOSE_9 + timedelta(hours=1))
    fx.bars["AAPL"] = daily([2, 3, 4, 5, 8, 9])
    yield fx
    fx.close()


def market_data(fx: AlpacaFixture, **kw) -> AlpacaMarketData:
    return AlpacaMarketData("k", "s", base_url=fx.url, retry=fx.retry([]), now=lambda: fx.now, **kw)


def test_bars_page_through_opaque_tokens_from_the_sip_feed(alpaca):
    alpaca.page_size = 2
    s = market_data(alpaca).history("AAPL", alpaca.now)
    assert len(s) == 6 and s.close.tolist()[0] == 12.5 and s.volume.tolist()[-1] == 9000  # SIP volume
    assert s.time(0) == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)  # stamped at the session close
    pages = [r.query for r in alpaca.requests if r.path.endswith("/bars")]
    assert len(pages) == 3 and "page_token" not in pages[0] and all("page_token" in p for p in pages[1:])
    assert {p["feed"] for p in pages} == {"sip"} and {p["timeframe"] for p in pages} == {"1Day"}


def test_sip_is_asked_only_for_data_the_free_plan_serves(alpaca):
    # Given a decision just after the close (16:05 New York): the free plan refuses SIP data of the last 15 min
    alpaca.set_time(CLOSE_9 + timedelta(minutes=5))
    s = market_data(alpaca).history("AAPL", alpaca.now)
    # Then the request ends 15 minutes before the clock, in UTC with Z, and is served
    end = [r.query["end"] for r in alpaca.requests if r.path.endswith("/bars")][-1]
    assert end == "2024-01-09T20:50:00Z" and len(s) > 0


@pytest.mark.parametrize(("minutes_after_close", "last_day"), [
    (-240, 8),  # during the session: today's bar is still forming
    (5, 8),  # the closing auction has printed, but SIP is 15 minutes behind on the free plan
    (19, 8),
    (20, 9),  # close + 5 min settle + 15 min SIP delay: the completed bar
])
def test_a_daily_bar_is_used_only_once_its_session_has_closed_and_settled(alpaca, minutes_after_close, last_day):
    # Given Alpaca serving today's bar as soon as its day has begun (a forming bar)
    alpaca.market.now = CLOSE_9 + timedelta(minutes=minutes_after_close)
    alpaca.data.sip_recent_allowed = True  # even a plan that serves recent SIP must not hand out a forming bar
    # When the last bar is asked for at the clock
    md = market_data(alpaca)
    s = md.history("AAPL", alpaca.now)
    # Then it is the last completed one; and the same bar in the past is complete (replays are unchanged)
    assert s.time(len(s) - 1).astimezone(NEW_YORK).day == last_day
    assert md.completed_after == timedelta(minutes=20)
    assert len(md.history("AAPL", CLOSE_9 - timedelta(days=1))) == 5


def test_the_iex_feed_is_real_time_with_its_own_volume(alpaca):
    alpaca.set_time(CLOSE_9 + timedelta(minutes=6))
    md = market_data(alpaca, feed="iex")
    s = md.history("AAPL", alpaca.now)
    assert s.time(len(s) - 1) == CLOSE_9 and s.volume.tolist()[-1] == 270  # 3% of the tape
    assert [r.query["end"] for r in alpaca.requests][-1] == "2024-01-09T21:06:00Z"
    assert md.completed_after == timedelta(minutes=5)


def test_bars_are_validated(alpaca):
    alpaca.bars["BAD"] = [{"t": "2024-01-02T05:00:00Z", "o": 10, "h": 9, "l": 11, "c": 10, "v": 5}]
    with pytest.raises(DataQualityError, match="high < low"):
        market_data(alpaca).history("BAD", alpaca.now)
    with pytest.raises(DataQualityError, match="no bars"):
        market_data(alpaca).history("NONE", alpaca.now)
    alpaca.bars["ODD"] = [{"o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "t": "2024-01-02T05:00:00"}]  # no offset
    with pytest.raises(DataQualityError, match="malformed"):
        market_data(alpaca).history("ODD", alpaca.now)


def test_news_windows_go_out_in_utc_and_page_through(alpaca):
    # Given headlines around 10:00 New York (15:00 UTC), more than a page of them
    alpaca.page_size = 2
    at = datetime(2024, 1, 2, 14, 0, tzinfo=UTC)
    alpaca.news = [{"id": k, "headline": f"Apple item {k}", "created_at": (at + timedelta(minutes=20 * k))
                    .strftime("%Y-%m-%dT%H:%M:%SZ"), "symbols": ["AAPL"], "source": "benzinga"} for k in range(6)]
    alpaca.news.append({"id": 9, "headline": "Microsoft", "created_at": "2024-01-02T14:30:00Z", "symbols": ["MSFT"]})
    source = AlpacaNewsSource("k", "s", base_url=alpaca.url, retry=alpaca.retry([]))
    # When asked with New York times (a decision as of 10:00 New York)
    as_of = datetime(2024, 1, 2, 10, 0, tzinfo=NEW_YORK)
    items = source.items("AAPL", as_of - timedelta(hours=2), as_of)
    # Then the window went out converted to UTC (14:00-15:00 UTC, not 08:00-10:00 with a Z)
    sent = [r.query for r in alpaca.requests if r.path == "/v1beta1/news"]
    assert (sent[0]["start"], sent[0]["end"]) == ("2024-01-02T13:00:00Z", "2024-01-02T15:00:00Z")
    assert [i.headline for i in items] == ["Apple item 0", "Apple item 1", "Apple item 2", "Apple item 3"]
    assert len(sent) == 2 and sent[1]["page_token"]


def test_malformed_news_items_are_skipped_saying_why(alpaca):
    alpaca.news = [{"id": 1, "headline": "Apple &amp; partners beat", "summary": "",
                    "created_at": "2024-01-02T13:00:00Z", "symbols": ["AAPL"], "source": "benzinga"},
                   {"id": 2, "headline": "Later", "created_at": "2024-01-09T13:00:00Z", "symbols": ["AAPL"]}]
    alpaca.news += [{"id": 3, "headline": "No date", "symbols": ["AAPL"]},
                    {"id": 4, "headline": "Bad date", "created_at": "yesterday", "symbols": ["AAPL"]},
                    {"id": 5, "headline": None, "created_at": "2024-01-02T12:00:00Z"}, "not an object"]
    source = AlpacaNewsSource("k", "s", base_url=alpaca.url, retry=alpaca.retry([]))
    items = source.items("AAPL", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, 14, 30, tzinfo=UTC))
    assert [i.headline for i in items] == ["Apple & partners beat"] and items[0].source == "alpaca:benzinga"
    assert sorted(s.split(":")[0] for s in source.skipped) == ["AAPL news id 3", "AAPL news id 4",
                                                               "AAPL news id 5", "AAPL news id ?"]


def test_the_account_clock_and_fee_activities_through_the_broker(alpaca):
    broker = AlpacaBroker("k", "s", base_url=alpaca.url, retry=alpaca.retry([]))
    # the account, as Alpaca reports it (strings for numbers), and a blocked one
    account = broker.account()
    assert (account.status, account.cash, account.buying_power, account.blocks_entries()) == (
        "ACTIVE", 100_000.0, 100_000.0, None)
    alpaca.market.account_overrides = {"account_blocked": True}
    assert broker.account().blocks_entries() == "broker account blocked"
    # the clock, after the close: closed, the next open and close tomorrow, all UTC-aware
    clock = broker.clock()
    assert (clock.is_open, clock.timestamp) == (False, alpaca.now)
    assert (clock.next_open, clock.next_close) == (datetime(2024, 1, 10, 14, 30, tzinfo=UTC),
                                                   datetime(2024, 1, 10, 21, 0, tzinfo=UTC))
    alpaca.set_time(datetime(2024, 1, 10, 15, 0, tzinfo=UTC))
    assert broker.clock().is_open and broker.clock().next_close == datetime(2024, 1, 10, 21, 0, tzinfo=UTC)
    # FEE activities after a time, oldest first, across Alpaca's 100-item pages
    alpaca.fees.extend({"id": f"20240103210000{k:03d}::f{k}", "activity_type": "FEE", "date": "2024-01-03",
                        "created_at": "2024-01-03T21:00:00Z", "net_amount": "-0.01", "symbol": "AAPL",
                        "description": "REG/TAF fee", "status": "executed"} for k in range(150))
    fees = broker.fee_activities(datetime(2024, 1, 3, tzinfo=UTC))
    assert len(fees) == 150 and fees[0].activity_id.endswith("::f0") and fees[-1].activity_id.endswith("::f149")
    assert broker.fee_activities(datetime(2024, 1, 4, tzinfo=UTC)) == []
