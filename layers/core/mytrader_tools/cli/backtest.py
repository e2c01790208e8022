"""`mytrader backtest`: replay history through the decision code, every mode and buy-and-hold side by side."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from mytrader.app.project_config import Override, read_utf8
from mytrader_tools.cli._config import CONFIG, load
from mytrader_tools.cli._console import console
from mytrader_tools.cli._console import progress_bar as _progress
from mytrader_tools.cli._errors import UserError
from mytrader_tools.cli._outputs import check_output_file
from mytrader_tools.cli._prices import SYMBOL_RULE, load_prices, price_files, window_start
from mytrader_tools.cli._strategy_choice import STRATEGY, checked_strategy, choose_strategy, strategy_text
from mytrader_tools.report import metric_text

if TYPE_CHECKING:
    from mytrader.advisor.costs import CostRecord
    from mytrader.app.project_config import ProjectConfig
    from mytrader.backtest import BacktestResult
    from mytrader.config import TradingConfig
    from mytrader.market.series import BarSeries
    from mytrader.sentiment.context import NewsContext
    from mytrader.strategies import Strategy

ALL_MODES = ["baseline", "consensus", "override", "advisory"]
LOCAL_LABEL = "local advisor model (deterministic, not an LLM); cost estimated at Claude Haiku 4.5 prices"
PERFORMANCE = [("total_return", "return"), ("cagr", "CAGR"), ("sharpe", "Sharpe"), ("max_drawdown", "max DD"),
               ("win_rate", "win rate"), ("trades", "trades")]
ADVISOR = [("llm_accuracy", "LLM acc."), ("llm_fresh_calls", "fresh calls"), ("llm_cache_hits", "cache hits"),
           ("cost_usd", "cost USD")]
TITLE = "Backtest: returns and rates in %; the advisor's calls and cost are each mode's as if run alone"


def results_json(results: dict[str, BacktestResult], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "runs": {name: r.metrics for name, r in results.items()},
        "trades": {name: [t.model_dump(mode="json") for t in r.trades] for name, r in results.items() if r.trades},
        "rejections": {name: dict(r.rejections) for name, r in results.items() if r.rejections},
        **meta,
    }


def fresh_calls(metrics: Any) -> int | None:
    """Requests sent to the model: every call that was not served from the response cache."""
    if "llm_cache_hits" not in metrics:
        return None
    return int(metrics.get("llm_calls", 0)) - int(metrics["llm_cache_hits"])


def print_runs(results: dict[str, BacktestResult]) -> None:
    """One table when the terminal is wide enough, else performance and advisor figures one below the other, and
    on a terminal too narrow for those, each run's figures as lines (never a figure cut short)."""
    whole = _table(results, PERFORMANCE + ADVISOR, TITLE)
    if _fits(whole):
        console.print(whole)
        return
    parts = [_table(results, PERFORMANCE, "Backtest: returns and rates in %"),
             _table(results, ADVISOR, "Advisor: each mode's calls and cost as if run alone")]
    if all(_fits(table) for table in parts):
        for table in parts:
            console.print(table)
        return
    console.print(TITLE)
    for name, r in results.items():
        m = {**r.metrics, "llm_fresh_calls": fresh_calls(r.metrics)}
        console.print(f"{name}:", highlight=False)
        for key, label in PERFORMANCE + ADVISOR:
            console.print(f"  {' '.join(label.split())}: {metric_text(key, m.get(key))}", highlight=False)


def _fits(table: Table) -> bool:
    return console.measure(table, options=console.options.update_width(10_000)).maximum <= console.width


def _table(results: dict[str, BacktestResult], columns: list[tuple[str, str]], title: str) -> Table:
    table = Table(title=title)
    table.add_column("run", no_wrap=True)
    for _, label in columns:
        table.add_column(label, justify="right", no_wrap=True)
    for name, r in results.items():
        m = {**r.metrics, "llm_fresh_calls": fresh_calls(r.metrics)}
        table.add_row(name, *[metric_text(key, m.get(key)) for key, _ in columns])
    return table


def backtest(
    prices: list[str] = typer.Option(..., "--prices", metavar="PATH", show_default=False,
                                     help="price CSV (Date,Open,High,Low,Close,Volume), or SYMBOL=PATH; repeat for "
                                          "a portfolio"),
    symbol: list[str] = typer.Option([], "--symbol", show_default=False, metavar="SYMBOL",
                                     help=f"the symbol of each --prices file, in order (default: {SYMBOL_RULE})"),
    news: Path | None = typer.Option(None, "--news", help="dated headlines CSV (Date,News)", show_default=False,
                                     metavar="PATH"),
    mode: str = typer.Option("all", "--mode", metavar="MODE", help="baseline, consensus, override, advisory or all"),
    advisor: str | None = typer.Option(None, "--advisor", show_default=False, metavar="local|bedrock",
                                       help="the deterministic local model (not an LLM) or Amazon Bedrock "
                                            "(config backtest.advisor, default local)"),
    config: Path | None = CONFIG,
    start: str | None = typer.Option(None, "--start", metavar="YYYY-MM-DD", show_default=False,
                                     help="first day trading may happen; earlier bars warm up (config backtest.start)"),
    end: str | None = typer.Option(None, "--end", metavar="YYYY-MM-DD", show_default=False,
                                   help="last day of data used (config backtest.end)"),
    cash: float | None = typer.Option(None, "--cash", show_default=False, metavar="USD",
                                      help="starting capital (config backtest.capital, default 100,000)"),
    fee_bps: float | None = typer.Option(None, "--fee-bps", show_default=False, metavar="BP",
                                         help="fee per fill in basis points (config backtest.fee_bps, default 1)"),
    slippage_bps: float | None = typer.Option(None, "--slippage-bps", show_default=False, metavar="BP",
                                              help="slippage per fill in basis points "
                                                   "(config backtest.slippage_bps, default 2)"),
    json_out: Path | None = typer.Option(None, "--json", help="write every figure (fractions) as JSON",
                                         show_default=False, metavar="PATH"),
    report: Path | None = typer.Option(None, "--report", help="write an HTML report", show_default=False,
                                       metavar="PATH"),
    anonymise: bool | None = typer.Option(None, "--anonymise/--no-anonymise", show_default=False, metavar="",
                                          help="look-ahead-safe prompts: no symbol, no dates (config llm.anonymise)"),
    allow_short: bool | None = typer.Option(None, "--allow-short/--no-allow-short", show_default=False,
                                            metavar="", help="open short positions (config allow_short)"),
    strategy: str | None = STRATEGY,
    fractional: bool | None = typer.Option(None, "--fractional/--no-fractional", show_default=False, metavar="",
                                           help="size in fractions of a share (config fractional_shares)"),
) -> None:
    """Replay history through the decision code: each mode and buy-and-hold, side by side."""
    cfg, source = load(config, [
        Override("backtest.capital", cash, "--cash"), Override("backtest.fee_bps", fee_bps, "--fee-bps"),
        Override("backtest.slippage_bps", slippage_bps, "--slippage-bps"), Override("backtest.start", start, "--start"),
        Override("backtest.end", end, "--end"), Override("backtest.advisor", advisor, "--advisor"),
        Override("llm.anonymise", anonymise, "--anonymise"), Override("allow_short", allow_short, "--allow-short"),
        Override("fractional_shares", fractional, "--fractional")])
    cfg = choose_strategy(cfg, strategy)
    modes = _modes(mode, cfg, source, advisor_given=advisor is not None)
    base = cfg.trading_config()
    chosen = checked_strategy(cfg)  # a strategy that does not load: one line, before any work
    files = price_files(prices, symbol)
    _check_outputs(json_out, report, files, news, source)
    series = load_prices(files, base.warmup_bars, cfg.backtest.start, cfg.backtest.end)
    asks_llm = any(m != "baseline" for m in modes)
    news_ctx = _news_context(news) if news and asks_llm else None
    kind = cfg.backtest.advisor
    client = None
    if kind == "bedrock" and asks_llm:
        from mytrader_tools.cli._aws import bedrock_runtime

        client = bedrock_runtime(base.advisor)  # checked before any work
    label = LOCAL_LABEL if kind == "local" else f"Amazon Bedrock {cfg.llm.model_id}"
    if not asks_llm:
        label = "none: the strategy alone" + (" (llm.enabled = false)" if not cfg.llm.enabled else "")
    settings = _header(cfg, source, files, series, base, label, modes, chosen)
    results, costs = _run(series, modes, base, kind, news_ctx, client, window_start(cfg.backtest.start))
    print_runs(results)
    from mytrader_tools.report import quarantine_line

    guard = quarantine_line(results)  # weekend or holiday rows, price jumps, gaps: not decided on
    if guard:
        console.print(guard, highlight=False, soft_wrap=True)
    for name, r in results.items():  # entries the executor's rules refused: why a run made fewer trades
        if r.rejections:
            console.print(f"{name}: entries refused by the risk limits or the price collar: "
                          + ", ".join(f"{why} {n:,}" for why, n in sorted(r.rejections.items())), highlight=False)
    if asks_llm:
        console.print(f"All modes together cost {metric_text('cost_usd', costs.billed_usd())} USD "
                      "(one response cache shared by the modes; each row is that mode alone).")
    meta = {"advisor": label, "symbols": sorted(series), "config_version": base.version, "config": source,
            "news": str(news) if news_ctx else None, "capital": base.initial_equity, "fee_bps": base.fee_bps,
            "slippage_bps": base.slippage_bps, "start": _iso(cfg.backtest.start), "end": _iso(cfg.backtest.end),
            "strategy": chosen.label, "strategy_fingerprint": chosen.fingerprint(),
            "fractional_shares": base.fractional_shares,
            "billed_usd": round(costs.billed_usd(), 6)}
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results_json(results, meta), indent=1))
        console.print(f"wrote {json_out}")
    if report:
        from mytrader_tools.report import render_report

        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(render_report(results, f"MyTrader backtest: {', '.join(sorted(series))}", label,
                                        notes=[f"{name}: {text}" for name, text in settings]))
        console.print(f"wrote {report}")


def _check_outputs(json_out: Path | None, report: Path | None, files: list[Any], news: Path | None,
                   source: str) -> None:
    """Neither output is a file the run reads (a price file, the news, the config), nor an existing file of
    another kind, nor the other output."""
    inputs = [("--prices", f.path) for f in files]
    if news is not None:
        inputs.append(("--news", news))
    if Path(source).is_file():
        inputs.append(("config", Path(source)))
    for path, option, example in ((json_out, "--json", "backtest.json"), (report, "--report", "report.html")):
        if path is not None:
            check_output_file(path, option, example, inputs)
    if json_out is not None and report is not None and json_out.resolve() == report.resolve():
        raise UserError("--json and --report name the same file: give each its own")


def _iso(day: Any) -> str | None:
    return day.isoformat() if day is not None else None


def _modes(mode: str, cfg: ProjectConfig, source: str, advisor_given: bool) -> list[str]:
    if mode != "all" and mode not in ALL_MODES:
        raise UserError(f"--mode {mode}: use one of {', '.join(ALL_MODES)} or all")
    if cfg.llm.enabled:
        return ALL_MODES if mode == "all" else [mode]
    if mode not in ("all", "baseline"):
        raise UserError(f"--mode {mode} asks the LLM, but llm.enabled = false ({source}): set llm.enabled = true, "
                        "or use --mode baseline")
    if advisor_given and cfg.backtest.advisor == "bedrock":
        raise UserError(f"--advisor bedrock, but llm.enabled = false ({source}): set llm.enabled = true")
    return ["baseline"]


def _header(cfg: ProjectConfig, source: str, files: list[Any], series: dict[str, BarSeries], base: TradingConfig,
            label: str, modes: list[str], chosen: Strategy) -> list[tuple[str, str]]:
    """The run's settings, printed before it starts; the report states them too."""
    console.print("[bold]MyTrader backtest[/bold]")
    rows = [("config", f"{source}; version {base.version}, part of every decision id")]
    for f in files:
        s = series[f.symbol]
        rows.append(("data", f"{f.symbol} from {f.path}: {len(s):,} bars, {s.time(0).date()} to "
                             f"{s.time(len(s) - 1).date()} ({_warm_up_text(s, base, chosen, cfg.backtest.start)})"))
    rows += [("account", f"capital {base.initial_equity:,.0f} USD, fee {base.fee_bps:g} bp and slippage "
                         f"{base.slippage_bps:g} bp per fill" + (", shorts allowed" if base.allow_short else "")
                         + (", fractional shares" if base.fractional_shares else "")),
             ("strategy", strategy_text(cfg, chosen)),
             ("advisor", label), ("runs", ", ".join(modes) + ", buy_and_hold")]
    for name, text in rows:
        console.print(f"  {name:<8} {text}", highlight=False, soft_wrap=True)
    return rows


def _warm_up_text(s: BarSeries, base: TradingConfig, chosen: Strategy, start: Any) -> str:
    """When the first decision can be taken on this file, and why not earlier (the backtester's own rule)."""
    from mytrader.backtest import first_decision_bar

    warmup = max(base.warmup_bars, chosen.warmup)
    opens = window_start(start)
    first = first_decision_bar(s.ts, warmup, int(opens.timestamp()) if opens is not None else None)
    if first >= len(s):
        return f"no decision: {len(s)} bars, {warmup} warm up the indicators"
    return f"decisions from {s.time(first).date()}; the {first:,} bars before warm up the indicators"


def _run(series: dict[str, BarSeries], modes: list[str], base: TradingConfig, kind: str,
         news: NewsContext | None, client: Any, trade_from: datetime | None,
         ) -> tuple[dict[str, BacktestResult], CostRecord]:
    from mytrader.advisor.costs import CostRecord
    from mytrader.backtest import run_modes

    costs = CostRecord()
    with _progress() as prog:
        tasks = {m: prog.add_task(f"{m:>10}", total=None) for m in modes}

        def tick(m: str, n: int, total: int) -> None:
            prog.update(tasks[m], completed=n, total=total)

        results = run_modes(series, modes, base, advisor=kind, news=news, progress=tick,
                            bedrock=(lambda: client) if client is not None else None, costs=costs,
                            trade_from=trade_from)
    return results, costs


def _news_context(path: Path) -> NewsContext:
    from mytrader.sentiment.context import NewsContext
    from mytrader.sentiment.news import CsvHeadlineSource
    from mytrader.sentiment.scoring import LexiconScorer, SentimentAnalyzer

    text = read_utf8(path, "news file")
    try:
        src = CsvHeadlineSource(text=text)
    except ValueError as exc:
        raise UserError(f"news file {path}: {exc}") from None
    console.print(f"{len(src)} headlines loaded, {len(src.skipped)} skipped")
    return NewsContext(src, SentimentAnalyzer(LexiconScorer()), market_wide=True)
