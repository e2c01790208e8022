"""Each bundled strategy against signals computed by hand on a small fixed fixture (the arithmetic is in comments)."""
from __future__ import annotations

import numpy as np
import pytest

from mytrader.features import FeatureFrame, compute_features
from mytrader.market.series import BarSeries
from mytrader.strategies import BUILTINS, StrategyError, load_strategy
from mytrader.strategies.library.momentum_reversion import REASONS

DAY = 86_400


def bars(close, high=None, low=None) -> BarSeries:
    c = np.asarray(close, dtype=float)
    h = np.asarray(high, dtype=float) if high is not None else c + 0.5
    lo = np.asarray(low, dtype=float) if low is not None else c - 0.5
    ts = 1_000_000_000 + DAY * np.arange(len(c))
    return BarSeries.from_arrays("FIX", ts, c, h, lo, c, np.full(len(c), 1e6))


def run(name, series, **params):
    return load_strategy(name, params).arrays(compute_features(series))


def test_sma_crossover_enters_on_the_cross_up_and_exits_on_the_cross_down():
    # Given closes 10 10 10 12 14 11 8 8 8 with SMA(2) and SMA(3):
    #   fast = [-, 10, 10, 11, 13, 12.5, 9.5, 8, 8], slow = [-, -, 10, 10.667, 12, 12.333, 11, 9, 8]
    #   fast crosses above slow at bar 3 (10 <= 10 before), below at bar 6 (12.5 >= 12.333 before)
    a = run("sma_crossover", bars([10, 10, 10, 12, 14, 11, 8, 8, 8]), fast=2, slow=3, full_gap=0.1)
    assert a.action.tolist() == [0, 0, 0, 1, 0, 0, -1, 0, 0]
    # confidence 0.5 + 0.4 * min(1, |fast/slow - 1| / 0.1): bar 3 |11/10.667 - 1| = 0.03125 -> 0.625; bar 6 -> 0.9
    assert a.confidence[3] == pytest.approx(0.625) and a.confidence[6] == pytest.approx(0.9)
    assert a.opens.tolist() == [False, False, False, True] + [False] * 5  # long only: its exit never opens
    assert "crossed above" in a.reason[3] and "crossed below" in a.reason[6]


def test_rsi_reversion_enters_below_oversold_and_exits_above_the_exit_level():
    # Given closes 10 11 12 11 10 9 10 11 12 13 and Wilder's RSI(2):
    #   bar 2: gains 1, 1 -> avg gain 1, loss 0 -> 100; then avg = (avg + move) / 2:
    #   bar 3 (-1): 0.5/0.5 -> 50; bar 4 (-1): 0.25/0.75 -> 25; bar 5: 0.125/0.875 -> 12.5;
    #   bar 6 (+1): 0.5625/0.4375 -> 56.25; bar 7: 0.78125/0.21875 -> 78.125; bar 8 -> 89.0625; bar 9 -> 94.53125
    series = bars([10, 11, 12, 11, 10, 9, 10, 11, 12, 13])
    strategy = load_strategy("rsi_reversion", {"period": 2, "oversold": 30, "exit_above": 70})
    data = strategy.data(compute_features(series))
    assert data.ind["rsi"][2:].tolist() == pytest.approx([100, 50, 25, 12.5, 56.25, 78.125, 89.0625, 94.53125])
    a = strategy.arrays(compute_features(series))
    # Then the entry is bar 4 (25 < 30, 50 before) and the exit bar 7 (78.125 > 70, 56.25 before)
    assert a.action.tolist() == [0, 0, 0, 0, 1, 0, 0, -1, 0, 0]
    # confidence 0.5 + 0.4 * depth: (30 - 25) / 30 -> 0.56667; (78.125 - 70) / 30 -> 0.60833
    assert a.confidence[4] == pytest.approx(0.5 + 0.4 * 5 / 30)
    assert a.confidence[7] == pytest.approx(0.5 + 0.4 * 8.125 / 30)


def test_donchian_breakout_enters_above_the_prior_high_exits_below_the_prior_low_with_its_stop_there():
    # Given closes 10 10 10 10 11.5 12 11 10 9 10 (high = close + 0.5, low = close - 0.5), channels 3 and 2:
    #   prior 3-bar high before bar 4: 10.5 -> 11.5 breaks out (bar 5: 12 vs 12, no)
    #   prior 2-bar low before bar 7: min(11.5, 10.5) = 10.5 -> 10 breaks down
    series = bars([10, 10, 10, 10, 11.5, 12, 11, 10, 9, 10])
    strategy = load_strategy("donchian_breakout", {"entry_period": 3, "exit_period": 2, "full_break": 0.1})
    a = strategy.arrays(compute_features(series))
    assert a.action.tolist() == [0, 0, 0, 0, 1, 0, 0, -1, 0, 0]
    # confidence 0.5 + 0.4 * min(1, break / 0.1): 11.5/10.5 - 1 = 0.0952 -> 0.8810; 1 - 10/10.5 = 0.0476 -> 0.6905
    assert a.confidence[4] == pytest.approx(0.5 + 0.4 * (11.5 / 10.5 - 1) / 0.1)
    assert a.confidence[7] == pytest.approx(0.5 + 0.4 * (1 - 10 / 10.5) / 0.1)
    # And its stop for the entry at bar 4 is the 2-bar low there (min(9.5, 11) = 9.5); no ATR yet: no own target
    assert a.data is not None and strategy.levels(a.data, 4, 1, 11.5) == (9.5, None)


def test_momentum_reversion_on_hand_set_features():
    # Given six bars of hand-set features (close 10, slow SMA 9.5, ATR 1, not trending)
    n = 6
    cols = {"sma_fast": np.array([9, 11, 11, 11, 9, 10.0]), "sma_slow": np.full(n, 9.5),
            "macd_hist": np.array([-1, 1, 1, -1, -1, 1.0]), "rsi": np.array([50, 50, 75, 50, 30, 50.0]),
            "trend": np.zeros(n), "bb_pct_b": np.array([0.5, 0.5, 0.5, 0.5, 0.02, 0.5]), "atr": np.ones(n)}
    frame = FeatureFrame(bars([10.0] * n), cols)
    a = BUILTINS["momentum_reversion"]().arrays(frame)
    # Then: bar 1 momentum entry (fast > slow, hist > 0, RSI < 72, first time); bar 2 mean-reversion exit (RSI 75);
    #       bar 3 momentum exit (hist < 0, close < fast SMA); bar 4 mean-reversion entry (%B 0.02, RSI 30, range);
    #       bar 5 momentum entry again (it became true again)
    assert a.action.tolist() == [0, 1, -1, -1, 1, 1]
    # confidence: momentum 0.5 + 0.4 * min(1, |hist| / ATR * 4) = 0.9; reversion 0.5 + 0.4 * |%B - 0.5| * 1.2
    assert a.confidence.tolist() == pytest.approx([0.5, 0.9, 0.5, 0.9, 0.5 + 0.4 * 0.48 * 1.2, 0.9])
    assert [a.reason[i] for i in (1, 2, 3, 4)] == [REASONS["entry", 1], REASONS["exit", 2], REASONS["exit", 1],
                                                   REASONS["entry", 2]]


@pytest.mark.parametrize(("name", "params", "message"), [
    ("sma_crossover", {"fast": 500}, "parameter fast=500: Input should be less than or equal to 200"),
    ("sma_crossover", {"fast": 50, "slow": 20}, "fast (50) must be below slow (20)"),
    ("rsi_reversion", {"period": "x"}, "parameter period='x'"),
    ("donchian_breakout", {"entry": 5}, "unknown parameter 'entry'"),
])
def test_a_parameter_out_of_range_is_one_line_naming_it(name, params, message):
    with pytest.raises(StrategyError) as err:
        load_strategy(name, params)
    assert message in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith(f"strategy {name}")
