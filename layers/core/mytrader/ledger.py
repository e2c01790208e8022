"""The account rules, written once: cash, fees, positions from fills, realised P&L, the day's loss trip, the
stop-out streak and its cooldown, open-position slots and the orders-per-minute window.

Pure functions over an `AccountState` snapshot (no I/O, no clock): the backtester applies them to its
in-memory account; the trade log applies the same functions to the state it read and writes the result in one
transaction whose conditions restate the limits, so both drivers keep one book by one set of rules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from mytrader.config import RiskLimits
from mytrader.models import Action, OrderSide, Position, TradeOutcome
from mytrader.portfolio import close_outcome, cooldown_end
from mytrader.risk import AccountState

KILL_SWITCH_ON = "on"
FRACTION = Decimal("0.000001")  # fractional sizing: quantities to a millionth of a share, rounded down
MIN_FRACTIONAL_NOTIONAL = 1.0  # USD: the least notional of a fractional entry (Alpaca's minimum order)
QTY_TOLERANCE = 1e-6  # shares: book and broker quantities this close are equal (the broker's own rounding)


class Limit:
    """Names of the hard limits an entry can hit (each one a condition of the reserve transaction)."""

    KILL_SWITCH = "kill_switch"
    DAILY_LOSS = "daily_loss_limit"
    BROKER_BLOCKED = "broker_blocked"
    NO_SESSION = "no_session_in_time"
    COOLDOWN = "cooldown"
    OPEN_POSITIONS = "max_open_positions"
    ORDERS_PER_MINUTE = "max_orders_per_minute"
    SYMBOL_BUSY = "symbol_busy"
    SIZE = "size_below_one_share"


@dataclass(frozen=True)
class EntryVerdict:
    """An entry's verdict: approved with a quantity (whole shares, or a fraction with fractional sizing), or refused
    naming the limit that holds."""

    approved: bool
    qty: float = 0.0
    limit: str = ""
    reason: str = ""
    trips_daily_loss: bool = False  # the verdict found the day's loss beyond the limit: halt entries today
    sizing_equity: float = 0.0


def minute_of(now: datetime) -> str:
    """The orders-per-minute window an order placed at `now` counts in."""
    return now.strftime("%Y-%m-%dT%H:%M")


def day_of(now: datetime) -> str:
    return now.date().isoformat()


def new_account(initial_equity: float) -> AccountState:
    return AccountState(cash=initial_equity, book_equity=initial_equity, day_start_equity=initial_equity)


def roll_day(account: AccountState, day: str) -> AccountState:
    """First event of a later day: the day's realised P&L restarts from the book equity of that moment."""
    if account.day >= day:
        return account
    return account.model_copy(update={"day": day, "day_start_equity": account.book_equity, "realized_today": 0.0})


def daily_loss_floor(limits: RiskLimits, account: AccountState) -> float:
    """Realised P&L of the day at or below which entries stop for the rest of the day (a negative number)."""
    return -limits.daily_loss_limit_pct / 100 * account.day_start_equity


def daily_loss_breached(limits: RiskLimits, account: AccountState) -> bool:
    return account.day_start_equity > 0 and account.realized_today <= daily_loss_floor(limits, account)


def orders_in_window(account: AccountState, now: datetime) -> int:
    return account.orders_this_minute if account.orders_minute == minute_of(now) else 0


def opens_in_time(next_open: datetime | None, decided_at: datetime, max_age: timedelta) -> bool:
    """Whether an order sent now executes before its decision goes stale: the session it fills in (now while the
    market is open, else the next open; None when the session table cannot say) opens within `max_age` of the
    decision. A closed market is no refusal by itself: an order sent after the close waits for the next open."""
    return next_open is not None and next_open - decided_at <= max_age


def entry_verdict(limits: RiskLimits, account: AccountState, *, size_pct: float, price: float, now: datetime,
                  opens_in_time: bool, kill_switch: bool, symbol_busy: bool = False,
                  decided_equity: float | None = None, fractional: bool = False) -> EntryVerdict:
    """Verdict for an order that opens a position, from the account as read; every refusal names its limit.

    Size: `size_pct` (capped at max_position_pct) of the equity the decision was sized on, never more than the
    account's book equity now or the broker's buying power (when known), the per-order notional cap, or the cash
    available; whole shares, or with `fractional` (TradingConfig.fractional_shares) that notional in millionths of
    a share, at least MIN_FRACTIONAL_NOTIONAL of it."""
    refusal = _refusal(limits, account, now, opens_in_time, kill_switch, symbol_busy)
    if refusal is not None:
        return refusal
    pct = min(size_pct, limits.max_position_pct)
    equity = account.book_equity if decided_equity is None else min(decided_equity, account.book_equity)
    if account.buying_power is not None:
        equity = min(equity, max(account.buying_power, 0.0))
    notional = min(equity * pct / 100, limits.max_order_notional, max(account.cash, 0.0))
    qty = order_qty(notional, price, fractional)
    sized = f"{pct:.2f}% of {equity:.0f} at {price:.2f}"
    if fractional and (qty <= 0 or qty * price < MIN_FRACTIONAL_NOTIONAL):
        return EntryVerdict(False, limit=Limit.SIZE,
                            reason=f"size below the smallest fractional order of {MIN_FRACTIONAL_NOTIONAL:g} USD "
                                   f"({sized})")
    if qty < 1 and not fractional:
        return EntryVerdict(False, limit=Limit.SIZE, reason=f"size below one share ({sized})")
    return EntryVerdict(True, qty=qty, sizing_equity=equity)


def order_qty(notional: float, price: float, fractional: bool) -> float:
    """The quantity `notional` buys at `price`, rounded down: whole shares, or millionths of a share (FRACTION) with
    `fractional`; 0 for a price that is not a positive number."""
    if not (price > 0 and math.isfinite(price) and math.isfinite(notional)) or notional <= 0:
        return 0.0
    if not fractional:
        return float(math.floor(notional / price))
    try:  # on the decimal text of the ratio, so 0.3 stays 0.3 (binary floats would round it down to 0.299999)
        return float(Decimal(repr(notional / price)).quantize(FRACTION, rounding=ROUND_DOWN))
    except InvalidOperation:  # a ratio too large to quantize: no real order is that big
        return float(math.floor(notional / price))


def sizes_fractional(fractional_shares: bool, side: OrderSide) -> bool:
    """Whether an entry on `side` is sized in fractions (TradingConfig.fractional_shares): long entries only, as no
    broker lends a fraction of a share to sell short (Alpaca: fractional orders are long only)."""
    return fractional_shares and side == OrderSide.BUY


def whole_shares(qty: float) -> bool:
    return abs(qty - round(qty)) <= 1e-9


def _refusal(limits: RiskLimits, account: AccountState, now: datetime, in_time: bool, kill_switch: bool,
             symbol_busy: bool) -> EntryVerdict | None:
    if kill_switch:
        return EntryVerdict(False, limit=Limit.KILL_SWITCH, reason="kill_switch: trading halted, reduce-only")
    if account.broker_block:
        return EntryVerdict(False, limit=Limit.BROKER_BLOCKED, reason=f"broker_blocked: {account.broker_block}")
    if account.tripped_day and account.tripped_day == account.day:
        return EntryVerdict(False, limit=Limit.DAILY_LOSS, reason="daily_loss_limit: halted for the day, reduce-only")
    if daily_loss_breached(limits, account):
        return EntryVerdict(False, limit=Limit.DAILY_LOSS, reason="daily_loss_limit: halted for the day",
                            trips_daily_loss=True)
    if not in_time:
        return EntryVerdict(False, limit=Limit.NO_SESSION,
                            reason="no_session_in_time: the market does not open before the decision goes stale")
    if account.cooldown_until is not None and now < account.cooldown_until:
        return EntryVerdict(False, limit=Limit.COOLDOWN,
                            reason=f"cooldown after {limits.max_consecutive_stopouts} stop-outs")
    if symbol_busy:
        return EntryVerdict(False, limit=Limit.SYMBOL_BUSY, reason="symbol_busy: a position or working order exists")
    if account.open_positions >= limits.max_open_positions:
        return EntryVerdict(False, limit=Limit.OPEN_POSITIONS, reason=f"max_open_positions {limits.max_open_positions}")
    if orders_in_window(account, now) >= limits.max_orders_per_minute:
        return EntryVerdict(False, limit=Limit.ORDERS_PER_MINUTE,
                            reason=f"max_orders_per_minute {limits.max_orders_per_minute}")
    return None


def trip_daily_loss(account: AccountState) -> AccountState:
    return account.model_copy(update={"tripped_day": account.day})


def reserve(account: AccountState, now: datetime) -> AccountState:
    """An approved entry takes a position slot and counts in its minute window (before its order goes out)."""
    minute = minute_of(now)
    count = orders_in_window(account, now) + 1
    return account.model_copy(update={"open_positions": account.open_positions + 1, "orders_minute": minute,
                                      "orders_this_minute": count})


def release(account: AccountState) -> AccountState:
    """An entry that ended with nothing filled (refused, canceled, expired) gives its slot back."""
    return account.model_copy(update={"open_positions": max(0, account.open_positions - 1)})


def book_fee(account: AccountState, amount: float) -> AccountState:
    """A broker fee activity (regulatory fees, signed as reported: a charge is negative) paid from cash; book
    equity (cash + positions at cost) moves with it."""
    return account.model_copy(update={"cash": account.cash + amount, "book_equity": account.book_equity + amount})


def signed(side: OrderSide, qty: float) -> float:
    return qty if side == OrderSide.BUY else -qty


def entry_cash(side: OrderSide, qty: float, price: float, fee: float) -> float:
    """Cash change of an entry fill: a buy pays qty × price, a short sale receives it; the fee is always paid."""
    return -signed(side, qty) * price - fee


def book_entry_fill(account: AccountState, side: OrderSide, qty: float, price: float, fee: float) -> AccountState:
    return account.model_copy(update={"cash": account.cash + entry_cash(side, qty, price, fee)})


def close_cash(position_qty: float, exit_price: float, exit_fee: float) -> float:
    """Cash change of closing a position of signed quantity at exit_price (a long sells, a short buys back)."""
    return position_qty * exit_price - exit_fee


@dataclass(frozen=True)
class Close:
    account: AccountState
    outcome: TradeOutcome
    cash: float  # the cash change booked


def book_close(limits: RiskLimits, account: AccountState, pos: Position, *, exit_price: float, exit_fee: float,
               entry_fee: float, reason: str, at: datetime) -> Close:
    """A whole position closed: cash and book equity, the day's and total realised P&L, the slot freed, and the
    stop-out streak (a stop extends it, anything else ends it; reaching the limit starts a cooldown)."""
    outcome = close_outcome(pos, exit_price, at, exit_fee, entry_fee, reason, pos.bars_held + 1)
    cash = close_cash(pos.qty, exit_price, exit_fee)
    streak, cooldown = stopout_streak(limits, account, reason, at)
    updated = account.model_copy(update={
        "cash": account.cash + cash, "book_equity": account.book_equity + outcome.pnl,
        "realized_today": account.realized_today + outcome.pnl,
        "realized_total": account.realized_total + outcome.pnl,
        "open_positions": max(0, account.open_positions - 1),
        "consecutive_stopouts": streak, "cooldown_until": cooldown})
    return Close(updated, outcome, cash)


def stopout_streak(limits: RiskLimits, account: AccountState, reason: str,
                   at: datetime) -> tuple[int, datetime | None]:
    if reason != "stop_loss":
        return 0, account.cooldown_until
    streak = account.consecutive_stopouts + 1
    if streak >= limits.max_consecutive_stopouts:
        return 0, cooldown_end(at, limits.cooldown_bars)
    return streak, account.cooldown_until


def reduces(action: Action, position_qty: float) -> bool:
    """A decision that reduces the position held (a SELL while long, a BUY while short): a close, never an entry."""
    return (action == Action.SELL and position_qty > 0) or (action == Action.BUY and position_qty < 0)
