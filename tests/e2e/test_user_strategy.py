"""A strategy of the user's own, end to end: written by `mytrader strategy new` in a folder outside the
repository, it runs in a backtest (by --strategy and by the config file) and in the demo's serverless pipeline,
whose decisions carry its fingerprint and whose fills equal the backtester's, fractional shares included."""
from __future__ import annotations

import json
from datetime import date

from typer.testing import CliRunner

from mytrader.engine import DecisionEngine
from mytrader.strategies import default_strategy
from mytrader_tools.cli import app
from mytrader_tools.embedded.demo import demo_config
from tests.conftest import PACKAGED_DATA

# four weeks in which the scaffold's EMA crossover enters and exits on its own signals, in NVDA and in ORCL
START, END = date(2011, 11, 15), date(2011, 12, 16)
CONFIG = """\
fractional_shares = true

[strategy]
name = "my_edge.py"  # relative to the current folder

[llm]
enabled = false  # the strategy alone: every trade is the user's strategy's
"""


def run(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_a_user_strategy_runs_in_the_backtest_and_in_the_demo_with_parity(tmp_path, monkeypatch):
    # Given a strategy scaffolded in an empty folder outside the repository, as written, and a config selecting it
    monkeypatch.chdir(tmp_path)
    run("strategy", "new", "my_edge")
    (tmp_path / "user.toml").write_text(CONFIG)
    nvda = str(PACKAGED_DATA / "nvda-daily-1999-2014.csv")
    # When it is backtested, named by --strategy and by the config file
    by_option = _backtest(tmp_path, "--strategy", "my_edge.py", nvda, "by_option.json")
    by_config = _backtest(tmp_path, "--config", "user.toml", nvda, "by_config.json")
    # Then it traded, and both name it with one fingerprint
    for out in (by_option, by_config):
        assert out["strategy"] == "my_edge v1" and out["runs"]["baseline"]["trades"] > 5
    assert by_option["strategy_fingerprint"] == by_config["strategy_fingerprint"]
    assert by_config["fractional_shares"] and not by_option["fractional_shares"]
    # When the demo replays four weeks through the serverless pipeline with it
    shown = run("demo", "--config", "user.toml", "--start", START.isoformat(), "--end", END.isoformat(),
                "--no-finetune", "--out", "demo")
    s = json.loads((tmp_path / "demo" / "summary.json").read_text())
    # Then every decision was taken by the user's strategy: its fingerprint is in their config version (part of
    # every decision id), which is not the bundled default's
    assert "my_edge v1 from my_edge.py" in shown and s["strategy"] == "my_edge v1"
    cfg = demo_config("baseline", _pipeline_env(tmp_path))
    engine = DecisionEngine(cfg, None)
    assert engine.strategy.fingerprint() == s["strategy_fingerprint"] == by_config["strategy_fingerprint"]
    assert s["decision_config_versions"] == [engine.version] == [s["config_version"]]
    assert engine.version != DecisionEngine(cfg, None, strategy=default_strategy()).version
    # and the pipeline's fills equal the backtester's, fraction for fraction
    assert s["decisions"] == s["expected_decisions"] and s["terminal_states"]["PENDING"] == 0
    assert s["cycle_errors"] == 0 and s["duplicate_orders"] == 0
    assert s["parity"]["equal"], s["parity"]["first_difference"]
    assert s["parity"]["pipeline_fills"] >= 4 and s["parity"]["fractional_fills"] == s["parity"]["pipeline_fills"]


def _backtest(folder, option: str, value: str, prices: str, out: str) -> dict:
    run("backtest", option, value, "--prices", prices, "--mode", "baseline", "--start", "2010-01-04",
        "--end", "2012-12-31", "--json", out)
    return json.loads((folder / out).read_text())


def _pipeline_env(folder) -> dict[str, str]:
    from mytrader.app.project_config import load_config

    return load_config(folder / "user.toml").pipeline_env()
