"""What the CLI tests share: synthetic price files, the runner, the one-line-error check, an environment
without any AWS setting."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mytrader.market.calendar import NEW_YORK
from mytrader.market.sources import synthetic_series
from mytrader_tools.cli import app

HEADER = "Date,Open,High,Low,Close,Volume\n"


def csv_text(n: int = 260, seed: int = 3) -> str:
    s = synthetic_series("SYN", n, seed=seed)
    return HEADER + "".join(f"{s.time(i).astimezone(NEW_YORK).date()},{s.open[i]:.4f},{s.high[i]:.4f},"
                            f"{s.low[i]:.4f},{s.close[i]:.4f},{s.volume[i]:.0f}\n" for i in range(len(s)))


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory without a config file (the built-in defaults apply)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MYTRADER_CONFIG", raising=False)
    return tmp_path


def prices(folder: Path, name: str, n: int = 260, seed: int = 3) -> str:
    (folder / name).write_text(csv_text(n, seed))
    return name


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line_error(res, *expected: str) -> None:
    """Exit 2, nothing on stdout, exactly one line on stderr that contains each expected part."""
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
    assert "Traceback" not in res.output and res.stdout == ""
    for part in expected:
        assert part in res.stderr, res.stderr


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No AWS settings at all: no region, no credentials (and no instance metadata to look for them in)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # an earlier test's session caches its credentials
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
