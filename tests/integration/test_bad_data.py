"""Bad prices through the pipeline on the embedded AWS: the decision cycle quarantines a 1000x print, a 30-day gap
and a stale feed (SKIPPED with the reason and the numbers), and a clean symbol beside them is decided as usual."""
from __future__ import annotations

from datetime import date, timedelta

from mytrader.market.calendar import nyse
from mytrader.market.series import BarSeries
from mytrader.market.sources import synthetic_series
from tests.integration.test_pipeline_faults import cycle, series_csv

DAY = date(2011, 3, 1)


def upload(stack, sym: str, s: BarSeries) -> None:
    stack.client("s3").put_object(Bucket=stack.bucket, Key=f"market-data/{sym}.csv", Body=series_csv(s).encode())


def test_bad_prices_gaps_and_stale_feeds_are_skipped_with_the_reason(stack):
    base = synthetic_series("X", 320, seed=7, start=date(2010, 1, 4)).upto(nyse().session_close(DAY))
    n = len(base)
    o, h, lo, c = (a.copy() for a in (base.open, base.high, base.low, base.close))
    for a in (o, h, lo, c):
        a[n - 1] *= 1000.0  # the last bar printed 1000x
    upload(stack, "PRINT", BarSeries("PRINT", base.ts, o, h, lo, c, base.volume))
    cut = base.time(n - 1) - timedelta(days=30)  # 30 calendar days missing before the last bar
    keep = (base.ts <= int(cut.timestamp())) | (base.ts == base.ts[-1])
    holed = BarSeries("GAP", base.ts[keep], base.open[keep], base.high[keep], base.low[keep], base.close[keep],
                      base.volume[keep])
    upload(stack, "GAP", holed)
    upload(stack, "STALE", base.slice(0, n - 6))  # the feed stopped a week ago
    upload(stack, "CLEAN", base)
    out = cycle(stack, ["PRINT", "GAP", "STALE", "CLEAN"])
    res = {r["symbol"]: r for r in out["per_symbol"]}
    assert res["PRINT"]["result"] == "skipped" and "price jump" in res["PRINT"]["reason"]
    assert "% > 50 %" in res["PRINT"]["reason"]
    assert res["GAP"]["result"] == "skipped" and "sessions missing" in res["GAP"]["reason"]
    assert res["STALE"]["result"] == "skipped" and "sessions behind" in res["STALE"]["reason"]
    assert res["CLEAN"]["result"] in ("hold", "sent")
    assert out["results"].get("error", 0) == 0
