"""The strategy interface a quant writes in one file (freqtrade's IStrategy and backtrader's Strategy are the models).

    class MyParams(StrategyParams):
        fast: int = Field(20, ge=2, le=200)

    class MyStrategy(Strategy):
        name, version = "my_strategy", "1"
        params_model = MyParams
        params: MyParams
        time_limit_bars = 15                      # optional: bars a position may stay open (None: the config's)

        def indicators(self):                     # optional: TA-Lib functions through the feature layer
            return {"fast": ta("SMA", timeperiod=self.params.fast)}

        def signals(self, data):                  # required: vectorised over all bars
            return Signals(entry=crossed_above(data.close, data.ind["fast"]), exit=..., confidence=0.6)

Optional hooks: `stop_target` (own stop-loss / take-profit prices for an entry) and `size_pct` (own position size).
The same object serves the backtester (all bars) and the decision cycle (its last bar). Everything the engine
calls goes through the final methods at the bottom, which turn any failure of user code into a one-line
StrategyError.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mytrader.features import Indicator, compute_indicators, indicator_lookback
from mytrader.strategies.errors import StrategyError
from mytrader.strategies.validate import to_arrays

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mytrader.features import FeatureFrame
    from mytrader.market.series import BarSeries
    from mytrader.strategies.signals import Signals, StrategyArrays

T = TypeVar("T")
MAX_MESSAGE = 300


class StrategyParams(BaseModel):
    """A strategy's parameters: typed fields with defaults and ranges (`Field(20, ge=2, le=200)`); an unknown
    name or a value out of range is an error at load."""
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StrategyData:
    """What `signals` and the hooks read: the bars, the standard features and the strategy's own indicators."""
    frame: FeatureFrame
    ind: Mapping[str, npt.NDArray[np.float64]]

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def series(self) -> BarSeries:
        return self.frame.series

    @property
    def features(self) -> Mapping[str, npt.NDArray[np.float64]]:
        """The feature layer's columns (sma_fast, sma_slow, rsi, macd_hist, atr, bb_pct_b, trend, ...)."""
        return self.frame.cols

    @property
    def open(self) -> npt.NDArray[np.float64]:
        return self.frame.series.open

    @property
    def high(self) -> npt.NDArray[np.float64]:
        return self.frame.series.high

    @property
    def low(self) -> npt.NDArray[np.float64]:
        return self.frame.series.low

    @property
    def close(self) -> npt.NDArray[np.float64]:
        return self.frame.series.close

    @property
    def volume(self) -> npt.NDArray[np.float64]:
        return self.frame.series.volume


class Strategy:
    """Subclass it; override `signals` (and optionally `indicators`, `stop_target`, `size_pct`)."""
    name: ClassVar[str] = ""  # default: the class name in snake_case
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    params_model: ClassVar[type[StrategyParams]] = StrategyParams
    warmup_bars: ClassVar[int | None] = None  # None: the longest lookback of the declared indicators
    time_limit_bars: ClassVar[int | None] = None  # None: the config's time_limit_bars
    entry_reason: ClassVar[str] = ""  # default reasons of signal bars when `signals` gives none
    exit_reason: ClassVar[str] = ""

    params: StrategyParams

    def __init__(self, params: Mapping[str, Any] | StrategyParams | None = None):
        self.params = _parse_params(type(self), params)

    # -- what a strategy writes -------------------------------------------------------------------------------
    def indicators(self) -> dict[str, Indicator]:
        """The TA-Lib indicators `signals` reads as data.ind[name]; computed over all bars by the feature layer."""
        return {}

    def signals(self, data: StrategyData) -> Signals:
        raise NotImplementedError

    def stop_target(self, data: StrategyData, i: int, side: int, price: float) -> tuple[float | None, float | None]:
        """Own stop-loss and take-profit prices for an entry at bar i (side 1 long, -1 short) at `price`; None keeps
        the engine's (2 and 3 ATRs). The risk limits' ATR bounds still clamp them."""
        return None, None

    def size_pct(self, data: StrategyData, i: int, confidence: float, max_pct: float) -> float | None:
        """Own position size, % of equity, for an entry at bar i; None keeps the engine's (max_pct x confidence,
        scaled down in high volatility). Never more than max_pct."""
        return None

    # -- what the engine and the drivers call (final) ------------------------------------------------------------
    @classmethod
    def strategy_name(cls) -> str:
        return cls.name or re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()

    @property
    def label(self) -> str:
        return f"{self.strategy_name()} v{self.version}"

    def fingerprint(self) -> str:
        """Stable over runs and machines: changes with the name, version, parameters and settings."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        blob = json.dumps({"name": self.strategy_name(), "version": self.version,
                           "params": self.params.model_dump(mode="json"), "warmup_bars": self.warmup_bars,
                           "time_limit_bars": self.time_limit_bars}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def time_limit(self, default: int) -> int:
        return self.time_limit_bars if self.time_limit_bars is not None else default

    @cached_property
    def declared_indicators(self) -> dict[str, Indicator]:
        found = self._guard("indicators()", self.indicators)
        if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, Indicator)
                                                  for k, v in found.items()):
            raise StrategyError(f"strategy {self.strategy_name()}: indicators() must return a dict of name -> "
                                f"ta(...), got {type(found).__name__}")
        return found

    @cached_property
    def warmup(self) -> int:
        """Bars before the first decision: the declared warm-up, or the indicators' longest lookback plus one."""
        if self.warmup_bars is not None:
            return self.warmup_bars
        specs = self.declared_indicators
        try:
            return max((indicator_lookback(ind) + 1 for ind in specs.values()), default=0)
        except ValueError as exc:
            raise StrategyError(f"strategy {self.strategy_name()}: {exc}") from exc

    def data(self, frame: FeatureFrame) -> StrategyData:
        try:
            ind = compute_indicators(frame.series, self.declared_indicators)
        except ValueError as exc:
            raise StrategyError(f"strategy {self.strategy_name()}: {exc}") from exc
        return StrategyData(frame, ind)

    def arrays(self, frame: FeatureFrame) -> StrategyArrays:
        """Signals over every bar of `frame`, checked (shape, length, range); HOLD before the warm-up."""
        data = self.data(frame)
        answer = self._guard("signals()", lambda: self.signals(data))
        return to_arrays(self.strategy_name(), answer, data, self.warmup, self.entry_reason, self.exit_reason,
                         self.fingerprint())

    def levels(self, data: StrategyData, i: int, side: int, price: float) -> tuple[float | None, float | None]:
        stop, target = _pair(self.strategy_name(), self._guard("stop_target()",
                                                                lambda: self.stop_target(data, i, side, price)))
        name = self.strategy_name()
        for what, level, below in (("stop", stop, side > 0), ("target", target, side < 0)):
            if level is not None and not (level < price if below else level > price):
                raise StrategyError(f"strategy {name}: stop_target() gave a {what} of {level} for a "
                                    f"{'long' if side > 0 else 'short'} entry at {price} (wrong side)")
        return stop, target

    def sizing(self, data: StrategyData, i: int, confidence: float, max_pct: float) -> float | None:
        size = self._guard("size_pct()", lambda: self.size_pct(data, i, confidence, max_pct))
        if size is None:
            return None
        if isinstance(size, bool) or not isinstance(size, int | float) or not math.isfinite(size) or size < 0:
            raise StrategyError(f"strategy {self.strategy_name()}: size_pct() must return None or a % >= 0, "
                                f"got {size!r}")
        return float(size)

    def _guard(self, what: str, call: Callable[[], T]) -> T:
        """Runs user code; any exception becomes one StrategyError line naming the strategy and the method."""
        try:
            return call()
        except StrategyError:
            raise
        except Exception as exc:  # user code may raise anything: it becomes a skip with the reason, never a crash
            text = f"strategy {self.strategy_name()}: {what} raised {type(exc).__name__}: {exc}"
            raise StrategyError(text[:MAX_MESSAGE]) from exc


def _parse_params(cls: type[Strategy], params: Mapping[str, Any] | StrategyParams | None) -> StrategyParams:
    model = cls.params_model
    if isinstance(params, model):
        return params
    values = params.model_dump() if isinstance(params, StrategyParams) else dict(params or {})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise StrategyError(f"strategy {cls.strategy_name()}: {_first_error(exc, values)}") from exc


def _first_error(exc: ValidationError, values: Mapping[str, Any]) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown parameter {where!r}"
    if not where:
        return f"parameters: {err['msg']}"
    return f"parameter {where}={values.get(where, err.get('input'))!r}: {err['msg']}"


def _pair(name: str, answer: object) -> tuple[float | None, float | None]:
    if not (isinstance(answer, tuple) and len(answer) == 2):
        raise StrategyError(f"strategy {name}: stop_target() must return (stop, target), got {answer!r}"[:MAX_MESSAGE])
    out: list[float | None] = []
    for v in answer:
        ok = v is None or (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0)
        if not ok:
            raise StrategyError(f"strategy {name}: stop_target() levels must be None or prices > 0, got {v!r}")
        out.append(None if v is None else float(v))
    return out[0], out[1]
