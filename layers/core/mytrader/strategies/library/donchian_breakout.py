"""Donchian breakout (the turtles' rule): long when the close breaks above the highest high of the previous N bars,
out when it breaks below the lowest low of the previous M bars; the stop sits at that low."""
from __future__ import annotations

import numpy as np
from pydantic import Field

from mytrader.features import Indicator, ta
from mytrader.strategies.base import Strategy, StrategyData, StrategyParams
from mytrader.strategies.signals import Signals, became_true, previous


class DonchianBreakoutParams(StrategyParams):
    entry_period: int = Field(20, ge=2, le=250, description="breakout above the highest high of this many bars")
    exit_period: int = Field(10, ge=2, le=250, description="exit below the lowest low of this many bars")
    full_break: float = Field(0.02, gt=0, le=0.5, description="breakout size (fraction) giving full confidence")
    target_atr: float = Field(6.0, gt=0, le=20, description="take-profit distance in ATRs")


class DonchianBreakout(Strategy):
    name = "donchian_breakout"
    version = "1"
    description = "close above the prior N-bar high: long; below the prior M-bar low: out (stop at that low)"
    params_model = DonchianBreakoutParams
    params: DonchianBreakoutParams
    time_limit_bars = 40
    entry_reason = "Donchian breakout: close above the prior channel high"
    exit_reason = "Donchian breakout: close below the prior channel low"

    def indicators(self) -> dict[str, Indicator]:
        return {"upper": ta("MAX", timeperiod=self.params.entry_period, price="high"),
                "lower": ta("MIN", timeperiod=self.params.exit_period, price="low")}

    def signals(self, data: StrategyData) -> Signals:
        upper, lower, close = previous(data.ind["upper"]), previous(data.ind["lower"]), data.close
        with np.errstate(invalid="ignore"):
            entry, exit_ = became_true(close > upper), became_true(close < lower)
            size = np.where(entry, close / upper - 1.0, 1.0 - close / lower)
        confidence = np.where(entry | exit_, 0.5 + 0.4 * np.clip(size / self.params.full_break, 0, 1), 0.5)
        return Signals(entry=entry, exit=exit_, confidence=confidence)

    def stop_target(self, data: StrategyData, i: int, side: int, price: float) -> tuple[float | None, float | None]:
        low, atr = float(data.ind["lower"][i]), float(data.features["atr"][i])
        stop = low if side > 0 and np.isfinite(low) and low < price else None
        target = price + side * self.params.target_atr * atr if np.isfinite(atr) and atr > 0 else None
        return stop, target
