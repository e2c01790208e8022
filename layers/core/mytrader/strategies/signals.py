"""What a strategy answers over all bars: entry and exit events with a confidence, then one signal per bar.

Signals are events, not states: an entry is the bar on which the entry condition becomes true. The engine reads
`StrategyArrays`: an action per bar (BUY 1, SELL -1, HOLD 0), its confidence, its reason, and whether it may open
a position (a long exit is reduce-only: when flat it is a HOLD).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mytrader.models import Action, StrategySignal

if TYPE_CHECKING:
    import numpy.typing as npt

    from mytrader.strategies.base import StrategyData

HOLD, BUY, SELL = 0, 1, -1
HOLD_REASON = "no entry or exit condition changed"


@dataclass(frozen=True)
class Signals:
    """A strategy's answer over all bars (each array has one value per bar; a scalar confidence applies to all).

    `entry`/`exit`: long entry and long exit events. `confidence` in [0, 1] (read on signal bars). `reason`: one
    string per bar (read on signal bars; default: the strategy's entry_reason / exit_reason). `short_entry` /
    `short_exit`: only for strategies that sell short (opened only when the config allows shorting). On one bar,
    an entry wins over an exit, and a long entry over a short entry."""
    entry: Any  # array-like of bool, one per bar
    exit: Any
    confidence: Any  # array-like of float in [0, 1], or one float
    reason: Any = None  # array-like of str, one per bar
    short_entry: Any = None
    short_exit: Any = None


@dataclass(frozen=True)
class StrategyArrays:
    action: npt.NDArray[np.int8]  # in {-1, 0, 1}
    confidence: npt.NDArray[np.float64]
    reason: npt.NDArray[np.object_]  # str per bar
    opens: npt.NDArray[np.bool_]  # the signal may open a position (else it only reduces one)
    data: StrategyData | None = None  # what the strategy's hooks read (stop/target, sizing)
    source: str = ""  # the fingerprint of the strategy that computed them


def signal_at(arrays: StrategyArrays, i: int) -> StrategySignal:
    a = int(arrays.action[i])
    return StrategySignal(action={BUY: Action.BUY, SELL: Action.SELL}.get(a, Action.HOLD),
                          confidence=round(float(arrays.confidence[i]), 3), reason=str(arrays.reason[i]))


def became_true(cond: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """True on the bars where `cond` is true and was not on the previous bar (the first bar counts)."""
    prev: npt.NDArray[np.bool_] = np.concatenate([[False], cond[:-1]])
    return cond & ~prev


def crossed_above(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64] | float) -> npt.NDArray[np.bool_]:
    """`a` above `b` on this bar, at or below it on the previous one; never on an undefined (NaN) bar."""
    bb = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    with np.errstate(invalid="ignore"):
        now = a > bb
        before = np.concatenate([[False], a[:-1] <= bb[:-1]])
    out: npt.NDArray[np.bool_] = now & before
    return out


def crossed_below(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64] | float) -> npt.NDArray[np.bool_]:
    """`a` below `b` on this bar, at or above it on the previous one; never on an undefined (NaN) bar."""
    return crossed_above(-a, -np.asarray(b, dtype=np.float64))


def previous(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The value of the bar before (NaN on the first bar)."""
    out: npt.NDArray[np.float64] = np.concatenate([[np.nan], a[:-1]])
    return out
