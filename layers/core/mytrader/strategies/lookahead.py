"""Look-ahead check of any strategy (freqtrade's lookahead-analysis is the reference).

A decision at bar t may use only bars <= t. For every t of a sample -- at least 50 bars spread over the series,
up to 25 of the strategy's own signal bars, and the last 20 bars -- the decision is taken three times: on the
full series, on the series cut after t, and on the series whose bars after t are altered (prices rescaled at
random, volumes changed). The features, the strategy's signal (action, confidence, reason), the decision
(action, size, stop, target, time limit) and the prompt bytes must be identical; any difference is reported
with the bar, the variant and the field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from mytrader.advisor.prompt import PromptInputs, user_prompt
from mytrader.config import TradingConfig
from mytrader.engine import DecisionContext, DecisionEngine
from mytrader.features import compute_features
from mytrader.market.series import BarSeries
from mytrader.models import Mode, SentimentScore
from mytrader.strategies.errors import StrategyError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mytrader.sentiment.context import NewsContext
    from mytrader.strategies.base import Strategy
    from mytrader.strategies.signals import StrategyArrays

SPREAD_BARS, SIGNAL_BARS, LAST_BARS = 50, 25, 20
VARIANTS = {"cut": ("removed", "without them"), "altered": ("altered", "altered")}
Snapshot = dict[str, str]


@dataclass(frozen=True)
class Difference:
    t: int
    at: datetime
    variant: str  # cut | altered
    field: str  # features | sentiment | signal | decision | prompt | error
    full: str
    other: str

    def line(self) -> str:
        a, b = _around_first_difference(self.full, self.other)
        done, label = VARIANTS[self.variant]
        return (f"bar {self.t} ({self.at.date().isoformat()}), the bars after it {done}: {self.field} differs: "
                f"with them {a!r}, {label} {b!r}")


@dataclass(frozen=True)
class LookaheadReport:
    strategy: str
    symbol: str
    bars: tuple[int, ...]
    differences: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        """No difference on any bar checked, and some bar was checked (a file no longer than the warm-up proves
        nothing)."""
        return bool(self.bars) and not self.differences

    @property
    def failed_bars(self) -> list[int]:
        return sorted({d.t for d in self.differences})

    def summary(self) -> str:
        if not self.bars:
            return (f"{self.strategy} on {self.symbol}: no bar checked, the file is no longer than the warm-up and "
                    "two bars: give a longer file")
        verdict = "passed" if self.ok else f"FAILED on {len(self.failed_bars)} of them"
        return f"{self.strategy} on {self.symbol}: {len(self.bars)} bars checked, {verdict}"


def sample_bars(n: int, start: int, signal_bars: Sequence[int], spread: int = SPREAD_BARS,
                signals: int = SIGNAL_BARS, last: int = LAST_BARS) -> list[int]:
    """`spread` bars evenly over [start, n - 2], up to `signals` of the signal bars, and the last `last` bars
    that have a bar after them (n - 1, the last bar, has no future to remove)."""
    end = n - 2
    if end < start:
        return []
    picked = set(np.linspace(start, end, num=min(spread, end - start + 1)).round().astype(int).tolist())
    eligible = [b for b in signal_bars if start <= b <= end]
    if eligible:
        idx = np.linspace(0, len(eligible) - 1, num=min(signals, len(eligible))).round().astype(int)
        picked.update(eligible[k] for k in idx.tolist())
    picked.update(range(max(start, end - last + 1), end + 1))
    return sorted(picked)


def altered(series: BarSeries, t: int, seed: int) -> BarSeries:
    """The same bars up to t; after t, prices rescaled at random (highs and lows widened) and volumes changed."""
    rng = np.random.default_rng(seed)
    k = len(series) - t - 1
    scale = np.concatenate([np.ones(t + 1), np.exp(rng.normal(0, 0.2, k))])
    widen = np.concatenate([np.ones(t + 1), np.full(k, 1.01)])
    return BarSeries(series.symbol, series.ts, series.open * scale, series.high * scale * widen,
                     series.low * scale / widen, series.close * scale,
                     series.volume * np.concatenate([np.ones(t + 1), rng.uniform(0.1, 9, k)]))


def check_lookahead(strategy: Strategy, series: BarSeries, cfg: TradingConfig | None = None,
                    news: NewsContext | None = None, seed: int = 0, spread: int = SPREAD_BARS,
                    signals: int = SIGNAL_BARS, last: int = LAST_BARS) -> LookaheadReport:
    cfg = (cfg or TradingConfig()).model_copy(update={"mode": Mode.BASELINE})
    engine = DecisionEngine(cfg, advisor=None, strategy=strategy)
    full = _Prepared(engine, series, news)
    start = max(cfg.warmup_bars, strategy.warmup)
    signal_bars = np.flatnonzero(full.arrays.action != 0).tolist() if full.arrays is not None else []
    bars = sample_bars(len(series), start, signal_bars, spread, signals, last)
    differences: list[Difference] = []
    for t in bars:
        reference = full.snapshot(t)
        others = {"cut": _Prepared(engine, series.slice(0, t + 1), news).snapshot(t),
                  "altered": _Prepared(engine, altered(series, t, seed + t), news).snapshot(t)}
        for variant, other in others.items():
            differences += [Difference(t, series.time(t), variant, f, reference.get(f, "-"), other.get(f, "-"))
                            for f in _compared(reference, other) if reference.get(f) != other.get(f)]
    return LookaheadReport(strategy.strategy_name(), series.symbol, tuple(bars), tuple(differences))


class _Prepared:
    """One version of the history, its features and signals computed once; the decision at any bar t."""

    def __init__(self, engine: DecisionEngine, series: BarSeries, news: NewsContext | None):
        self.engine, self.series, self.news = engine, series, news
        self.frame = compute_features(series)
        self.arrays: StrategyArrays | None = None
        self.error = ""
        try:
            self.arrays = engine.strategy.arrays(self.frame)
        except StrategyError as exc:
            self.error = str(exc)

    def snapshot(self, t: int) -> Snapshot:
        out: Snapshot = {"features": self.frame.row(t).model_dump_json()}
        if self.news is not None:
            sentiment, headlines = self.news.at(self.series.symbol, self.series.time(t))
            out["sentiment"] = sentiment.model_dump_json()
        else:
            sentiment, headlines = SentimentScore(score=0.0, n_items=0), []
        if self.arrays is None:
            return {**out, "error": self.error}
        a = self.arrays
        out["signal"] = json.dumps([int(a.action[t]), float(a.confidence[t]), str(a.reason[t]), bool(a.opens[t])])
        ctx = DecisionContext(self.frame, a, t, sentiment, headlines, None, 100_000.0)
        try:
            d, _ = self.engine.decide(ctx, self.series.time(t))
        except StrategyError as exc:
            return {**out, "error": str(exc)}
        out["decision"] = json.dumps([d.action.value, d.confidence, d.position_size_pct, d.stop_loss, d.take_profit,
                                      d.time_horizon_bars, d.reason])
        if d.prompt_inputs is not None:
            out["prompt"] = user_prompt(PromptInputs.model_validate(d.prompt_inputs))
        return out


def _compared(a: Snapshot, b: Snapshot) -> list[str]:
    """Every field; when one side failed ("error"), the error and the fields both sides have."""
    if "error" in a or "error" in b:
        return sorted((set(a) & set(b)) | {"error"})
    return sorted(set(a) | set(b))


def _around_first_difference(a: str, b: str, width: int = 70) -> tuple[str, str]:
    """The two texts from a little before their first difference, bounded."""
    k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    lo = max(0, k - 20)
    return ("…" if lo else "") + a[lo:lo + width], ("…" if lo else "") + b[lo:lo + width]
