"""Performance figures of an equity curve and its trades. Returns and rates are fractions (0.12 = 12 %)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from mytrader.models import TradeOutcome

BARS_PER_YEAR = 252


class Performance(TypedDict):
    total_return: float
    cagr: float
    sharpe: float
    sortino: float
    max_drawdown: float
    win_rate: float | None  # None: no trade closed, so no rate (buy-and-hold, a run that never traded)
    profit_factor: float | None  # None: no trade closed at all
    trades: int
    exposure: float | None  # share of bars in the market; None where a driver does not track it
    llm_accuracy: float | None  # None: no advisor answer was scored
    llm_calls: int
    cost_usd: float


def performance(equity: list[float], trades: list[TradeOutcome], initial: float, *, exposure: float,
                llm_scored: list[tuple[float, bool]], llm_calls: int, cost_usd: float) -> Performance:
    eq = np.asarray(equity if equity else [initial], dtype=float)
    total_return = float(eq[-1] / initial - 1)
    years = max(len(eq) / BARS_PER_YEAR, 1e-9)
    cagr = float((eq[-1] / initial) ** (1 / years) - 1) if eq[-1] > 0 else -1.0
    rets = np.diff(eq) / eq[:-1] if len(eq) > 1 else np.zeros(1)
    sd = float(rets.std(ddof=1)) if len(rets) > 1 else 0.0
    mean = float(rets.mean())
    # downside deviation: the root mean square of the returns below 0, over every period (not only the losing ones)
    dsd = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
    peaks = np.maximum.accumulate(eq)
    drawdown = float(np.max(1 - eq / peaks)) if len(eq) else 0.0
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [-t.pnl for t in trades if t.pnl <= 0]
    gross_loss = sum(losses)
    answered = len(llm_scored)
    return {
        "total_return": round(total_return, 6),
        "cagr": round(cagr, 6),
        "sharpe": round(mean / sd * math.sqrt(BARS_PER_YEAR), 4) if sd > 0 else 0.0,
        "sortino": round(mean / dsd * math.sqrt(BARS_PER_YEAR), 4) if dsd > 0 else 0.0,
        "max_drawdown": round(drawdown, 6),
        "win_rate": round(len(wins) / len(trades), 4) if trades else None,
        "profit_factor": round(sum(wins) / gross_loss, 4) if gross_loss > 0 else (None if not wins else 999.0),
        "trades": len(trades),
        "exposure": round(exposure, 4),
        "llm_accuracy": round(sum(r for _, r in llm_scored) / answered, 4) if answered else None,
        "llm_calls": llm_calls,
        "cost_usd": round(cost_usd, 6),
    }


def accuracy_by_confidence(scored: list[tuple[float, bool]],
                           edges: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 1.01)) -> list[dict[str, str | float | None]]:
    """One row per confidence bucket: its label ("0.5-0.6"), how many answers fell in it, their accuracy."""
    out: list[dict[str, str | float | None]] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        hits = [r for c, r in scored if lo <= c < hi]
        out.append({"bucket": f"{lo:.1f}-{min(hi, 1.0):.1f}", "n": len(hits),
                    "accuracy": round(sum(hits) / len(hits), 4) if hits else None})
    return out
