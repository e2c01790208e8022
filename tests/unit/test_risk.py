"""Hard risk limits: each rejection names its limit; reducing orders are never blocked by the kill switch."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mytrader.config import RiskLimits
from mytrader.ledger import EntryVerdict, entry_verdict, reduces
from mytrader.models import Action, Mode, Position, StrategySignal, TradeDecision
from mytrader.portfolio import Costs, close_outcome, cooldown_end, exit_on_bar
from mytrader.risk import AccountState

NOW = datetime(2020, 3, 2, 14, 31, tzinfo=UTC)
LIMITS = RiskLimits(max_position_pct=10, max_order_notional=5_000, max_open_positions=2, max_orders_per_minute=3)


def decision(pct=10.0, equity=100_000.0) -> TradeDecision:
    return TradeDecision(decision_id="d1", symbol="ABC", bar_ts=NOW, decided_at=NOW, config_version="v",
                         mode=Mode.CONSENSUS, action=Action.BUY, confidence=0.8, position_size_pct=pct,
                         reference_price=100.0, stop_loss=95.0, take_profit=110.0, time_horizon_bars=10,
                         strategy=StrategySignal(action=Action.BUY, confidence=0.7, reason="r"), sizing_equity=equity)


def check_entry(limits: RiskLimits, acct: AccountState, d: TradeDecision, price: float, now: datetime,
                opens_in_time: bool, kill_switch: bool) -> EntryVerdict:
    """The ledger's entry verdict for decision `d`, the way the executor and the backtester ask for it."""
    return entry_verdict(limits, acct, size_pct=d.position_size_pct, price=price, now=now, opens_in_time=opens_in_time,
                         kill_switch=kill_switch, decided_equity=d.sizing_equity)


def account(**kw) -> AccountState:
    base = dict(cash=100_000.0, book_equity=100_000.0, day="2020-03-02", day_start_equity=100_000.0)
    return AccountState(**{**base, **kw})


def test_size_is_capped_by_position_pct_and_order_notional():
    v = check_entry(LIMITS, account(), decision(pct=80.0), 100.0, NOW, True, False)
    assert v.approved and v.qty == 50  # 5,000 notional cap at 100


@pytest.mark.parametrize("acct,kill,market_open,reason", [
    (account(), True, True, "kill_switch"),
    (account(tripped_day="2020-03-02"), False, True, "daily_loss_limit"),
    (account(realized_today=-3_500.0), False, True, "daily_loss_limit"),
    (account(), False, False, "no_session_in_time"),
    (account(cooldown_until=NOW + timedelta(days=2)), False, True, "cooldown"),
    (account(open_positions=2), False, True, "max_open_positions"),
    (account(orders_minute="2020-03-02T14:31", orders_this_minute=3), False, True, "max_orders_per_minute"),
    (account(cash=50.0), False, True, "size below one share"),
])
def test_each_limit_rejects_with_its_reason(acct, kill, market_open, reason):
    v = check_entry(LIMITS, acct, decision(), 100.0, NOW, market_open, kill)
    assert not v.approved and v.reason.startswith(reason)


def test_daily_loss_trips_the_kill_switch():
    v = check_entry(LIMITS, account(realized_today=-3_500.0), decision(), 100.0, NOW, True, False)
    assert v.trips_daily_loss


def test_reducing_orders_are_recognised():
    assert reduces(Action.SELL, 10) and reduces(Action.BUY, -5)
    assert not reduces(Action.BUY, 0) and not reduces(Action.SELL, 0)


def pos(qty=10, stop=95.0, target=110.0, bars=0, limit=10):
    return Position(symbol="ABC", qty=qty, avg_price=100.0, opened_at=NOW, decision_id="d1", stop_loss=stop,
                    take_profit=target, time_limit_bars=limit, bars_held=bars, llm_action=Action.BUY)


def test_exits_stop_first_gap_at_open_and_time_limit():
    assert exit_on_bar(pos(), 100, 111, 94, 105) == (95.0, "stop_loss")  # both touched: stop wins
    assert exit_on_bar(pos(), 90, 92, 89, 91) == (90, "stop_loss")  # gap through the stop fills at the open
    assert exit_on_bar(pos(), 100, 111, 99, 105) == (110.0, "take_profit")
    assert exit_on_bar(pos(bars=9), 100, 101, 99, 100.5) == (100.5, "time_limit")
    assert exit_on_bar(pos(), 100, 101, 99, 100.5) is None
    short = pos(qty=-10, stop=105.0, target=90.0)
    assert exit_on_bar(short, 100, 106, 99, 101) == (105.0, "stop_loss")


def test_outcome_pnl_includes_fees_and_scores_the_llm():
    c = Costs(fee_bps=10, slippage_bps=0)
    out = close_outcome(pos(), 110.0, NOW, c.fee(110.0, 10), c.fee(100.0, 10), "take_profit", 3)
    assert out.pnl == pytest.approx(100 - 1.1 - 1.0)
    assert out.llm_right is True and out.return_pct == pytest.approx(out.pnl / 1000)


def test_a_cooldown_counts_sessions_not_calendar_days():
    from mytrader.market.calendar import nyse

    cal = nyse()
    # Given a third stop-out at the close of Friday 2014-06-27, and a cooldown of 5 bars
    stop = cal.session_close(datetime(2014, 6, 27).date())
    until = cooldown_end(stop, 5)
    # Then it lasts five sessions: Jun 30, Jul 1, Jul 2, Jul 3 (early close), then Jul 7 (Jul 4 is a holiday)
    assert until == cal.session_close(datetime(2014, 7, 7).date())
    acct = account(cooldown_until=until, day="2014-07-07")
    blocked = check_entry(LIMITS, acct, decision(), 100.0, cal.session_open(datetime(2014, 7, 7).date()), True, False)
    allowed = check_entry(LIMITS, acct, decision(), 100.0, cal.session_open(datetime(2014, 7, 8).date()), True, False)
    assert blocked.reason == "cooldown after 3 stop-outs" and allowed.approved
    # And a cooldown of 0 bars ends at once
    assert cooldown_end(stop, 0) == stop
