"""The original rule set: momentum in trends, mean reversion in ranges (the project's first strategy).

Its signals are identical to those of the rule set before the strategy interface existed (a test pins them on
the bundled data). An exit also opens a short when the config allows shorting, as it always did.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from mytrader.strategies.base import Strategy, StrategyData, StrategyParams
from mytrader.strategies.signals import Signals, became_true

REASONS = {
    ("entry", 1): "momentum entry: fast SMA above slow, MACD histogram turned positive",
    ("entry", 2): "mean reversion entry: price at lower Bollinger band with RSI oversold",
    ("exit", 1): "momentum exit: MACD histogram turned negative below the slow SMA",
    ("exit", 2): "mean reversion exit: price at upper Bollinger band or RSI overbought",
}


class MomentumReversionParams(StrategyParams):
    rsi_max_entry: float = Field(72.0, gt=0, lt=100, description="momentum entries only below this RSI")
    rsi_oversold: float = Field(35.0, gt=0, lt=100, description="mean-reversion entries below this RSI")
    rsi_overbought: float = Field(70.0, gt=0, lt=100, description="mean-reversion exit above this RSI")
    bb_low: float = Field(0.05, ge=0, le=0.5, description="mean-reversion entry below this Bollinger %B")
    bb_high: float = Field(0.95, ge=0.5, le=1, description="mean-reversion exit above this Bollinger %B")


class MomentumReversion(Strategy):
    name = "momentum_reversion"
    version = "1"
    description = "momentum in trends (SMA 20/50, MACD), mean reversion in ranges (Bollinger %B, RSI)"
    params_model = MomentumReversionParams
    params: MomentumReversionParams
    warmup_bars = 0  # reads the standard features only: the config's warm-up applies

    def signals(self, data: StrategyData) -> Signals:
        c, p = data.features, self.params
        close = data.close
        with np.errstate(invalid="ignore"):
            up = (c["sma_fast"] > c["sma_slow"]) & (close > c["sma_slow"])
            mom_long = up & (c["macd_hist"] > 0) & (c["rsi"] < p.rsi_max_entry)
            mom_exit = (c["macd_hist"] < 0) & (close < c["sma_fast"])
            rev_long = (c["trend"] == 0) & (c["bb_pct_b"] < p.bb_low) & (c["rsi"] < p.rsi_oversold)
            rev_exit = (c["bb_pct_b"] > p.bb_high) | (c["rsi"] > p.rsi_overbought)
        mom_entry, rev_entry = became_true(mom_long), became_true(rev_long)
        exits_t, exits_r = became_true(mom_exit), became_true(rev_exit)
        kind = np.zeros(len(close), dtype=np.int8)  # 1 trend, 2 range: the later assignment wins, as entries do
        kind[exits_r], kind[exits_t], kind[rev_entry], kind[mom_entry] = 2, 1, 2, 1
        entry, exit_ = mom_entry | rev_entry, exits_t | exits_r
        with np.errstate(invalid="ignore", divide="ignore"):
            strength_t = np.clip(np.abs(c["macd_hist"]) / np.maximum(c["atr"], 1e-9) * 4, 0, 1)
            strength_r = np.clip(np.abs(c["bb_pct_b"] - 0.5) * 1.2, 0, 1)
        conf = np.where(kind == 1, 0.5 + 0.4 * strength_t, np.where(kind == 2, 0.5 + 0.4 * strength_r, 0.5))
        reason = np.full(len(close), "", dtype=object)
        for (side, k), text in REASONS.items():
            reason[(entry if side == "entry" else exit_ & ~entry) & (kind == k)] = text
        return Signals(entry=entry, exit=exit_, confidence=np.nan_to_num(conf, nan=0.5), reason=reason,
                       short_entry=exit_, short_exit=entry)
