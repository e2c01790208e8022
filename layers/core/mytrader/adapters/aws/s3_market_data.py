"""Price files in S3 (market-data/<SYMBOL>.csv): the market-data port for the embedded AWS and s3 deployments."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mytrader.config import DataGuard
from mytrader.errors import DataQualityError

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import S3Client
    from mytrader.market.series import BarSeries


class S3MarketData:
    """Price files in s3://<bucket>/market-data/<SYMBOL>.csv, parsed once per container and replayed.

    Staleness is counted in exchange sessions (`guard.max_stale_sessions`, mytrader.market.guard). The last file
    that parsed is kept: when a file breaks, `quote` (the paper broker's price) still answers from it for the
    sessions it holds, so a held position's stop and target are checked against the last trusted prices."""

    def __init__(self, s3: S3Client, bucket: str, guard: DataGuard | None = None, ttl_s: float = 300):
        self.s3, self.bucket, self.ttl_s = s3, bucket, ttl_s
        self.guard = guard or DataGuard()
        self._cache: dict[str, tuple[float, BarSeries]] = {}
        self._trusted: dict[str, BarSeries] = {}  # the last series that parsed, per symbol

    @property
    def max_stale_sessions(self) -> int:
        return self.guard.max_stale_sessions

    def full(self, symbol: str) -> BarSeries:
        from mytrader.market.sources import parse_price_csv  # numpy, only when prices are read

        hit = self._cache.get(symbol)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=f"market-data/{symbol}.csv")
        except self.s3.exceptions.NoSuchKey:
            raise DataQualityError(symbol, "no market data for this symbol") from None
        body: bytes = obj["Body"].read()
        series = parse_price_csv(body.decode(), symbol)
        self._cache[symbol] = (time.monotonic(), series)
        self._trusted[symbol] = series
        return series

    def history(self, symbol: str, as_of: datetime) -> BarSeries:
        from mytrader.market.series import check_fresh

        s = self.full(symbol).upto(as_of)
        if len(s) == 0:
            raise DataQualityError(symbol, f"no bars at or before {as_of.isoformat()}")
        check_fresh(s, as_of, self.guard.max_stale_sessions)
        return s

    def quote(self, symbol: str, at: datetime) -> float:
        """The paper broker's quote at `at`: while the session runs, the open of that session's bar (the bar is
        stamped at its close); otherwise (after the close, before the open, on a closed day) the close of the last
        complete session's bar — what the executor sizes an entry at when it runs after the close. From the last
        file that parsed when the current one cannot be read or parsed (a bad file, or S3 itself failing)."""
        try:
            s = self.full(symbol)
        except Exception as exc:  # a broken file or an S3 error: the last trusted prices still price the stop
            trusted = self._trusted.get(symbol)
            if trusted is None:
                if isinstance(exc, DataQualityError):
                    raise
                raise DataQualityError(symbol, f"market data unreadable: {type(exc).__name__}") from exc
            s = trusted
        return session_quote(s, symbol, at)

    def bar_at(self, symbol: str, at: datetime) -> int:
        s = self.full(symbol)
        i = int(s.ts.searchsorted(int(at.timestamp()), side="right")) - 1
        return i


def session_quote(s: BarSeries, symbol: str, at: datetime) -> float:
    """The quote of daily bars at `at`: the open of the session's bar while it runs, else the close of the last
    complete session's bar. Raises DataQualityError when that bar is missing."""
    from mytrader.market.calendar import NEW_YORK, nyse

    cal = nyse()
    day = at.astimezone(NEW_YORK).date()
    if not cal.covers(day):
        raise DataQualityError(symbol, f"{at.isoformat()} is outside the session table")
    last = int(s.ts.searchsorted(int(at.timestamp()), side="right")) - 1  # the last bar stamped <= at
    if cal.is_session(day) and cal.session_open(day) <= at < cal.session_close(day):  # the session runs
        if last + 1 < len(s) and s.time(last + 1).astimezone(NEW_YORK).date() == day:
            return float(s.open[last + 1])
        raise DataQualityError(symbol, f"no bar for the session of {at.isoformat()}")
    session = day
    while not (cal.is_session(session) and cal.session_close(session) <= at):
        session -= timedelta(days=1)
    if last >= 0 and s.time(last).astimezone(NEW_YORK).date() == session:
        return float(s.close[last])
    raise DataQualityError(symbol, f"no bar for the session of {session.isoformat()}, the last before "
                                   f"{at.isoformat()}")
