"""What brokers answer and how they fail: the paper broker (its book in the trade-log table) and Alpaca's REST
API both implement the `Broker` port (mytrader.ports).

client_order_id is always the decision_id, so a broker that already has the order can be asked for it.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from mytrader.models import Order, OrderSide


class BrokerOrder(BaseModel):
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    qty: float
    status: str  # accepted | partially_filled | filled | rejected | canceled
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    fee: float = 0.0

    def fill_price(self) -> float:
        """The average price of what filled so far; a broker reporting fills without one is asked again later."""
        if self.filled_avg_price is None:
            raise BrokerError(f"broker reports {self.filled_qty:g} filled of {self.client_order_id} without a price",
                              retryable=True)
        return self.filled_avg_price


BROKER_DONE = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day"})  # no more fills will come


class BrokerError(Exception):
    """The broker refused or failed; `retryable` tells the executor whether a redelivery may succeed."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def new_order(client_order_id: str, symbol: str, side: OrderSide, qty: float, at: datetime, reduce_only: bool) -> Order:
    return Order(client_order_id=client_order_id, symbol=symbol, side=side, qty=qty, submitted_at=at,
                 reduce_only=reduce_only)
