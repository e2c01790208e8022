"""The executor's entry path on the in-memory trade log, under the interleavings that broke the old code: an
account read that goes stale before the reservation (minute boundary, daily loss, kill switch), the same symbol
in two message groups, and a kill switch that cannot be read."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from mytrader import ledger
from mytrader.adapters.tradelog import TradeLog
from mytrader.adapters.tradelog.store import MemoryStore, Op, Update
from mytrader.config import RiskLimits, TradingConfig
from mytrader.models import Fill, OrderSide
from mytrader.risk import AccountState
from mytrader.usecases.execute import ExecDeps, ExecutionOutcome, close_position, execute_decision
from tests.integration.execution_fakes import Quotes, ScriptedBroker, buy, pointer

NOW = datetime(2014, 6, 3, 14, 0, tzinfo=UTC)  # a session's open
UNIVERSE = frozenset({"AAA", "BBB", "CCC", "ABC"})


class ReadThenMeanwhile(TradeLog):
    """The in-memory trade log, running `meanwhile` right after the entry's own account read (the second read
    of an execution, after the day check), so the read it returns is stale."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.meanwhile: Callable[[], object] | None = None
        self.reads = 0

    def account_state(self) -> AccountState:
        state = super().account_state()
        if self.meanwhile is not None:
            self.reads += 1
            if self.reads == 2:
                run, self.meanwhile = self.meanwhile, None
                run()
        return state


def deps(tl: TradeLog, limits: RiskLimits | None = None) -> ExecDeps:
    return ExecDeps(tradelog=tl, broker=ScriptedBroker(fill_on_submit=100.0), quotes=Quotes(100.0),
                    cfg=TradingConfig(risk=limits or RiskLimits()), max_age=timedelta(days=2), universe=UNIVERSE)


LogT = TypeVar("LogT", bound=TradeLog)


def account(tl: LogT) -> LogT:
    tl.ensure_account(100_000.0)
    tl.begin_day(NOW.date().isoformat())
    return tl


def test_two_entries_at_the_first_order_of_a_new_minute_both_execute() -> None:
    # Given a cap of 2 orders a minute, an account whose counter belongs to an earlier minute, and a second
    # entry that reserves between the first entry's read and its reservation
    tl = account(ReadThenMeanwhile())
    d = deps(tl, RiskLimits(max_orders_per_minute=2))
    first, second = buy(tl, "AAA", "d-aaa"), buy(tl, "BBB", "d-bbb")
    tl.meanwhile = lambda: execute_decision(pointer(tl, second), NOW, d)
    # When the first entry executes on its stale read
    result = execute_decision(pointer(tl, first), NOW, d)
    # Then it re-read and executed: no false rejection at the minute boundary
    assert result.result is ExecutionOutcome.EXECUTED
    assert {p.symbol for p in tl.positions()} == {"AAA", "BBB"}
    assert ledger.orders_in_window(tl.account_state(), NOW) == 2


def test_one_symbol_in_two_message_groups_is_entered_once() -> None:
    # Given two BUY decisions for one symbol (two FIFO groups), the second arriving while the first reserves
    tl = account(ReadThenMeanwhile())
    d = deps(tl)
    first, second = buy(tl, "AAA", "d-one"), buy(tl, "AAA", "d-two")
    outcome: list[ExecutionOutcome] = []
    tl.meanwhile = lambda: outcome.append(execute_decision(pointer(tl, second), NOW, d).result)
    result = execute_decision(pointer(tl, first), NOW, d)
    # Then exactly one order went out and one position exists; the other decision was refused naming the limit
    assert sorted([result.result, *outcome]) == sorted([ExecutionOutcome.EXECUTED, ExecutionOutcome.REJECTED])
    assert len(d.broker.orders) == 1 and len(tl.positions()) == 1  # type: ignore[attr-defined]  # the fake
    assert tl.account_state().open_positions == 1


def test_a_close_that_breaches_the_daily_loss_between_read_and_reserve_stops_the_entry() -> None:
    # Given a held position whose stop-out takes the day past -3 %, closing between an entry's read and reserve
    tl = account(ReadThenMeanwhile())
    d = deps(tl, RiskLimits(max_position_pct=50.0, max_order_notional=60_000.0))
    big = buy(tl, "AAA", "d-held", record=False).model_copy(update={"position_size_pct": 50.0})
    tl.put_decision(big)
    execute_decision(pointer(tl, big), NOW, d)
    held = tl.position("AAA")
    assert held is not None
    loss_price = 100.0 * (1 - 0.04 * 100_000.0 / (held.qty * 100.0))  # about -4 % of equity on this position
    fill = Fill(client_order_id="d-held-x", symbol="AAA", side=OrderSide.SELL, qty=held.qty, price=loss_price,
                fee=0.0, filled_at=NOW)
    entry = buy(tl, "BBB", "d-entry")
    tl.meanwhile = lambda: tl.record_close(held, fill, exit_price=loss_price, exit_fee=0.0, entry_fee=0.0,
                                           reason="stop_loss", at=NOW, owner="d-held", limits=d.cfg.risk, fill_seq=1)
    # When the entry executes on its read from before the close
    result = execute_decision(pointer(tl, entry), NOW, d)
    # Then the reservation failed on the changed state, the re-read saw the loss, and the entry was refused
    assert result.result is ExecutionOutcome.REJECTED and result.limit == ledger.Limit.DAILY_LOSS
    assert tl.position("BBB") is None and tl.account_state().tripped_day == NOW.date().isoformat()


def test_a_kill_switch_that_cannot_be_read_refuses_entries_but_not_exits() -> None:
    # Given an account whose kill switch attribute is missing (an old or damaged row) and a held position
    tl = account(TradeLog.in_memory())
    d = deps(tl)
    execute_decision(pointer(tl, buy(tl, "AAA", "d-held")), NOW, d)
    tl.store.transact([Op.upd(("ACCOUNT#main", "STATE"), Update(remove=("kill_switch",)))])
    # When an entry arrives, Then it is refused naming the kill switch (fail closed)
    result = execute_decision(pointer(tl, buy(tl, "BBB", "d-new")), NOW, d)
    assert result.result is ExecutionOutcome.REJECTED and result.limit == ledger.Limit.KILL_SWITCH
    # And the held position still closes on its stop
    held = tl.position("AAA")
    assert held is not None
    closed = close_position(held, "d-held-x", NOW + timedelta(hours=1), "stop_loss", d, quote=95.0)
    assert closed.result is ExecutionOutcome.EXECUTED and tl.positions() == []


def test_the_kill_switch_set_between_read_and_reserve_stops_the_entry() -> None:
    # Given an operator halting trading while an entry is between its read and its reservation
    tl = account(ReadThenMeanwhile())
    d = deps(tl)
    entry = buy(tl, "AAA", "d-entry")
    tl.meanwhile = lambda: tl.set_kill_switch(True)
    # When the entry executes, Then the reservation failed, the re-read saw the halt, and nothing was sent
    result = execute_decision(pointer(tl, entry), NOW, d)
    assert result.result is ExecutionOutcome.REJECTED and result.limit == ledger.Limit.KILL_SWITCH
    assert d.broker.orders == {}  # type: ignore[attr-defined]  # the scripted fake keeps what it was sent


def test_sizing_never_comes_from_the_message_or_an_inflated_record() -> None:
    # Given a recorded decision claiming it was sized on an equity of 1e12
    tl = account(TradeLog.in_memory())
    d = deps(tl)
    huge = buy(tl, "AAA", "d-huge", record=False).model_copy(update={"sizing_equity": 1e12,
                                                                     "position_size_pct": 25.0})
    tl.put_decision(huge)
    # When it executes, Then the order is capped by the account's own equity and the position limit
    result = execute_decision(pointer(tl, huge), NOW, d)
    assert result.result is ExecutionOutcome.EXECUTED
    pos = tl.position("AAA")
    assert pos is not None and pos.qty * 100.0 <= 0.20 * 100_000.0

