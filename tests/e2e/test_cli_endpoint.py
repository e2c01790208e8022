"""The CLI against the embedded AWS: a newcomer points `mytrader ops` at it with only --endpoint-url and --region
(no AWS variables, no credentials, a fresh process: what `mytrader demo --serve` tells them to run), and
`backtest --advisor bedrock` goes through its check and the emulated Bedrock Runtime."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mytrader.adapters.tradelog import TradeLog
from mytrader_tools.cli import app
from mytrader_tools.embedded.endpoint import REGION, EmbeddedAws
from mytrader_tools.embedded.stack import LocalStack
from tests.unit.cli_support import prices


@pytest.fixture(scope="module")
def aws():
    with EmbeddedAws() as embedded:
        yield embedded


def test_ops_against_the_embedded_aws_with_only_the_endpoint(aws, tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    clean.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                 AWS_EC2_METADATA_DISABLED="true", COLUMNS="200")
    # Given a stack on the embedded AWS, and a shell with no AWS settings at all
    stack = LocalStack(aws, prefix="newcomer").create()
    TradeLog(stack.client("dynamodb"), stack.settings_env["TRADE_LOG_TABLE"]).ensure_account(100_000.0)
    cli = [sys.executable, "-m", "mytrader_tools.cli", "ops", "--endpoint-url", aws.url, "--region", REGION]
    # When the operator halts the stack from there
    halt = subprocess.run([*cli, "halt", "--prefix", "newcomer"], env=clean, capture_output=True, text=True,
                          timeout=120)
    # Then it works against the embedded AWS: the kill switch is on
    assert halt.returncode == 0, halt.stderr
    assert "kill switch ON" in halt.stdout and stack.get_param("KILL_SWITCH") == "on"
    assert TradeLog(stack.client("dynamodb"), stack.settings_env["TRADE_LOG_TABLE"]).account_state().kill_switch


def test_backtest_with_bedrock_checks_then_asks_the_model(aws, tmp_path, monkeypatch):
    # Given the embedded AWS's endpoint, region and credentials in the environment (its Bedrock Runtime answers
    # Converse with the local model)
    monkeypatch.chdir(tmp_path)
    name = prices(tmp_path, "abc.csv", n=300)
    # When backtesting override with --advisor bedrock
    res = CliRunner().invoke(app, ["backtest", "--prices", name, "--mode", "override", "--advisor", "bedrock",
                                   "--json", "b.json"])
    # Then the run is labelled with the configured model and its calls are counted and costed
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["advisor"] == "Amazon Bedrock us.anthropic.claude-haiku-4-5-20251001-v1:0"
    run = data["runs"]["override"]
    assert run["llm_calls"] > 0 and run["llm_fallbacks"] == 0 and run["cost_usd"] > 0
