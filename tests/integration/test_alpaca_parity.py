"""Issue 12's acceptance: the stack trades at Alpaca as it trades on paper (the HTTP fixture in its realistic mode:
its market follows the stack's clock, orders sent after the close are `accepted` and fill at the next open at that
open's price, bracket legs rest and fill on the day's bar, regulatory fees arrive as FEE activities at the close).

What legitimately differs between the two runs, and so is not compared:
- costs: the paper broker applies fee_bps and slippage_bps to every fill; Alpaca charges no commission and fills a
  market order at the open's price, but books SEC/TAF fees on sells as FEE activities after the close, which
  outcomes books to cash. Cash, equity and hence entry sizes (by a share or so) differ between the runs;
- stops and targets: the paper broker closes a position at the level when outcomes sees the bar reach it (priced at
  the level, or the open when the bar gapped through; the fill stamped at the outcomes run), Alpaca fills the
  resting bracket leg during the session (at the open when gapped, else at the level, stamped at the close): the
  same exit on the same session, at the level without slippage, with another client order id (the leg's);
- time-limit exits: decided on the close of the bar that reached the limit, they fill at the next open everywhere
  (the backtester, the paper broker and Alpaca: no broker fills an order sent after the close before then);
  test_a_time_limit_exit_decided_after_the_close_fills_at_the_next_open_as_at_alpaca proves it for the paper book.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from mytrader.adapters.alpaca.times import parse_optional_time
from mytrader.adapters.paper_broker import PaperBroker
from mytrader.adapters.tradelog import TradeLog
from mytrader.clock import FixedClock
from mytrader.market.calendar import NEW_YORK, nyse
from mytrader.portfolio import Costs
from mytrader.stack_spec import DECISION_SCHEDULE, OUTCOMES_SCHEDULE
from mytrader.usecases.execute import execute_decision
from mytrader.usecases.manage import CASH_TOLERANCE
from mytrader_tools.embedded import demo as D
from mytrader_tools.embedded.event_source import drain
from mytrader_tools.embedded.replay import replay
from tests.integration.alpaca_fixture import AlpacaFixture
from tests.integration.execution_fakes import buy, pointer
from tests.integration.test_pipeline_replay import tradelog
from tests.unit import test_execute_timing as T

# Nov 12 .. Dec 28, 2012 on the demo's NVDA and ORCL: 5 entries, 2 exits by signal (at the next open), 2 by target
# (resting legs at Alpaca, one gapped through at the open), one position still open at the end.
START, END = date(2012, 11, 12), date(2012, 12, 28)


class RecordingStack:
    """The stack as the replay drives it, keeping every outcomes run's answer with the clock it ran at."""

    def __init__(self, stack: Any):
        self.stack = stack
        self.outcomes: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stack, name)

    def invoke(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.stack.invoke(key, payload)
        if key == "outcomes":
            self.outcomes.append((self.stack.get_param("REPLAY_CLOCK"), out))
        return out


def alpaca_stack(make_stack, start: datetime) -> tuple[Any, AlpacaFixture]:
    """A stack trading through the fixture, whose market follows the stack's replay clock."""
    holder: dict[str, Any] = {}
    alpaca = AlpacaFixture(now=start, clock=lambda: datetime.fromisoformat(holder["stack"].get_param("REPLAY_CLOCK")))
    alpaca.load_series(D.load_series())
    stack = holder["stack"] = make_stack(extra_env={"BROKER": "alpaca", "ALPACA_TRADING_URL": alpaca.url})
    stack.set_param("REPLAY_CLOCK", start.isoformat())
    return stack, alpaca


def entries(tl: TradeLog) -> dict[str, tuple[str, datetime]]:
    """Every position the book opened (closed since or still held): decision id -> (symbol, opened at)."""
    out = {o.decision_id: (o.symbol, o.entry_ts) for o in tl.outcomes()}
    out.update({p.decision_id: (p.symbol, p.opened_at) for p in tl.positions()})
    return out


def exits(tl: TradeLog) -> set[tuple[str, str, str, date]]:
    """Every closed trade: (entry decision id, symbol, exit reason, New York day of the exit)."""
    return {(o.decision_id, o.symbol, o.exit_reason, o.exit_ts.astimezone(NEW_YORK).date()) for o in tl.outcomes()}


def next_open_after_decision(tl: TradeLog, decision_id: str) -> datetime:
    decision = tl.get_decision(decision_id)
    assert decision is not None
    cal = nyse()
    return cal.session_open(cal.next_session(decision.bar_ts.astimezone(NEW_YORK).date()))


def book_equals_broker(tl: TradeLog, alpaca: AlpacaFixture) -> None:
    held = {p.symbol: p.qty for p in tl.positions()}
    assert held == {p["symbol"]: float(p["qty"]) * (1 if p["side"] == "long" else -1)
                    for p in alpaca.market.positions()}
    assert abs(tl.account_state().cash - float(alpaca.market.account()["cash"])) <= CASH_TOLERANCE


def test_alpaca_places_every_paper_entry_at_the_next_open_and_ends_with_book_equal_to_broker(make_stack):
    # Given the same sessions replayed on paper and at Alpaca (fresh stacks, same data, same settings)
    series = D.load_series()
    paper = RecordingStack(make_stack())
    replay(paper, series, START, END)
    start = datetime.combine(START, time(7), NEW_YORK).astimezone(UTC)
    stack, alpaca = alpaca_stack(make_stack, start)
    try:
        live = RecordingStack(stack)
        replay(live, series, START, END)
        paper_tl, live_tl = tradelog(paper), tradelog(live)
        assert all(out["errors"] == 0 for _, out in paper.outcomes + live.outcomes)
        # Then Alpaca got every entry the paper broker filled: same decision id (the client order id), same symbol,
        # filled at the same next open, which the book records as the position's opening
        placed = {o["client_order_id"]: o for o in alpaca.orders}
        paper_entries, live_entries = entries(paper_tl), entries(live_tl)
        assert len(paper_entries) >= 5
        assert live_entries == paper_entries
        for decision_id, (symbol, opened_at) in paper_entries.items():
            assert opened_at == next_open_after_decision(paper_tl, decision_id)
            order = placed[decision_id]
            assert order["symbol"] == symbol and order["status"] == "filled"
            assert parse_optional_time(order["filled_at"]) == opened_at
            assert order["order_class"] == "bracket"  # its stop and target rested at Alpaca
        # And the same trades closed, for the same reason on the same day (signals at the next open, targets by the
        # resting legs at Alpaca, by outcomes on paper)
        closed = exits(paper_tl)
        assert len(closed) >= 3 and {reason for *_, reason, _ in closed} >= {"signal", "take_profit"}
        assert exits(live_tl) == closed
        # And book = broker after every outcomes run: no position or cash mismatch, no error, every FEE activity
        # booked once
        for at, out in live.outcomes:
            assert out["position_mismatches"] == [] and "cash_mismatch" not in out and out["errors"] == 0, (at, out)
        fees_booked = sum(out["fees_booked"] for _, out in live.outcomes)
        assert fees_booked == len(alpaca.fees) == len(live_tl.fees_booked()) >= 3
        book_equals_broker(live_tl, alpaca)
        assert live_tl.positions()  # a position still open at the end is compared too
    finally:
        alpaca.close()


def scheduled(day: date, schedule: str) -> datetime:
    """The time a stack_spec cron schedule (minute hour ..., New York) fires on `day`."""
    match = re.fullmatch(r"cron\((\d+) (\d+) .*\)", schedule)
    assert match is not None, schedule
    return datetime.combine(day, time(int(match[2]), int(match[1])), NEW_YORK).astimezone(UTC)


def run_at(stack: Any, key: str, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    stack.set_param("REPLAY_CLOCK", at.isoformat())
    out: dict[str, Any] = stack.invoke(key, payload)
    return out


def test_a_trading_day_on_the_deployed_schedule_queues_at_alpaca_and_books_the_fill_at_the_next_open(make_stack):
    # Given a stack trading at Alpaca, on the clock of the deployed schedules: outcomes at 16:20, decisions at 16:25
    day = date(2012, 11, 14)
    cal = nyse()
    opens = cal.session_open(cal.next_session(day))
    stack, alpaca = alpaca_stack(make_stack, datetime.combine(day, time(7), NEW_YORK).astimezone(UTC))
    try:
        assert run_at(stack, "outcomes", scheduled(day, OUTCOMES_SCHEDULE), {})["position_mismatches"] == []
        # When the 16:25 run decides on the day's completed bar and the executor acts at once
        decide_t = scheduled(day, DECISION_SCHEDULE)
        cycle = run_at(stack, "decision_cycle", decide_t, {"scheduled_time": decide_t.isoformat(),
                                                           "universe": ["NVDA", "ORCL"]})
        assert cycle["status"] == "ok"
        assert drain(stack).failed == 0
        # Then Alpaca holds the entries as queued orders, nothing filled, their legs held; the book has them working
        tl = tradelog(stack)
        assert sorted(o["symbol"] for o in alpaca.orders) == ["NVDA", "ORCL"]
        for order in alpaca.orders:
            assert (order["status"], order["filled_qty"], order["filled_at"]) == ("accepted", "0", None)
            assert {leg["status"] for leg in order["legs"]} == {"held"}
            assert T.status(tl, order["client_order_id"])[0] == "EXECUTED"
        assert tl.positions() == [] and tl.fills() == []
        assert alpaca.market.positions() == []
        # When the next session opens, the fixture fills them at the open's price
        alpaca.set_time(opens + timedelta(minutes=5))
        for order in alpaca.orders:
            assert order["status"] == "filled" and parse_optional_time(order["filled_at"]) == opens
            open_price = alpaca.book.open_price(order["symbol"], opens.astimezone(NEW_YORK).date())
            assert float(order["filled_avg_price"]) == pytest.approx(open_price)
        # And the next 16:20 outcomes run books the fills at the open, with book = broker
        out = run_at(stack, "outcomes", scheduled(opens.astimezone(NEW_YORK).date(), OUTCOMES_SCHEDULE), {})
        assert out["reconciled"] == len(alpaca.orders) and out["errors"] == 0
        assert out["position_mismatches"] == [] and "cash_mismatch" not in out
        assert sorted(f.client_order_id for f in tl.fills()) == sorted(o["client_order_id"] for o in alpaca.orders)
        assert {f.filled_at for f in tl.fills()} == {opens}
        assert {p.opened_at for p in tl.positions()} == {opens}
        book_equals_broker(tl, alpaca)
    finally:
        alpaca.close()


def test_a_time_limit_exit_decided_after_the_close_fills_at_the_next_open_as_at_alpaca() -> None:
    # Given a paper position bought at D1's open whose horizon is one bar
    tl, clock = T.book(), FixedClock(T.AFTER_CLOSE)
    deps = T.deps_for(tl, PaperBroker(tl, Costs(1, 2), clock, T.MARKET), quotes=T.MARKET)
    decision = buy(tl, record=False).model_copy(update={"time_horizon_bars": 1})
    tl.put_decision(decision)
    execute_decision(pointer(tl, decision), T.AFTER_CLOSE, deps)
    # When outcomes runs after D1's close (the bar reaches the time limit)
    clock.set(T.OUTCOMES_D1)
    out = T.outcomes(deps, T.OUTCOMES_D1)
    # Then the close is working, as at Alpaca (an order sent after the close waits for the next open) ...
    assert out.working_closes == 1 and tl.position("ABC") is not None
    # ... and the next run books it at D2's open
    clock.set(T.OUTCOMES_D2)
    T.outcomes(deps, T.OUTCOMES_D2)
    (outcome,) = tl.outcomes()
    assert (outcome.exit_reason, outcome.exit_ts) == ("time_limit", T.CAL.session_open(T.D2))
