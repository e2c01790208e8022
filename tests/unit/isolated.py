"""Tests that depend on the process's logging state (the shared Powertools logger keeps the stream and level of
whichever test created it) run in a process of their own: `@only_isolated` on the test, and a wrapper test that
calls `run_isolated(__file__, name)`."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

only_isolated = pytest.mark.skipif(os.environ.get("MYTRADER_ISOLATED") != "1", reason="run in its own process")


def run_isolated(test_file: str, test_name: str) -> None:
    """Given a fresh Python process, when pytest runs that one test there, then it passes."""
    env = {**os.environ, "MYTRADER_ISOLATED": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           f"{test_file}::{test_name}"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
