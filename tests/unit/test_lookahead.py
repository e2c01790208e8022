"""Look-ahead: what a decision at t sees is identical whether the data after t is present, removed or altered."""
from __future__ import annotations

import numpy as np
import pytest

from mytrader.advisor.prompt import user_prompt
from mytrader.config import TradingConfig
from mytrader.engine import DecisionContext, DecisionEngine
from mytrader.features import compute_features
from mytrader.market.series import BarSeries
from mytrader.sentiment.context import NewsContext
from mytrader.sentiment.news import CsvHeadlineSource
from mytrader.sentiment.scoring import LexiconScorer, SentimentAnalyzer
from mytrader.strategy import strategy_arrays

NEWS = "Date,News\n" + "\n".join(
    f"{d},{h}" for d, h in [("1999-06-01", "Chip maker beats estimates"),
                            ("1999-06-02", "Fraud probe hits tech stocks"),
                            ("1999-06-03", "Record profits and strong demand"), ("1999-06-04", "Crash fears grow"),
                            ("1999-06-07", "Upgrade lifts shares")])


def altered(series: BarSeries, t: int, seed: int) -> BarSeries:
    rng = np.random.default_rng(seed)
    k = len(series) - t - 1
    scale = np.concatenate([np.ones(t + 1), np.exp(rng.normal(0, 0.2, k))])
    widen = np.concatenate([np.ones(t + 1), np.full(k, 1.01)])
    return BarSeries(series.symbol, series.ts, series.open * scale, series.high * scale * widen,
                     series.low * scale / widen, series.close * scale,
                     series.volume * np.concatenate([np.ones(t + 1), rng.uniform(0.1, 9, k)]))


def snapshot(series: BarSeries, t: int, news: NewsContext) -> tuple:
    frame = compute_features(series)
    arrays = strategy_arrays(frame)
    engine = DecisionEngine(TradingConfig(), advisor=None)
    sentiment, headlines = news.at(series.symbol, series.time(t))
    ctx = DecisionContext(frame, arrays, t, sentiment, headlines, None, 100_000.0)
    inputs, _ = engine.prompt_inputs(ctx)
    return (frame.row(t).model_dump_json(), sentiment.model_dump_json(), user_prompt(inputs).encode(),
            int(arrays.action[t]))


@pytest.mark.parametrize("seed", range(6))
def test_features_sentiment_and_prompt_at_t_ignore_the_future(nvda_series, seed):
    # Given a random t and three versions of history: full, cut after t, altered after t
    rng = np.random.default_rng(seed)
    t = int(rng.integers(80, len(nvda_series) - 50))
    news = NewsContext(CsvHeadlineSource(text=NEWS), SentimentAnalyzer(LexiconScorer()), market_wide=True)
    full = snapshot(nvda_series, t, news)
    cut = snapshot(nvda_series.slice(0, t + 1), t, news)
    changed = snapshot(altered(nvda_series, t, seed), t, news)
    # Then the features, the sentiment, the prompt bytes and the strategy signal are identical
    assert full == cut == changed


def test_the_check_can_fail_when_a_feature_peeks():
    # Given a feature that (wrongly) uses the next bar, Then the comparison above would catch it
    s = np.arange(1.0, 11.0)
    peek = np.roll(s, -1)
    assert peek[4] != np.roll(np.concatenate([s[:5], [99.0] * 5]), -1)[4]


def test_daily_headlines_become_usable_only_the_next_session():
    from datetime import UTC, datetime

    src = CsvHeadlineSource(text="Date,News\n2010-03-01,Stocks soar on stimulus\n")
    close_same_day = datetime(2010, 3, 1, 21, tzinfo=UTC)
    close_next_day = datetime(2010, 3, 2, 21, tzinfo=UTC)
    start = datetime(2010, 2, 20, tzinfo=UTC)
    assert src.items("X", start, close_same_day) == []
    assert [i.headline for i in src.items("X", start, close_next_day)] == ["Stocks soar on stimulus"]
