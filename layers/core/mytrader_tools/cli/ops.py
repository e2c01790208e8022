"""`mytrader ops …`: operate a deployed (or embedded) stack — status, kill switch, flatten, DLQ redrive."""
from __future__ import annotations

import json

import typer

from mytrader_tools.cli._console import PREFIX, console

ops_app = typer.Typer(help="Operate a deployed (or embedded) stack: AWS credentials and endpoint from the environment.")


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
def ops_flatten(prefix: str = PREFIX) -> None:
    """Close every open position through the executor (reduce-only)."""
    from mytrader_tools.ops import Ops

    sent = Ops(prefix).flatten()
    console.print(f"{len(sent)} close decisions queued")


@ops_app.command("redrive-dlq")
def ops_redrive(prefix: str = PREFIX) -> None:
    """Move dead-lettered decisions back to the queue (stale ones are then rejected by the executor)."""
    from mytrader_tools.ops import Ops

    console.print_json(json.dumps(Ops(prefix).redrive_dlq()))
