"""Tests of my_strategy (written by `mytrader strategy new`): it loads, never looks ahead, and trades."""
from __future__ import annotations

from pathlib import Path

from mytrader.features import compute_features
from mytrader.market.sources import synthetic_series
from mytrader.strategies import load_strategy
from mytrader.strategies.lookahead import check_lookahead

STRATEGY = str(Path(__file__).with_name("my_strategy.py"))


def test_it_loads_with_its_parameters_checked():
    # Given the file, When it is loaded, Then its class, parameters and output shape passed the checks
    strategy = load_strategy(STRATEGY)
    assert strategy.strategy_name() == "my_strategy"


def test_a_decision_at_bar_t_never_uses_the_bars_after_t():
    # Given a synthetic history, When the bars after each sampled t are removed or altered, Then nothing changes
    report = check_lookahead(load_strategy(STRATEGY), synthetic_series("SYN", 500, seed=1))
    assert report.ok, "\n".join(d.line() for d in report.differences[:10])


def test_it_enters_and_exits_on_a_synthetic_history():
    # Given two synthetic years and more, When the strategy reads them, Then it both enters and exits
    arrays = load_strategy(STRATEGY).arrays(compute_features(synthetic_series("SYN", 1500, seed=2)))
    assert (arrays.action == 1).any() and (arrays.action == -1).any()
