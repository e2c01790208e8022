"""The market-data guard (mytrader.market.guard) and where both drivers use it: gaps and staleness in sessions, the
jump filter, the price collar at execution, and no held position left unchecked when its bars break."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mytrader.adapters.tradelog import TradeLog
from mytrader.adapters.tradelog.store import MemoryStore
from mytrader.backtest import Backtester, prepare
from mytrader.config import DataGuard, TradingConfig
from mytrader.engine import DecisionEngine
from mytrader.errors import DataQualityError
from mytrader.market.guard import bar_flags, check_cycle, collar, sessions_behind, tail_flags
from mytrader.market.series import BarSeries, check_fresh
from mytrader.market.sources import daily_close_ts, parse_price_csv, synthetic_series
from mytrader.models import DecisionStatus
from mytrader.usecases.execute import ExecDeps, ExecutionOutcome, execute_decision
from mytrader.usecases.manage import run_outcomes
from tests.integration.execution_fakes import NOW, UNIVERSE, Quotes, ScriptedBroker, buy, pointer, seed_position

DATA = Path(__file__).resolve().parents[2] / "layers" / "core" / "mytrader_tools" / "embedded" / "data"
GUARD = DataGuard()


def bundled() -> dict[str, BarSeries]:
    return {p.stem.split("-")[0].upper(): parse_price_csv(p.read_text(), p.stem.split("-")[0].upper())
            for p in sorted(DATA.glob("*.csv"))}


def with_print(s: BarSeries, k: int, factor: float) -> BarSeries:
    """`s` with bar k printed `factor` times too high (every price of the bar)."""
    o, h, lo, c = (a.copy() for a in (s.open, s.high, s.low, s.close))
    for a in (o, h, lo, c):
        a[k] *= factor
    return BarSeries(s.symbol, s.ts, o, h, lo, c, s.volume)


def daily(symbol: str, days: list[date], price: float = 100.0) -> BarSeries:
    n = len(days)
    close = price * np.exp(np.cumsum(np.full(n, 0.001)))
    return BarSeries.from_arrays(symbol, [daily_close_ts(d) for d in days], close, close * 1.01, close * 0.99, close,
                                 np.full(n, 1e6))


def sessions(start: date, n: int) -> list[date]:
    from mytrader.market.calendar import nyse

    cal, d = nyse(), start
    out: list[date] = []
    while len(out) < n:
        if cal.is_session(d):
            out.append(d)
        d += timedelta(days=1)
    return out


def test_the_bundled_files_have_no_quarantined_bar_and_a_1000x_print_is_caught():
    # Given both bundled price files in full (NVDA has real moves of 42 % and 7.2 ATR in a day)
    for sym, s in bundled().items():
        # Then the guard trusts every bar
        assert bar_flags(s, GUARD).count() == 0, sym
        # And a 1000x print is quarantined with the numbers, on its bar and on the bar back to normal
        bad = with_print(s, 3000, 1000.0)
        flags = bar_flags(bad, GUARD)
        assert [i for i, r in enumerate(flags.jump) if r] == [3000, 3001]
        reason = flags.jump[3000] or ""
        assert "price jump" in reason and "% > 50 %" in reason and "ATR > 10 ATR" in reason
        assert f"{bad.close[2999]:.6g}" in reason
        # and the decision cycle's view of the tail agrees with the backtester's view of the whole series
        assert tail_flags(bad.slice(0, 3001), GUARD).reason(-1) == reason


def test_a_big_real_move_is_not_a_jump_when_only_one_threshold_is_passed():
    s = synthetic_series("SYN", 300, seed=3)
    assert bar_flags(s, GUARD).count() == 0
    # 60 % in a day on a volatile name is a move, not a print, when it is within 10 ATR
    assert bar_flags(with_print(s, 200, 1.6), GUARD.model_copy(update={"jump_atr": 1e9})).count() == 0
    assert bar_flags(with_print(s, 200, 1.6), GUARD.model_copy(update={"jump_pct": 1e9})).count() == 0


def test_gaps_are_counted_in_sessions_not_calendar_days():
    days = sessions(date(2014, 6, 2), 100)
    # a long weekend (Good Friday, Christmas) is no gap: the calendar knows the sessions
    around_holiday = sessions(date(2014, 12, 1), 60)
    assert bar_flags(daily("H", around_holiday), GUARD).count() == 0
    # 30 calendar days missing is a gap, quarantining gap_window_bars bars from the one after it
    holed = [d for d in days if not (days[40] <= d < days[40] + timedelta(days=30))]
    flags = bar_flags(daily("G", holed), GUARD)
    flagged = [i for i, r in enumerate(flags.gap) if r]
    assert flagged == list(range(40, 40 + GUARD.gap_window_bars))
    assert "sessions missing" in (flags.gap[40] or "")
    # one missing session is tolerated (max_gap_sessions=1), two are not
    assert bar_flags(daily("G", days[:50] + days[51:]), GUARD).count() == 0
    assert bar_flags(daily("G", days[:50] + days[52:]), GUARD).count() == GUARD.gap_window_bars
    with pytest.raises(DataQualityError, match="sessions missing"):
        daily_series = daily("G", holed)
        BarSeries.from_arrays("G", daily_series.ts, daily_series.open, daily_series.high, daily_series.low,
                              daily_series.close, daily_series.volume, max_gap_sessions=3)


def test_staleness_is_counted_in_sessions():
    fri = datetime.fromtimestamp(daily_close_ts(date(2014, 7, 3)), UTC)  # Thursday 3 July, then the 4th is a holiday
    monday_open = datetime(2014, 7, 7, 13, 35, tzinfo=UTC)
    assert sessions_behind(fri, monday_open) == 0  # Friday was a holiday, Monday is still running
    assert sessions_behind(fri, datetime(2014, 7, 7, 20, 5, tzinfo=UTC)) == 1  # Monday's bar is due
    assert sessions_behind(fri, datetime(2014, 7, 9, 14, 0, tzinfo=UTC)) == 2
    s = daily("S", sessions(date(2014, 5, 1), 45))
    last = s.time(len(s) - 1)
    check_fresh(s, last + timedelta(days=4), GUARD.max_stale_sessions)  # over a weekend: fresh
    with pytest.raises(DataQualityError, match="sessions behind"):
        check_fresh(s, last + timedelta(days=14), GUARD.max_stale_sessions)
    assert "stale data" in (check_cycle(s, last + timedelta(days=14), GUARD) or "")
    assert check_cycle(s, last, GUARD) is None


def test_the_collar_names_both_prices():
    reason = collar(12.56, 12_260.0, 15.0) or ""
    assert reason.startswith("collar:") and "12.56" in reason and "12260" in reason
    assert collar(110.0, 100.0, 15.0) is None and collar(86.0, 100.0, 15.0) is None
    assert collar(84.0, 100.0, 15.0) is not None


def test_the_backtester_does_not_decide_on_a_quarantined_bar_and_reports_it():
    # Given NVDA with a 1000x print, baseline mode
    s = bundled()["NVDA"]
    cfg = TradingConfig(mode="baseline")
    clean = Backtester(cfg, DecisionEngine(cfg, None), keep_decisions=True).run({"NVDA": prepare(s)})
    bad = with_print(s, 3000, 1000.0)
    res = Backtester(cfg, DecisionEngine(cfg, None), keep_decisions=True).run({"NVDA": prepare(bad)})
    # Then the two bars are reported per symbol, no decision was made on them, and no trade saw the bad price
    assert clean.quarantined == {"NVDA": 0} and clean.metrics["quarantined_bars"] == 0
    assert res.quarantined == {"NVDA": 2} and res.metrics["quarantined_bars"] == 2
    bad_stamps = {bad.time(3000), bad.time(3001)}
    assert not [d for d in res.decisions if d.bar_ts in bad_stamps]
    assert all(t.entry_price < 1000 and t.exit_price < 1000 for t in res.trades)


def test_the_backtester_collar_checks_the_quote_the_executor_has_after_the_close():
    # Given a collar of 0.01 %, When the backtester executes after the close at the close's quote (the decision's
    # reference price, as the paper quote is live at 16:10), Then the collar refuses nothing and entries trade
    s = bundled()["ORCL"]
    cfg = TradingConfig(mode="baseline", data_guard=DataGuard(collar_pct=0.01))
    res = Backtester(cfg, DecisionEngine(cfg, None)).run({"ORCL": prepare(s)})
    assert res.metrics["rejected_by_collar"] == res.rejections["collar"] == 0 and res.trades


def _exec_deps(tl: TradeLog, quote: float | None, fill: float = 100.0) -> ExecDeps:
    return ExecDeps(tradelog=tl, broker=ScriptedBroker(fill_on_submit=fill), quotes=Quotes(quote),
                    cfg=TradingConfig(), max_age=timedelta(days=2), universe=UNIVERSE)


def _account() -> TradeLog:
    tl = TradeLog(MemoryStore())
    tl.ensure_account(100_000.0)
    tl.begin_day(NOW.date().isoformat())
    return tl


def test_an_entry_quoted_outside_the_collar_is_rejected_with_both_prices():
    # Given a BUY decided with a reference (close) of 100 and a quote of 0.1 (a bad print at the open)
    tl = _account()
    d = buy(tl)
    out = execute_decision(pointer(tl, d), NOW, _exec_deps(tl, quote=0.1))
    # Then it is REJECTED, naming the quote and the last trusted close, and nothing was ordered
    assert out.result == ExecutionOutcome.REJECTED and out.reason and out.reason.startswith("collar:")
    assert "0.1" in out.reason and "100" in out.reason
    rec = tl.get_decision(d.decision_id)
    assert rec is not None and rec.status == DecisionStatus.REJECTED and tl.position("ABC") is None
    # And within the collar the same entry executes
    tl2 = _account()
    d2 = buy(tl2)
    assert execute_decision(pointer(tl2, d2), NOW, _exec_deps(tl2, quote=104.0)).result == ExecutionOutcome.EXECUTED


class _BrokenBars:
    def full(self, symbol: str) -> BarSeries:
        raise DataQualityError(symbol, "line 7 has 3 fields, expected 6")

    def bar_at(self, symbol: str, at: datetime) -> int:
        raise DataQualityError(symbol, "line 7 has 3 fields, expected 6")


class _NoQueue:
    def send(self, decision: object) -> None:
        raise AssertionError("nothing is stuck")


def _held(stop: float = 95.0, target: float = 110.0) -> TradeLog:
    tl = _account()
    seed_position(tl, "ABC", qty=10, price=100.0, fee=0.0, at=NOW - timedelta(days=1), stop=stop, target=target)
    return tl


def test_a_position_whose_bars_break_is_checked_against_the_broker_quote():
    # Given a held position (stop 95) whose price file breaks, and a broker quote of 90
    tl = _held()
    res = run_outcomes(NOW, _exec_deps(tl, quote=90.0, fill=90.0), _BrokenBars(), _NoQueue(), None)
    # Then the stop is enforced at the quote: closed, nothing unchecked
    assert res.closed == 1 and res.positions_unchecked == 0 and res.checked_on_quote == 1
    assert tl.position("ABC") is None
    # And with the quote inside the levels it stays held, checked
    tl = _held()
    res = run_outcomes(NOW, _exec_deps(tl, quote=101.0), _BrokenBars(), _NoQueue(), None)
    assert res.held == 1 and res.positions_unchecked == 0 and tl.position("ABC") is not None


def test_a_position_with_neither_bars_nor_a_quote_is_counted_unchecked():
    tl = _held()
    res = run_outcomes(NOW, _exec_deps(tl, quote=None), _BrokenBars(), _NoQueue(), None)
    assert res.positions_unchecked == 1 and res.closed == 0
    assert res.unchecked_reasons and "bars unreadable" in res.unchecked_reasons[0]
    assert "no quote" in res.unchecked_reasons[0]
    assert res.response()["positions_unchecked"] == 1


def test_a_bar_on_a_weekend_or_holiday_is_quarantined_with_the_day_named():
    """Given sessions with a row dated Saturday 2014-06-14 and one on Independence Day 2014-07-04 slipped in, when
    the guard judges them, then exactly those two bars are untrusted (no decision, prices not used for exits),
    each named, and the sessions around them stay trusted."""
    days = sorted(sessions(date(2014, 6, 2), 60) + [date(2014, 6, 14), date(2014, 7, 4)])
    s = daily("W", days)
    flags = bar_flags(s, GUARD)
    bad = [i for i, r in enumerate(flags.jump) if r]
    assert [days[i] for i in bad] == [date(2014, 6, 14), date(2014, 7, 4)]
    assert flags.jump[bad[0]] == "not a session: 2014-06-14 (Saturday) is no NYSE trading day"
    assert "2014-07-04 (Friday)" in (flags.jump[bad[1]] or "")
    assert flags.count() == 2
    # and the decision cycle skips a cycle whose last bar is such a row
    assert "not a session" in (tail_flags(s.slice(0, bad[0] + 1), GUARD).reason(-1) or "")
