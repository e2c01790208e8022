"""`mytrader init`: the commented default config file, never over an existing one without --force."""
from __future__ import annotations

from typer.testing import CliRunner

from mytrader.app.project_config import ProjectConfig, default_toml, load_config
from mytrader_tools.cli import app
from tests.unit.cli_support import one_line_error


def test_init_writes_the_default_file_and_keeps_an_existing_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # When run in an empty directory / Then mytrader.toml holds every default, with comments
    res = CliRunner().invoke(app, ["init"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mytrader.toml").read_text() == default_toml()
    assert load_config(tmp_path / "mytrader.toml") == ProjectConfig()
    # When run again / Then the file is kept unless --force
    (tmp_path / "mytrader.toml").write_text("mode = 'baseline'\n")
    one_line_error(CliRunner().invoke(app, ["init"]), "mytrader.toml exists: pass --force")
    assert (tmp_path / "mytrader.toml").read_text() == "mode = 'baseline'\n"
    assert CliRunner().invoke(app, ["init", "--force"]).exit_code == 0
    assert (tmp_path / "mytrader.toml").read_text() == default_toml()
    # and a directory is not a file name
    (tmp_path / "conf").mkdir()
    one_line_error(CliRunner().invoke(app, ["init", "conf"]), "init conf is a directory")
