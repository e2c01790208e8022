"""The bundled strategies, by name."""
from __future__ import annotations

from mytrader.strategies.base import Strategy
from mytrader.strategies.library.donchian_breakout import DonchianBreakout
from mytrader.strategies.library.momentum_reversion import MomentumReversion
from mytrader.strategies.library.rsi_reversion import RsiReversion
from mytrader.strategies.library.sma_crossover import SmaCrossover

DEFAULT_STRATEGY = MomentumReversion.name
BUILTINS: dict[str, type[Strategy]] = {cls.name: cls for cls in (MomentumReversion, SmaCrossover, RsiReversion,
                                                                   DonchianBreakout)}
ALIASES = {"default": DEFAULT_STRATEGY}  # the config's default name
