"""Strategies: the interface a quant writes in one file, the bundled library, the loader and the look-ahead check.

    from mytrader.strategies import Signals, Strategy, StrategyParams, crossed_above, ta

`load_strategy(spec, params)` returns a checked strategy: a bundled name (`strategy list`), a file path or
`package.module:ClassName`. `strategy.arrays(frame)` gives the engine one signal per bar; the backtester reads
all of them, the decision cycle its last bar.
"""
from __future__ import annotations

from mytrader.features import Indicator, ta
from mytrader.strategies.base import Strategy, StrategyData, StrategyParams
from mytrader.strategies.errors import StrategyError
from mytrader.strategies.library import BUILTINS, DEFAULT_STRATEGY
from mytrader.strategies.loader import load_strategy
from mytrader.strategies.signals import (
    BUY,
    HOLD,
    SELL,
    Signals,
    StrategyArrays,
    became_true,
    crossed_above,
    crossed_below,
    previous,
    signal_at,
)

__all__ = ["BUILTINS", "BUY", "DEFAULT_STRATEGY", "HOLD", "SELL", "Indicator", "Signals", "Strategy",
           "StrategyArrays", "StrategyData", "StrategyError", "StrategyParams", "became_true", "crossed_above",
           "crossed_below", "default_strategy", "load_strategy", "previous", "signal_at", "ta"]


def default_strategy() -> Strategy:
    """The bundled default with its default parameters (the project's original rule set)."""
    return BUILTINS[DEFAULT_STRATEGY]()
