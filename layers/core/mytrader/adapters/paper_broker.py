"""The paper broker: fills market orders at once at the quote (slippage and fees applied); its book lives in the
trade-log table."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from mytrader.broker import BrokerOrder
from mytrader.models import Order
from mytrader.portfolio import Costs

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import TradeLog


class PaperBroker:
    """Fills market orders at once at the quote given (slippage and fees applied); a stop or target exit
    fills at its level. Its book lives in the trade log (through the trade log's own methods) and records every
    submission, duplicates included, so duplicates are countable per client_order_id."""

    name = "paper"

    def __init__(self, tradelog: TradeLog, costs: Costs):
        self.tradelog, self.costs = tradelog, costs

    def submit(self, order: Order, quote: float, fill_price: float | None = None) -> BrokerOrder:
        price = self.costs.fill_price(fill_price if fill_price is not None else quote, order.side)
        bo = BrokerOrder(broker_order_id=str(uuid.uuid4()), client_order_id=order.client_order_id, symbol=order.symbol,
                         side=order.side, qty=order.qty, status="filled", filled_qty=order.qty, filled_avg_price=price,
                         fee=self.costs.fee(price, order.qty))
        self.tradelog.paper_record(bo.broker_order_id, bo.client_order_id, order.submitted_at.isoformat(),
                                   bo.model_dump_json())
        return bo

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        doc = self.tradelog.paper_by_client_order_id(client_order_id)
        return BrokerOrder.model_validate_json(doc) if doc is not None else None

    def ledger(self) -> list[BrokerOrder]:
        return [BrokerOrder.model_validate_json(doc) for doc in self.tradelog.paper_orders()]
