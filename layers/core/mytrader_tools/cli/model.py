"""`mytrader model …`: the advisor model the decision cycle uses (rollback to the previous one)."""
from __future__ import annotations

import json

import typer

from mytrader_tools.cli._console import PREFIX, console

model_app = typer.Typer(help="The advisor model the decision cycle uses.")


@model_app.command("rollback")
def model_rollback(prefix: str = PREFIX) -> None:
    """Restore the previous active model id (no redeploy: the decision cycle reads it from SSM)."""
    import boto3

    from mytrader.usecases.learn import rollback

    console.print_json(json.dumps(rollback(boto3.client("ssm"), prefix)))
