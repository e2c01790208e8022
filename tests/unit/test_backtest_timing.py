"""The backtester executes as the deployment does (usecases/execute.py): an entry decided at the close of bar t is
sized at that close and fills at the open of the next bar, slippage and fees on the open; a signal exit fills at
that open too, before the exits on the bar are checked."""
from __future__ import annotations

import math
from datetime import time

from mytrader.backtest import Backtester, prepare
from mytrader.config import TradingConfig
from mytrader.engine import DecisionEngine
from mytrader.market.calendar import NEW_YORK, session_open_for
from mytrader.market.sources import parse_price_csv
from mytrader.models import OrderSide
from mytrader.portfolio import Costs
from tests.conftest import PACKAGED_DATA


def test_entries_are_sized_at_the_decision_close_and_filled_at_the_next_open() -> None:
    # Given a baseline run over four years of NVDA's daily bars
    full = parse_price_csv((PACKAGED_DATA / "nvda-daily-1999-2014.csv").read_text(), "NVDA")
    s = full.slice(len(full) - 1000, len(full))
    cfg = TradingConfig(mode="baseline")
    res = Backtester(cfg, DecisionEngine(cfg, None)).run({"NVDA": prepare(s)})
    decisions = {d.decision_id: d for d in res.decisions}
    costs = Costs(cfg.fee_bps, cfg.slippage_bps)
    assert len(res.trades) >= 5
    for t in res.trades:
        d = decisions[t.decision_id]
        i = s.index_of(d.bar_ts)
        # Then the entry filled at the open of the bar after the decision's, at that session's open time
        assert t.entry_ts == session_open_for(s.time(i + 1))
        assert (t.entry_ts.astimezone(NEW_YORK).hour, t.entry_ts.astimezone(NEW_YORK).minute) == (9, 30)
        assert t.entry_price == costs.fill_price(float(s.open[i + 1]), OrderSide.BUY)
        # And its size came from the decision's close (its reference price), not from the open it filled at
        pct = min(d.position_size_pct, cfg.risk.max_position_pct)
        notional = min((d.sizing_equity or 0.0) * pct / 100, cfg.risk.max_order_notional)
        assert t.qty == math.floor(notional / d.reference_price) == math.floor(notional / float(s.close[i]))
        if t.exit_reason == "signal":  # a signal exit fills at the open after its own decision bar
            assert t.exit_ts.astimezone(NEW_YORK).time() == time(9, 30)


def test_exposure_is_the_share_of_the_trading_windows_bars_held() -> None:
    """Exposure counts held symbol-bars against the trading window's symbol-bars, not the warm-up history."""
    # Given two symbols of 1000 bars each, trading allowed only over the last 250 bars of each
    full = parse_price_csv((PACKAGED_DATA / "nvda-daily-1999-2014.csv").read_text(), "NVDA")
    s = full.slice(len(full) - 1000, len(full))
    cfg = TradingConfig(mode="baseline")
    held = []

    class Counting(Backtester):
        def _exits_on_bar(self, st, run, i, t):
            held.append(st.position is not None)
            super()._exits_on_bar(st, run, i, t)

    # When the backtester runs
    res = Counting(cfg, DecisionEngine(cfg, None), trade_from=s.time(750)).run(
        {"A": prepare(s), "B": prepare(s)})
    # Then exposure is the held bars over the 2 x 250 bars of the window
    assert sum(held) > 0
    assert res.metrics["exposure"] == round(sum(held) / 500, 4)
