"""The default strategy's arrays, for the callers written before the strategy interface (mytrader.strategies).

`strategy_arrays(frame)` is the bundled `momentum_reversion` strategy with its default parameters: momentum in
trends, mean reversion in ranges. Its signals are pinned to those of the original rule set by a test.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from mytrader.strategies import BUY, HOLD, SELL, StrategyArrays, default_strategy, signal_at

if TYPE_CHECKING:
    from mytrader.features import FeatureFrame

__all__ = ["BUY", "HOLD", "SELL", "StrategyArrays", "signal_at", "strategy_arrays"]


def strategy_arrays(frame: FeatureFrame) -> StrategyArrays:
    return default_strategy().arrays(frame)
