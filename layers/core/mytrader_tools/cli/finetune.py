"""`mytrader finetune …`: start the fine-tuning workflow (Step Functions) and answer its manual approval."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer

from mytrader_tools.cli._aws import ENDPOINT, REGION, use_aws
from mytrader_tools.cli._console import PREFIX, console
from mytrader_tools.cli._errors import UserError

finetune_app = typer.Typer(help="The fine-tuning workflow (Step Functions) of a deployed or embedded stack.",
                           no_args_is_help=True)


@finetune_app.callback()
def _aws(ctx: typer.Context, region: str | None = REGION, endpoint_url: str | None = ENDPOINT) -> None:
    """AWS settings: the usual variables (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...) or these options."""
    use_aws(ctx, region, endpoint_url)


def _state_machine_arn(prefix: str) -> str:
    import boto3

    from mytrader.stack_spec import STATE_MACHINE_NAME

    sfn = boto3.client("stepfunctions")
    name = f"{prefix}-{STATE_MACHINE_NAME}"
    for page in sfn.get_paginator("list_state_machines").paginate():
        for sm in page["stateMachines"]:
            if sm["name"] == name:
                return sm["stateMachineArn"]
    raise UserError(f"no state machine named {name}: is the stack deployed there, with this --prefix and region?")


def execution_name(kind: str, now: datetime | None = None) -> str:
    """A name of its own for each execution (an execution name may be used once per state machine)."""
    return f"{kind}-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S%fZ')}"


def _pending(ssm: Any, prefix: str) -> None:
    """UserError unless a candidate waits for an answer (the workflow's pending-approval parameter)."""
    name = f"/{prefix}/pending-approval"
    try:
        ssm.get_parameter(Name=name)
    except ssm.exceptions.ParameterNotFound:
        raise UserError(f"nothing is awaiting approval (no {name} parameter): start a run with require_approval, "
                        "e.g. mytrader finetune start --config '{\"require_approval\": true}'") from None


@finetune_app.command("start")
def finetune_start(prefix: str = PREFIX,
                   config: str = typer.Option("{}", "--config", metavar="JSON", help="workflow input as JSON")) -> None:
    """Start an execution (same as starting it from the Step Functions console)."""
    import boto3

    try:
        workflow_input = json.loads(config)
    except ValueError as exc:
        raise UserError(f"--config is not JSON ({exc}): give e.g. --config '{{\"epochs\": 2}}'") from None
    arn = boto3.client("stepfunctions").start_execution(stateMachineArn=_state_machine_arn(prefix),
                                                        name=execution_name("manual"),
                                                        input=json.dumps(workflow_input))["executionArn"]
    console.print(f"started {arn}")


@finetune_app.command("approve")
def finetune_approve(prefix: str = PREFIX) -> None:
    """Approve the candidate waiting for manual approval."""
    import boto3

    from mytrader.usecases.learn import answer_approval

    ssm = boto3.client("ssm")
    _pending(ssm, prefix)
    console.print_json(json.dumps(answer_approval(ssm, boto3.client("stepfunctions"), prefix, True)))


@finetune_app.command("reject")
def finetune_reject(prefix: str = PREFIX,
                    reason: str = typer.Option("rejected by an operator", "--reason")) -> None:
    """Reject the candidate waiting for manual approval (its deployment is deleted)."""
    import boto3

    from mytrader.usecases.learn import answer_approval

    ssm = boto3.client("ssm")
    _pending(ssm, prefix)
    console.print_json(json.dumps(answer_approval(ssm, boto3.client("stepfunctions"), prefix, False, reason)))
