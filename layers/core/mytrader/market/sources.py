"""Market data behind one interface: CSV replay, a seeded synthetic generator, and Alpaca's REST API."""
from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np

from mytrader.market.calendar import NEW_YORK, REGULAR_CLOSE, nyse
from mytrader.market.series import BarSeries, DataQualityError


class MarketDataSource(Protocol):
    def history(self, symbol: str, as_of: datetime) -> BarSeries:
        """All bars of `symbol` stamped <= as_of. Raises DataQualityError for data that must not be used."""
        ...


_ALIASES = {
    "date": "ts", "datetime": "ts", "timestamp": "ts", "time": "ts", "t": "ts",
    "open": "open", "o": "open", "high": "high", "h": "high", "low": "low", "l": "low",
    "close": "close", "c": "close", "volume": "volume", "v": "volume", "vol": "volume",
}


def daily_close_ts(day: date) -> int:
    """A daily bar is stamped at its session's close (early closes included) in UTC."""
    cal = nyse()
    if cal.covers(day) and cal.is_session(day):
        return int(cal.session_close(day).timestamp())
    return int(datetime.combine(day, REGULAR_CLOSE, NEW_YORK).timestamp())


def _parse_time(raw: str) -> tuple[int, bool]:
    """Returns (epoch seconds, is_daily)."""
    raw = raw.strip()
    if len(raw) == 10:
        return daily_close_ts(date.fromisoformat(raw)), True
    at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=NEW_YORK)  # naive intraday stamps are exchange-local
    return int(at.timestamp()), False


def _num(raw: str) -> float:
    raw = raw.strip()
    if raw == "" or raw.lower() in ("null", "nan", "none", "n/a"):
        return math.nan
    return float(raw)


def parse_price_csv(text: str, symbol: str) -> BarSeries:
    """Yahoo-style daily OHLCV or intraday bars, in any column order and either date order."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise DataQualityError(symbol, "empty price file") from None
    cols = {}
    for i, h in enumerate(header):
        key = _ALIASES.get(h)
        if key and key not in cols:
            cols[key] = i
    missing = {"ts", "open", "high", "low", "close", "volume"} - cols.keys()
    if missing:
        raise DataQualityError(symbol, f"price file lacks columns {sorted(missing)} (header: {header})")
    ts, o, h, lo, c, v = [], [], [], [], [], []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise DataQualityError(symbol, f"line {line_no} has {len(row)} fields, expected {len(header)}")
        try:
            t, _ = _parse_time(row[cols["ts"]])
            vals = [_num(row[cols[k]]) for k in ("open", "high", "low", "close", "volume")]
        except ValueError as exc:
            raise DataQualityError(symbol, f"line {line_no}: {exc}") from None
        ts.append(t)
        for arr, val in zip((o, h, lo, c, v), vals, strict=True):
            arr.append(val)
    return BarSeries.from_arrays(symbol, ts, o, h, lo, c, v)


class CsvReplaySource:
    """Replays price files; a decision as of t sees only bars stamped <= t."""

    def __init__(self, files: dict[str, Path | str] | None = None, series: dict[str, BarSeries] | None = None,
                 max_staleness: timedelta | None = timedelta(days=5)):
        self._series = dict(series or {})
        for symbol, path in (files or {}).items():
            self._series[symbol] = parse_price_csv(Path(path).read_text(), symbol)
        self.max_staleness = max_staleness

    @property
    def symbols(self) -> list[str]:
        return sorted(self._series)

    def full(self, symbol: str) -> BarSeries:
        return self._series[symbol]

    def history(self, symbol: str, as_of: datetime) -> BarSeries:
        from mytrader.market.series import check_fresh

        if symbol not in self._series:
            raise DataQualityError(symbol, "unknown symbol")
        s = self._series[symbol].upto(as_of)
        if len(s) == 0:
            raise DataQualityError(symbol, f"no bars at or before {as_of.isoformat()}")
        if self.max_staleness is not None:
            check_fresh(s, as_of, self.max_staleness)
        return s


def synthetic_series(symbol: str, n: int, seed: int, start: date = date(2000, 1, 3), price: float = 50.0) -> BarSeries:
    """Seeded daily bars switching between regimes (bull trend, bear trend, quiet range, volatile range)."""
    rng = np.random.default_rng(seed)
    regimes = [(0.0008, 0.012), (-0.0007, 0.018), (0.0, 0.008), (0.0, 0.03)]
    drift, vol = np.empty(n), np.empty(n)
    i = 0
    while i < n:
        length = int(rng.integers(40, 160))
        mu, sigma = regimes[int(rng.integers(len(regimes)))]
        drift[i:i + length], vol[i:i + length] = mu, sigma
        i += length
    rets = drift + vol * rng.standard_normal(n)
    close = price * np.exp(np.cumsum(rets))
    gap = vol * 0.3 * rng.standard_normal(n)
    open_ = np.concatenate([[price], close[:-1]]) * np.exp(gap)
    span = np.abs(rng.standard_normal(n)) * vol * close
    high = np.maximum(open_, close) + span * 0.6
    low = np.maximum(np.minimum(open_, close) - span * 0.6, 0.01)
    volume = np.round(1e6 * np.exp(0.4 * rng.standard_normal(n) + 20 * vol))
    days = np.busday_offset(np.datetime64(start, "D"), np.arange(n), roll="forward")
    ts = (days.astype("datetime64[s]").astype(np.int64) + 21 * 3600)  # 16:00 New York in winter
    return BarSeries.from_arrays(symbol, ts, open_, high, low, close, volume)


class AlpacaMarketData:
    """Alpaca Market Data v2 historical bars (GET /v2/stocks/{symbol}/bars), paged by next_page_token.

    Uses plain HTTPS (requests) against the documented REST shape, so the Lambda layer needs no pandas;
    `base_url` is the test seam (an HTTP fixture server in tests, never the network)."""

    def __init__(self, key_id: str, secret_key: str, base_url: str = "https://data.alpaca.markets",
                 timeframe: str = "1Day", feed: str = "iex", lookback: timedelta = timedelta(days=500),
                 session=None, timeout: float = 10.0):
        import requests

        self._http = session or requests.Session()
        self._http.headers.update({"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key})
        self.base_url, self.timeframe, self.feed = base_url.rstrip("/"), timeframe, feed
        self.lookback, self.timeout = lookback, timeout

    def history(self, symbol: str, as_of: datetime) -> BarSeries:
        params = {"timeframe": self.timeframe, "start": _iso(as_of - self.lookback), "end": _iso(as_of),
                  "limit": 10000, "adjustment": "split", "feed": self.feed}
        rows: list[dict] = []
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
