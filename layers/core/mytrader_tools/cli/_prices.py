"""Price files of `mytrader backtest`: which symbol each one is, read and checked before the run.

The symbol of a file: `--symbol` (one per `--prices`, in order), or `--prices SYMBOL=path`, or else derived
from the file name by SYMBOL_RULE. A name it cannot be derived from, or two files for one symbol, is an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from mytrader.app.project_config import read_utf8
from mytrader.errors import DataQualityError
from mytrader.market.calendar import NEW_YORK
from mytrader.market.series import BarSeries
from mytrader.market.sources import parse_price_csv
from mytrader.models import Symbol
from mytrader_tools.cli._errors import UserError

SYMBOL_RULE = ("the letters at the start of the file name, up to the first other character, upper-cased "
               "(nvda-daily.csv and nvda_2011.csv: NVDA; DJIA_table.csv: DJIA)")
SYMBOL_FORM = "1 to 10 capital letters, digits, '.' or '-', starting with a letter"
SYMBOL_MAX = 10
_LEADING_LETTERS = re.compile(r"[A-Za-z]+")
_SYMBOL = TypeAdapter(Symbol)


@dataclass(frozen=True)
class PriceFile:
    symbol: str
    path: Path


def symbol_from_name(path: Path) -> str:
    """SYMBOL_RULE; UserError when the name does not start with letters or they are not a symbol."""
    found = _LEADING_LETTERS.match(path.name)
    symbol = found.group(0).upper() if found else ""
    if len(symbol) > SYMBOL_MAX:
        raise UserError(f"cannot derive a symbol from the file name {path.name}: its leading letters {symbol} are "
                        f"{len(symbol)} long, a symbol has at most {SYMBOL_MAX}: pass --symbol SYMBOL for it, "
                        f"or --prices SYMBOL={path}")
    if not symbol or not _is_symbol(symbol):
        raise UserError(f"cannot derive a symbol from the file name {path.name} (the rule: {SYMBOL_RULE}): "
                        f"pass --symbol SYMBOL for it, or --prices SYMBOL={path}")
    return symbol


def _is_symbol(text: str) -> bool:
    try:
        _SYMBOL.validate_python(text)
        return True
    except ValidationError:
        return False


def price_files(prices: list[str], symbols: list[str]) -> list[PriceFile]:
    """What `--prices` (PATH or SYMBOL=PATH, repeated) and `--symbol` (repeated) name; one file per symbol."""
    if symbols and len(symbols) != len(prices):
        raise UserError(f"--symbol given {len(symbols)} time(s) for {len(prices)} --prices file(s): give one "
                        "--symbol per --prices file, in the same order, or write --prices SYMBOL=path")
    files: list[PriceFile] = []
    for k, raw in enumerate(prices):
        named, path = _split(raw)
        if not path.exists():
            raise UserError(f"price file {path} does not exist")
        if symbols and named:
            raise UserError(f"--prices {raw} names its symbol and --symbol names it again: use one of the two")
        symbol = (symbols[k] if symbols else named) or symbol_from_name(path)
        if not _is_symbol(symbol.upper()):
            raise UserError(f"{symbol!r} (for {path}) is not a symbol: {SYMBOL_FORM}")
        files.append(PriceFile(symbol.upper(), path))
    seen: dict[str, Path] = {}
    for f in files:
        if f.symbol in seen:
            raise UserError(f"two price files for {f.symbol}: {seen[f.symbol]} and {f.path}; give one of them "
                            "another symbol (--symbol, or --prices SYMBOL=path) or leave it out")
        seen[f.symbol] = f.path
    return files


def _split(raw: str) -> tuple[str | None, Path]:
    """SYMBOL=path, unless the whole text is an existing file's path."""
    if "=" in raw and not Path(raw).exists():
        symbol, _, path = raw.partition("=")
        return symbol.strip(), Path(path)
    return None, Path(raw)


def window_start(start: date | None) -> datetime | None:
    """The first bar time of `--start`'s trading window (midnight New York of that day)."""
    return datetime.combine(start, time(0), NEW_YORK) if start is not None else None


def load_prices(files: list[PriceFile], warmup_bars: int, start: date | None, end: date | None,
                ) -> dict[str, BarSeries]:
    """Each file read (UTF-8, a byte-order mark accepted), parsed, cut at `end`, and long enough to decide at least
    once: warm-up bars, one bar to decide on, one to fill at. Every bar before `start` is kept: they warm up the
    indicators (the backtest trades from `start`, window_start), so a slow average has the same value as over the
    whole file, as in the demo and live."""
    out: dict[str, BarSeries] = {}
    for f in files:
        text = read_utf8(f.path, "price file")
        try:
            series = parse_price_csv(text, f.symbol)
        except DataQualityError as exc:
            raise UserError(f"price file {f.path} ({f.symbol}): {exc.problem}; fix the file or leave it out") from None
        out[f.symbol] = _window(series, f, warmup_bars, start, end)
    return out


def _window(series: BarSeries, f: PriceFile, warmup_bars: int, start: date | None, end: date | None) -> BarSeries:
    full = len(series)
    if end is not None:
        series = series.upto(datetime.combine(end + timedelta(days=1), time(0), NEW_YORK) - timedelta(seconds=1))
    if start is not None:
        opens = window_start(start)
        assert opens is not None
        first = int(series.ts.searchsorted(int(opens.timestamp())))
        if first >= len(series):
            raise UserError(f"{f.symbol} ({f.path}): no bar on or after the start {start} (--start, backtest.start)"
                            + (f" up to --end {end}" if end else "") + f"; the file has {full} bars"
                            + (f" ending {series.time(full - 1).date()}" if full and end is None else ""))
        if len(series) - first < 2:
            raise UserError(f"{f.symbol} ({f.path}): one bar from the start {start}"
                            + (f" to --end {end}" if end else "") + ": the backtest needs one bar to decide on "
                            "and one to fill at; give a wider window")
    need = warmup_bars + 2
    if len(series) < need:
        cut = {(True, True): " between --start and --end", (True, False): " from --start",
               (False, True): " up to --end", (False, False): ""}[(start is not None, end is not None)]
        raise UserError(f"{f.symbol} ({f.path}): {len(series)} bars{cut}, the backtest needs at least {need}: "
                        f"{warmup_bars} warm-up bars for the indicators, one bar to decide on and one to fill at; "
                        f"give a longer file{' or a wider window' if cut else ''}")
    return series
