"""The ledger's account rules under arbitrary sequences of entries, fills, closes, stops, day rollovers and kill-switch
toggles (Hypothesis stateful testing): the book stays consistent and no entry ever passes a limit that holds."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mytrader import ledger
from mytrader.config import RiskLimits
from mytrader.models import Action, OrderSide, Position
from mytrader.portfolio import Costs

LIMITS = RiskLimits(max_position_pct=20.0, max_order_notional=25_000.0, max_open_positions=3,
                    max_orders_per_minute=2, daily_loss_limit_pct=3.0, max_consecutive_stopouts=2, cooldown_bars=2)
INITIAL = 100_000.0
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
COSTS = Costs(fee_bps=1.0, slippage_bps=2.0)


class LedgerMachine(RuleBasedStateMachine):
    """A single account driven only through the ledger's functions, with a shadow book kept independently."""

    def __init__(self) -> None:
        super().__init__()
        self.account = ledger.new_account(INITIAL)
        self.now = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
        self.positions: dict[str, tuple[Position, float]] = {}  # symbol -> (position, entry fee)
        self.kill = False
        self.buys = self.sells = self.fees = 0.0
        self.account = ledger.roll_day(self.account, ledger.day_of(self.now))

    # -- time ---------------------------------------------------------------------------------------
    @rule(minutes=st.integers(min_value=0, max_value=3))
    def minutes_pass(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def next_day(self) -> None:
        self.now += timedelta(days=1)
        self.account = ledger.roll_day(self.account, ledger.day_of(self.now))

    @rule(on=st.booleans())
    def toggle_kill_switch(self, on: bool) -> None:
        self.kill = on

    # -- entries ------------------------------------------------------------------------------------
    @rule(symbol=st.sampled_from(SYMBOLS), size=st.floats(0, 100), price=st.floats(0.5, 2_000),
          decided=st.one_of(st.none(), st.floats(1, 1e12)), buy=st.booleans())
    def entry(self, symbol: str, size: float, price: float, decided: float | None, buy: bool) -> None:
        before = self.account
        verdict = ledger.entry_verdict(LIMITS, before, size_pct=size, price=price, now=self.now, opens_in_time=True,
                                       kill_switch=self.kill, symbol_busy=symbol in self.positions,
                                       decided_equity=decided)
        if verdict.trips_daily_loss:
            self.account = ledger.trip_daily_loss(self.account)
        if not verdict.approved:
            return
        # Then no limit held when it was approved
        assert not self.kill and symbol not in self.positions
        assert not ledger.daily_loss_breached(LIMITS, before) and before.tripped_day != before.day
        assert before.cooldown_until is None or self.now >= before.cooldown_until
        assert before.open_positions < LIMITS.max_open_positions
        assert ledger.orders_in_window(before, self.now) < LIMITS.max_orders_per_minute
        assert verdict.qty * price <= LIMITS.max_position_pct / 100 * before.book_equity + 1e-6
        assert verdict.qty * price <= LIMITS.max_order_notional + 1e-6
        self.account = ledger.reserve(self.account, self.now)
        side = OrderSide.BUY if buy else OrderSide.SELL
        fill_price = COSTS.fill_price(price, side)
        fee = COSTS.fee(fill_price, verdict.qty)
        self.account = ledger.book_entry_fill(self.account, side, verdict.qty, fill_price, fee)
        self._shadow(side, verdict.qty, fill_price, fee)
        stop = fill_price * (0.9 if buy else 1.1)
        pos = Position(symbol=symbol, qty=ledger.signed(side, verdict.qty), avg_price=fill_price, opened_at=self.now,
                       decision_id=f"d-{symbol}-{self.now.isoformat()}", stop_loss=stop, time_limit_bars=5,
                       llm_action=Action.BUY if buy else Action.SELL)
        self.positions[symbol] = (pos, fee)

    # -- closes -------------------------------------------------------------------------------------
    @precondition(lambda self: bool(self.positions))
    @rule(data=st.data(), move=st.floats(-0.5, 0.5),
          reason=st.sampled_from(["stop_loss", "take_profit", "time_limit", "signal", "flatten"]))
    def close(self, data: st.DataObject, move: float, reason: str) -> None:
        symbol = data.draw(st.sampled_from(sorted(self.positions)))
        pos, entry_fee = self.positions.pop(symbol)
        side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
        exit_price = COSTS.fill_price(pos.avg_price * (1 + move), side)
        exit_fee = COSTS.fee(exit_price, abs(pos.qty))
        streak_before = self.account.consecutive_stopouts
        done = ledger.book_close(LIMITS, self.account, pos, exit_price=exit_price, exit_fee=exit_fee,
                                 entry_fee=entry_fee, reason=reason, at=self.now)
        self.account = done.account
        self._shadow(side, abs(pos.qty), exit_price, exit_fee)
        if reason == "stop_loss" and streak_before + 1 >= LIMITS.max_consecutive_stopouts:
            assert self.account.cooldown_until is not None and self.account.cooldown_until > self.now
        if reason != "stop_loss":
            assert self.account.consecutive_stopouts == 0

    @precondition(lambda self: self.account.open_positions > len(self.positions))
    @rule()
    def release_unfilled(self) -> None:
        self.account = ledger.release(self.account)

    def _shadow(self, side: OrderSide, qty: float, price: float, fee: float) -> None:
        if side == OrderSide.BUY:
            self.buys += qty * price
        else:
            self.sells += qty * price
        self.fees += fee

    # -- invariants ---------------------------------------------------------------------------------
    @invariant()
    def slots_match_positions(self) -> None:
        assert self.account.open_positions == len(self.positions) <= LIMITS.max_open_positions

    @invariant()
    def cash_is_initial_minus_buys_plus_sells_minus_fees(self) -> None:
        expected = INITIAL - self.buys + self.sells - self.fees
        assert abs(self.account.cash - expected) < 1e-6 * max(1.0, abs(expected))

    @invariant()
    def book_equity_is_initial_plus_realised(self) -> None:
        assert abs(self.account.book_equity - (INITIAL + self.account.realized_total)) < 1e-6 * INITIAL


TestLedgerInvariants = LedgerMachine.TestCase
TestLedgerInvariants.settings = settings(max_examples=200, stateful_step_count=30, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])


def test_sizing_never_comes_from_a_huge_decided_equity() -> None:
    # Given an account of 100,000 and a decision claiming it was sized on 1e12
    account = ledger.roll_day(ledger.new_account(INITIAL), "2024-03-04")
    now = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    # When the entry is sized
    verdict = ledger.entry_verdict(LIMITS, account, size_pct=25.0, price=10.0, now=now, opens_in_time=True,
                                   kill_switch=False, decided_equity=1e12)
    # Then it is capped by the account's own equity and the per-position limit
    assert verdict.approved and verdict.qty * 10.0 <= 20_000.0


def test_daily_loss_beyond_the_limit_trips_the_day() -> None:
    # Given a day that has realised -3.5 % of its starting equity
    account = ledger.roll_day(ledger.new_account(INITIAL), "2024-03-04")
    account = account.model_copy(update={"realized_today": -3_500.0})
    now = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    # When an entry is checked
    verdict = ledger.entry_verdict(LIMITS, account, size_pct=5.0, price=10.0, now=now, opens_in_time=True,
                                   kill_switch=False)
    # Then it is refused, naming the limit, and trips the day
    assert not verdict.approved and verdict.limit == ledger.Limit.DAILY_LOSS and verdict.trips_daily_loss
    tripped = ledger.trip_daily_loss(account)
    again = ledger.entry_verdict(LIMITS, tripped.model_copy(update={"realized_today": 0.0}), size_pct=5.0,
                                 price=10.0, now=now, opens_in_time=True, kill_switch=False)
    assert not again.approved and again.limit == ledger.Limit.DAILY_LOSS
