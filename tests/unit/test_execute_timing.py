"""Execution as a broker trades it, on the in-memory trade log: decided after the close, executed at once, filled
at the next open; working orders as state; quotes, errors and the broker's account by kind; fees and cash.

Each test is a probe from issue 12 that failed on the old code (which rejected every entry after the close as
market_closed, retried working closes until the DLQ, aborted outcomes on one failing lookup, rejected throttled
quotes, needed a quote for every close, never read the account, and placed no resting stops)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from mytrader import ledger
from mytrader.adapters.paper_broker import PaperBroker
from mytrader.adapters.tradelog import TradeLog
from mytrader.broker import BrokerError, BrokerErrorKind, FeeActivity, MarketClock
from mytrader.clock import FixedClock
from mytrader.config import TradingConfig
from mytrader.market.calendar import nyse
from mytrader.models import DecisionStatus, Order, OrderSide
from mytrader.portfolio import Costs, next_open
from mytrader.usecases.execute import ExecDeps, ExecutionOutcome, RetryLater, execute_decision
from mytrader.usecases.manage import CashMismatch, OutcomesResult, position_mismatches, run_outcomes
from tests.integration.execution_fakes import (
    UNIVERSE,
    AccountBroker,
    EmptyDlq,
    Quotes,
    ScriptedBroker,
    SentQueue,
    SeriesMarket,
    buy,
    daily_bars,
    pointer,
    position_of,
    sell,
)

CAL = nyse()
D, D1, D2 = date(2014, 6, 2), date(2014, 6, 3), date(2014, 6, 4)  # Monday to Wednesday
AFTER_CLOSE = CAL.session_close(D) + timedelta(minutes=10)  # the decision cycle's run, and the executor's
IN_SESSION = CAL.session_open(D1) + timedelta(minutes=30)
OUTCOMES_D1 = CAL.session_close(D1) + timedelta(minutes=5)
OUTCOMES_D2 = CAL.session_close(D2) + timedelta(minutes=5)
BARS = {D: (100.0, 101.0, 99.0, 100.0), D1: (101.0, 102.0, 100.5, 101.5), D2: (101.5, 103.0, 100.0, 102.0)}
MARKET = SeriesMarket(*(daily_bars(sym, BARS) for sym in ("ABC", "AAA", "BBB")))


def book() -> TradeLog:
    tl = TradeLog.in_memory()
    tl.ensure_account(100_000.0)
    return tl


def deps_for(tl: TradeLog, broker: object, quotes: object = None, cfg: TradingConfig | None = None) -> ExecDeps:
    return ExecDeps(tradelog=tl, broker=broker, quotes=quotes or Quotes(100.0),  # type: ignore[arg-type]
                    cfg=cfg or TradingConfig(), max_age=timedelta(days=2), universe=UNIVERSE)


def outcomes(deps: ExecDeps, at: datetime, queue: SentQueue | None = None,
             dlq: EmptyDlq | None = None) -> OutcomesResult:
    return run_outcomes(at, deps, MARKET, queue or SentQueue(), dlq)


def status(tl: TradeLog, decision_id: str) -> tuple[str, str]:
    row = tl.get_decision_row(decision_id)
    assert row is not None
    return row["status"], row["status_reason"]


# -- timing: decided after the close, filled at the next open ------------------------------------------------------
def test_an_entry_decided_after_the_close_is_queued_and_fills_at_the_next_open() -> None:
    # Given the paper broker and a BUY decided on bar D, executed at once after the 16:10 run
    tl, clock = book(), FixedClock(AFTER_CLOSE)
    deps = deps_for(tl, PaperBroker(tl, Costs(1, 2), clock, MARKET), quotes=MARKET)
    result = execute_decision(pointer(tl, buy(tl)), AFTER_CLOSE, deps)
    # Then it is not refused as market_closed: sized at D's close (100: 1 % of 100,000 -> 10 shares), accepted,
    # queued, nothing booked yet but the slot
    assert result.result is ExecutionOutcome.EXECUTED and result.filled == 0
    assert status(tl, "d-abc")[0] == "EXECUTED" and tl.position("ABC") is None
    assert tl.account_state().open_positions == 1 and tl.account_state().cash == 100_000.0
    # When outcomes runs after the next session's close
    clock.set(OUTCOMES_D1)
    out = outcomes(deps, OUTCOMES_D1)
    # Then the order filled at that session's open (101, slippage and fee on it), the position opened at the open,
    # and bar D1 was checked for it (held one bar)
    pos = position_of(tl)
    price = Costs(1, 2).fill_price(101.0, OrderSide.BUY)
    assert out.reconciled == 1 and out.held == 1
    assert (pos.qty, pos.avg_price, pos.opened_at, pos.bars_held) == (10, price, CAL.session_open(D1), 1)
    (fill,) = tl.fills()
    assert fill.filled_at == CAL.session_open(D1)
    assert round(tl.account_state().cash, 6) == round(100_000.0 - 10 * price - Costs(1, 2).fee(price, 10), 6)


def test_a_close_sent_after_hours_is_working_and_outcomes_books_it_at_the_next_open() -> None:
    # Given 10 ABC bought in the session, and a broker that queues what is sent after the close
    tl, broker = book(), ScriptedBroker(fill_on_submit=100.0)
    deps = deps_for(tl, broker)
    execute_decision(pointer(tl, buy(tl)), IN_SESSION, deps)
    broker.fill_on_submit = None
    # When a SELL decided on bar D1 is executed after the close
    result = execute_decision(pointer(tl, sell(tl, at=CAL.session_close(D1))), OUTCOMES_D1 + timedelta(minutes=5),
                              deps)
    # Then the message succeeds: the close is working, the SELL is EXECUTED, the book still holds the position
    assert result.result is ExecutionOutcome.EXECUTED and result.filled == 0 and result.closed is None
    assert status(tl, "d-sell")[0] == "EXECUTED" and position_of(tl).qty == 10
    # And book + working = broker, before and after the broker fills the order at the next open
    assert position_mismatches(tl, broker) == []
    broker.report("d-sell", "filled", 10, 96.0, at=CAL.session_open(D2))
    assert position_mismatches(tl, broker) == []
    # When outcomes runs after that session's close, Then it books the close at the broker's price and time first
    out = outcomes(deps, OUTCOMES_D2)
    (outcome,) = tl.outcomes()
    assert out.closed == 1 and tl.position("ABC") is None and out.position_mismatches == []
    assert (outcome.exit_reason, outcome.exit_price, outcome.exit_ts) == ("signal", 96.0, CAL.session_open(D2))
    assert tl.account_state().open_positions == 0


def test_a_broker_position_beyond_book_and_working_orders_is_still_a_mismatch() -> None:
    tl, broker = book(), ScriptedBroker(fill_on_submit=100.0)
    deps = deps_for(tl, broker)
    execute_decision(pointer(tl, buy(tl)), IN_SESSION, deps)
    broker.fill_on_submit = None
    execute_decision(pointer(tl, sell(tl)), OUTCOMES_D1, deps)  # a close of 10 working
    # Given 5 more ABC bought at the broker by hand
    broker.fill_on_submit = 100.0
    broker.submit(Order(client_order_id="manual", symbol="ABC", side=OrderSide.BUY, qty=5, submitted_at=IN_SESSION),
                  100.0)
    # Then the check reports it, with the working close it allowed for
    (m,) = position_mismatches(tl, broker)
    assert (m.symbol, m.book, m.broker, m.working) == ("ABC", 10, 15, -10)


# -- faults stay per order ------------------------------------------------------------------------------------------
def test_a_failing_order_lookup_stops_neither_the_other_orders_nor_the_sweeps() -> None:
    # Given two working entries, the broker throttling lookups of the first, and a decision stuck PENDING
    tl, broker = book(), ScriptedBroker()
    deps = deps_for(tl, broker)
    for sym in ("AAA", "BBB"):
        execute_decision(pointer(tl, buy(tl, sym, f"d-{sym.lower()}")), AFTER_CLOSE, deps)
    broker.lookups_fail["d-aaa"] = BrokerError("alpaca HTTP 429 after 3 tries", retryable=True,
                                               kind=BrokerErrorKind.THROTTLED)
    broker.report("d-bbb", "filled", broker.orders["d-bbb"].qty, 101.0, at=CAL.session_open(D1))
    buy(tl, "ABC", "d-stuck")
    queue, dlq = SentQueue(), EmptyDlq()
    # When outcomes runs
    out = outcomes(deps, OUTCOMES_D1, queue, dlq)
    # Then the other order is booked, the failure is counted with its reason, and both sweeps still ran
    assert out.reconciled == 1 and position_of(tl, "BBB").qty == broker.orders["d-bbb"].qty
    assert out.errors == 1 and out.error_reasons is not None and "d-aaa" in out.error_reasons[0]
    assert queue.sent == ["d-stuck"] and dlq.receives == 1


def test_a_throttled_quote_delays_the_entry_instead_of_rejecting_it() -> None:
    tl, broker = book(), ScriptedBroker(fill_on_submit=100.0)
    deps = deps_for(tl, broker, quotes=Quotes(unavailable=True))
    # When the quote source answers 429 after its retries, Then the message is handed back, nothing reserved
    with pytest.raises(RetryLater):
        execute_decision(pointer(tl, buy(tl)), IN_SESSION, deps)
    assert status(tl, "d-abc")[0] == "PENDING" and broker.orders == {}
    assert tl.account_state().open_positions == 0 and tl.symbol_claim_owner("ABC") is None


def test_a_close_at_a_real_broker_is_sent_without_any_quote() -> None:
    # Given a position, and market data that has no usable quote at all
    tl, broker = book(), ScriptedBroker(fill_on_submit=100.0)
    execute_decision(pointer(tl, buy(tl)), IN_SESSION, deps_for(tl, broker))
    quotes = Quotes(price=None)
    # When a SELL is executed, Then the market order goes out without a quote being asked for
    result = execute_decision(pointer(tl, sell(tl)), IN_SESSION + timedelta(hours=1), deps_for(tl, broker, quotes))
    assert "d-sell" in broker.orders and quotes.asked == 0
    assert result.closed == "signal" and tl.position("ABC") is None


# -- errors and the broker's account by kind -------------------------------------------------------------------------
def test_a_blocked_account_refuses_entries_naming_the_limit_until_it_clears() -> None:
    tl, broker = book(), AccountBroker()
    deps = deps_for(tl, broker)
    broker.state = replace(broker.state, trading_blocked=True)
    # When outcomes reads the blocked account, Then the next entry is refused naming the limit
    assert outcomes(deps, OUTCOMES_D1).broker_block == "broker trading blocked"
    refused = execute_decision(pointer(tl, buy(tl)), OUTCOMES_D1 + timedelta(minutes=5), deps)
    assert refused.limit == ledger.Limit.BROKER_BLOCKED and status(tl, "d-abc") == (
        "REJECTED", "risk: broker_blocked: broker trading blocked")
    # And once a later run sees the account clear, entries go again
    broker.state = replace(broker.state, trading_blocked=False)
    assert outcomes(deps, OUTCOMES_D1 + timedelta(minutes=6)).broker_block is None
    again = execute_decision(pointer(tl, buy(tl, "AAA", "d-aaa")), OUTCOMES_D1 + timedelta(minutes=7), deps)
    assert again.result is ExecutionOutcome.EXECUTED


def test_the_brokers_clock_decides_the_session_an_order_fills_in() -> None:
    # Given a decision after D's close, and a broker whose clock knows of an unscheduled closure: the market next
    # opens in 3 days (the exchange calendar would say tomorrow), beyond the decision's 2-day max age
    tl, broker = book(), AccountBroker()
    deps = deps_for(tl, broker)
    broker.market_clock = MarketClock(timestamp=AFTER_CLOSE, is_open=False,
                                      next_open=CAL.session_open(D1) + timedelta(days=3),
                                      next_close=CAL.session_close(D1) + timedelta(days=3))
    # When the entry is executed, Then it is refused: no session opens before the decision goes stale
    refused = execute_decision(pointer(tl, buy(tl)), AFTER_CLOSE, deps)
    assert refused.limit == ledger.Limit.NO_SESSION
    # And when the clock cannot be read, the exchange calendar decides (the next open is tomorrow: queued)
    broker.market_clock = None
    queued = execute_decision(pointer(tl, buy(tl, "AAA", "d-aaa")), AFTER_CLOSE, deps)
    assert queued.result is ExecutionOutcome.EXECUTED and queued.filled == 0


def test_buying_power_below_the_book_equity_sizes_the_entry_down() -> None:
    # Given a book of 100,000 and a broker allowing 30,000 of buying power
    tl, broker = book(), AccountBroker(fill_on_submit=100.0)
    broker.state = replace(broker.state, buying_power=30_000.0)
    deps = deps_for(tl, broker)
    outcomes(deps, OUTCOMES_D1)
    # When a 20 % entry is executed at 100, Then it is 20 % of 30,000: 60 shares, not 200
    decision = buy(tl, record=False).model_copy(update={"position_size_pct": 20.0})
    tl.put_decision(decision)
    assert execute_decision(pointer(tl, decision), IN_SESSION + timedelta(days=1), deps).qty == 60


def test_a_refusal_with_a_broker_code_rejects_the_entry_with_the_code() -> None:
    refusal = BrokerError("potential wash trade detected", retryable=False, kind=BrokerErrorKind.REFUSED,
                          code="40310000")
    tl = book()
    result = execute_decision(pointer(tl, buy(tl)), IN_SESSION, deps_for(tl, ScriptedBroker(refuse=refusal)))
    assert result.result is ExecutionOutcome.REJECTED
    assert status(tl, "d-abc") == ("REJECTED", "broker refused: potential wash trade detected [code 40310000]")
    assert tl.account_state().open_positions == 0 and tl.symbol_claim_owner("ABC") is None


def test_an_auth_error_blocks_entries_and_the_redelivery_meets_the_block() -> None:
    # Given a broker refusing MyTrader's keys
    tl = book()
    broker = ScriptedBroker(fill_on_submit=100.0, refuse=BrokerError("alpaca HTTP 401", retryable=False,
                                                                     kind=BrokerErrorKind.AUTH, code="40110000"))
    deps = deps_for(tl, broker)
    # When an entry is executed, Then it is handed back, its reservation withdrawn, and entries blocked
    with pytest.raises(RetryLater):
        execute_decision(pointer(tl, buy(tl)), IN_SESSION, deps)
    account = tl.account_state()
    assert status(tl, "d-abc")[0] == "PENDING" and tl.order("d-abc") is None
    assert account.open_positions == 0 and account.broker_block.startswith("broker auth: alpaca HTTP 401")
    # And the redelivery is refused by the block (fail closed) even though the broker answers again
    broker.refuse = None
    again = execute_decision(pointer(tl, buy(tl, record=False)), IN_SESSION + timedelta(minutes=3), deps)
    assert again.limit == ledger.Limit.BROKER_BLOCKED and broker.orders == {}


# -- resting stops at a real broker ---------------------------------------------------------------------------------
def bracket_entry(time_limit: int = 10) -> tuple[TradeLog, ScriptedBroker, ExecDeps]:
    tl, broker = book(), ScriptedBroker(fill_on_submit=100.0)
    deps = deps_for(tl, broker)
    decision = buy(tl, record=False).model_copy(update={"stop_loss": 94.987, "take_profit": 110.004,
                                                        "time_horizon_bars": time_limit})
    tl.put_decision(decision)
    execute_decision(pointer(tl, decision), IN_SESSION, deps)
    return tl, broker, deps


def test_a_bracket_entry_rests_its_legs_on_the_tick_and_a_filled_leg_is_the_close() -> None:
    tl, broker, deps = bracket_entry()
    legs = {leg.leg: leg for leg in broker.orders["d-abc"].legs}
    assert (legs["stop_loss"].stop_price, legs["take_profit"].limit_price) == (94.99, 110.0)
    # Given the stop leg filled at the broker during the session
    hit = IN_SESSION + timedelta(hours=2)
    broker.report_leg("d-abc", "stop_loss", "filled", 10, 94.99, fee=0.09, at=hit)
    # When outcomes runs, Then the leg's fill is the close (its price and time), and no market close is sent
    out = outcomes(deps, OUTCOMES_D1)
    (outcome,) = tl.outcomes()
    assert out.closed == 1 and tl.position("ABC") is None and "d-abc-x" not in broker.orders
    assert (outcome.exit_reason, outcome.exit_price, outcome.exit_ts) == ("stop_loss", 94.99, hit)


def test_a_time_limit_close_cancels_the_resting_legs_before_it_sells() -> None:
    # Given a bracket entry whose horizon is one bar, and a broker queueing orders sent after the close
    tl, broker, deps = bracket_entry(time_limit=1)
    broker.fill_on_submit = None
    # When outcomes checks the day's bar, Then both legs are cancelled first, then the close goes out (working)
    out = outcomes(deps, OUTCOMES_D1)
    assert broker.events[-3:] == [("cancel", "b-d-abc-stop_loss"), ("cancel", "b-d-abc-take_profit"),
                                  ("submit", "d-abc-x")]
    assert out.working_closes == 1 and out.closed == 0 and position_of(tl).qty == 10


# -- fees and cash ----------------------------------------------------------------------------------------------------
def test_fee_activities_are_booked_once_and_a_cash_difference_is_reported() -> None:
    tl, broker = book(), AccountBroker(cash=100_000.0 - 1.39)
    broker.fees = [FeeActivity(activity_id="fee-1", amount=-0.02, at=OUTCOMES_D1 - timedelta(days=1), symbol="ABC"),
                   FeeActivity(activity_id="fee-2", amount=-1.37, at=OUTCOMES_D1 - timedelta(days=1))]
    deps = deps_for(tl, broker)
    # When outcomes runs twice, Then each fee is booked once into cash, and book and broker agree
    first, second = outcomes(deps, OUTCOMES_D1), outcomes(deps, OUTCOMES_D1 + timedelta(minutes=1))
    assert (first.fees_booked, second.fees_booked) == (2, 0)
    assert first.cash_mismatch is None and round(tl.account_state().cash, 2) == 99_998.61
    # And when the broker's cash moves without the book, the difference is reported
    broker.state = replace(broker.state, cash=99_990.0)
    assert outcomes(deps, OUTCOMES_D2).cash_mismatch == CashMismatch(book=99_998.61, broker=99_990.0)


# -- the paper broker, the paper quote, the execution window ------------------------------------------------------
def test_the_paper_broker_fills_a_queued_order_at_the_first_open_it_has_a_price_for() -> None:
    # Given bars for D and D2 only (no bar for D1), and an order sent after D's close
    tl, clock = book(), FixedClock(AFTER_CLOSE)
    market = SeriesMarket(daily_bars("ABC", {D: BARS[D], D2: BARS[D2]}))
    paper = PaperBroker(tl, Costs(1, 2), clock, market)
    paper.submit(Order(client_order_id="o1", symbol="ABC", side=OrderSide.BUY, qty=3, submitted_at=AFTER_CLOSE), 0.0)
    # Then it waits before the open, and fills at D2's open once that has passed (kept filled in the book)
    clock.set(CAL.session_open(D1) - timedelta(minutes=1))
    assert paper.get_by_client_order_id("o1").status == "accepted"  # type: ignore[union-attr]
    clock.set(OUTCOMES_D2)
    filled = paper.get_by_client_order_id("o1")
    assert filled is not None and filled.filled_at == CAL.session_open(D2)
    assert (filled.status, filled.filled_avg_price) == ("filled", Costs(1, 2).fill_price(101.5, OrderSide.BUY))
    assert [o.status for o in paper.ledger()] == ["filled"]


def test_the_paper_quote_is_the_open_in_the_session_and_the_close_after_it() -> None:
    early = date(2014, 11, 28)  # the day after Thanksgiving: the session closes at 13:00
    q = SeriesMarket(daily_bars("ABC", {**BARS, early: (90.0, 91.0, 89.0, 90.5)})).quote
    assert q("ABC", CAL.session_open(D1) + timedelta(hours=1)) == 101.0  # in the session: its open
    assert q("ABC", AFTER_CLOSE) == 100.0  # after the close: the close
    assert q("ABC", CAL.session_open(D1) - timedelta(hours=2)) == 100.0  # before the open: the last close
    assert q("ABC", CAL.session_close(early) + timedelta(minutes=10)) == 90.5  # 13:10 after an early close


def test_an_entry_is_refused_only_when_no_session_opens_before_the_decision_goes_stale() -> None:
    friday_run = CAL.session_close(date(2014, 5, 30)) + timedelta(minutes=10)
    decided = CAL.session_close(date(2014, 5, 30))
    monday_open = next_open(friday_run)
    assert monday_open == CAL.session_open(date(2014, 6, 2))
    assert ledger.opens_in_time(monday_open, decided, timedelta(days=4))
    assert not ledger.opens_in_time(monday_open, decided, timedelta(hours=12))
    account = ledger.new_account(100_000.0)
    verdict = ledger.entry_verdict(TradingConfig().risk, account, size_pct=1.0, price=100.0, now=friday_run,
                                   opens_in_time=False, kill_switch=False)
    assert verdict.limit == ledger.Limit.NO_SESSION and not verdict.approved


def test_an_outcomes_run_without_a_broker_account_reports_none() -> None:
    tl = book()
    out = outcomes(deps_for(tl, PaperBroker(tl, Costs(1, 2), FixedClock(OUTCOMES_D1), MARKET), MARKET), OUTCOMES_D1)
    assert out.response() == {"closed": 0, "held": 0, "positions_unchecked": 0, "checked_on_quote": 0,
                              "reconciled": 0, "working_closes": 0, "resent": 0, "dead_lettered": 0,
                              "fees_booked": 0, "errors": 0, "realised_pnl": 0.0}
    assert DecisionStatus.PENDING.value not in tl.count_by_status() or tl.count_by_status()["PENDING"] == 0


def test_a_close_the_broker_refuses_for_good_rejects_the_sell_and_frees_the_position() -> None:
    # Given a position, and a broker refusing its close order for good (not retryable)
    tl, broker = book(), ScriptedBroker(fill_on_submit=100.0)
    deps = deps_for(tl, broker)
    execute_decision(pointer(tl, buy(tl)), IN_SESSION, deps)
    broker.refuse = BrokerError("insufficient qty available", retryable=False, kind=BrokerErrorKind.REFUSED,
                                code="40310000")
    # When the SELL is executed, Then it ends REJECTED with the broker's code (no retry until the DLQ)
    result = execute_decision(pointer(tl, sell(tl)), IN_SESSION + timedelta(hours=1), deps)
    assert result.result is ExecutionOutcome.REJECTED and "[code 40310000]" in (result.reason or "")
    # And the position is free for the next close, whose order gets a new id
    row = tl.position_row("ABC")
    assert row is not None and "closing_base" not in row
    broker.refuse = None
    closed = execute_decision(pointer(tl, sell(tl, "d-sell-2")), IN_SESSION + timedelta(hours=2), deps)
    assert closed.closed == "signal" and "d-sell-2-r1" in broker.orders and tl.position("ABC") is None
