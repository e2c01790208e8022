"""Look-ahead: what a decision at t sees is identical whether the data after t is present, removed or altered.

The check itself lives in the library (mytrader.strategies.lookahead), shared with `mytrader strategy check`.
"""
from __future__ import annotations

import numpy as np
import pytest

from mytrader.sentiment.context import NewsContext
from mytrader.sentiment.news import CsvHeadlineSource
from mytrader.sentiment.scoring import LexiconScorer, SentimentAnalyzer
from mytrader.strategies import BUILTINS, Signals, Strategy, default_strategy
from mytrader.strategies.lookahead import altered, check_lookahead, sample_bars

NEWS = "Date,News\n" + "\n".join(
    f"{d},{h}" for d, h in [("1999-06-01", "Chip maker beats estimates"),
                            ("1999-06-02", "Fraud probe hits tech stocks"),
                            ("1999-06-03", "Record profits and strong demand"), ("1999-06-04", "Crash fears grow"),
                            ("1999-06-07", "Upgrade lifts shares")])


class Leaky(Strategy):
    """Deliberately wrong: it buys when tomorrow's close is higher (pandas' shift(-1), the classic leak)."""
    name = "leaky"

    def signals(self, data):
        tomorrow = np.roll(data.close, -1)
        return Signals(entry=tomorrow > data.close * 1.01, exit=tomorrow < data.close * 0.99, confidence=0.6)


class PeekingStop(Strategy):
    """Honest signals, but its stop hook reads the next bar's low."""
    name = "peeking_stop"

    def signals(self, data):
        sma = data.features["sma_fast"]
        with np.errstate(invalid="ignore"):
            up = data.close > sma
        return Signals(entry=up & ~np.concatenate([[False], up[:-1]]), exit=np.zeros(len(data), bool),
                       confidence=0.6)

    def stop_target(self, data, i, side, price):
        return float(data.low[min(i + 1, len(data) - 1)]) * 0.97, None


def test_features_sentiment_prompt_and_decision_of_the_default_strategy_ignore_the_future(nvda_series):
    # Given NVDA with headlines, When the data after each sampled t is removed or altered
    news = NewsContext(CsvHeadlineSource(text=NEWS), SentimentAnalyzer(LexiconScorer()), market_wide=True)
    report = check_lookahead(default_strategy(), nvda_series, news=news)
    # Then the features, the sentiment, the signal, the decision and the prompt bytes are identical at every t
    assert report.ok, "\n".join(d.line() for d in report.differences[:10])
    assert len(report.bars) >= 90  # 50 spread + signal bars + the last 20


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_bundled_strategy_passes_the_check(nvda_series, name):
    report = check_lookahead(BUILTINS[name](), nvda_series.slice(0, 1500))
    assert report.ok, "\n".join(d.line() for d in report.differences[:10])


def test_the_check_fails_on_a_leaky_strategy_and_says_where(nvda_series):
    # Given a strategy that reads tomorrow's close
    report = check_lookahead(Leaky(), nvda_series.slice(0, 1500))
    # Then the check fails, and each difference names the bar, its date, the variant and the field
    assert not report.ok and len(report.failed_bars) > 20
    fields = {d.field for d in report.differences}
    assert {"signal", "decision", "prompt"} <= fields
    first = report.differences[0]
    assert first.line().startswith(f"bar {first.t} ({nvda_series.time(first.t).date().isoformat()}), the bars after")
    assert "FAILED" in report.summary()


def test_the_check_catches_a_hook_that_peeks(nvda_series):
    report = check_lookahead(PeekingStop(), nvda_series.slice(0, 1500))
    assert not report.ok and {d.field for d in report.differences} <= {"decision", "error"}


def test_the_sample_spreads_50_bars_adds_signal_bars_and_the_last_20():
    bars = sample_bars(1000, 60, signal_bars=list(range(100, 900, 7)))
    assert bars[0] == 60 and bars[-1] == 998  # the last bar with a bar after it
    assert set(range(979, 999)) <= set(bars) and len(bars) >= 50 + 20
    assert len({b for b in bars if (b - 100) % 7 == 0 and 100 <= b < 900}) >= 20
    assert sample_bars(10, 60, []) == []


def test_altering_changes_only_the_bars_after_t(nvda_series):
    t = 500
    other = altered(nvda_series, t, seed=3)
    assert np.array_equal(other.close[: t + 1], nvda_series.close[: t + 1])
    assert not np.array_equal(other.close[t + 1:], nvda_series.close[t + 1:])


def test_daily_headlines_become_usable_only_the_next_session():
    from datetime import UTC, datetime

    src = CsvHeadlineSource(text="Date,News\n2010-03-01,Stocks soar on stimulus\n")
    close_same_day = datetime(2010, 3, 1, 21, tzinfo=UTC)
    close_next_day = datetime(2010, 3, 2, 21, tzinfo=UTC)
    start = datetime(2010, 2, 20, tzinfo=UTC)
    assert src.items("X", start, close_same_day) == []
    assert [i.headline for i in src.items("X", start, close_next_day)] == ["Stocks soar on stimulus"]


def test_a_file_no_longer_than_the_warm_up_checks_nothing_and_does_not_pass():
    """Given 61 bars for the default strategy (60 warm-up bars), when checked, then no bar is checked, the report is
    not a pass, and its line says to give a longer file."""
    from mytrader.market.sources import synthetic_series

    report = check_lookahead(default_strategy(), synthetic_series("SYN", 61, seed=2))
    assert report.bars == () and not report.ok
    assert "no bar checked" in report.summary() and "give a longer file" in report.summary()
