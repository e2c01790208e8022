"""`mytrader ops …`: operate a deployed (or embedded) stack — status, kill switch, flatten, DLQ redrive."""
from __future__ import annotations

import json

import typer

from mytrader_tools.cli._aws import ENDPOINT, REGION, use_aws
from mytrader_tools.cli._console import PREFIX, console
from mytrader_tools.cli._errors import UserError

ops_app = typer.Typer(help="Operate a deployed (or embedded) stack. AWS settings: the usual variables "
                           "(AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...) or --region / --endpoint-url.",
                      no_args_is_help=True)


@ops_app.callback()
def _aws(ctx: typer.Context, region: str | None = REGION, endpoint_url: str | None = ENDPOINT) -> None:
    use_aws(ctx, region, endpoint_url)


@ops_app.command("status")
def ops_status(prefix: str = PREFIX) -> None:
    """Kill switch, mode, model, account, positions, decisions by state, queue depths."""
    from mytrader_tools.ops import Ops

    console.print_json(json.dumps(Ops(prefix).status(), default=str))


@ops_app.command("halt")
def ops_halt(prefix: str = PREFIX) -> None:
    """Trip the kill switch: no new entries, exits still allowed (reduce-only)."""
    from mytrader_tools.ops import Ops

    Ops(prefix).set_kill_switch(True)
    console.print("[red]kill switch ON[/red]: new entries are rejected; exits still run")


@ops_app.command("resume")
def ops_resume(prefix: str = PREFIX) -> None:
    """Release the kill switch."""
    from mytrader_tools.ops import Ops

    Ops(prefix).set_kill_switch(False)
    console.print("[green]kill switch OFF[/green]")


@ops_app.command("flatten")
def ops_flatten(prefix: str = PREFIX,
                yes: bool = typer.Option(False, "--yes", "-y", metavar="",
                                         help="do not ask for a confirmation")) -> None:
    """Close every open position through the executor (reduce-only). Asks first, unless --yes."""
    from mytrader_tools.ops import Ops

    ops = Ops(prefix)
    if not yes:
        held = sorted(p.symbol for p in ops.tl.positions())
        if not held:
            console.print("no open position: nothing to close")
            return
        try:
            sure = typer.confirm(f"Close all {len(held)} open position(s) of stack {prefix} ({', '.join(held)})?")
        except typer.Abort:
            typer.echo()  # the question ends without a newline: the error goes on a line of its own
            raise UserError("ops flatten closes every open position: answer y to the question, or pass --yes") \
                from None
        if not sure:
            console.print("nothing done")
            raise typer.Exit(1)
    sent = ops.flatten()
    console.print(f"{len(sent)} close decisions queued")


@ops_app.command("redrive-dlq")
def ops_redrive(prefix: str = PREFIX) -> None:
    """Move dead-lettered decisions back to the queue (stale ones are then rejected by the executor)."""
    from mytrader_tools.ops import Ops

    console.print_json(json.dumps(Ops(prefix).redrive_dlq()))
