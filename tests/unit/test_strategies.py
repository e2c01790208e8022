"""User strategies are first-class: loaded from a file or module:Class, checked at load with one-line errors,
and the engine honours their hooks (stop/target, size), time limit, reduce-only exits and name in the prompt."""
from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import numpy as np
import pytest

from mytrader.advisor.prompt import PromptInputs, user_prompt
from mytrader.config import TradingConfig
from mytrader.engine import DecisionContext, DecisionEngine
from mytrader.features import compute_features
from mytrader.market.sources import synthetic_series
from mytrader.models import Action, Mode, SentimentScore
from mytrader.strategies import (
    Signals,
    Strategy,
    StrategyError,
    StrategyParams,
    crossed_above,
    crossed_below,
    load_strategy,
    ta,
)

NOW = datetime(2020, 1, 1, tzinfo=UTC)
HEAD = "import numpy as np\nfrom pydantic import Field\nfrom mytrader.strategies import *\n"
GOOD = HEAD + textwrap.dedent('''
    class P(StrategyParams):
        fast: int = Field(10, ge=2, le=50)

    class Mine(Strategy):
        name, version = "mine", "2"
        params_model = P
        time_limit_bars = 7

        def indicators(self):
            return {"fast": ta("SMA", timeperiod=self.params.fast)}

        def signals(self, data):
            f = data.ind["fast"]
            return Signals(entry=crossed_above(data.close, f), exit=crossed_above(f, data.close), confidence=0.7)
''')


def write(tmp_path, body: str, name: str = "mine.py"):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def test_a_strategy_file_loads_with_its_parameters_and_a_stable_fingerprint(tmp_path):
    # Given a strategy written in one file
    path = write(tmp_path, GOOD)
    # When it is loaded twice with the same parameters, and with others
    a, b, c = load_strategy(path), load_strategy(path, {"fast": 10}), load_strategy(path, {"fast": 12})
    # Then it is the user's class with its settings, and its fingerprint follows name, version and parameters only
    assert a.strategy_name() == "mine" and a.label == "mine v2" and a.time_limit(10) == 7 and a.warmup == 10
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 12 and int(a.fingerprint(), 16) >= 0  # 12 hex digits


def test_the_fingerprint_is_pinned_for_a_bundled_strategy():
    # Given sma_crossover with its defaults: nothing per-process (ids, paths, time) may enter the fingerprint, so
    # it is the same on every machine and run; it changes only with the name, version, parameters or settings
    assert load_strategy("sma_crossover").fingerprint() == "647069e03222"
    assert load_strategy("sma_crossover", {"fast": 21}).fingerprint() != "647069e03222"


def test_a_module_class_spec_loads(tmp_path, monkeypatch):
    # Given an importable module that defines two strategies
    (tmp_path / "quant_rules.py").write_text(GOOD + "\nclass Other(Mine):\n    name = 'other'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Then module:Class picks one; the file alone is ambiguous and says how to name one
    assert load_strategy("quant_rules:Other").strategy_name() == "other"
    with pytest.raises(StrategyError, match=r"defines 2 strategies \(Mine, Other\); name one as"):
        load_strategy(str(tmp_path / "quant_rules.py"))


BROKEN = {
    "missing_method": ("class S(Strategy):\n    name = 's'\n", "strategy s: missing method signals(self, data)"),
    "not_signals": ("class S(Strategy):\n    def signals(self, data):\n        return {'entry': []}\n",
                    "signals() must return Signals(entry=..., exit=..., confidence=...), got dict"),
    "short": ("class S(Strategy):\n    def signals(self, data):\n        n = len(data) - 1\n"
              "        return Signals(np.zeros(n, bool), np.zeros(n + 1, bool), 0.5)\n",
              "entry has 299 values for 300 bars"),
    "two_d": ("class S(Strategy):\n    def signals(self, data):\n        n = len(data)\n"
              "        return Signals(np.zeros((n, 2), bool), np.zeros(n, bool), 0.5)\n",
              "entry must be one value per bar (1-D), got shape (300, 2)"),
    "floats": ("class S(Strategy):\n    def signals(self, data):\n"
               "        return Signals(data.close, data.close > 0, 0.5)\n", "entry must be booleans, got float64"),
    "confidence": ("class S(Strategy):\n    def signals(self, data):\n"
                   "        return Signals(data.close > 0, data.close < 0, 1.5)\n",
                   "confidence must be within [0, 1], bar 0 has 1.5"),
    "raises": ("class S(Strategy):\n    def signals(self, data):\n        return 1 / 0\n",
               "signals() raised ZeroDivisionError: division by zero"),
    "bad_indicator": ("class S(Strategy):\n    def indicators(self):\n        return {'x': ta('NOPE')}\n"
                      "    def signals(self, data):\n        return Signals(data.close > 0, data.close < 0, 0.5)\n",
                      "indicator 'NOPE': not a TA-Lib function"),
    "wrong_stop": ("class S(Strategy):\n    def signals(self, data):\n"
                   "        return Signals(crossed_above(data.close, data.features['sma_fast']), data.close < 0, 0.5)\n"
                   "    def stop_target(self, data, i, side, price):\n        return price * 1.1, None\n",
                   "stop_target() gave a stop of"),
    "bad_size": ("class S(Strategy):\n    def signals(self, data):\n"
                 "        return Signals(crossed_above(data.close, data.features['sma_fast']), data.close < 0, 0.5)\n"
                 "    def size_pct(self, data, i, confidence, max_pct):\n        return 'all'\n",
                 "size_pct() must return None or a % >= 0, got 'all'"),
    "no_class": ("X = 1\n", "defines no subclass of mytrader.strategies.Strategy"),
    "import_error": ("import not_a_module_anywhere\n", "failed to import: ModuleNotFoundError"),
    "bad_time_limit": ("class S(Strategy):\n    time_limit_bars = 0\n    def signals(self, data):\n"
                       "        return None\n", "time_limit_bars must be None or an integer >= 1, got 0"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_strategy_is_refused_at_load_with_one_line(tmp_path, case):
    body, message = BROKEN[case]
    with pytest.raises(StrategyError) as err:
        load_strategy(write(tmp_path, HEAD + body, f"{case}.py"))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_name_and_a_missing_file_are_one_line():
    with pytest.raises(StrategyError, match="unknown strategy 'nope': not a bundled one"):
        load_strategy("nope")
    with pytest.raises(StrategyError, match="not found"):
        load_strategy("/nowhere/mine.py")


# -- the engine -----------------------------------------------------------------------------------------------
class Own(Strategy):
    """Enters where the close crosses above its 20-bar SMA, exits below; own levels, size and time limit."""
    name = "own"
    time_limit_bars = 7

    def signals(self, data):
        sma = data.features["sma_fast"]
        return Signals(entry=crossed_above(data.close, sma), exit=crossed_below(data.close, sma),
                       confidence=0.8, reason=np.full(len(data), "close crossed its SMA"))

    def stop_target(self, data, i, side, price):
        return price - 2.5 * float(data.features["atr"][i]), price + 5 * float(data.features["atr"][i])

    def size_pct(self, data, i, confidence, max_pct):
        return 7.5


def decide_at(strategy: Strategy, which: int, **cfg):
    series = synthetic_series("OWN", 900, seed=5)
    frame = compute_features(series)
    arrays = strategy.arrays(frame)
    i = [k for k in np.flatnonzero(arrays.action == which).tolist() if k >= 60 and frame.valid(k)][0]
    config = TradingConfig(mode=Mode.BASELINE, **cfg)
    engine = DecisionEngine(config, None, strategy=strategy)
    ctx = DecisionContext(frame, arrays, int(i), SentimentScore(score=0.0, n_items=0), [], None, 100_000.0)
    return engine.decide(ctx, NOW)[0], frame.row(int(i))


def test_the_engine_uses_the_strategys_levels_size_and_time_limit_within_the_risk_bounds():
    d, row = decide_at(Own(), 1)
    assert d.action == Action.BUY and d.position_size_pct == 7.5 and d.time_horizon_bars == 7
    assert d.stop_loss == pytest.approx(row.close - 2.5 * row.atr, abs=1e-3)
    assert d.take_profit == pytest.approx(row.close + 5 * row.atr, abs=1e-3)
    # And the risk limits still bound them: a size above the max, a stop beyond 4 ATRs
    wide = type("Wide", (Own,), {"size_pct": lambda self, *a: 80.0,
                                 "stop_target": lambda self, data, i, side, price: (price * 0.01, None)})()
    d, row = decide_at(wide, 1)
    assert d.position_size_pct == 20.0 and d.stop_loss == pytest.approx(row.close - 4 * row.atr, abs=1e-3)


def test_the_prompt_names_the_strategy_and_carries_its_signal_and_reason():
    d, _ = decide_at(Own(), 1)
    text = user_prompt(PromptInputs.model_validate(d.prompt_inputs))
    assert '"strategy":{"name":"own","action":"BUY","confidence":0.8,"reason":"close crossed its SMA"}' in text


def test_an_exit_signal_while_flat_is_a_hold_even_when_shorting_is_allowed():
    d, _ = decide_at(Own(), -1, allow_short=True)
    assert d.action == Action.HOLD and "an exit: nothing to close" in d.reason


def test_an_exception_in_a_hook_surfaces_as_a_strategy_error():
    def size_pct(self, *args):
        raise KeyError("x")

    boom = type("Boom", (Own,), {"size_pct": size_pct})()
    with pytest.raises(StrategyError, match="strategy own: size_pct\\(\\) raised KeyError"):
        decide_at(boom, 1)


def test_the_engine_refuses_signals_of_another_strategy():
    series = synthetic_series("OWN", 300, seed=5)
    frame = compute_features(series)
    engine = DecisionEngine(TradingConfig(mode=Mode.BASELINE), None, strategy=load_strategy("rsi_reversion"))
    ctx = DecisionContext(frame, Own().arrays(frame), 250, SentimentScore(score=0.0, n_items=0), [], None, 1e5)
    with pytest.raises(StrategyError, match="another strategy"):
        engine.decide(ctx, NOW)


def test_the_engine_loads_the_configs_strategy():
    cfg = TradingConfig.model_validate({"strategy": {"name": "donchian_breakout", "params": {"entry_period": 30}}})
    engine = DecisionEngine(cfg, None)
    assert engine.strategy.strategy_name() == "donchian_breakout"
    assert engine.strategy.params.model_dump()["entry_period"] == 30


def test_indicators_are_any_talib_function_through_the_feature_layer():
    class Macd(Strategy):
        def indicators(self):
            return {"hist": ta("MACD", output="macdhist"), "hi": ta("MAX", timeperiod=5, price="high")}

        def signals(self, data):
            return Signals(crossed_above(data.ind["hist"], 0.0), crossed_above(-data.ind["hist"], 0.0), 0.6)

    s = Macd(StrategyParams())
    assert s.strategy_name() == "macd" and s.warmup == 34  # MACD(12, 26, 9) needs 33 bars before its first value
    a = s.arrays(compute_features(synthetic_series("M", 300, seed=1)))
    assert (a.action[:34] == 0).all() and (a.action != 0).any()
