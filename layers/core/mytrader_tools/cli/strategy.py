"""`mytrader strategy …`: the bundled strategies, a new one from the template, and the look-ahead check.

Registered by the root app as `strategy` (mytrader_tools.cli); `app` is this module's typer app.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mytrader_tools.cli._errors import EXIT_USER, UserError

if TYPE_CHECKING:
    from mytrader.market.series import BarSeries
    from mytrader.strategies import Strategy

app = typer.Typer(help="Strategies: the bundled library, a new one of your own, the look-ahead check.",
                  no_args_is_help=True)
DEFAULT_PRICES = Path(__file__).resolve().parents[1] / "embedded" / "data" / "nvda-daily-1999-2014.csv"
SHOWN_DIFFERENCES = 10


@app.command("list")
def list_strategies() -> None:
    """The bundled strategies: name, version, warm-up, time limit and parameters (each with its default and range)."""
    from mytrader.config import TradingConfig
    from mytrader.strategies import BUILTINS, DEFAULT_STRATEGY

    base = TradingConfig()  # the defaults: what a run uses unless the config file changes them
    for name, cls in BUILTINS.items():
        strategy = cls()
        warm = max(base.warmup_bars, strategy.warmup)
        why = "its indicators'" if strategy.warmup > base.warmup_bars else "the config's warmup_bars, at least"
        limit = (f"{base.time_limit_bars} bars (the config's time_limit_bars)" if cls.time_limit_bars is None
                 else f"{cls.time_limit_bars} bars (its own)")
        typer.echo(f"{name} v{cls.version}{' (default)' if name == DEFAULT_STRATEGY else ''}: {cls.description}")
        typer.echo(f"  warm-up {warm} bars ({why}), time limit {limit}")
        typer.echo(f"  parameters: {', '.join(_param_lines(cls))}")


@app.command("new")
def new(name: str = typer.Argument(..., help="the strategy's name, e.g. my_breakout (file my_breakout.py)")) -> None:
    """Write NAME.py (a working strategy to edit) and test_NAME.py (its tests, passing as written) here."""
    from mytrader_tools.scaffold import ScaffoldError, scaffold_strategy

    try:
        written = scaffold_strategy(name, Path.cwd())
    except ScaffoldError as exc:
        raise _fail(str(exc)) from None
    strategy_file, test_file = written
    typer.echo(f"wrote {strategy_file.name} and {test_file.name}")
    typer.echo(f"next: pytest {test_file.name}; mytrader strategy check --strategy {strategy_file.name}")


@app.command("check")
def check(
    files: list[Path] = typer.Argument(None, help="price CSVs (default: the bundled NVDA history)"),
    strategies: list[str] = typer.Option(None, "--strategy", help="a bundled name, a .py file or module:Class "
                                                                  "(repeat; default: every bundled strategy)"),
    params: list[str] = typer.Option(None, "--param", help="NAME=VALUE (a JSON value) for every --strategy"),
) -> None:
    """Look-ahead check: decisions at bar t are identical with the bars after t removed or altered, for 50 bars
    spread over each file, up to 25 signal bars and the last 20 bars. Exit 1 when a strategy fails it."""
    from mytrader.strategies import BUILTINS, StrategyError, load_strategy
    from mytrader.strategies.lookahead import check_lookahead

    code = [f for f in files or [] if f.suffix == ".py"]
    if code:
        raise _fail(f"{code[0]} is a strategy, not a price file: write `mytrader strategy check --strategy "
                    f"{code[0]} [PRICES.csv ...]`")
    specs = strategies or list(BUILTINS)
    try:
        values = _params(params or [])
        loaded = [load_strategy(spec, values) for spec in specs]
        series = _prices(files or [DEFAULT_PRICES])
    except (StrategyError, UserError) as exc:
        raise _fail(str(exc)) from None
    failed = 0
    for strategy in loaded:
        for s in series:
            try:
                report = check_lookahead(strategy, s)
            except StrategyError as exc:  # e.g. a hook raising on the full history
                raise _fail(str(exc)) from None
            typer.echo(("PASS " if report.ok else "FAIL ") + report.summary())
            for d in report.differences[:SHOWN_DIFFERENCES]:
                typer.echo(f"  {d.line()}")
            if len(report.differences) > SHOWN_DIFFERENCES:
                typer.echo(f"  ... and {len(report.differences) - SHOWN_DIFFERENCES} more differences")
            failed += not report.ok
    if failed:
        raise typer.Exit(1)


def _fail(message: str) -> typer.Exit:
    """A user's mistake: one line on stderr, exit 2 (typer's Exit: click's is not an exit inside a command)."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(EXIT_USER)


def _param_lines(cls: type[Strategy]) -> list[str]:
    props: dict[str, Any] = cls.params_model.model_json_schema().get("properties", {})
    lines = []
    for key, spec in props.items():
        lo = spec.get("minimum", spec.get("exclusiveMinimum", ""))
        hi = spec.get("maximum", spec.get("exclusiveMaximum", ""))
        lines.append(f"{key}={spec.get('default')} [{lo}..{hi}]")
    return lines


def _params(raw: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param {item!r}: write NAME=VALUE, e.g. --param fast=10")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _prices(files: list[Path]) -> list[BarSeries]:
    from mytrader_tools.cli._prices import load_prices, price_files

    return list(load_prices(price_files([str(f) for f in files], []), 0, None, None).values())
