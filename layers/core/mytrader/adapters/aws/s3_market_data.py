"""Price files in S3 (market-data/<SYMBOL>.csv): the market-data port for the embedded AWS and s3 deployments."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mytrader.errors import DataQualityError

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import S3Client
    from mytrader.market.series import BarSeries


class S3MarketData:
    """Price files in s3://<bucket>/market-data/<SYMBOL>.csv, parsed once per container and replayed."""

    def __init__(self, s3: S3Client, bucket: str, max_staleness: timedelta = timedelta(days=5), ttl_s: float = 300):
        self.s3, self.bucket, self.max_staleness, self.ttl_s = s3, bucket, max_staleness, ttl_s
        self._cache: dict[str, tuple[float, BarSeries]] = {}

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
        return series

    def history(self, symbol: str, as_of: datetime) -> BarSeries:
        from mytrader.market.series import check_fresh

        s = self.full(symbol).upto(as_of)
        if len(s) == 0:
            raise DataQualityError(symbol, f"no bars at or before {as_of.isoformat()}")
        check_fresh(s, as_of, self.max_staleness)
        return s

    def quote(self, symbol: str, at: datetime) -> float:
        """The paper broker's quote: the open of the session bar that `at` falls in (replay semantics)."""
        s = self.full(symbol)
        i = int(s.ts.searchsorted(int(at.timestamp())))
        if i >= len(s) or s.time(i).date() != at.astimezone(UTC).date():
            raise DataQualityError(symbol, f"no bar for the session of {at.isoformat()}")
        return float(s.open[i])

    def bar_at(self, symbol: str, at: datetime) -> int:
        s = self.full(symbol)
        i = int(s.ts.searchsorted(int(at.timestamp()), side="right")) - 1
        return i
