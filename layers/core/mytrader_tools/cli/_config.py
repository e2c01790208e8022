"""The `--config` option and the one way commands load the project's config file (mytrader.app.project_config)."""
from __future__ import annotations

from pathlib import Path

import typer

from mytrader.app.project_config import DEFAULT_FILE, Override, ProjectConfig, load_config

CONFIG = typer.Option(None, "--config", envvar="MYTRADER_CONFIG", show_default=False, metavar="PATH",
                      help=f"config file (default: ./{DEFAULT_FILE} if there is one, else the built-in defaults)")


def load(path: Path | None, overrides: list[Override] | None = None) -> tuple[ProjectConfig, str]:
    """The config and where it came from, for the run header. Options given on the command line win."""
    if path is None and Path(DEFAULT_FILE).is_file():
        path = Path(DEFAULT_FILE)
    cfg = load_config(path, overrides or [])
    return cfg, str(path) if path is not None else f"built-in defaults (no ./{DEFAULT_FILE}; mytrader init writes one)"
