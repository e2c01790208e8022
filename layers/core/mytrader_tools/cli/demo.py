"""`mytrader demo`: the serverless pipeline end to end on an embedded AWS, then a summary table."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mytrader_tools.cli._console import console
from mytrader_tools.cli._console import progress_bar as _progress


def demo(out: Path = typer.Option(Path("out/demo"), "--out"),
         finetune: bool = typer.Option(True, "--finetune/--no-finetune",
                                       help="run the fine-tuning workflow after the replay")) -> None:
    """The serverless pipeline end to end on an embedded AWS (no account needed): replay, report, summary."""
    import logging
    import warnings

    from mytrader_tools.embedded.demo import run_demo

    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")  # Powertools, local mode
    console.print("[bold]MyTrader demo[/bold]: embedded AWS (moto + local services), local advisor model (not an LLM)")
    with _progress() as prog:
        task = prog.add_task("replaying sessions", total=None)
        summary = run_demo(out, progress=lambda n, total: prog.update(task, completed=n, total=total),
                           with_finetune=finetune)
    table = Table(title="Demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("decisions", "expected_decisions", "llm_calls", "fallbacks", "orders", "fills", "rejected_by_risk",
                "skipped", "dead_lettered", "duplicate_orders", "open_positions", "closed_trades", "cost_usd"):
        table.add_row(key, str(summary[key]))
    m = summary["metrics"]
    for key in ("total_return", "sharpe", "max_drawdown", "win_rate", "trades"):
        table.add_row(f"metrics.{key}", f"{m[key]:.4g}" if isinstance(m[key], float) else str(m[key]))
    table.add_row("parity with backtest", str(summary["parity"]["equal"]))
    if "finetune" in summary:
        ft = summary["finetune"]
        table.add_row("finetune.execution_status", str(ft.get("execution_status")))
        table.add_row("finetune.promoted", str(ft.get("promoted")))
    console.print(table)
    console.print(f"terminal states: {summary['terminal_states']}")
    console.print(f"wrote {out / 'summary.json'} and {out / 'report.html'}")
