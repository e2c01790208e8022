"""Brokers behind one interface: the paper broker (its book in the trade-log table) and Alpaca's REST API.

client_order_id is always the decision_id, so a broker that already has the order can be asked for it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Protocol

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


BROKER_DONE = frozenset({"filled", "canceled", "expired", "rejected", "done_for_day"})  # no more fills will come


class BrokerError(Exception):
    """The broker refused or failed; `retryable` tells the executor whether a redelivery may succeed."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class Broker(Protocol):
    name: str

    def submit(self, order: Order, quote: float, fill_price: float | None = None) -> BrokerOrder: ...

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None: ...


def new_order(client_order_id: str, symbol: str, side: OrderSide, qty: float, at: datetime, reduce_only: bool) -> Order:
    return Order(client_order_id=client_order_id, symbol=symbol, side=side, qty=qty, submitted_at=at,
                 reduce_only=reduce_only)
