"""`--strategy` (backtest and demo) and the demo's `--start`/`--end`: what is chosen, and every mistake one line
before any work. (The user's strategy runs end to end in tests/e2e/test_user_strategy.py.)"""
from __future__ import annotations

import pytest

from mytrader.app.project_config import ProjectConfig
from mytrader_tools.cli._strategy_choice import choose_strategy
from tests.unit import cli_support
from tests.unit.cli_support import one_line_error, prices, run

here = cli_support.here  # the fixture


def test_strategy_replaces_the_configs_and_keeps_its_parameters_only_for_the_same_strategy():
    cfg = ProjectConfig.model_validate({"strategy": {"name": "sma_crossover", "params": {"fast": 10}}})
    assert choose_strategy(cfg, None) is cfg and choose_strategy(cfg, "sma_crossover") is cfg
    other = choose_strategy(cfg, "rsi_reversion").strategy
    assert (other.name, other.params) == ("rsi_reversion", {})


def test_a_strategy_that_does_not_load_is_one_line_before_the_run(here):
    (here / "broken.py").write_text("from mytrader.strategies import Strategy\n\nclass Broken(Strategy):\n    pass\n")
    res = run("backtest", "--prices", prices(here, "syn.csv"), "--strategy", "broken.py")
    one_line_error(res, "strategy broken: missing method signals")
    one_line_error(run("demo", "--strategy", "nope", "--out", str(here / "out")), "unknown strategy 'nope'")
    assert not (here / "out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--start", "2011-13-01"], "--start '2011-13-01': write a date as YYYY-MM-DD"),
    (["--start", "2012-02-01", "--end", "2012-01-02"], "--start 2012-02-01 is after --end 2012-01-02"),
    (["--end", "2015-06-01"], "the demo's data replays between 1999-07-01 and 2014-12-30"),
])
def test_a_demo_window_outside_its_data_or_misspelt_is_one_line(here, args, message):
    one_line_error(run("demo", *args, "--out", str(here / "out")), message)
    assert not (here / "out").exists()
