"""The account snapshot the hard risk limits are checked against. The rules themselves live in
`mytrader.ledger` (both drivers); the trade log restates them as conditions of the reservation."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


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
    broker_block: str = ""  # why the broker account takes no entries now (outcomes reads it; "" = clear)
    buying_power: float | None = None  # the broker's buying power as last read (None: not known, paper)
    version: int = 0  # bumped by every write of the account state (optimistic concurrency)
