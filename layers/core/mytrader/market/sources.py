"""Market data behind one interface: CSV replay, a seeded synthetic generator, and Alpaca's REST API."""
from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mytrader.errors import DataQualityError
from mytrader.market.calendar import NEW_YORK, REGULAR_CLOSE, nyse
from mytrader.market.series import BarSeries
from mytrader.ports import MarketData

MarketDataSource = MarketData  # the port lives in mytrader.ports; this name stays for existing imports

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


_COLUMNS = {"ts": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"}


def parse_price_csv(text: str, symbol: str) -> BarSeries:
    """Yahoo-style daily OHLCV or intraday bars, in any column order and either date order."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise DataQualityError(symbol, "empty price file") from None
    cols: dict[str, int] = {}
    for i, name in enumerate(header):
        key = _ALIASES.get(name)
        if key and key not in cols:
            cols[key] = i
    missing = [label for key, label in _COLUMNS.items() if key not in cols]
    if missing:
        separator = " (the separator must be a comma)" if len(header) == 1 and any(c in header[0] for c in ";\t|") \
            else ""
        raise DataQualityError(symbol, f"price file lacks columns {', '.join(missing)}: it needs a header with "
                                       f"{','.join(_COLUMNS.values())}, comma-separated{separator} "
                                       f"(header: {','.join(header)[:120]})")
    ts: list[int] = []
    values: list[list[float]] = [[], [], [], [], []]  # open, high, low, close, volume
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise DataQualityError(symbol, f"line {line_no} has {len(row)} fields, expected {len(header)}")
        try:
            t, daily = _parse_time(row[cols["ts"]])
            vals = [_num(row[cols[k]]) for k in ("open", "high", "low", "close", "volume")]
        except ValueError as exc:
            raise DataQualityError(symbol, f"line {line_no}: {exc}") from None
        if daily:
            _check_session(symbol, line_no, date.fromisoformat(row[cols["ts"]].strip()))
        ts.append(t)
        for arr, val in zip(values, vals, strict=True):
            arr.append(val)
    o, h, lo, c, v = values
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


def _check_session(symbol: str, line_no: int, day: date) -> None:
    """A daily bar is a session's: a row dated on a day the exchange was closed is an error in the file (inside
    the calendar's table; the data guard also quarantines such bars from sources that stamp them with a time)."""
    cal = nyse()
    if cal.covers(day) and not cal.is_session(day):
        raise DataQualityError(symbol, f"line {line_no} is dated {day.isoformat()} ({day.strftime('%A')}), a day the "
                                       "NYSE was closed (a weekend or holiday)")


def session_days_from(start: date, n: int) -> npt.NDArray[np.datetime64]:
    """The first n NYSE sessions on or after `start`, as datetime64 days."""
    from mytrader.market.guard import session_ordinals

    sessions = session_ordinals()
    first = int(np.searchsorted(sessions, start.toordinal()))
    ordinals = sessions[first:first + n]
    if len(ordinals) < n:
        raise ValueError(f"{n} sessions from {start} run past the exchange calendar's table")
    epoch = date(1970, 1, 1).toordinal()
    return (ordinals - epoch).astype("datetime64[D]")


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
    days = session_days_from(start, n)  # NYSE sessions: no holiday row for the data guard to quarantine
    ts = (days.astype("datetime64[s]").astype(np.int64) + 21 * 3600)  # 16:00 New York in winter
    return BarSeries.from_arrays(symbol, ts, open_, high, low, close, volume)


