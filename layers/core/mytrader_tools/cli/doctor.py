"""`mytrader doctor`: read-only checks of a deployed (or embedded) stack, one ✓/✗ line each; exit 1 on any ✗."""
from __future__ import annotations

import typer

from mytrader_tools.cli._aws import ENDPOINT, REGION, use_aws
from mytrader_tools.cli._console import PREFIX, console
from mytrader_tools.cli._errors import EXIT_USER, SET_CREDENTIALS, SET_REGION, fail

MODEL = typer.Option(None, "--model-id", show_default=False,
                     help="the advisor model to check [default: the stack's active-model parameter]")


def doctor(ctx: typer.Context, prefix: str = PREFIX, region: str | None = REGION, endpoint_url: str | None = ENDPOINT,
           model_id: str | None = MODEL) -> None:
    """Before the first schedule fires: model access (no paid call), broker secret set, parameters, queues, state
    machine, alarm subscription. Uses your AWS credentials; read-only."""
    import boto3

    from mytrader_tools.doctor import failed, run_doctor

    use_aws(ctx, region, endpoint_url)
    session = boto3.Session()
    if not session.region_name:
        raise fail(f"no AWS region configured: {SET_REGION}", EXIT_USER)
    if session.get_credentials() is None:
        raise fail(f"no AWS credentials found: {SET_CREDENTIALS}", EXIT_USER)
    # no endpoint, expired credentials, not an AWS endpoint...: one line by the same path as every command (_errors)
    checks = run_doctor(session, prefix, session.region_name, model_id)
    for check in checks:
        console.print(check.line(), highlight=False, markup=False, soft_wrap=True)
    bad = sum(c.ok is False for c in checks)
    console.print(f"{bad} problem(s) to fix before the first schedule fires" if bad else
                  "all checks passed", highlight=False, markup=False)
    if failed(checks):
        raise typer.Exit(1)
