"""Integration tests run the real handlers against the embedded AWS: one endpoint per test module, a fresh
stack (own resource prefix) per test."""
from __future__ import annotations

import itertools
import logging

import pytest

from mytrader_tools.embedded.endpoint import DynamoFaults, EmbeddedAws
from mytrader_tools.embedded.stack import LocalStack
from tests.conftest import PACKAGED_DATA

_ids = itertools.count()
logging.getLogger("mytrader").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def embedded():
    with EmbeddedAws() as aws:
        yield aws


@pytest.fixture
def make_stack(embedded):
    def make(extra_env=None, **kw):
        embedded.runtime.configure(latency_s=0.0, throttle_rate=0.0, timeout_rate=0.0, malformed_rate=0.0,
                                   error_rate=0.0)
        embedded.router.faults.clear()
        embedded.router.dynamodb_faults = DynamoFaults()
        embedded.comprehend.fail_rate = 0.0
        stack = LocalStack(embedded, prefix=f"t{next(_ids)}").create(extra_env=extra_env, **kw)
        stack.upload_prices({"NVDA": PACKAGED_DATA / "nvda-daily-1999-2014.csv",
                             "ORCL": PACKAGED_DATA / "orcl-daily-1995-2014.csv"})
        return stack
    return make


@pytest.fixture
def stack(make_stack):
    return make_stack()
