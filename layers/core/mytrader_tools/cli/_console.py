"""What every subcommand group shares: the rich console, the progress bar and the `--prefix` option."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(width=150)

PREFIX = typer.Option("mytrader", "--prefix", help="the stack's resource prefix")


def progress_bar() -> Progress:
    """A transient bar: description, bar, n/total and the elapsed time."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)
