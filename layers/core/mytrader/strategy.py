"""The traditional strategy: momentum in trends, mean reversion in ranges, computed vectorised.

Signals are events, not states: BUY when an entry condition becomes true, SELL when an exit condition
becomes true, HOLD otherwise. The same arrays serve the backtester (all bars) and the decision cycle
(its last bar), so both drivers take identical decisions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mytrader.models import Action, StrategySignal

if TYPE_CHECKING:
    import numpy.typing as npt

    from mytrader.features import FeatureFrame

HOLD, BUY, SELL = 0, 1, -1
_REASONS = {
    (BUY, "trend"): "momentum entry: fast SMA above slow, MACD histogram turned positive",
    (BUY, "range"): "mean reversion entry: price at lower Bollinger band with RSI oversold",
    (SELL, "trend"): "momentum exit: MACD histogram turned negative below the slow SMA",
    (SELL, "range"): "mean reversion exit: price at upper Bollinger band or RSI overbought",
    (HOLD, "none"): "no entry or exit condition changed",
}


@dataclass(frozen=True)
class StrategyArrays:
    action: npt.NDArray[np.int8]  # in {-1, 0, 1}
    confidence: npt.NDArray[np.float64]
    kind: npt.NDArray[np.int8]  # 0 none, 1 trend, 2 range


def strategy_arrays(frame: FeatureFrame) -> StrategyArrays:
    c = frame.cols
    close = frame.series.close
    with np.errstate(invalid="ignore"):
        up = (c["sma_fast"] > c["sma_slow"]) & (close > c["sma_slow"])
        mom_long = up & (c["macd_hist"] > 0) & (c["rsi"] < 72)
        mom_exit = (c["macd_hist"] < 0) & (close < c["sma_fast"])
        rev_long = (c["trend"] == 0) & (c["bb_pct_b"] < 0.05) & (c["rsi"] < 35)
        rev_exit = (c["bb_pct_b"] > 0.95) | (c["rsi"] > 70)
    mom_entry = _became_true(mom_long)
    rev_entry = _became_true(rev_long)
    exits_t = _became_true(mom_exit)
    exits_r = _became_true(rev_exit)
    action = np.zeros(len(close), dtype=np.int8)
    kind = np.zeros(len(close), dtype=np.int8)
    action[exits_r], kind[exits_r] = SELL, 2
    action[exits_t], kind[exits_t] = SELL, 1
    action[rev_entry], kind[rev_entry] = BUY, 2
    action[mom_entry], kind[mom_entry] = BUY, 1
    with np.errstate(invalid="ignore", divide="ignore"):
        strength_t = np.clip(np.abs(c["macd_hist"]) / np.maximum(c["atr"], 1e-9) * 4, 0, 1)
        strength_r = np.clip(np.abs(c["bb_pct_b"] - 0.5) * 1.2, 0, 1)
    conf = np.where(kind == 1, 0.5 + 0.4 * strength_t, np.where(kind == 2, 0.5 + 0.4 * strength_r, 0.5))
    conf = np.nan_to_num(conf, nan=0.5)
    return StrategyArrays(action, conf, kind)


def signal_at(arrays: StrategyArrays, i: int) -> StrategySignal:
    a, k = int(arrays.action[i]), int(arrays.kind[i])
    key = (a, "trend" if k == 1 else "range" if k == 2 else "none")
    return StrategySignal(action={BUY: Action.BUY, SELL: Action.SELL}.get(a, Action.HOLD),
                          confidence=round(float(arrays.confidence[i]), 3),
                          reason=_REASONS.get(key, _REASONS[(HOLD, "none")]))


def _became_true(cond: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    prev: npt.NDArray[np.bool_] = np.concatenate([[False], cond[:-1]])
    return cond & ~prev
