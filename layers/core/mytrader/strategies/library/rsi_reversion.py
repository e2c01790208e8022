"""RSI mean reversion: long when the RSI falls below the oversold level, out when it rises above the exit level."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from mytrader.features import Indicator, ta
from mytrader.strategies.base import Strategy, StrategyData, StrategyParams
from mytrader.strategies.signals import Signals, crossed_above, crossed_below


class RsiReversionParams(StrategyParams):
    period: int = Field(14, ge=2, le=100, description="RSI period")
    oversold: float = Field(30.0, gt=0, lt=50, description="entry when the RSI crosses below this")
    exit_above: float = Field(70.0, gt=50, lt=100, description="exit when the RSI crosses above this")


class RsiReversion(Strategy):
    name = "rsi_reversion"
    version = "1"
    description = "RSI crosses below the oversold level: long; crosses above the exit level: out"
    params_model = RsiReversionParams
    params: RsiReversionParams
    time_limit_bars = 10
    entry_reason = "RSI mean reversion: RSI crossed below the oversold level"
    exit_reason = "RSI mean reversion: RSI crossed above the exit level"

    def indicators(self) -> dict[str, Indicator]:
        return {"rsi": ta("RSI", timeperiod=self.params.period)}

    def signals(self, data: StrategyData) -> Signals:
        rsi, p = data.ind["rsi"], self.params
        entry, exit_ = crossed_below(rsi, p.oversold), crossed_above(rsi, p.exit_above)
        depth = np.where(entry, (p.oversold - rsi) / p.oversold, (rsi - p.exit_above) / (100.0 - p.exit_above))
        confidence = np.where(entry | exit_, 0.5 + 0.4 * np.clip(depth, 0, 1), 0.5)
        return Signals(entry=entry, exit=exit_, confidence=confidence)
