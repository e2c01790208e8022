"""`mytrader model …`: the advisor model the decision cycle uses (rollback to the previous one)."""
from __future__ import annotations

import json

import typer

from mytrader_tools.cli._aws import ENDPOINT, REGION, use_aws
from mytrader_tools.cli._console import PREFIX, console
from mytrader_tools.cli._errors import UserError

model_app = typer.Typer(help="The advisor model the decision cycle uses.", no_args_is_help=True)


@model_app.callback()
def _aws(ctx: typer.Context, region: str | None = REGION, endpoint_url: str | None = ENDPOINT) -> None:
    """AWS settings: the usual variables (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...) or these options."""
    use_aws(ctx, region, endpoint_url)


@model_app.command("rollback")
def model_rollback(prefix: str = PREFIX) -> None:
    """Restore the previous active model id (no redeploy: the decision cycle reads it from SSM)."""
    import boto3

    from mytrader.usecases.learn import rollback

    try:
        switched = rollback(boto3.client("ssm"), prefix)
    except ValueError as exc:  # the stack's situation (no previous model), not a bug
        raise UserError(f"{exc}: model rollback restores the model active before the last promotion, "
                        "and none was promoted yet on stack " + prefix) from None
    console.print_json(json.dumps(switched))
