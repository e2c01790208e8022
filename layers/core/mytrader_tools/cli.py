"""`mytrader` command line: backtests, the local demo, operations and fine-tuning (typer + rich)."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="MyTrader: LLM-assisted trading, backtests and the local serverless demo.", no_args_is_help=True)
console = Console(width=150)



@app.callback()
def _root() -> None:
    """MyTrader command line."""


ALL_MODES = ["baseline", "consensus", "override", "advisory"]


def symbol_from_path(path: Path) -> str:
    return path.name.split("-")[0].split(".")[0].upper()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def results_json(results: dict, meta: dict) -> dict:
    return {
        "runs": {name: r.metrics for name, r in results.items()},
        "trades": {name: [t.model_dump(mode="json") for t in r.trades] for name, r in results.items() if r.trades},
        "rejections": {name: dict(r.rejections) for name, r in results.items() if r.rejections},
        **meta,
    }


def print_runs(results: dict) -> None:
    table = Table(title="Backtest (fractions: 0.12 = 12 %)")
    cols = ["total_return", "cagr", "sharpe", "max_drawdown", "win_rate", "trades", "llm_accuracy", "llm_calls", "cost_usd"]
    table.add_column("run")
    for c in cols:
        table.add_column(c, justify="right")
    for name, r in results.items():
        table.add_row(name, *[("—" if r.metrics.get(c) is None else f"{r.metrics[c]:.4g}") for c in cols])
    console.print(table)


@app.command()
def backtest(
    prices: list[Path] = typer.Option(..., "--prices", help="price CSV (repeat for a portfolio)", exists=True),
    news: Path | None = typer.Option(None, "--news", help="dated headlines CSV (Date,News)", exists=True),
    mode: str = typer.Option("all", "--mode", help="baseline|consensus|override|advisory|all"),
    advisor: str = typer.Option("local", "--advisor", help="local (default, deterministic model) or bedrock"),
    json_out: Path | None = typer.Option(None, "--json"),
    report: Path | None = typer.Option(None, "--report"),
    anonymise: bool = typer.Option(False, "--anonymise", help="look-ahead-safe prompts: no symbol, no dates"),
    allow_short: bool = typer.Option(False, "--allow-short"),
):
    """Replay history through the decision code: each mode and buy-and-hold, side by side."""
    from mytrader.backtest import run_modes
    from mytrader.config import AdvisorSettings, TradingConfig
    from mytrader.market.series import DataQualityError
    from mytrader.market.sources import parse_price_csv

    modes = ALL_MODES if mode == "all" else [mode]
    if any(m not in ALL_MODES for m in modes):
        raise typer.BadParameter(f"--mode must be one of {ALL_MODES + ['all']}")
    if advisor not in ("local", "bedrock"):
        raise typer.BadParameter("--advisor must be local or bedrock")
    series = {}
    for p in prices:
        try:
            series[symbol_from_path(p)] = parse_price_csv(p.read_text(), symbol_from_path(p))
        except DataQualityError as exc:
            console.print(f"[red]skipped {p}: {exc}[/red]")
    if not series:
        raise typer.Exit(2)
    news_ctx = _news_context(news) if news else None
    cfg = TradingConfig(allow_short=allow_short, advisor=AdvisorSettings(anonymise=anonymise))
    with _progress() as prog:
        tasks = {m: prog.add_task(f"{m:>10}", total=None) for m in modes}

        def tick(m, n, total):
            prog.update(tasks[m], completed=n, total=total)

        results = run_modes(series, modes, cfg, advisor=advisor, news=news_ctx, progress=tick)
    label = ("local advisor model (deterministic, not an LLM); cost estimated at Claude Haiku 4.5 prices"
             if advisor == "local" else f"Amazon Bedrock {cfg.advisor.model_id}")
    print_runs(results)
    meta = {"advisor": label, "symbols": sorted(series), "config_version": cfg.version,
            "news": str(news) if news else None}
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results_json(results, meta), indent=1))
        console.print(f"wrote {json_out}")
    if report:
        from mytrader_tools.report import render_report

        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(render_report(results, f"MyTrader backtest: {', '.join(sorted(series))}", label))
        console.print(f"wrote {report}")


@app.command()
def demo(out: Path = typer.Option(Path("out/demo"), "--out"),
         finetune: bool = typer.Option(True, "--finetune/--no-finetune", help="run the fine-tuning workflow after the replay")):
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


ops_app = typer.Typer(help="Operate a deployed (or embedded) stack: AWS credentials and endpoint from the environment.")
app.add_typer(ops_app, name="ops")
PREFIX = typer.Option("mytrader", "--prefix", help="the stack's resource prefix")


@ops_app.command("status")
def ops_status(prefix: str = PREFIX):
    """Kill switch, mode, model, account, positions, decisions by state, queue depths."""
    from mytrader_tools.ops import Ops

    console.print_json(json.dumps(Ops(prefix).status(), default=str))


@ops_app.command("halt")
def ops_halt(prefix: str = PREFIX):
    """Trip the kill switch: no new entries, exits still allowed (reduce-only)."""
    from mytrader_tools.ops import Ops

    Ops(prefix).set_kill_switch(True)
    console.print("[red]kill switch ON[/red]: new entries are rejected; exits still run")


@ops_app.command("resume")
def ops_resume(prefix: str = PREFIX):
    """Release the kill switch."""
    from mytrader_tools.ops import Ops

    Ops(prefix).set_kill_switch(False)
    console.print("[green]kill switch OFF[/green]")


@ops_app.command("flatten")
def ops_flatten(prefix: str = PREFIX):
    """Close every open position through the executor (reduce-only)."""
    from mytrader_tools.ops import Ops

    sent = Ops(prefix).flatten()
    console.print(f"{len(sent)} close decisions queued")


@ops_app.command("redrive-dlq")
def ops_redrive(prefix: str = PREFIX):
    """Move dead-lettered decisions back to the queue (stale ones are then rejected by the executor)."""
    from mytrader_tools.ops import Ops

    console.print_json(json.dumps(Ops(prefix).redrive_dlq()))


finetune_app = typer.Typer(help="The fine-tuning workflow (Step Functions) of a deployed or embedded stack.")
app.add_typer(finetune_app, name="finetune")
model_app = typer.Typer(help="The advisor model the decision cycle uses.")
app.add_typer(model_app, name="model")


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
def finetune_start(prefix: str = PREFIX, config: str = typer.Option("{}", "--config", help="workflow input as JSON")):
    """Start an execution (same as starting it from the Step Functions console)."""
    import boto3

    arn = boto3.client("stepfunctions").start_execution(stateMachineArn=_state_machine_arn(prefix),
                                                        input=json.dumps(json.loads(config)))["executionArn"]
    console.print(f"started {arn}")


@finetune_app.command("approve")
def finetune_approve(prefix: str = PREFIX):
    """Approve the candidate waiting for manual approval."""
    import boto3

    from mytrader.usecases.learn import answer_approval

    console.print_json(json.dumps(answer_approval(boto3.client("ssm"), boto3.client("stepfunctions"), prefix, True)))


@finetune_app.command("reject")
def finetune_reject(prefix: str = PREFIX, reason: str = typer.Option("rejected by an operator", "--reason")):
    """Reject the candidate waiting for manual approval (its deployment is deleted)."""
    import boto3

    from mytrader.usecases.learn import answer_approval

    console.print_json(json.dumps(answer_approval(boto3.client("ssm"), boto3.client("stepfunctions"), prefix, False,
                                                  reason)))


@model_app.command("rollback")
def model_rollback(prefix: str = PREFIX):
    """Restore the previous active model id (no redeploy: the decision cycle reads it from SSM)."""
    import boto3

    from mytrader.usecases.learn import rollback

    console.print_json(json.dumps(rollback(boto3.client("ssm"), prefix)))


def _news_context(path: Path):
    from mytrader.sentiment.context import NewsContext
    from mytrader.sentiment.news import CsvHeadlineSource
    from mytrader.sentiment.scoring import LexiconScorer, SentimentAnalyzer

    src = CsvHeadlineSource(path)
    console.print(f"{len(src)} headlines loaded, {len(src.skipped)} skipped")
    return NewsContext(src, SentimentAnalyzer(LexiconScorer()), market_wide=True)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
