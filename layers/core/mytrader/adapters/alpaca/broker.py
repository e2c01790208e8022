"""Alpaca Trading API v2 orders and positions."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mytrader.adapters.alpaca.session import TRADING_URL, alpaca_session
from mytrader.broker import BrokerError, BrokerOrder
from mytrader.models import Order, OrderSide

if TYPE_CHECKING:
    import requests


class AlpacaBroker:
    """Alpaca Trading API v2 (paper endpoint by default). Keys come from Secrets Manager."""

    name = "alpaca"

    def __init__(self, key_id: str, secret_key: str, base_url: str = TRADING_URL,
                 session: requests.Session | None = None, timeout: float = 10.0):
        self._http = alpaca_session(key_id, secret_key, session)
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def submit(self, order: Order, quote: float, fill_price: float | None = None) -> BrokerOrder:
        body: dict[str, Any] = {"symbol": order.symbol, "qty": str(order.qty), "side": order.side.value,
                                "type": "market", "time_in_force": "day", "client_order_id": order.client_order_id}
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
        return {str(raw["symbol"]): abs(float(raw["qty"])) * (-1 if raw.get("side") == "short" else 1)
                for raw in resp.json()}

    def _request(self, method: str, path: str, json: dict[str, Any] | None = None,
                 params: dict[str, str] | None = None) -> requests.Response:
        import requests

        try:
            return self._http.request(method, self.base_url + path, json=json, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise BrokerError(f"alpaca unreachable: {exc}", retryable=True) from None

    @staticmethod
    def _parse(raw: dict[str, Any]) -> BrokerOrder:
        status = raw.get("status", "new")
        return BrokerOrder(broker_order_id=raw["id"], client_order_id=raw["client_order_id"], symbol=raw["symbol"],
                           side=OrderSide(raw["side"]), qty=float(raw.get("qty") or 0),
                           status={"new": "accepted", "pending_new": "accepted"}.get(status, status),
                           filled_qty=float(raw.get("filled_qty") or 0),
                           filled_avg_price=float(raw["filled_avg_price"]) if raw.get("filled_avg_price") else None)
