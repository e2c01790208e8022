"""What brokers answer and how they fail: the paper broker (its book in the trade-log table) and Alpaca's REST
API both implement the `Broker` port (mytrader.ports).

client_order_id is always the decision_id, so a broker that already has the order can be asked for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from mytrader.models import Order, OrderSide


class ExitLegs(BaseModel):
    """The stop and target an entry rests at the broker (a bracket's legs): prices already on the instrument's
    tick. Either may be None (then that leg is not placed)."""
    stop_loss: float | None = None
    take_profit: float | None = None


class BrokerOrder(BaseModel):
    """An order as the broker reports it. `client_order_id` is MyTrader's id (a deployment prefix the broker adds
    is stripped by its adapter). A bracket entry carries its exit orders in `legs` (each with `leg` set)."""
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    qty: float
    status: str  # accepted | partially_filled | filled | rejected | canceled | expired | replaced | done_for_day ...
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    fee: float = 0.0
    filled_at: datetime | None = None  # the broker's time of the last fill (None: not filled, or not reported)
    submitted_at: datetime | None = None
    order_class: str = "simple"  # simple | bracket | oco | oto
    leg: str | None = None  # a bracket's exit: "stop_loss" | "take_profit"
    stop_price: float | None = None
    limit_price: float | None = None
    legs: list[BrokerOrder] = []
    replaced_by: str | None = None  # status "replaced": the broker id of the order that replaced it

    def fill_price(self) -> float:
        """The average price of what filled so far; a broker reporting fills without one is asked again later."""
        if self.filled_avg_price is None:
            raise BrokerError(f"broker reports {self.filled_qty:g} filled of {self.client_order_id} without a price",
                              retryable=True)
        return self.filled_avg_price


# no more fills will come (Alpaca's final statuses; `replaced`: the fills continue on the replacing order)
BROKER_DONE = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day", "replaced"})


class BrokerErrorKind(StrEnum):
    """Why a broker call failed — what the caller does about it."""
    AUTH = "auth"  # wrong or rotated keys (401, Alpaca 40110000): alarm and stop entries (fail closed)
    REFUSED = "refused"  # the account may not do this now (403: buying power, wash trade 40310000, PDT): terminal
    INVALID = "invalid"  # the request itself is wrong (422, 400): terminal for that decision
    CONFLICT = "conflict"  # a duplicate client_order_id whose order is not this one (other symbol/side/qty): alarm
    THROTTLED = "throttled"  # 429 after the bounded retries: try again later
    UNAVAILABLE = "unavailable"  # 5xx, a timeout, no connection: try again later
    NOT_FOUND = "not_found"


class BrokerError(Exception):
    """The broker refused or failed; `retryable` tells the executor whether a redelivery may succeed, `kind` and
    the broker's own `code` (Alpaca's 8-digit code, when it sent one) say why."""

    def __init__(self, message: str, retryable: bool, kind: BrokerErrorKind | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.kind = kind or (BrokerErrorKind.UNAVAILABLE if retryable else BrokerErrorKind.INVALID)
        self.code = code


@dataclass(frozen=True)
class BrokerAccount:
    """GET /v2/account, as far as MyTrader acts on it."""
    status: str  # ACTIVE | ACCOUNT_UPDATED | ... ; anything but ACTIVE stops entries
    trading_blocked: bool
    account_blocked: bool
    buying_power: float
    cash: float
    equity: float

    def blocks_entries(self) -> str | None:
        """Why no entry may be sent on this account (None: it may trade)."""
        if self.account_blocked:
            return "broker account blocked"
        if self.trading_blocked:
            return "broker trading blocked"
        if self.status != "ACTIVE":
            return f"broker account status {self.status}"
        return None


@dataclass(frozen=True)
class MarketClock:
    """GET /v2/clock: the market's own word on whether it is open and when it next opens and closes."""
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True)
class FeeActivity:
    """An account activity of type FEE (regulatory fees: SEC and TAF on sells, CAT), booked to cash once."""
    activity_id: str
    amount: float  # signed as the broker reports it (a charge is negative)
    at: datetime
    symbol: str | None = None
    description: str = ""


def new_order(client_order_id: str, symbol: str, side: OrderSide, qty: float, at: datetime, reduce_only: bool) -> Order:
    return Order(client_order_id=client_order_id, symbol=symbol, side=side, qty=qty, submitted_at=at,
                 reduce_only=reduce_only)
