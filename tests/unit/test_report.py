"""The HTML report and its figures as a person reads them (no AWS, no data files)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mytrader.backtest import BacktestResult
from mytrader.metrics import accuracy_by_confidence, performance
from mytrader_tools.report import _accuracy_bars, _line_chart, metric_text, nice_ticks, render_report


def _curve(start: float, stop: float, n: int = 50, first: datetime = datetime(2011, 1, 3, tzinfo=UTC)):
    return [(first + timedelta(days=k), start + (stop - start) * k / (n - 1)) for k in range(n)]


def test_buy_and_hold_has_no_win_rate() -> None:
    # Given a run that closed no trade (buy-and-hold), up 10 %
    m = performance([100.0, 110.0], [], 100.0, exposure=1.0, llm_scored=[], llm_calls=0, cost_usd=0.0)
    # Then its win rate is not 0 % but "—"
    assert m["win_rate"] is None and metric_text("win_rate", m["win_rate"]) == "—"


def test_small_equity_range_is_linear_with_round_ticks_and_the_demo_dashed_on_top() -> None:
    # Given two equity curves within 1 % of each other, the backtest's one day longer than the demo's
    demo, bt = _curve(100_000, 100_900), _curve(100_000, 100_900, n=51)
    # When charted with log scale asked for
    svg = _line_chart({"backtest": bt, "demo": demo}, "Equity", log_scale=True)
    # Then the axis is linear, the ticks are round, the demo is drawn last, dashed, and the axis ends with the demo
    assert "log scale" not in svg
    assert ">100,000<" in svg and ">99,674<" not in svg
    assert svg.index('stroke="#7c3aed" stroke-width="1.5" stroke-dasharray') > svg.index("<polyline")
    assert f"… {demo[-1][0].date()}<" in svg


def test_nice_ticks_are_round() -> None:
    assert nice_ticks(99_674, 100_900) == [99_500, 100_000, 100_500, 101_000]


def test_an_empty_accuracy_bucket_shows_a_dash_not_zero() -> None:
    # Given answers only in the 0.5-0.6 bucket
    svg = _accuracy_bars(accuracy_by_confidence([(0.55, True), (0.55, False)]))
    # Then the empty buckets show "—" and no "0%"
    assert ">0%<" not in svg and svg.count(">—<") == 3 and ">50%<" in svg


def test_report_fits_shows_quarantine_and_scored_counts() -> None:
    # Given a backtest whose data guard quarantined 2 NVDA bars, and buy-and-hold
    m = performance([100.0, 101.0], [], 100.0, exposure=0.5, llm_scored=[(0.7, True)], llm_calls=1, cost_usd=0.01)
    runs = {"consensus": BacktestResult("consensus", dict(m), [], _curve(100, 101), llm_scored=[(0.7, True)],
                                        quarantined={"NVDA": 2, "ORCL": 0}),
            "buy_and_hold": BacktestResult("buy_and_hold", dict(m), [], _curve(100, 102))}
    # When the report is rendered
    page = render_report(runs, "t", "local")
    # Then the body is wide enough for the summary table, the guard is visible per symbol, "scored" is a column
    assert "max-width:1200px" in page and "overflow-x" not in page
    assert "quarantined bars (no decision on them): NVDA 2, ORCL 0" in page
    assert "<th>scored</th>" in page and "hindsight" in page
