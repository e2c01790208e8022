"""BarSeries: one symbol's OHLCV history as numpy arrays, validated on construction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from mytrader.errors import DataQualityError as DataQualityError  # re-exported for existing importers
from mytrader.models import Bar


@dataclass(frozen=True)
class BarSeries:
    symbol: str
    ts: npt.NDArray[np.int64]  # epoch seconds of each bar's close, strictly increasing
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def time(self, i: int) -> datetime:
        return datetime.fromtimestamp(int(self.ts[i]), UTC)

    def bar(self, i: int) -> Bar:
        return Bar(symbol=self.symbol, ts=self.time(i), open=float(self.open[i]), high=float(self.high[i]),
                   low=float(self.low[i]), close=float(self.close[i]), volume=float(self.volume[i]))

    def upto(self, as_of: datetime) -> BarSeries:
        """Only the bars stamped <= as_of: what a decision at as_of may see."""
        n = int(np.searchsorted(self.ts, int(as_of.timestamp()), side="right"))
        return self.slice(0, n)

    def slice(self, start: int, stop: int) -> BarSeries:
        return BarSeries(self.symbol, self.ts[start:stop], self.open[start:stop], self.high[start:stop],
                         self.low[start:stop], self.close[start:stop], self.volume[start:stop])

    def index_of(self, at: datetime) -> int:
        """Index of the bar stamped exactly at `at`, or -1."""
        t = int(at.timestamp())
        i = int(np.searchsorted(self.ts, t))
        return i if i < len(self) and int(self.ts[i]) == t else -1

    @classmethod
    def from_arrays(cls, symbol: str, ts: npt.ArrayLike, open_: npt.ArrayLike, high: npt.ArrayLike,
                    low: npt.ArrayLike, close: npt.ArrayLike, volume: npt.ArrayLike, *,
                    max_gap: timedelta | None = None, max_gap_sessions: int | None = None,
                    sort: bool = True) -> BarSeries:
        """Build and validate. Unordered input is sorted when `sort` (reported otherwise); every other
        defect raises DataQualityError naming the first offending bar. `max_gap_sessions` refuses a series with
        more exchange sessions missing between two bars (mytrader.market.guard counts them); `max_gap` is the
        older wall-clock form, for intraday series."""
        arrays = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close, volume)]
        ts = np.asarray(ts, dtype=np.int64)
        if any(a.shape != ts.shape for a in arrays):
            raise DataQualityError(symbol, "columns have different lengths")
        if ts.size == 0:
            raise DataQualityError(symbol, "no bars")
        if np.any(np.diff(ts) <= 0):
            if not sort:
                first = _first(np.diff(ts) <= 0) + 1
                raise DataQualityError(symbol, f"timestamps not increasing at {_stamp(ts, first)}")
            order = np.argsort(ts, kind="stable")
            ts, arrays = ts[order], [a[order] for a in arrays]
            dup = np.diff(ts) == 0
            if np.any(dup):
                raise DataQualityError(symbol, f"duplicate timestamp {_stamp(ts, _first(dup))}")
        o, h, lo, c, v = arrays
        bad = ~np.isfinite(o) | ~np.isfinite(h) | ~np.isfinite(lo) | ~np.isfinite(c) | ~np.isfinite(v)
        if np.any(bad):
            raise DataQualityError(symbol, f"missing or non-numeric value at {_stamp(ts, _first(bad))}")
        nonpos = (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0) | (v < 0)
        if np.any(nonpos):
            raise DataQualityError(symbol, f"non-positive price or negative volume at {_stamp(ts, _first(nonpos))}")
        inverted = h < lo
        if np.any(inverted):
            raise DataQualityError(symbol, f"high < low at {_stamp(ts, _first(inverted))}")
        outside = (o > h) | (o < lo) | (c > h) | (c < lo)
        if np.any(outside):
            raise DataQualityError(symbol, f"open/close outside high-low range at {_stamp(ts, _first(outside))}")
        if max_gap is not None and ts.size > 1:
            gaps = np.diff(ts) > max_gap.total_seconds()
            if np.any(gaps):
                i = _first(gaps)
                raise DataQualityError(symbol, f"gap after {_stamp(ts, i)} until {_stamp(ts, i + 1)}")
        if max_gap_sessions is not None and ts.size > 1:
            from mytrader.market.guard import missing_sessions, trading_days

            miss = missing_sessions(trading_days(ts))
            if np.any(miss > max_gap_sessions):
                i = _first(miss > max_gap_sessions)
                raise DataQualityError(symbol, f"gap after {_stamp(ts, i)} until {_stamp(ts, i + 1)}: "
                                               f"{int(miss[i])} sessions missing (> {max_gap_sessions})")
        return cls(symbol, ts, o, h, lo, c, v)


def check_fresh(series: BarSeries, as_of: datetime, max_age: int | timedelta) -> None:
    """A stale last bar means the feed stopped: never decide on it. `max_age` is a number of exchange sessions
    (mytrader.market.guard: complete sessions since the last bar); a timedelta is the older wall-clock form."""
    if isinstance(max_age, int):
        from mytrader.market.guard import stale_reason

        reason = stale_reason(series, as_of, max_age)
        if reason:
            raise DataQualityError(series.symbol, reason)
        return
    last = series.time(len(series) - 1)
    if as_of - last > max_age:
        raise DataQualityError(series.symbol, f"stale data: last bar {last.isoformat()} is older than {max_age} "
                                              f"at {as_of.isoformat()}")


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.argmax(mask))


def _stamp(ts: npt.NDArray[np.int64], i: int) -> str:
    return datetime.fromtimestamp(int(ts[i]), UTC).isoformat()
