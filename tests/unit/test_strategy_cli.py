"""`mytrader strategy list | new | check` (the module's typer app; the root app registers it as `strategy`)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mytrader.strategies import BUILTINS
from mytrader_tools.cli.strategy import app
from tests.conftest import PACKAGED_DATA

LEAKY = '''import numpy as np
from mytrader.strategies import Signals, Strategy


class Leaky(Strategy):
    name = "leaky"

    def signals(self, data):
        tomorrow = np.roll(data.close, -1)
        return Signals(entry=tomorrow > data.close, exit=tomorrow < data.close, confidence=0.6)
'''


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_list_names_every_bundled_strategy_with_its_parameters():
    res = invoke("list")
    assert res.exit_code == 0
    for name, cls in BUILTINS.items():
        assert f"{name} v{cls.version}" in res.output
    assert "fast=20 [2..200]" in res.output and "(default)" in res.output


def test_new_scaffolds_a_strategy_and_its_test_that_pass_as_written_outside_the_repository(tmp_path, monkeypatch):
    # Given an empty folder outside the repository
    monkeypatch.chdir(tmp_path)
    # When a strategy is scaffolded
    res = invoke("new", "my-breakout")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_breakout.py", "test_my_breakout.py"]
    assert "class MyBreakout(Strategy)" in (tmp_path / "my_breakout.py").read_text()
    # Then its test passes as written, collected and run by pytest in that folder (in this process: a new
    # interpreter would add seconds of imports and prove nothing more, the package being installed)
    outcome = pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--rootdir", str(tmp_path),
                           str(tmp_path / "test_my_breakout.py")])
    assert outcome == pytest.ExitCode.OK
    # And the scaffold never overwrites
    again = invoke("new", "my_breakout")
    assert again.exit_code == 2 and "already in" in again.output


@pytest.mark.parametrize(("name", "message"), [("3d", "is not a strategy name"), ("json", "would shadow"),
                                               ("test_x", "cannot name a Python module")])
def test_new_refuses_a_bad_name_in_one_line(tmp_path, monkeypatch, name, message):
    monkeypatch.chdir(tmp_path)
    res = invoke("new", name)
    assert res.exit_code == 2 and message in res.output and list(tmp_path.iterdir()) == []


def test_check_passes_a_bundled_strategy_and_fails_a_leaky_one_showing_what_differed(tmp_path):
    # Given the first 1,200 days of the bundled ORCL history (as a price file of its own)
    lines = (PACKAGED_DATA / "orcl-daily-1995-2014.csv").read_text().splitlines()
    prices = str(tmp_path / "orcl-early.csv")
    (tmp_path / "orcl-early.csv").write_text("\n".join(lines[:1201]) + "\n")
    ok = invoke("check", "--strategy", "rsi_reversion", "--param", "period=10", prices)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("PASS rsi_reversion on ORCL:")
    leaky = tmp_path / "leaky.py"
    leaky.write_text(LEAKY)
    bad = invoke("check", "--strategy", str(leaky), prices)
    assert bad.exit_code == 1
    lines = bad.output.splitlines()
    assert lines[0].startswith("FAIL leaky on ORCL:") and "FAILED on" in lines[0]
    assert lines[1].startswith("  bar ") and "differs: with them" in lines[1]
    assert "more differences" in lines[-1]


def test_check_reports_a_bad_strategy_or_parameter_in_one_line():
    res = invoke("check", "--strategy", "sma_crossover", "--param", "fast=0")
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "error: strategy sma_crossover: parameter fast=0" in res.output


def test_check_given_the_strategy_file_as_a_price_file_says_how_to_pass_it(tmp_path):
    """Given `strategy check my_test.py` (the file where a price file goes), then one line shows the --strategy form."""
    code = tmp_path / "my_test.py"
    code.write_text("x = 1\n")
    res = invoke("check", str(code))
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert f"is a strategy, not a price file: write `mytrader strategy check --strategy {code}" in res.output
