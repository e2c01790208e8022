"""The performance figures (mytrader.metrics) against values worked out by hand."""
from __future__ import annotations

import math

from mytrader.metrics import BARS_PER_YEAR, performance


def figures(equity: list[float]) -> dict:
    return dict(performance(equity, [], equity[0], exposure=1.0, llm_scored=[], llm_calls=0, cost_usd=0.0))


def test_sortino_divides_by_the_downside_deviation_over_every_period():
    """Given returns +2 %, -1 %, +2 %, -1 %, when the figures are computed, then the downside deviation is the root
    mean square of min(r, 0) over all four periods (0.01 / sqrt(2)), so Sortino exceeds Sharpe for this skew."""
    equity = [100.0]
    for r in (0.02, -0.01, 0.02, -0.01):
        equity.append(equity[-1] * (1 + r))
    got = figures(equity)
    mean = (0.02 - 0.01 + 0.02 - 0.01) / 4
    assert math.isclose(got["sortino"], round(mean / (0.01 / math.sqrt(2)) * math.sqrt(BARS_PER_YEAR), 4),
                        rel_tol=1e-6)
    assert got["sortino"] > got["sharpe"] > 0


def test_a_curve_that_never_falls_has_no_downside():
    """Given an equity curve that only rises, then the Sortino ratio is 0 (no downside to divide by), not an error."""
    assert figures([100.0, 101.0, 102.0])["sortino"] == 0.0
