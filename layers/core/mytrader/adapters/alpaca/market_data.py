"""Alpaca Market Data v2: historical bars and latest trades.

Feeds. Daily bars come from `feed` ("sip" by default: the consolidated tape, all exchanges' volume; "iex" is one
exchange's share). Alpaca's free plan serves SIP data only when it is older than 15 minutes, so with "sip" every
request ends at least `recent_delay` (15 min) before the wall clock; quotes (the latest trade) are real-time, so
they come from `quote_feed` ("iex" by default, which every plan serves).

Completed bars only. A daily bar is stamped at its session's close, and Alpaca serves today's bar while the
session still runs (a forming bar), and SIP for the last 15 minutes not at all. So `history` returns only bars
stamped at or before `as_of` whose close is at least `completed_after` (= `settle`, 5 min for the closing auction
and late prints, + `recent_delay`) before the wall clock: a live decision at 16:00 never sees today's bar; with
"sip" it first sees it at 16:20 New York (16:05 with "iex"), the same bar the backtest decides on. History in
the past (a replay, as_of long before now) is unaffected: those bars are complete.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mytrader.adapters.alpaca.data_api import data_get, data_pages
from mytrader.adapters.alpaca.retry import AlpacaHttp, RetryPolicy
from mytrader.adapters.alpaca.session import DATA_URL, alpaca_session
from mytrader.adapters.alpaca.times import parse_time, rfc3339
from mytrader.errors import DataQualityError
from mytrader.market.calendar import NEW_YORK
from mytrader.market.series import BarSeries
from mytrader.market.sources import daily_close_ts

if TYPE_CHECKING:
    import requests

SIP_DELAY = timedelta(minutes=15)  # the free plan serves SIP data older than this
SETTLE = timedelta(minutes=5)  # after the close: the closing auction and late trade reports
MAX_BAR_PAGES = 100


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class AlpacaMarketData:
    """Alpaca Market Data v2 historical bars (GET /v2/stocks/{symbol}/bars), paged by next_page_token.

    Uses plain HTTPS (requests) against the documented REST shape, so the Lambda layer needs no pandas;
    `base_url` is the test seam (an HTTP fixture server in tests, never the network); `now` the wall clock."""

    def __init__(self, key_id: str, secret_key: str, base_url: str = DATA_URL, timeframe: str = "1Day",
                 feed: str = "sip", quote_feed: str = "iex", lookback: timedelta = timedelta(days=500),
                 session: requests.Session | None = None, timeout: float = 10.0, retry: RetryPolicy | None = None,
                 settle: timedelta = SETTLE, recent_delay: timedelta | None = None,
                 now: Callable[[], datetime] | None = None):
        self._api = AlpacaHttp(alpaca_session(key_id, secret_key, session), base_url, timeout, retry)
        self.timeframe, self.feed, self.quote_feed, self.lookback = timeframe, feed, quote_feed, lookback
        self.settle = settle
        self.recent_delay = recent_delay if recent_delay is not None else (SIP_DELAY if feed == "sip" else timedelta())
        self._now = now or (lambda: datetime.now(UTC))

    @property
    def completed_after(self) -> timedelta:
        """How long after its session's close a daily bar is first returned (schedule decisions after this)."""
        return self.settle + self.recent_delay

    def history(self, symbol: str, as_of: datetime) -> BarSeries:
        as_of, now = _aware(as_of), _aware(self._now())
        end = min(as_of, now - self.recent_delay)
        params: dict[str, str | int] = {"timeframe": self.timeframe, "start": rfc3339(as_of - self.lookback),
                                        "end": rfc3339(end), "limit": 10000, "adjustment": "split",
                                        "feed": self.feed, "sort": "asc"}
        rows = [row for page in data_pages(self._api, f"/v2/stocks/{quote(symbol, safe='')}/bars", params, "bars",
                                           symbol, "bars", MAX_BAR_PAGES) for row in page]
        if not rows:
            raise DataQualityError(symbol, "alpaca returned no bars")
        daily = self.timeframe.endswith(("Day", "D"))
        series = _series(symbol, rows, daily)
        return series.upto(min(as_of, now - self.completed_after) if daily else end)

    # -- what the executor and outcomes need in a deployment -----------------------------------------
    def full(self, symbol: str) -> BarSeries:
        """Every completed bar up to now (the broker's present: a deployed executor trades at the wall clock)."""
        return self.history(symbol, self._now())

    def bar_at(self, symbol: str, at: datetime) -> int:
        s = self.full(symbol)
        return int(s.ts.searchsorted(int(at.timestamp()), side="right")) - 1

    def quote(self, symbol: str, at: datetime) -> float:
        """Latest trade price (GET /v2/stocks/{symbol}/trades/latest, `quote_feed`). Raises DataUnavailable
        (retryable) when Alpaca throttles or fails, DataQualityError when there is no usable price."""
        body = data_get(self._api, f"/v2/stocks/{quote(symbol, safe='')}/trades/latest", {"feed": self.quote_feed},
                        symbol, "latest trade")
        try:
            price = float(body["trade"]["p"])
        except (KeyError, TypeError, ValueError):
            raise DataQualityError(symbol, "malformed alpaca latest trade") from None
        if not (math.isfinite(price) and price > 0):
            raise DataQualityError(symbol, f"non-positive quote {price}")
        return price


def _series(symbol: str, rows: list[Any], daily: bool) -> BarSeries:
    """Alpaca bars as a BarSeries: a daily bar (t = its day's start) stamped at its session's close; an intraday
    bar at its start, as Alpaca stamps it."""
    try:
        ts = [daily_close_ts(parse_time(r["t"]).astimezone(NEW_YORK).date()) if daily
              else int(parse_time(r["t"]).timestamp()) for r in rows]
        cols = [[float(r[k]) if r.get(k) is not None else math.nan for r in rows] for k in "ohlcv"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataQualityError(symbol, f"malformed alpaca bar: {exc}") from None
    return BarSeries.from_arrays(symbol, ts, *cols)
