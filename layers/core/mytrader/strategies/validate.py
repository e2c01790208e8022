"""A strategy's answer checked and turned into the engine's arrays; every defect is one StrategyError line."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mytrader.strategies.errors import StrategyError
from mytrader.strategies.signals import BUY, HOLD_REASON, SELL, Signals, StrategyArrays

if TYPE_CHECKING:
    import numpy.typing as npt

    from mytrader.strategies.base import StrategyData

MAX_REASON = 200


def to_arrays(name: str, answer: object, data: StrategyData, warmup: int, entry_reason: str = "",
              exit_reason: str = "", source: str = "") -> StrategyArrays:
    """Entries win over exits on the same bar, long entries over short ones; no signal before `warmup`."""
    if not isinstance(answer, Signals):
        raise StrategyError(f"strategy {name}: signals() must return Signals(entry=..., exit=..., confidence=...), "
                            f"got {type(answer).__name__}")
    n = len(data)
    entry, exit_ = _flags(name, "entry", answer.entry, n), _flags(name, "exit", answer.exit, n)
    short_entry = _flags(name, "short_entry", answer.short_entry, n)
    short_exit = _flags(name, "short_exit", answer.short_exit, n)
    buy, sell = entry | short_exit, exit_ | short_entry
    buy[:warmup] = False
    sell[:warmup] = False
    action = np.zeros(n, dtype=np.int8)
    action[sell] = SELL
    action[buy] = BUY
    signal = action != 0
    confidence = _confidence(name, answer.confidence, n, signal)
    opens = ((action == BUY) & entry) | ((action == SELL) & short_entry)
    reason = np.full(n, HOLD_REASON, dtype=object)
    reason[action == BUY] = np.where(entry, entry_reason or f"{name}: entry", f"{name}: short exit")[action == BUY]
    reason[action == SELL] = np.where(exit_, exit_reason or f"{name}: exit", f"{name}: short entry")[action == SELL]
    if answer.reason is not None:
        reason[signal] = _reasons(name, answer.reason, n, signal)
    return StrategyArrays(action, confidence, reason, opens, data, source)


def _shape(name: str, field: str, arr: npt.NDArray[Any], n: int) -> None:
    if arr.ndim != 1:
        raise StrategyError(f"strategy {name}: {field} must be one value per bar (1-D), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise StrategyError(f"strategy {name}: {field} has {arr.shape[0]} values for {n} bars")


def _flags(name: str, field: str, value: object, n: int) -> npt.NDArray[np.bool_]:
    if value is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(value)
    _shape(name, field, arr, n)
    if arr.dtype == np.bool_:
        return arr.copy()
    if arr.dtype.kind in "iuf" and np.all((arr == 0) | (arr == 1)):
        return arr.astype(bool)
    raise StrategyError(f"strategy {name}: {field} must be booleans, got {arr.dtype} values")


def _confidence(name: str, value: object, n: int, signal: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"strategy {name}: confidence must be numbers in [0, 1] ({exc})") from exc
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    _shape(name, "confidence", arr, n)
    undefined = ~np.isfinite(arr)
    if np.any(undefined & signal):
        i = int(np.argmax(undefined & signal))
        raise StrategyError(f"strategy {name}: confidence undefined ({arr[i]}) on signal bar {i}")
    out = np.where(undefined, 0.5, arr)
    outside = (out < 0) | (out > 1)
    if np.any(outside):
        i = int(np.argmax(outside))
        raise StrategyError(f"strategy {name}: confidence must be within [0, 1], bar {i} has {out[i]}")
    return out


def _reasons(name: str, value: object, n: int, signal: npt.NDArray[np.bool_]) -> npt.NDArray[np.object_]:
    arr = np.asarray(value, dtype=object)
    _shape(name, "reason", arr, n)
    picked = arr[signal].tolist()
    cleaned: dict[object, str] = {}
    for text in dict.fromkeys(picked):  # each distinct reason once
        if not isinstance(text, str) or not text.strip():
            i = int(np.flatnonzero(signal)[picked.index(text)])
            raise StrategyError(f"strategy {name}: reason on signal bar {i} must be a non-empty string, "
                                f"got {text!r}")
        cleaned[text] = " ".join(text.split())[:MAX_REASON]
    return np.array([cleaned[t] for t in picked], dtype=object)
