"""Hindsight labels: which decision was right, from the realised forward return over the horizon.

The HOLD band: a forward return within +-HOLD_BAND is labelled HOLD (not worth the round trip)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from mytrader.models import Action

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    Prices = Sequence[float] | npt.NDArray[np.float64]  # a list (the backtester) or a BarSeries column

HOLD_BAND = 0.015  # 1.5 % over the decision's horizon


def label_for_return(forward_return: float, band: float = HOLD_BAND) -> Action:
    if forward_return > band:
        return Action.BUY
    if forward_return < -band:
        return Action.SELL
    return Action.HOLD


def forward_return(opens: Prices, closes: Prices, i: int, horizon: int) -> float | None:
    """Return from the open after bar i to the close `horizon` bars later; None when not yet known."""
    if i + horizon >= len(closes):
        return None
    return closes[i + horizon] / opens[i + 1] - 1.0


def label_confidence(forward_return: float, band: float = HOLD_BAND) -> float:
    """Confidence grows with how far the outcome lay from the HOLD band."""
    distance = abs(forward_return) / band if band else 1.0
    if abs(forward_return) <= band:
        return round(min(0.9, 0.5 + 0.4 * (1 - distance)), 2)
    return round(min(0.95, 0.5 + 0.15 * distance), 2)
