"""`mytrader demo`: the serverless pipeline end to end on an embedded AWS, then a summary table.

Each phase is a labelled stage on the progress display (replay, parity, fine-tuning). The embedded functions'
own output (Powertools' metrics lines, their JSON logs) goes to <out>/handlers.log instead of through the
progress bar; that is the embedded run's doing only, a deployed function's stdout is its CloudWatch log.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from mytrader_tools.cli._config import CONFIG, load
from mytrader_tools.cli._console import console
from mytrader_tools.cli._console import progress_bar as _progress
from mytrader_tools.cli._errors import UserError
from mytrader_tools.cli._outputs import check_output_dir
from mytrader_tools.cli._strategy_choice import STRATEGY, checked_strategy, choose_strategy, strategy_text
from mytrader_tools.report import metric_text

STAGES = {"replay": "replay: the pipeline's handlers, session by session",
          "parity": "parity: the backtester on the same data, fill by fill",
          "fine-tuning": "fine-tuning: the Step Functions workflow on the embedded AWS"}
HANDLER_LOG = "handlers.log"


def demo(out: Path = typer.Option(Path("out/demo"), "--out", metavar="DIR",
                                 help="where summary.json and report.html go"),
         finetune: bool = typer.Option(True, "--finetune/--no-finetune", metavar="",
                                       help="run the fine-tuning workflow after the replay"),
         config: Path | None = CONFIG,
         serve: bool = typer.Option(False, "--serve", metavar="",
                                    help="then keep the embedded AWS running for `mytrader ops --endpoint-url URL ...` "
                                         "until Ctrl-C"),
         strategy: str | None = STRATEGY,
         start: str | None = typer.Option(None, "--start", metavar="YYYY-MM-DD", show_default=False,
                                          help="first session replayed (default 2011-01-03)"),
         end: str | None = typer.Option(None, "--end", metavar="YYYY-MM-DD", show_default=False,
                                        help="last session replayed (default 2012-12-31)")) -> None:
    """The serverless pipeline end to end on an embedded AWS (no account needed): replay, report, summary."""
    from mytrader_tools.embedded.demo import DEMO_FILES, run_demo

    cfg, source = load(config)
    cfg = choose_strategy(cfg, strategy)
    chosen = checked_strategy(cfg)  # a strategy that does not load: one line, before the embedded AWS starts
    first, last = demo_window(start, end)
    check_output_dir(out, "--out")
    with_finetune = finetune and cfg.llm.enabled
    llm = ("the local advisor model stands in for Bedrock (deterministic, not an LLM)" if cfg.llm.enabled
           else "llm.enabled = false: the strategy alone, no Bedrock or Comprehend call, no fine-tuning")
    console.print("[bold]MyTrader demo[/bold]: the serverless pipeline on an embedded AWS (moto + local services)")
    for name, text in (("config", f"{source}: mode {cfg.effective_mode.value}; {llm}"),
                       ("data", f"{' and '.join(DEMO_FILES)} daily bars, {first} to {last} (the demo's own; "
                                "the config's universe is for deploys)"),
                       ("strategy", strategy_text(cfg, chosen)),
                       ("account", f"capital {cfg.backtest.capital:,.0f} USD, fee {cfg.backtest.fee_bps:g} bp and "
                                   f"slippage {cfg.backtest.slippage_bps:g} bp per fill"
                                   + (", fractional shares" if cfg.fractional_shares else "")),
                       ("output", f"{out}: summary.json, report.html, {HANDLER_LOG} (the functions' own output)")):
        console.print(f"  {name:<8} {text}", highlight=False, soft_wrap=True)
    out.mkdir(parents=True, exist_ok=True)
    screen = Console(file=sys.stdout)  # bound now: the functions' output is redirected away from sys.stdout below
    with _progress(screen) as prog, handler_output(out / HANDLER_LOG):
        stages = _Stages(prog, screen)

        def keep_serving(url: str, summary: dict[str, Any]) -> None:
            stages.start(None)
            _print_summary(summary, screen)
            screen.print(f"The embedded AWS keeps running at {url} (Ctrl-C stops it). In another terminal:\n"
                         f"  mytrader ops --endpoint-url {url} --region us-east-1 status", highlight=False)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass

        summary = run_demo(out, progress=stages.progress, with_finetune=with_finetune, stage=stages.start,
                           config=cfg, serve=keep_serving if serve else None, start=first, end=last)
        stages.start(None)
    if not serve:
        _print_summary(summary, console)
    console.print(terminal_states_text(summary["terminal_states"]), highlight=False)
    console.print(f"wrote {out / 'summary.json'} and {out / 'report.html'}")


def demo_window(start: str | None, end: str | None) -> tuple[date, date]:
    """The sessions to replay: --start and --end (YYYY-MM-DD) inside the demo's data, else its two years."""
    from mytrader_tools.embedded.demo import DEMO_END, DEMO_START, WINDOW_FIRST, WINDOW_LAST

    first, last = _day(start, "--start", DEMO_START), _day(end, "--end", DEMO_END)
    if first > last:
        raise UserError(f"--start {first} is after --end {last}")
    if first < WINDOW_FIRST or last > WINDOW_LAST:
        raise UserError(f"the demo's data replays between {WINDOW_FIRST} and {WINDOW_LAST}: "
                        f"{first} to {last} is outside it")
    return first, last


def _day(text: str | None, option: str, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text!r}: write a date as YYYY-MM-DD") from None


class _Stages:
    """One progress line per phase; a finished phase stays on screen with its time."""

    def __init__(self, prog: Any, screen: Console) -> None:
        self.prog, self.screen = prog, screen
        self.task: Any = None
        self.name: str | None = None
        self.started = 0.0
        self.count = ""

    def start(self, name: str | None) -> None:
        if self.task is not None:
            self.prog.remove_task(self.task)
            self.screen.print(f"[green]done[/green] {STAGES[self.name or '']}{self.count} "
                              f"({time.perf_counter() - self.started:.1f} s)", highlight=False)
        self.task, self.name, self.count = None, name, ""
        if name is not None:
            self.task = self.prog.add_task(STAGES[name], total=None)
            self.started = time.perf_counter()

    def progress(self, n: int, total: int) -> None:
        if self.task is not None:
            self.prog.update(self.task, completed=n, total=total)
            self.count = f": {total - 1} sessions (and the next one, where the last orders fill)"  # as ticks


class _AppendingLog:
    """A write-only text stream that appends to a file (and stays usable if something keeps it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            return f.write(text)

    def flush(self) -> None:
        pass


@contextmanager
def handler_output(path: Path) -> Iterator[None]:
    """stdout, logging and warnings of the embedded functions into `path` for the duration."""
    sink = _AppendingLog(path)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [logging.StreamHandler(sink)]
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    powertools = _powertools_handler()
    before = powertools.setStream(sink) if powertools is not None else None
    try:
        with warnings.catch_warnings(), redirect_stdout(sink):
            warnings.filterwarnings("ignore", message="No application metrics to publish")  # Powertools, local
            yield
    finally:
        logging.captureWarnings(False)
        root.handlers, root.level = saved_handlers, saved_level
        powertools = _powertools_handler()  # created during the run, it was bound to the sink
        if powertools is not None:
            powertools.setStream(before or sys.__stdout__)


def _powertools_handler() -> logging.StreamHandler | None:
    module = sys.modules.get("mytrader.observability")
    handler = getattr(getattr(module, "logger", None), "logger_handler", None)
    return handler if isinstance(handler, logging.StreamHandler) else None


def terminal_states_text(states: dict[str, int]) -> str:
    """"decisions by final state: FILLED 4, SKIPPED 79" (the states with none left out)."""
    shown = ", ".join(f"{k} {v:,}" for k, v in states.items() if v) or "none"
    return f"decisions by final state: {shown}"


def finetune_text(ft: dict[str, Any]) -> str:
    """What the fine-tuning workflow did: not run (and why) when there was no dataset to train on."""
    reason = ft.get("dataset_reason")
    if reason and not ft.get("evaluation"):  # the workflow ended without a dataset: nothing was trained
        return f"not run — {reason}"
    return f"workflow {ft.get('execution_status')}, promoted {ft.get('promoted')}"


def _print_summary(summary: dict[str, Any], on: Console) -> None:
    from mytrader_tools.report import quarantine_text

    table = Table(title="Demo summary (rates in %)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("sessions replayed", metric_text("ticks", summary.get("ticks")))
    for key in ("decisions", "expected_decisions", "llm_calls", "fallbacks", "orders", "fills", "rejected_by_risk"):
        table.add_row(key, metric_text(key, summary[key]))
    held = summary.get("skipped_hold")
    if held is None:
        table.add_row("skipped (HOLD decisions included)", metric_text("skipped", summary["skipped"]))
    else:
        table.add_row("HOLD (recorded as SKIPPED)", metric_text("held", held))
        table.add_row("skipped, other reasons", metric_text("skipped", summary["skipped"] - held))
    for key in ("dead_lettered", "duplicate_orders", "open_positions", "closed_trades", "cost_usd"):
        table.add_row(key, metric_text(key, summary[key]))
    m = summary["metrics"]
    for key in ("total_return", "sharpe", "max_drawdown", "win_rate", "trades"):
        table.add_row(f"metrics.{key}", metric_text(key, m[key]))
    table.add_row("strategy", str(summary["strategy"]))
    table.add_row("parity with backtest", str(summary["parity"]["equal"]))
    table.add_row("quarantined bars (data guard)", quarantine_text(summary.get("quarantined") or {}) or "—")
    if "finetune" in summary:
        table.add_row("finetune", finetune_text(summary["finetune"]))
    on.print(table)
