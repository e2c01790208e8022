"""Alpaca Market Data v2: historical bars and latest trades."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mytrader.adapters.alpaca.session import DATA_URL, alpaca_session
from mytrader.errors import DataQualityError
from mytrader.market.calendar import NEW_YORK
from mytrader.market.series import BarSeries
from mytrader.market.sources import daily_close_ts

if TYPE_CHECKING:
    import requests


class AlpacaMarketData:
    """Alpaca Market Data v2 historical bars (GET /v2/stocks/{symbol}/bars), paged by next_page_token.

    Uses plain HTTPS (requests) against the documented REST shape, so the Lambda layer needs no pandas;
    `base_url` is the test seam (an HTTP fixture server in tests, never the network)."""

    def __init__(self, key_id: str, secret_key: str, base_url: str = DATA_URL,
                 timeframe: str = "1Day", feed: str = "iex", lookback: timedelta = timedelta(days=500),
                 session: requests.Session | None = None, timeout: float = 10.0):
        self._http = alpaca_session(key_id, secret_key, session)
        self.base_url, self.timeframe, self.feed = base_url.rstrip("/"), timeframe, feed
        self.lookback, self.timeout = lookback, timeout

    def history(self, symbol: str, as_of: datetime) -> BarSeries:
        params: dict[str, str | int] = {"timeframe": self.timeframe, "start": _iso(as_of - self.lookback),
                                        "end": _iso(as_of), "limit": 10000, "adjustment": "split", "feed": self.feed}
        rows: list[dict[str, Any]] = []
        while True:
            resp = self._http.get(f"{self.base_url}/v2/stocks/{symbol}/bars", params=params, timeout=self.timeout)
            if resp.status_code != 200:
                raise DataQualityError(symbol, f"alpaca bars HTTP {resp.status_code}: {resp.text[:200]}")
            body = resp.json()
            rows.extend(body.get("bars") or [])
            token = body.get("next_page_token")
            if not token:
                break
            params["page_token"] = token
        if not rows:
            raise DataQualityError(symbol, "alpaca returned no bars")
        daily = self.timeframe.endswith("Day")
        try:
            ts = [daily_close_ts(_utc(r["t"]).astimezone(NEW_YORK).date()) if daily else int(_utc(r["t"]).timestamp())
                  for r in rows]
            cols = [[float(r[k]) if r.get(k) is not None else math.nan for r in rows] for k in "ohlcv"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataQualityError(symbol, f"malformed alpaca bar: {exc}") from None
        series = BarSeries.from_arrays(symbol, ts, *cols)
        return series.upto(as_of)

    # -- what the executor and outcomes need in a deployment -----------------------------------------
    def full(self, symbol: str) -> BarSeries:
        """Every bar up to now (the broker's present: a deployed executor trades at the wall clock)."""
        return self.history(symbol, datetime.now(UTC))

    def bar_at(self, symbol: str, at: datetime) -> int:
        s = self.full(symbol)
        return int(s.ts.searchsorted(int(at.timestamp()), side="right")) - 1

    def quote(self, symbol: str, at: datetime) -> float:
        """Latest trade price (GET /v2/stocks/{symbol}/trades/latest) for the paper broker's fills."""
        resp = self._http.get(f"{self.base_url}/v2/stocks/{symbol}/trades/latest", params={"feed": self.feed},
                              timeout=self.timeout)
        if resp.status_code != 200:
            raise DataQualityError(symbol, f"alpaca latest trade HTTP {resp.status_code}")
        try:
            price = float(resp.json()["trade"]["p"])
        except (KeyError, TypeError, ValueError):
            raise DataQualityError(symbol, "malformed alpaca latest trade") from None
        if not price > 0:
            raise DataQualityError(symbol, f"non-positive quote {price}")
        return price


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
