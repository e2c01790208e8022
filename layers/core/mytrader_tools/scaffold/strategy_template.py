"""my_strategy: a strategy of your own for MyTrader (written by `mytrader strategy new`; edit freely).

Run it: `mytrader strategy check --strategy my_strategy.py` (look-ahead check), `pytest test_my_strategy.py`,
and select it in the config (strategy.name = "my_strategy.py") or with --strategy. The LLM sees its name,
signal, confidence and reason on every bar it is asked about.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from mytrader.strategies import (
    Indicator,
    Signals,
    Strategy,
    StrategyData,
    StrategyParams,
    crossed_above,
    crossed_below,
    ta,
)


class MyStrategyParams(StrategyParams):
    """Typed parameters with defaults and ranges; the config's strategy.params override the defaults."""
    fast: int = Field(12, ge=2, le=100, description="fast EMA period")
    slow: int = Field(26, ge=3, le=300, description="slow EMA period")
    rsi_max: float = Field(70.0, gt=0, le=100, description="no entry while the RSI is above this")
    stop_atr: float = Field(2.5, gt=0, le=10, description="stop-loss distance in ATRs")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MyStrategyParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class MyStrategy(Strategy):
    name = "my_strategy"
    version = "1"  # change it when the rules change: it is part of every decision id
    description = "fast EMA crosses above the slow EMA with the RSI not overbought: long; crosses below: out"
    params_model = MyStrategyParams
    params: MyStrategyParams
    time_limit_bars = 20  # bars a position may stay open (None: the config's time_limit_bars)
    # warmup_bars = 60    # bars before the first signal (default: the indicators' longest lookback)

    def indicators(self) -> dict[str, Indicator]:
        """TA-Lib functions by name, computed over all bars: data.ind[name] in signals()."""
        p = self.params
        return {"fast": ta("EMA", timeperiod=p.fast), "slow": ta("EMA", timeperiod=p.slow),
                "rsi": ta("RSI", timeperiod=14)}

    def signals(self, data: StrategyData) -> Signals:
        """Vectorised over every bar; bar t may only use bars <= t (`strategy check` proves it)."""
        fast, slow, rsi = data.ind["fast"], data.ind["slow"], data.ind["rsi"]
        with np.errstate(invalid="ignore"):
            entry = crossed_above(fast, slow) & (rsi < self.params.rsi_max)
            exit_ = crossed_below(fast, slow)
            gap = np.abs(fast / slow - 1.0)
        confidence = 0.5 + 0.4 * np.clip(np.nan_to_num(gap) / 0.02, 0, 1)
        reason = np.where(entry, "EMA crossover up, RSI not overbought", "EMA crossover down")
        return Signals(entry=entry, exit=exit_, confidence=confidence, reason=reason)

    def stop_target(self, data: StrategyData, i: int, side: int, price: float) -> tuple[float | None, float | None]:
        """Optional: own stop-loss / take-profit prices for an entry at bar i (None: the engine's)."""
        atr = float(data.features["atr"][i])
        return (price - side * self.params.stop_atr * atr if np.isfinite(atr) else None), None

    # def size_pct(self, data: StrategyData, i: int, confidence: float, max_pct: float) -> float | None:
    #     """Optional: own position size in % of equity (never above max_pct); None: the engine's."""
    #     return max_pct * confidence
