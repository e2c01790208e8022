"""What every subcommand group shares: the rich console, the progress bar and the `--prefix` option."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()  # as wide as the terminal (80 columns when not a terminal; COLUMNS overrides)

PREFIX = typer.Option("mytrader", "--prefix", help="the stack's resource prefix")


def progress_bar(on: Console | None = None) -> Progress:
    """A transient bar: description, bar, n/total and the elapsed time."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=on or console, transient=True)
