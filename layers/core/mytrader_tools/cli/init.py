"""`mytrader init`: write the commented default config file."""
from __future__ import annotations

from pathlib import Path

import typer

from mytrader.app.project_config import DEFAULT_FILE, default_toml
from mytrader_tools.cli._console import console
from mytrader_tools.cli._errors import UserError
from mytrader_tools.cli._outputs import check_output_file


def init(path: Path = typer.Argument(Path(DEFAULT_FILE), help="where to write it"),
         force: bool = typer.Option(False, "--force", metavar="", help="overwrite an existing file")) -> None:
    """Write a commented config file with every key at its default (backtest, demo and the CDK app read it)."""
    check_output_file(path, "init", DEFAULT_FILE)
    if path.exists() and not force:
        raise UserError(f"{path} exists: pass --force to overwrite it, or give another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(default_toml())
    console.print(f"wrote {path}: edit it, then run e.g. mytrader backtest --prices FILE.csv"
                  + (f" --config {path}" if path.resolve() != Path(DEFAULT_FILE).resolve() else ""))
