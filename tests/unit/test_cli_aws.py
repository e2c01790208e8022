"""The AWS commands (ops, model, finetune) without AWS settings, with only a region, against an endpoint that does
not answer: one line each. `ops flatten` asks first. No request leaves the machine."""
from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from mytrader_tools.cli import app
from tests.unit import cli_support
from tests.unit.cli_support import one_line_error

no_aws = cli_support.no_aws  # a fixture

COMMANDS = [["ops", "status"], ["ops", "halt"], ["model", "rollback"], ["finetune", "start"],
            ["finetune", "approve"]]


def run(*args: str, **kw):
    return CliRunner().invoke(app, list(args), **kw)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_without_a_region_one_line_says_what_to_set(no_aws, command):
    one_line_error(run(*command), "no AWS region configured: set AWS_REGION", "--region")


@pytest.mark.parametrize("command", COMMANDS[::2], ids=" ".join)
def test_with_only_aws_region_the_credentials_are_what_is_missing(no_aws, monkeypatch, command):
    # Given AWS_REGION alone (boto3 itself reads only AWS_DEFAULT_REGION) / Then the region is taken
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    one_line_error(run(*command), "no AWS credentials found", "AWS_PROFILE", "--endpoint-url")
    assert "AWS_DEFAULT_REGION" not in os.environ  # the command's settings do not outlive it


def test_an_endpoint_that_does_not_answer_is_one_line(no_aws, monkeypatch):
    # Given the embedded AWS's address with nothing listening (dummy credentials are used for a local endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    one_line_error(run("ops", "--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1", "status"),
                   "cannot reach http://127.0.0.1:9", "--endpoint-url")
    assert "AWS_ENDPOINT_URL" not in os.environ and "AWS_ACCESS_KEY_ID" not in os.environ
    one_line_error(run("ops", "--endpoint-url", "127.0.0.1:9", "status"), "give a URL")


class FakeOps:
    """Ops with two open positions, in memory."""
    flattened = 0

    def __init__(self, prefix: str) -> None:
        from types import SimpleNamespace

        self.tl = SimpleNamespace(positions=lambda: [SimpleNamespace(symbol="NVDA"), SimpleNamespace(symbol="ORCL")])

    def flatten(self) -> list[str]:
        FakeOps.flattened += 1
        return ["d1", "d2"]


@pytest.fixture
def fake_ops(monkeypatch):
    import mytrader_tools.ops

    FakeOps.flattened = 0
    monkeypatch.setattr(mytrader_tools.ops, "Ops", FakeOps)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return FakeOps


def test_flatten_asks_first(fake_ops):
    # When the operator answers no / Then nothing is closed
    res = run("ops", "flatten", input="n\n")
    assert res.exit_code == 1 and "Close all 2 open position(s) of stack mytrader (NVDA, ORCL)?" in res.output
    assert fake_ops.flattened == 0
    # When nobody can answer (no terminal, no input) / Then one line says how to confirm
    res = run("ops", "flatten")
    assert res.exit_code == 2 and res.stderr == \
        "error: ops flatten closes every open position: answer y to the question, or pass --yes\n"
    assert fake_ops.flattened == 0
    # When the operator answers yes, or passes --yes / Then the positions are closed
    assert run("ops", "flatten", input="y\n").exit_code == 0 and fake_ops.flattened == 1
    res = run("ops", "flatten", "--yes")
    assert res.exit_code == 0 and "2 close decisions queued" in res.stdout and fake_ops.flattened == 2


def test_a_workflow_input_that_is_not_json_is_one_line(no_aws):
    one_line_error(run("finetune", "start", "--config", "{epochs: 2"), "--config is not JSON")
