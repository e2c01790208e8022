"""A backtest with a trading window (`--start`): every bar before it warms up the indicators, decisions and
figures start at it, buy-and-hold buys at its first fill."""
from __future__ import annotations

from datetime import datetime, time

from mytrader.backtest import prepare, run_modes
from mytrader.config import TradingConfig
from mytrader.market.calendar import NEW_YORK
from mytrader.market.sources import synthetic_series
from mytrader.strategies import default_strategy
from mytrader_tools.cli._prices import PriceFile, load_prices
from tests.unit.cli_support import csv_text


def test_the_window_keeps_every_earlier_bar_for_the_indicators(tmp_path):
    """Given a 600-bar file and --start at bar 400, when it is loaded, then no bar before --start is dropped, so
    the exponential averages (EMA, MACD) from --start on are the ones a run over the whole file has (not ones
    restarted 60 bars earlier)."""
    path = tmp_path / "abc.csv"
    path.write_text(csv_text(600))
    whole = load_prices([PriceFile("ABC", path)], 60, None, None)["ABC"]
    start = whole.time(400).astimezone(NEW_YORK).date()
    windowed = load_prices([PriceFile("ABC", path)], 60, start, None)["ABC"]
    assert len(windowed) == len(whole)
    strategy = default_strategy()
    ours, theirs = prepare(windowed, strategy).frame.cols, prepare(whole, strategy).frame.cols
    for name in ("ema_fast", "macd", "macd_signal"):
        assert list(ours[name][400:]) == list(theirs[name][400:]), name


def test_decisions_figures_and_buy_and_hold_start_at_the_window():
    """Given 700 bars and a window from bar 500, when the baseline and buy-and-hold run, then no trade opens before
    the window, both curves start at it with the starting capital, and buy-and-hold's return is the window's
    (bought at the open after the window's first close, held to the last close)."""
    series = synthetic_series("SYN", 700, seed=11)
    cfg = TradingConfig()
    opens = datetime.combine(series.time(500).astimezone(NEW_YORK).date(), time(0), NEW_YORK)
    runs = run_modes({"SYN": series}, ["baseline"], cfg, trade_from=opens)
    for name in ("baseline", "buy_and_hold"):
        first_t, first_equity = runs[name].equity[0]
        assert first_t >= opens and first_equity == cfg.initial_equity, name
        assert len(runs[name].equity) == 200, name
    assert all(t.entry_ts >= opens for t in runs["baseline"].trades)
    held = series.close[-1] / series.open[501] - 1
    assert abs(runs["buy_and_hold"].metrics["total_return"] - held) < 1e-6  # figures are rounded to 6 places


def test_without_a_window_the_figures_start_after_the_warm_up():
    """Given no window, when the baseline and buy-and-hold run, then both curves start at the first bar a decision
    can be taken on (the warm-up's flat days count in no CAGR or Sharpe)."""
    series = synthetic_series("SYN", 400, seed=5)
    cfg = TradingConfig()
    runs = run_modes({"SYN": series}, ["baseline"], cfg)
    for name in ("baseline", "buy_and_hold"):
        assert runs[name].equity[0][0] == series.time(cfg.warmup_bars), name
        assert len(runs[name].equity) == 400 - cfg.warmup_bars, name
