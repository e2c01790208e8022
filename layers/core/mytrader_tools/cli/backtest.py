"""`mytrader backtest`: replay history through the decision code, every mode and buy-and-hold side by side."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from mytrader_tools.cli._console import console
from mytrader_tools.cli._console import progress_bar as _progress

if TYPE_CHECKING:
    from mytrader.backtest import BacktestResult
    from mytrader.sentiment.context import NewsContext

ALL_MODES = ["baseline", "consensus", "override", "advisory"]


def symbol_from_path(path: Path) -> str:
    return path.name.split("-")[0].split(".")[0].upper()


def results_json(results: dict[str, BacktestResult], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "runs": {name: r.metrics for name, r in results.items()},
        "trades": {name: [t.model_dump(mode="json") for t in r.trades] for name, r in results.items() if r.trades},
        "rejections": {name: dict(r.rejections) for name, r in results.items() if r.rejections},
        **meta,
    }


def print_runs(results: dict[str, BacktestResult]) -> None:
    table = Table(title="Backtest (fractions: 0.12 = 12 %)")
    cols = ["total_return", "cagr", "sharpe", "max_drawdown", "win_rate", "trades", "llm_accuracy", "llm_calls",
            "cost_usd"]
    table.add_column("run")
    for c in cols:
        table.add_column(c, justify="right")
    for name, r in results.items():
        table.add_row(name, *[("—" if r.metrics.get(c) is None else f"{r.metrics[c]:.4g}") for c in cols])
    console.print(table)


def backtest(
    prices: list[Path] = typer.Option(..., "--prices", help="price CSV (repeat for a portfolio)", exists=True),
    news: Path | None = typer.Option(None, "--news", help="dated headlines CSV (Date,News)", exists=True),
    mode: str = typer.Option("all", "--mode", help="baseline|consensus|override|advisory|all"),
    advisor: str = typer.Option("local", "--advisor", help="local (default, deterministic model) or bedrock"),
    json_out: Path | None = typer.Option(None, "--json"),
    report: Path | None = typer.Option(None, "--report"),
    anonymise: bool = typer.Option(False, "--anonymise", help="look-ahead-safe prompts: no symbol, no dates"),
    allow_short: bool = typer.Option(False, "--allow-short"),
) -> None:
    """Replay history through the decision code: each mode and buy-and-hold, side by side."""
    from mytrader.backtest import run_modes
    from mytrader.config import AdvisorSettings, TradingConfig
    from mytrader.errors import DataQualityError
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

        def tick(m: str, n: int, total: int) -> None:
            prog.update(tasks[m], completed=n, total=total)

        results = run_modes(series, modes, cfg, advisor=advisor, news=news_ctx, progress=tick,  # boto3: bedrock only
                            bedrock=lambda: __import__("boto3").client("bedrock-runtime"))
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


def _news_context(path: Path) -> NewsContext:
    from mytrader.sentiment.context import NewsContext
    from mytrader.sentiment.news import CsvHeadlineSource
    from mytrader.sentiment.scoring import LexiconScorer, SentimentAnalyzer

    src = CsvHeadlineSource(path)
    console.print(f"{len(src)} headlines loaded, {len(src.skipped)} skipped")
    return NewsContext(src, SentimentAnalyzer(LexiconScorer()), market_wide=True)
