"""A Hypothesis state machine over the trade log's contract, shared by the in-memory and the DynamoDB runs.

Rules model what the world does to the book, interleaved in any order: decisions recorded, entries checked and
reserved (honestly, from a stale read, or by a caller that skipped its own check), orders that fill at once, in
parts or never, entries withdrawn after the broker refused the keys, closes (stops, targets, signals; at once or
working first), day rollovers, the minute clock, kill-switch toggles, the broker's account blocking entries and
its buying power, fee activities (each booked once), duplicate deliveries. After every step the invariants below
are read back from the trade log itself.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mytrader import ledger
from mytrader.adapters.tradelog import AlreadyReserved, NotPending, ReserveParams, StateConflict, SymbolBusy, TradeLog
from mytrader.broker import FeeActivity
from mytrader.config import RiskLimits
from mytrader.models import (
    Action,
    DecisionStatus,
    Fill,
    Mode,
    Order,
    OrderSide,
    Position,
    StrategySignal,
    TradeDecision,
    make_decision_id,
)
from mytrader.portfolio import Costs
from mytrader.risk import AccountState

# Two positions of up to 60 % need more cash than there is: the cash condition has work to do.
LIMITS = RiskLimits(max_position_pct=60.0, max_order_notional=65_000.0, max_open_positions=3,
                    max_orders_per_minute=2, daily_loss_limit_pct=3.0, max_consecutive_stopouts=2, cooldown_bars=2)
INITIAL = 100_000.0
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
COSTS = Costs(fee_bps=1.0, slippage_bps=2.0)
START = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def pending_decision(decision_id: str, symbol: str, now: datetime, size: float = 10.0,
                     price: float = 10.0) -> TradeDecision:
    """A BUY decision as the decision cycle records it (PENDING), decided at the previous close."""
    bar = now - timedelta(hours=15)
    return TradeDecision(decision_id=decision_id, symbol=symbol, bar_ts=bar, decided_at=bar, config_version="v1",
                         mode=Mode.BASELINE, action=Action.BUY, confidence=0.8, position_size_pct=size,
                         reference_price=price, stop_loss=price * 0.9, take_profit=price * 1.2, time_horizon_bars=5,
                         strategy=StrategySignal(action=Action.BUY, confidence=0.8, reason="test"))


@dataclass
class Working:
    decision: TradeDecision
    order: Order
    quote: float
    filled: float = 0.0
    sent: bool = True  # False: reserved, the order not at the broker yet (the executor's next delivery sends it)


class TradeLogMachine(RuleBasedStateMachine):
    """Subclasses set `make_log()`; the machine never looks inside the store, only through the contract."""

    def make_log(self) -> TradeLog:
        return TradeLog.in_memory()

    def __init__(self) -> None:
        super().__init__()
        self.tl = self.make_log()
        self.tl.ensure_account(INITIAL)
        self.now = START
        self.tl.begin_day(ledger.day_of(self.now))
        self.seq = 0
        self.pending: list[TradeDecision] = []
        self.working: dict[str, Working] = {}  # symbol -> entry order not yet fully filled
        self.stale: list[tuple[TradeDecision, AccountState, float]] = []
        self.buys = self.sells = self.fees = 0.0
        self.fee_activities: dict[str, float] = {}  # activity id -> amount booked (signed: a charge is negative)
        self.closing: set[str] = set()  # symbols whose close order is working at the broker

    # -- the world ----------------------------------------------------------------------------------
    @rule(minutes=st.integers(0, 2))
    def minutes_pass(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def next_day(self) -> None:
        self.now += timedelta(days=1)
        self.tl.begin_day(ledger.day_of(self.now))

    @rule(on=st.booleans())
    def operator_kill_switch(self, on: bool) -> None:
        self.tl.set_kill_switch(on)

    @rule(block=st.sampled_from([None, None, "broker account blocked", "broker auth: HTTP 401"]),
          buying_power=st.sampled_from([None, 15_000.0, 1_000_000.0]))
    def broker_account(self, block: str | None, buying_power: float | None) -> None:
        """Outcomes read the broker's account: a block (or none) and its buying power."""
        self.tl.set_broker_account(block, buying_power)
        state = self.tl.account_state()
        assert (state.broker_block, state.buying_power) == (block or "", buying_power)

    @rule(activity=st.sampled_from(["fee-1", "fee-2", "fee-3"]), amount=st.sampled_from([-0.02, -1.37]))
    def fee_activity(self, activity: str, amount: float) -> None:
        """A FEE activity reported (again, perhaps): booked to cash the first time only."""
        booked = self.tl.book_fee(FeeActivity(activity_id=activity, amount=amount, at=self.now))
        assert booked == (activity not in self.fee_activities)
        self.fee_activities.setdefault(activity, amount)

    @rule(symbol=st.sampled_from(SYMBOLS), size=st.sampled_from([5.0, 30.0, 60.0, 80.0]),
          price=st.sampled_from([7.0, 40.0, 250.0]))
    def decide(self, symbol: str, size: float, price: float) -> None:
        self.seq += 1
        d = pending_decision(make_decision_id(symbol, self.now, f"v{self.seq}"), symbol, self.now, size, price)
        assert self.tl.put_decision(d)
        assert not self.tl.put_decision(d)  # a duplicate write never replaces the record
        self.pending.append(d)

    # -- entries ------------------------------------------------------------------------------------
    @rule(symbol=st.sampled_from(SYMBOLS), size=st.sampled_from([30.0, 60.0]))
    def decide_and_enter_at_once(self, symbol: str, size: float) -> None:
        """The common path in one step: a decision recorded and entered (fully filled) right away."""
        self.decide(symbol, size, 40.0)
        self._honest(self.pending[-1], "all")

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), fills=st.sampled_from(["all", "part", "none", "unsent"]))
    def honest_entry(self, data: st.DataObject, fills: str) -> None:
        self._honest(data.draw(st.sampled_from(self.pending)), fills)

    def _honest(self, d: TradeDecision, fills: str) -> None:
        state = self.tl.account_state()
        verdict = ledger.entry_verdict(LIMITS, state, size_pct=d.position_size_pct, price=d.reference_price,
                                       now=self.now, opens_in_time=True, kill_switch=state.kill_switch,
                                       symbol_busy=self.tl.symbol_claimed(d.symbol))
        if verdict.trips_daily_loss:
            self.tl.trip_daily_loss(state.day)
        if not verdict.approved:
            self.tl.mark_terminal(d.decision_id, DecisionStatus.REJECTED, verdict.reason)
            self.pending.remove(d)
            return
        self._reserve(d, state, verdict.qty, fills)

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def read_now_reserve_later(self, data: st.DataObject) -> None:
        d = data.draw(st.sampled_from(self.pending))
        state = self.tl.account_state()
        verdict = ledger.entry_verdict(LIMITS, state, size_pct=d.position_size_pct, price=d.reference_price,
                                       now=self.now, opens_in_time=True, kill_switch=state.kill_switch,
                                       symbol_busy=self.tl.symbol_claimed(d.symbol))
        if verdict.approved:
            self.stale.append((d, state, verdict.qty))

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def reserve_from_stale_read(self, data: st.DataObject) -> None:
        d, state, qty = self.stale.pop(data.draw(st.integers(0, len(self.stale) - 1)))
        if d in self.pending:
            self._reserve(d, state, qty, "all")

    def enter(self, symbol: str, size: float) -> None:
        """A decision recorded and entered at once, honestly (the scenarios below use it)."""
        self.decide_and_enter_at_once(symbol, size)

    @rule(symbol=st.sampled_from(SYMBOLS), share=st.sampled_from([0.3, 0.8, 1.0, 1.3]))
    def reserve_without_checking(self, symbol: str, share: float) -> None:
        """A caller whose own limit check is wrong: only the reservation's conditions stand in the way. Its size is
        a share of the largest position allowed, sometimes beyond it."""
        self.decide(symbol, 60.0, 40.0)
        d = self.pending[-1]
        state = self.tl.account_state()
        qty = float(max(1, int(share * LIMITS.max_position_pct / 100 * state.book_equity / d.reference_price)))
        self._reserve(d, state, qty, "all")

    def _reserve(self, d: TradeDecision, state: AccountState, qty: float, fills: str) -> None:
        order = Order(client_order_id=d.decision_id, symbol=d.symbol, side=OrderSide.BUY, qty=qty,
                      submitted_at=self.now)
        fresh = self.tl.account_state()
        params = ReserveParams(expected=state, limits=LIMITS, now=self.now, notional=qty * d.reference_price)
        try:
            self.tl.reserve_entry(d.decision_id, order, d.reference_price, params)
        except (StateConflict, SymbolBusy, AlreadyReserved, NotPending):
            return
        # Then every limit was free in the stored state it was reserved against
        assert fresh.version == state.version, "reserved against a state that had changed"
        assert not fresh.kill_switch and fresh.tripped_day != fresh.day
        assert not fresh.broker_block, "reserved while the broker account blocks entries"
        assert not ledger.daily_loss_breached(LIMITS, fresh)
        assert fresh.cooldown_until is None or self.now >= fresh.cooldown_until
        assert fresh.open_positions < LIMITS.max_open_positions
        assert ledger.orders_in_window(fresh, self.now) < LIMITS.max_orders_per_minute
        assert qty * d.reference_price <= LIMITS.max_position_pct / 100 * fresh.book_equity + 1e-3
        assert qty * d.reference_price <= fresh.cash + 1e-6
        assert d.symbol not in self.working and self.tl.position(d.symbol) is None
        self.pending.remove(d)
        w = Working(d, order, d.reference_price)
        if fills == "unsent":  # reserved, its order not at the broker yet
            self.working[d.symbol] = replace(w, sent=False)
            return
        if fills == "none":
            self.tl.record_entry_accepted(d, order, d.reference_price)
            self.working[d.symbol] = w
            return
        part = qty if fills == "all" else max(1.0, float(int(qty / 2)))
        self._first_fill(w, part)

    def _first_fill(self, w: Working, qty: float) -> None:
        price = COSTS.fill_price(w.quote, OrderSide.BUY)
        fee = COSTS.fee(price, qty)
        fill = Fill(client_order_id=w.order.client_order_id, symbol=w.order.symbol, side=OrderSide.BUY, qty=qty,
                    price=price, fee=fee, filled_at=self.now)
        pos = Position(symbol=w.order.symbol, qty=qty, avg_price=price, opened_at=self.now,
                       decision_id=w.decision.decision_id, stop_loss=w.decision.stop_loss,
                       take_profit=w.decision.take_profit, time_limit_bars=5)
        status = "filled" if qty >= w.order.qty else "partially_filled"
        assert self.tl.record_entry_fill(w.decision, w.order, fill, pos, w.quote, status)
        assert not self.tl.record_entry_fill(w.decision, w.order, fill, pos, w.quote, status)  # redelivery
        self._book(OrderSide.BUY, qty, price, fee)
        w.filled = qty
        if status != "filled":
            self.working[w.order.symbol] = w

    @precondition(lambda self: any(not w.sent for w in self.working.values()))
    @rule(data=st.data())
    def redelivery_sends_the_order(self, data: st.DataObject) -> None:
        """The executor's next delivery finds the reservation and sends its order: the broker accepts it."""
        symbol = data.draw(st.sampled_from(sorted(s for s, w in self.working.items() if not w.sent)))
        w = self.working[symbol]
        self.tl.record_entry_accepted(w.decision, w.order, w.quote)
        self.working[symbol] = replace(w, sent=True)

    @precondition(lambda self: any(w.sent for w in self.working.values()))
    @rule(data=st.data(), outcome=st.sampled_from(["rest", "cancel"]))
    def broker_reports(self, data: st.DataObject, outcome: str) -> None:
        symbol = data.draw(st.sampled_from(sorted(s for s, w in self.working.items() if w.sent)))
        w = self.working.pop(symbol)
        row = self.tl.order(w.decision.decision_id)
        assert row is not None
        pos = self.tl.position(symbol)
        if outcome == "cancel" or w.filled >= w.order.qty:
            self.tl.record_late_fill(w.decision.decision_id, row, None, None, opens=False, take_slot=False, done=True,
                                     nothing_filled=w.filled <= 0, status="canceled")
            return
        qty = w.order.qty - w.filled
        price = COSTS.fill_price(w.quote, OrderSide.BUY)
        fee = COSTS.fee(price, qty)
        fill = Fill(client_order_id=w.order.client_order_id, symbol=symbol, side=OrderSide.BUY, qty=qty, price=price,
                    fee=fee, filled_at=self.now)
        held = abs(pos.qty) if pos else 0.0
        new_pos = (pos.model_copy(update={"qty": held + qty}) if pos else
                   Position(symbol=symbol, qty=qty, avg_price=price, opened_at=self.now,
                            decision_id=w.decision.decision_id, stop_loss=w.decision.stop_loss, time_limit_bars=5))
        row = {**row, "filled_qty": w.order.qty, "filled_notional": float(row.get("filled_notional", 0)) + qty * price,
               "filled_fee": float(row.get("filled_fee", 0)) + fee}
        self.tl.record_late_fill(w.decision.decision_id, row, fill, new_pos, opens=pos is None,
                                 take_slot=pos is None and w.filled > 0, done=True, nothing_filled=False,
                                 status="filled")
        self._book(OrderSide.BUY, qty, price, fee)

    @precondition(lambda self: any(w.filled <= 0 for w in self.working.values()))
    @rule(data=st.data())
    def auth_refused_withdraws_an_entry(self, data: st.DataObject) -> None:
        """The broker refused the keys before the order reached it: the reservation is withdrawn, the decision stays
        PENDING (its message comes again) and entries are blocked."""
        symbol = data.draw(st.sampled_from(sorted(s for s, w in self.working.items() if w.filled <= 0)))
        w = self.working[symbol]
        row = self.tl.order(w.decision.decision_id)
        assert row is not None
        if row.get("status") != "submitting":  # accepted by the broker already: nothing to withdraw
            assert not self.tl.withdraw_entry(w.decision.decision_id, symbol, "broker auth: HTTP 401")
            return
        assert self.tl.withdraw_entry(w.decision.decision_id, symbol, "broker auth: HTTP 401")
        del self.working[symbol]
        self.pending.append(w.decision)
        assert self.tl.account_state().broker_block == "broker auth: HTTP 401"

    # -- closes -------------------------------------------------------------------------------------
    @rule(data=st.data(), move=st.sampled_from([-0.3, -0.1, -0.02, 0.02, 0.1, 0.3]),
          reason=st.sampled_from(["stop_loss", "stop_loss", "stop_loss", "take_profit", "time_limit", "signal"]))
    def close(self, data: st.DataObject, move: float, reason: str) -> None:
        positions = [p for p in self.tl.positions() if p.symbol not in self.working]  # no order still working
        if not positions:
            return
        self.close_position(data.draw(st.sampled_from(positions)), move, reason)

    @rule(data=st.data())
    def close_goes_working(self, data: st.DataObject) -> None:
        """A close order the broker queued (sent after the close): the position is claimed and its order working;
        nothing is booked until it fills (the `close` rule then books it)."""
        positions = [p for p in self.tl.positions() if p.symbol not in self.working and p.symbol not in self.closing]
        if not positions:
            return
        pos = data.draw(st.sampled_from(positions))
        coid = f"{pos.decision_id}-x"
        assert self.tl.mark_closing(pos.symbol, coid, "signal", pos.decision_id, self.now)
        assert self.tl.record_close_working(pos.symbol, coid, "accepted", None)
        self.closing.add(pos.symbol)

    def close_position(self, pos: Position, move: float, reason: str) -> None:
        price = COSTS.fill_price(pos.avg_price * (1 + move), OrderSide.SELL)
        fee = COSTS.fee(price, abs(pos.qty))
        fill = Fill(client_order_id=f"{pos.decision_id}-x", symbol=pos.symbol, side=OrderSide.SELL, qty=abs(pos.qty),
                    price=price, fee=fee, filled_at=self.now)
        kw: dict[str, Any] = dict(exit_price=price, exit_fee=fee, entry_fee=self.tl.position_entry_fee(pos.symbol),
                                  reason=reason, at=self.now, owner=pos.decision_id, limits=LIMITS, fill_seq=1)
        done = self.tl.record_close(pos, fill, **kw)
        assert done is not None
        assert self.tl.record_close(pos, fill, **kw) is None  # a duplicate close books nothing
        self._book(OrderSide.SELL, abs(pos.qty), price, fee)
        self.closing.discard(pos.symbol)

    def _book(self, side: OrderSide, qty: float, price: float, fee: float) -> None:
        if side == OrderSide.BUY:
            self.buys += qty * price
        else:
            self.sells += qty * price
        self.fees += fee

    # -- invariants ---------------------------------------------------------------------------------
    @invariant()
    def slots_positions_and_claims_agree(self) -> None:
        state = self.tl.account_state()
        held = {p.symbol for p in self.tl.positions()}
        waiting = {s for s, w in self.working.items() if w.filled <= 0}
        assert state.open_positions <= LIMITS.max_open_positions
        assert state.open_positions == len(held | waiting)
        assert all(self.tl.symbol_claimed(s) for s in held | set(self.working))
        assert all(not self.tl.symbol_claimed(s) for s in set(SYMBOLS) - held - set(self.working))

    @invariant()
    def cash_is_initial_minus_buys_plus_sells_minus_fees(self) -> None:
        expected = INITIAL - self.buys + self.sells - self.fees + sum(self.fee_activities.values())
        assert abs(self.tl.account_state().cash - expected) < 1e-4

    @invariant()
    def orders_in_the_window_stay_under_the_cap(self) -> None:
        assert ledger.orders_in_window(self.tl.account_state(), self.now) <= LIMITS.max_orders_per_minute

    def check_all(self) -> None:
        """Every invariant, for scripted interleavings run outside Hypothesis."""
        self.slots_positions_and_claims_agree()
        self.cash_is_initial_minus_buys_plus_sells_minus_fees()
        self.orders_in_the_window_stay_under_the_cap()


def _stale_second_entry(m: TradeLogMachine) -> None:
    m.decide("AAA", 30.0, 40.0)
    m.decide("BBB", 30.0, 40.0)
    first, second = m.pending[-2], m.pending[-1]
    read = m.tl.account_state()
    m._reserve(first, read, 100.0, "all")
    m._reserve(second, read, 100.0, "all")  # from the read taken before the first reservation


def _recovered_after_a_trip(m: TradeLogMachine) -> None:
    m.enter("AAA", 30.0)
    m.enter("BBB", 30.0)
    m.close_position(m.tl.position("AAA"), -0.3, "signal")  # type: ignore[arg-type]  # entered just above
    m.decide("CCC", 30.0, 40.0)
    m._honest(m.pending[-1], "all")  # refused: the day's loss is beyond the limit, and the day trips
    m.close_position(m.tl.position("BBB"), 0.3, "signal")  # type: ignore[arg-type]  # back above the floor
    m.minutes_pass(1)
    m.reserve_without_checking("DDD", 0.3)


def _three_then_a_fourth(m: TradeLogMachine) -> None:
    m.enter("AAA", 10.0)
    m.enter("BBB", 10.0)
    m.minutes_pass(1)
    m.enter("CCC", 10.0)
    m.minutes_pass(1)
    m.reserve_without_checking("DDD", 0.3)


def _two_stop_outs(m: TradeLogMachine) -> None:
    m.enter("AAA", 10.0)
    m.enter("BBB", 10.0)
    m.close_position(m.tl.position("AAA"), -0.05, "stop_loss")  # type: ignore[arg-type]  # entered above
    m.close_position(m.tl.position("BBB"), -0.05, "stop_loss")  # type: ignore[arg-type]  # entered above
    m.minutes_pass(1)
    m.reserve_without_checking("CCC", 0.3)


def _after_a_loss(m: TradeLogMachine) -> None:
    m.enter("AAA", 30.0)
    m.close_position(m.tl.position("AAA"), -0.3, "signal")  # type: ignore[arg-type]  # entered just above
    m.reserve_without_checking("BBB", 0.3)


def _third_order_in_a_minute(m: TradeLogMachine) -> None:
    m.enter("AAA", 10.0)
    m.enter("BBB", 10.0)
    m.reserve_without_checking("CCC", 0.3)


def _broker_blocked(m: TradeLogMachine) -> None:
    m.broker_account("broker account blocked", None)
    m.reserve_without_checking("AAA", 0.3)


def _halted(m: TradeLogMachine) -> None:
    m.operator_kill_switch(True)
    m.reserve_without_checking("AAA", 0.3)


def _oversized(m: TradeLogMachine) -> None:
    m.reserve_without_checking("AAA", 1.3)


def _more_than_the_cash(m: TradeLogMachine) -> None:
    m.enter("AAA", 60.0)
    m.minutes_pass(1)
    m.reserve_without_checking("BBB", 1.0)


# One interleaving per reservation condition: with the condition in place the machine's checks hold; without it,
# the same steps break one of them (tests/unit/test_tradelog_contract.py runs both ways).
SCENARIOS = {"version": _stale_second_entry, "day_not_tripped": _recovered_after_a_trip,
             "open_slots": _three_then_a_fourth, "no_cooldown": _two_stop_outs, "daily_loss": _after_a_loss,
             "minute_window": _third_order_in_a_minute, "kill_switch_off": _halted, "sizing_equity": _oversized,
             "broker_clear": _broker_blocked,
             "cash": _more_than_the_cash}


def run_scenario(name: str, machine: type[TradeLogMachine] = TradeLogMachine) -> None:
    """Runs one scenario's steps on a fresh machine and checks every invariant after each step."""
    m = machine()
    m.check_all()
    SCENARIOS[name](m)
    m.check_all()

