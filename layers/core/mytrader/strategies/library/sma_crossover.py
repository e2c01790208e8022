"""SMA crossover: long when the fast simple moving average crosses above the slow one, out when it crosses below."""
from __future__ import annotations

from typing import Self

import numpy as np
from pydantic import Field, model_validator

from mytrader.features import Indicator, ta
from mytrader.strategies.base import Strategy, StrategyData, StrategyParams
from mytrader.strategies.signals import Signals, crossed_above, crossed_below


class SmaCrossoverParams(StrategyParams):
    fast: int = Field(20, ge=2, le=200, description="fast SMA period")
    slow: int = Field(50, ge=3, le=400, description="slow SMA period")
    full_gap: float = Field(0.02, gt=0, le=0.5, description="fast/slow gap that gives full confidence (0.9)")
    stop_atr: float = Field(3.0, gt=0, le=10, description="stop-loss distance in ATRs")
    target_atr: float = Field(6.0, gt=0, le=20, description="take-profit distance in ATRs")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> Self:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class SmaCrossover(Strategy):
    name = "sma_crossover"
    version = "1"
    description = "fast SMA crosses above the slow SMA: long; crosses below: out"
    params_model = SmaCrossoverParams
    params: SmaCrossoverParams
    time_limit_bars = 40
    entry_reason = "SMA crossover: fast SMA crossed above slow"
    exit_reason = "SMA crossover: fast SMA crossed below slow"

    def indicators(self) -> dict[str, Indicator]:
        return {"fast": ta("SMA", timeperiod=self.params.fast), "slow": ta("SMA", timeperiod=self.params.slow)}

    def signals(self, data: StrategyData) -> Signals:
        fast, slow = data.ind["fast"], data.ind["slow"]
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs(fast / slow - 1.0)
        confidence = 0.5 + 0.4 * np.clip(gap / self.params.full_gap, 0, 1)
        return Signals(entry=crossed_above(fast, slow), exit=crossed_below(fast, slow), confidence=confidence)

    def stop_target(self, data: StrategyData, i: int, side: int, price: float) -> tuple[float | None, float | None]:
        atr = float(data.features["atr"][i])
        if not np.isfinite(atr) or atr <= 0:
            return None, None
        return price - side * self.params.stop_atr * atr, price + side * self.params.target_atr * atr
