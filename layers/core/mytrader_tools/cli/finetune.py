"""`mytrader finetune …`: start the fine-tuning workflow (Step Functions) and answer its manual approval."""
from __future__ import annotations

import json

import typer

from mytrader_tools.cli._console import PREFIX, console

finetune_app = typer.Typer(help="The fine-tuning workflow (Step Functions) of a deployed or embedded stack.")


def _state_machine_arn(prefix: str) -> str:
    import boto3

    from mytrader.stack_spec import STATE_MACHINE_NAME

    sfn = boto3.client("stepfunctions")
    name = f"{prefix}-{STATE_MACHINE_NAME}"
    for page in sfn.get_paginator("list_state_machines").paginate():
        for sm in page["stateMachines"]:
            if sm["name"] == name:
                return sm["stateMachineArn"]
    raise typer.BadParameter(f"no state machine named {name}")


@finetune_app.command("start")
def finetune_start(prefix: str = PREFIX,
                   config: str = typer.Option("{}", "--config", help="workflow input as JSON")) -> None:
    """Start an execution (same as starting it from the Step Functions console)."""
    import boto3

    arn = boto3.client("stepfunctions").start_execution(stateMachineArn=_state_machine_arn(prefix),
                                                        input=json.dumps(json.loads(config)))["executionArn"]
    console.print(f"started {arn}")


@finetune_app.command("approve")
def finetune_approve(prefix: str = PREFIX) -> None:
    """Approve the candidate waiting for manual approval."""
    import boto3

    from mytrader.usecases.learn import answer_approval

    console.print_json(json.dumps(answer_approval(boto3.client("ssm"), boto3.client("stepfunctions"), prefix, True)))


@finetune_app.command("reject")
def finetune_reject(prefix: str = PREFIX,
                    reason: str = typer.Option("rejected by an operator", "--reason")) -> None:
    """Reject the candidate waiting for manual approval (its deployment is deleted)."""
    import boto3

    from mytrader.usecases.learn import answer_approval

    console.print_json(json.dumps(answer_approval(boto3.client("ssm"), boto3.client("stepfunctions"), prefix, False,
                                                  reason)))
