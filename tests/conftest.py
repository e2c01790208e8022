"""Shared fixtures. The non-commercial news set is read from ../shared/data (never copied into the repo)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PACKAGED_DATA = ROOT / "layers" / "core" / "mytrader_tools" / "embedded" / "data"


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (tests read the shared data set beside the repository)")
    return path


@pytest.fixture(scope="session")
def nvda_series():
    from mytrader.market.sources import parse_price_csv

    return parse_price_csv((PACKAGED_DATA / "nvda-daily-1999-2014.csv").read_text(), "NVDA")


@pytest.fixture(scope="session")
def orcl_series():
    from mytrader.market.sources import parse_price_csv

    return parse_price_csv((PACKAGED_DATA / "orcl-daily-1995-2014.csv").read_text(), "ORCL")
