"""Hard risk limits the LLM cannot override. Pure functions over an account snapshot; the executor
enforces the same limits atomically with conditional updates on the account item."""
from __future__ import annotations

import math
from datetime import datetime

from pydantic import BaseModel

from mytrader.config import RiskLimits
from mytrader.models import Action, TradeDecision


class AccountState(BaseModel):
    cash: float
    book_equity: float  # cash + open positions at cost: what sizing uses (same in every driver)
    open_positions: int = 0
    day: str = ""
    day_start_equity: float = 0.0
    realized_today: float = 0.0
    orders_minute: str = ""  # the minute bucket the counter belongs to
    orders_this_minute: int = 0
    consecutive_stopouts: int = 0
    cooldown_until: datetime | None = None
    tripped_day: str = ""  # the day the daily-loss limit halted new entries
    realized_total: float = 0.0
    kill_switch: bool = False  # halted by an operator (ops halt): entries refused, exits run
    version: int = 0  # bumped by every write of the account state (optimistic concurrency)


class RiskVerdict(BaseModel):
    approved: bool
    qty: float = 0.0
    reason: str = ""
    reducing: bool = False
    trips_kill_switch: bool = False


class RiskRejection(ValueError):
    pass


def check_entry(limits: RiskLimits, account: AccountState, decision: TradeDecision, price: float, now: datetime,
                market_open: bool, kill_switch: bool) -> RiskVerdict:
    """Verdict for an order that opens a position. Every rejection names its limit."""
    if kill_switch:
        return RiskVerdict(approved=False, reason="kill_switch: trading halted, reduce-only")
    if account.tripped_day and account.tripped_day == account.day:
        return RiskVerdict(approved=False, reason="daily_loss_limit: halted for the day, reduce-only")
    day_loss_limit = limits.daily_loss_limit_pct / 100 * account.day_start_equity
    if account.day_start_equity > 0 and account.realized_today <= -day_loss_limit:
        return RiskVerdict(approved=False, reason="daily_loss_limit: halted for the day", trips_kill_switch=True)
    if not market_open:
        return RiskVerdict(approved=False, reason="market_closed")
    if account.cooldown_until is not None and now < account.cooldown_until:
        return RiskVerdict(approved=False, reason=f"cooldown after {limits.max_consecutive_stopouts} stop-outs")
    if account.open_positions >= limits.max_open_positions:
        return RiskVerdict(approved=False, reason=f"max_open_positions {limits.max_open_positions}")
    minute = now.strftime("%Y-%m-%dT%H:%M")
    if account.orders_minute == minute and account.orders_this_minute >= limits.max_orders_per_minute:
        return RiskVerdict(approved=False, reason=f"max_orders_per_minute {limits.max_orders_per_minute}")
    pct = min(decision.position_size_pct, limits.max_position_pct)
    equity = decision.sizing_equity if decision.sizing_equity is not None else account.book_equity
    notional = min(equity * pct / 100, limits.max_order_notional, max(account.cash, 0.0))
    qty = math.floor(notional / price)
    if qty < 1:
        return RiskVerdict(approved=False, reason=f"size below one share ({pct:.2f}% of {equity:.0f} at {price:.2f})")
    return RiskVerdict(approved=True, qty=float(qty))


def is_reducing(action: Action, position_qty: float) -> bool:
    return (action == Action.SELL and position_qty > 0) or (action == Action.BUY and position_qty < 0)
