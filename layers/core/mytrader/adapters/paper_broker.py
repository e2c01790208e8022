"""The paper broker: fills market orders at once at the quote (slippage and fees applied); its book lives in the
trade-log table."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from mytrader.broker import BrokerOrder
from mytrader.models import Order
from mytrader.portfolio import Costs

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import DynamoDBClient


class PaperBroker:
    """Fills market orders at once at the quote given (slippage and fees applied); a stop or target exit
    fills at its level. Its ledger records every submission, duplicates included, so duplicates are
    countable per client_order_id."""

    name = "paper"

    def __init__(self, dynamodb_client: DynamoDBClient, table: str, costs: Costs):
        from mytrader.adapters.tradelog import from_item, to_item

        self.db, self.table, self.costs = dynamodb_client, table, costs
        self._to, self._from = to_item, from_item

    def submit(self, order: Order, quote: float, fill_price: float | None = None) -> BrokerOrder:
        price = self.costs.fill_price(fill_price if fill_price is not None else quote, order.side)
        bo = BrokerOrder(broker_order_id=str(uuid.uuid4()), client_order_id=order.client_order_id, symbol=order.symbol,
                         side=order.side, qty=order.qty, status="filled", filled_qty=order.qty, filled_avg_price=price,
                         fee=self.costs.fee(price, order.qty))
        self.db.put_item(TableName=self.table, Item=self._to({
            "pk": "BROKER#paper", "sk": f"ORDER#{bo.broker_order_id}", "gsi1pk": f"COID#{bo.client_order_id}",
            "gsi1sk": order.submitted_at.isoformat(), "doc": bo.model_dump_json()}))
        return bo

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        resp = self.db.query(TableName=self.table, IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
                             ExpressionAttributeValues=self._to({":p": f"COID#{client_order_id}"}), Limit=1)
        items = resp.get("Items", [])
        return BrokerOrder.model_validate_json(self._from(items[0])["doc"]) if items else None

    def ledger(self) -> list[BrokerOrder]:
        out: list[BrokerOrder] = []
        start: dict[str, Any] | None = None
        while True:
            kw: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            resp = self.db.query(TableName=self.table, KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues=self._to({":p": "BROKER#paper"}), **kw)
            out.extend(BrokerOrder.model_validate_json(self._from(i)["doc"]) for i in resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if not start:
                return out
