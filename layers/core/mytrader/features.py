"""Features computed vectorised with TA-Lib over a whole history; the value at t depends only on bars <= t."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import talib

from mytrader.models import FeatureVector

if TYPE_CHECKING:
    import numpy.typing as npt

    from mytrader.market.series import BarSeries

FAST, SLOW, RSI_N, ATR_N, BB_N, VOL_N, VOL_REGIME_N = 20, 50, 14, 14, 20, 20, 120
MIN_BARS = SLOW + 10  # below this the slow indicators are undefined
_ANNUAL = np.sqrt(252.0)


@dataclass(frozen=True)
class FeatureFrame:
    series: BarSeries
    cols: dict[str, npt.NDArray[np.float64]]

    def __len__(self) -> int:
        return len(self.series)

    @cached_property
    def valid_mask(self) -> list[bool]:
        """Per bar: every feature defined (computed once, vectorised)."""
        ok = np.ones(len(self.series), dtype=bool)
        for a in self.cols.values():
            ok &= np.isfinite(a)
        ok[: MIN_BARS - 1] = False
        return ok.tolist()

    def valid(self, i: int) -> bool:
        return self.valid_mask[i]

    def row(self, i: int) -> FeatureVector:
        c = self.cols
        trend = int(c["trend"][i])
        return FeatureVector(
            symbol=self.series.symbol, ts=self.series.time(i), close=float(self.series.close[i]),
            sma_fast=float(c["sma_fast"][i]), sma_slow=float(c["sma_slow"][i]), ema_fast=float(c["ema_fast"][i]),
            rsi=float(c["rsi"][i]), macd=float(c["macd"][i]), macd_signal=float(c["macd_signal"][i]),
            macd_hist=float(c["macd_hist"][i]), atr=float(c["atr"][i]), atr_pct=float(c["atr_pct"][i]),
            bb_pct_b=float(c["bb_pct_b"][i]), volatility=float(c["volatility"][i]), volume_z=float(c["volume_z"][i]),
            ret_5=float(c["ret_5"][i]), ret_20=float(c["ret_20"][i]),
            regime_trend="trend_up" if trend > 0 else "trend_down" if trend < 0 else "range",
            regime_vol="high_vol" if c["high_vol"][i] > 0 else "low_vol",
        )


def compute_features(series: BarSeries) -> FeatureFrame:
    close, high, low, vol = series.close, series.high, series.low, series.volume
    sma_fast = talib.SMA(close, FAST)
    sma_slow = talib.SMA(close, SLOW)
    macd, macd_signal, macd_hist = talib.MACD(close, 12, 26, 9)
    atr = talib.ATR(high, low, close, ATR_N)
    upper, _, lower = talib.BBANDS(close, BB_N, 2.0, 2.0)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        bb_pct_b = np.where(width > 0, (close - lower) / width, 0.5)
        logret = np.concatenate([[np.nan], np.diff(np.log(close))])
        volatility = talib.STDDEV(logret, VOL_N, 1.0) * _ANNUAL
        vol_mean, vol_sd = talib.SMA(vol, VOL_N), talib.STDDEV(vol, VOL_N, 1.0)
        volume_z = np.where(vol_sd > 0, (vol - vol_mean) / vol_sd, 0.0)
        ret_5 = talib.ROCR(close, 5) - 1.0
        ret_20 = talib.ROCR(close, 20) - 1.0
    adx = talib.ADX(high, low, close, 14)
    spread = sma_fast / sma_slow - 1.0
    trend = np.where((adx > 20) & (spread > 0.01), 1, np.where((adx > 20) & (spread < -0.01), -1, 0))
    vol_baseline = talib.SMA(np.nan_to_num(volatility, nan=0.0), VOL_REGIME_N)
    high_vol = np.where(np.isfinite(vol_baseline) & (volatility > vol_baseline * 1.15), 1, 0)
    cols = {
        "sma_fast": sma_fast, "sma_slow": sma_slow, "ema_fast": talib.EMA(close, 12), "rsi": talib.RSI(close, RSI_N),
        "macd": macd, "macd_signal": macd_signal, "macd_hist": macd_hist, "atr": atr, "atr_pct": atr / close,
        "bb_pct_b": bb_pct_b, "volatility": volatility, "volume_z": volume_z, "ret_5": ret_5, "ret_20": ret_20,
        "trend": trend.astype(np.float64), "high_vol": high_vol.astype(np.float64),
    }
    return FeatureFrame(series, cols)


# -- a strategy's own indicators: any TA-Lib function, declared by name ------------------------------------------
PRICE_INPUTS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Indicator:
    """One TA-Lib function over the bars, computed vectorised like the features above (so its value at t depends
    only on bars <= t). `output` picks one series of a multi-output function (MACD: macd | macdsignal | macdhist);
    `price` the input column of a single-input function (default close). Build it with `ta(...)`."""
    function: str
    params: tuple[tuple[str, int | float], ...] = ()
    output: str | None = None
    price: str | None = None

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params)
        pick = f"[{self.output}]" if self.output else ""
        return f"{self.function}({args}){pick}" + (f" of {self.price}" if self.price else "")


def ta(function: str, *, output: str | None = None, price: str | None = None, **params: int | float) -> Indicator:
    """`ta("SMA", timeperiod=20)`, `ta("MACD", output="macdhist")`, `ta("MAX", timeperiod=20, price="high")`."""
    return Indicator(function.upper(), tuple(sorted(params.items())), output, price)


def indicator_lookback(ind: Indicator) -> int:
    """Bars TA-Lib needs before the indicator's first defined value."""
    return int(_ta_function(ind, None).lookback)


def compute_indicators(series: BarSeries, specs: dict[str, Indicator]) -> dict[str, npt.NDArray[np.float64]]:
    """Each declared indicator over the whole history. A bad declaration raises ValueError with one line."""
    inputs = {"open": series.open, "high": series.high, "low": series.low, "close": series.close,
              "volume": series.volume}
    return {name: _indicator(ind, inputs) for name, ind in specs.items()}


def _indicator(ind: Indicator, inputs: dict[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    fn = _ta_function(ind, inputs)
    names = list(fn.output_names)
    if ind.output is None and len(names) > 1:
        raise ValueError(f"indicator {ind.describe()}: pick one output of {names}")
    if ind.output is not None and ind.output not in names:
        raise ValueError(f"indicator {ind.describe()}: no output {ind.output!r} (outputs: {names})")
    out = fn.outputs
    arr = out if len(names) == 1 else out[names.index(ind.output)]
    return np.asarray(arr, dtype=np.float64)


def _ta_function(ind: Indicator, inputs: dict[str, npt.NDArray[np.float64]] | None) -> Any:  # talib is untyped
    from importlib import import_module

    make = vars(import_module("talib.abstract"))["Function"]  # its type stub does not declare Function
    try:
        fn = make(ind.function)
    except Exception as exc:  # TA-Lib raises a bare Exception for an unknown name
        raise ValueError(f"indicator {ind.function!r}: not a TA-Lib function") from exc
    try:
        fn.set_parameters(dict(ind.params))
    except (KeyError, TypeError) as exc:
        known = ", ".join(fn.info["parameters"]) or "none"
        raise ValueError(f"indicator {ind.describe()}: bad parameter {exc} (parameters: {known})") from exc
    if ind.price is not None:
        if ind.price not in PRICE_INPUTS or "price" not in fn.info["input_names"]:
            raise ValueError(f"indicator {ind.describe()}: price must be one of {PRICE_INPUTS} on a "
                             f"single-input function")
        fn.set_input_names({"price": ind.price})
    if inputs is not None:
        fn.set_input_arrays(inputs)
    return fn
