"""AWS settings of the commands that call AWS (`ops`, `model`, `finetune`, `backtest --advisor bedrock`).

The usual variables work (AWS_REGION or AWS_DEFAULT_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...), and so do
`--region` and `--endpoint-url`. boto3 itself reads only AWS_DEFAULT_REGION, so the region is handed to it that
way. An endpoint on this machine (the embedded AWS) needs no real credentials: dummy ones are used when none are
set. What is missing is said in one line (mytrader_tools.cli._errors).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import typer

from mytrader.advisor.prompt import PromptInputs
from mytrader_tools.cli._errors import SET_REGION, UserError, aws_message

if TYPE_CHECKING:
    from mytrader.config import AdvisorSettings

REGION = typer.Option(None, "--region", envvar=["AWS_REGION", "AWS_DEFAULT_REGION"], show_default=False,
                      metavar="REGION", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
ENDPOINT = typer.Option(None, "--endpoint-url", envvar="AWS_ENDPOINT_URL", show_default=False, metavar="URL",
                        help="an AWS-compatible endpoint, e.g. the embedded AWS at http://127.0.0.1:PORT")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def use_aws(ctx: typer.Context, region: str | None, endpoint_url: str | None) -> None:
    """Point boto3 at `region` and `endpoint_url` for this command; the environment is restored after it."""
    changes: dict[str, str] = {}
    if region:
        changes["AWS_DEFAULT_REGION"] = region
    if endpoint_url:
        if not urlparse(endpoint_url).scheme.startswith("http"):
            raise UserError(f"--endpoint-url {endpoint_url}: give a URL such as http://127.0.0.1:4566")
        changes["AWS_ENDPOINT_URL"] = endpoint_url
        if urlparse(endpoint_url).hostname in _LOCAL_HOSTS:
            changes["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
            if not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
                changes.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    ctx.call_on_close(lambda: _restore(saved))


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def bedrock_runtime(settings: AdvisorSettings) -> Any:
    """A Bedrock Runtime client, checked before any work: a region, credentials, and the model answering one
    request exactly as the advisor sends it (a fraction of a cent). UserError in one line otherwise."""
    import boto3

    from mytrader.advisor.llm import LlmAdvisor

    session = boto3.Session(region_name=os.environ.get("AWS_REGION") or None)
    if not session.region_name:
        raise UserError(f"--advisor bedrock needs an AWS region: {SET_REGION.split(' or pass')[0]}")
    client = session.client("bedrock-runtime")
    try:
        client.converse(**LlmAdvisor(client, settings).request(PROBE))
    except Exception as exc:
        message = aws_message(exc)
        if message is None:
            raise
        raise UserError(f"--advisor bedrock: {settings.model_id} in {session.region_name} cannot be used: "
                        f"{message}; enable access to the model in the Bedrock console or set llm.model_id") from None
    return client


PROBE = PromptInputs(symbol="SPY", date="2024-01-02", price=470.0,
                     features={"rsi": 55.0, "macd_atr": 0.1, "bb_pct_b": 0.6, "atr_pct": 0.01, "vol": 0.15,
                               "volume_z": 0.2, "ret_5": 0.01, "ret_20": 0.03, "sma_gap": 0.02, "regime": "trend_up",
                               "vol_regime": "normal"},
                     strategy={"action": "HOLD", "confidence": 0.5}, sentiment={"score": 0.0, "n": 0},
                     position={"side": "flat"}, limits={"max_pct": 20.0, "allow_short": False})
