"""Brokers behind one interface: the paper broker (its book in the trade-log table) and Alpaca's REST API.

client_order_id is always the decision_id, so a broker that already has the order can be asked for it.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from mytrader.models import Order, OrderSide
from mytrader.portfolio import Costs


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


class PaperBroker:
    """Fills market orders at once at the quote given (slippage and fees applied); a stop or target exit
    fills at its level. Its ledger records every submission, duplicates included, so duplicates are
    countable per client_order_id."""

    name = "paper"

    def __init__(self, dynamodb_client, table: str, costs: Costs):
        from mytrader.tradelog import from_item, to_item

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
        out, start = [], None
        while True:
            kw = {"ExclusiveStartKey": start} if start else {}
            resp = self.db.query(TableName=self.table, KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues=self._to({":p": "BROKER#paper"}), **kw)
            out.extend(BrokerOrder.model_validate_json(self._from(i)["doc"]) for i in resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if not start:
                return out


class AlpacaBroker:
    """Alpaca Trading API v2 (paper endpoint by default). Keys come from Secrets Manager."""

    name = "alpaca"

    def __init__(self, key_id: str, secret_key: str, base_url: str = "https://paper-api.alpaca.markets",
                 session=None, timeout: float = 10.0):
        import requests

        self._http = session or requests.Session()
        self._http.headers.update({"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key})
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def submit(self, order: Order, quote: float, fill_price: float | None = None) -> BrokerOrder:
        body = {"symbol": order.symbol, "qty": str(order.qty), "side": order.side.value, "type": "market",
                "time_in_force": "day", "client_order_id": order.client_order_id}
        resp = self._request("POST", "/v2/orders", json=body)
        if resp.status_code == 422 and "client_order_id must be unique" in resp.text:
            existing = self.get_by_client_order_id(order.client_order_id)  # it exists: reconcile, never re-place
            if existing is None:
                raise BrokerError("alpaca says the order exists but cannot find it", retryable=True)
            return existing
        if resp.status_code in (429,) or resp.status_code >= 500:
            raise BrokerError(f"alpaca HTTP {resp.status_code}: {resp.text[:200]}", retryable=True)
        if resp.status_code >= 400:
            raise BrokerError(f"alpaca rejected the order: HTTP {resp.status_code} {resp.text[:200]}", retryable=False)
        return self._parse(resp.json())

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        resp = self._request("GET", "/v2/orders:by_client_order_id", params={"client_order_id": client_order_id})
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise BrokerError(f"alpaca HTTP {resp.status_code} looking up {client_order_id}", retryable=True)
        return self._parse(resp.json())

    def positions(self) -> dict[str, float]:
        """What the broker holds (GET /v2/positions): symbol -> signed quantity (short positions negative)."""
        resp = self._request("GET", "/v2/positions")
        if resp.status_code >= 400:
            raise BrokerError(f"alpaca HTTP {resp.status_code} listing positions", retryable=True)
        return {raw["symbol"]: abs(float(raw["qty"])) * (-1 if raw.get("side") == "short" else 1) for raw in resp.json()}

    def _request(self, method: str, path: str, **kw):
        import requests

        try:
            return self._http.request(method, self.base_url + path, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise BrokerError(f"alpaca unreachable: {exc}", retryable=True) from None

    @staticmethod
    def _parse(raw: dict) -> BrokerOrder:
        status = raw.get("status", "new")
        return BrokerOrder(broker_order_id=raw["id"], client_order_id=raw["client_order_id"], symbol=raw["symbol"],
                           side=OrderSide(raw["side"]), qty=float(raw.get("qty") or 0),
                           status={"new": "accepted", "pending_new": "accepted"}.get(status, status),
                           filled_qty=float(raw.get("filled_qty") or 0),
                           filled_avg_price=float(raw["filled_avg_price"]) if raw.get("filled_avg_price") else None)


def new_order(client_order_id: str, symbol: str, side: OrderSide, qty: float, at: datetime, reduce_only: bool) -> Order:
    return Order(client_order_id=client_order_id, symbol=symbol, side=side, qty=qty, submitted_at=at,
                 reduce_only=reduce_only)
