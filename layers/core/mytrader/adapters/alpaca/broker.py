"""Alpaca Trading API v2: orders (with resting bracket legs), positions, the account, the clock, FEE activities.

Every call goes through the bounded retry of retry.py; errors come back as BrokerError with a kind (errors.py).
Orders are placed once per client_order_id: a retry that Alpaca answers "client_order_id must be unique" is
answered with the existing order only when it is the same order (symbol, side, quantity); another order under
that id is a CONFLICT (an alarm: two deployments sharing an account without distinct prefixes, or a bug).
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mytrader.adapters.alpaca.account import parse_account, parse_clock, parse_fee
from mytrader.adapters.alpaca.errors import DUPLICATE_CLIENT_ORDER_ID, broker_error, unavailable_error
from mytrader.adapters.alpaca.orders import (
    MAX_CLIENT_ORDER_ID,
    needs_fractionable,
    order_body,
    parse_order,
    sendable,
    wire_client_order_id,
)
from mytrader.adapters.alpaca.retry import AlpacaHttp, AlpacaUnavailable, RetryPolicy
from mytrader.adapters.alpaca.session import TRADING_URL, alpaca_session
from mytrader.adapters.alpaca.times import rfc3339
from mytrader.broker import BrokerAccount, BrokerError, BrokerErrorKind, BrokerOrder, ExitLegs, FeeActivity, MarketClock
from mytrader.market.ticks import price_text
from mytrader.models import Order

if TYPE_CHECKING:
    import requests

FEE_PAGE_SIZE = 100  # Alpaca's largest activities page
MAX_FEE_PAGES = 50
_FRACTIONABLE: dict[tuple[str, str], bool] = {}  # (trading URL, symbol) -> Alpaca's flag, asked once per container


class AlpacaBroker:
    """Alpaca Trading API v2 (paper endpoint by default). Keys come from Secrets Manager.

    `order_id_prefix` is the deployment's prefix on every client_order_id (e.g. "mt-prod-"): at most 64
    characters, so that prefix + MyTrader's id stays within Alpaca's 128."""

    name = "alpaca"

    def __init__(self, key_id: str, secret_key: str, base_url: str = TRADING_URL,
                 session: requests.Session | None = None, timeout: float = 10.0, order_id_prefix: str = "",
                 retry: RetryPolicy | None = None):
        if len(order_id_prefix) > MAX_CLIENT_ORDER_ID // 2:
            raise ValueError(f"order_id_prefix {order_id_prefix!r} is longer than {MAX_CLIENT_ORDER_ID // 2}")
        self._api = AlpacaHttp(alpaca_session(key_id, secret_key, session), base_url, timeout, retry)
        self.prefix = order_id_prefix

    # -- orders ----------------------------------------------------------------------------------------
    def submit(self, order: Order, quote: float, fill_price: float | None = None,
               exits: ExitLegs | None = None) -> BrokerOrder:
        """A market order (a bracket/oto with `exits`). `quote` and `fill_price` are the paper broker's; Alpaca
        prices the order itself. A fractional quantity goes as Alpaca takes it (orders.sendable): the answer's
        `qty` is what was sent."""
        order, exits = sendable(order, exits, needs_fractionable(order) and self.fractionable(order.symbol))
        body = order_body(order, wire_client_order_id(self.prefix, order.client_order_id), exits)
        resp = self._call("POST", "/v2/orders", json=body)
        if resp.status_code == 422 and DUPLICATE_CLIENT_ORDER_ID in resp.text:
            return self._adopt(order)
        if resp.status_code >= 400:
            raise broker_error(resp, f"order {order.client_order_id}")
        return self._with_legs(self._json(resp))

    def _adopt(self, order: Order) -> BrokerOrder:
        """The order Alpaca already has under this id, when it is this order."""
        existing = self.get_by_client_order_id(order.client_order_id)
        if existing is None:
            raise BrokerError(f"alpaca says order {order.client_order_id} exists but cannot find it", retryable=True,
                              kind=BrokerErrorKind.UNAVAILABLE)
        same = (existing.symbol == order.symbol and existing.side == order.side
                and math.isclose(existing.qty, order.qty, rel_tol=0, abs_tol=1e-9))
        if not same:
            theirs = f"{existing.symbol} {existing.side.value} {existing.qty:g}, id {existing.broker_order_id}"
            raise BrokerError(f"client_order_id {order.client_order_id} is taken at alpaca by another order "
                              f"({theirs}); asked for {order.symbol} {order.side.value} {order.qty:g}",
                              retryable=False, kind=BrokerErrorKind.CONFLICT)
        return existing

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        """The order with its legs (None: Alpaca has no order under this id)."""
        wire = wire_client_order_id(self.prefix, client_order_id)
        resp = self._call("GET", "/v2/orders:by_client_order_id", params={"client_order_id": wire})
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise broker_error(resp, f"lookup of {client_order_id}")
        return self._with_legs(self._json(resp))

    def get_order(self, broker_order_id: str) -> BrokerOrder | None:
        """GET /v2/orders/{id}?nested=true (None: no such order), e.g. to follow a `replaced_by`."""
        raw = self._order_raw(broker_order_id)
        return None if raw is None else parse_order(raw, self.prefix)

    def cancel(self, broker_order_id: str) -> None:
        """DELETE /v2/orders/{id}. An order already final (422 "order is not cancelable") is not an error."""
        resp = self._call("DELETE", f"/v2/orders/{quote(broker_order_id, safe='')}")
        if resp.status_code == 422 or resp.status_code < 400:
            return
        raise broker_error(resp, f"cancel of {broker_order_id}")

    def replace_stop(self, broker_order_id: str, stop_price: float) -> BrokerOrder:
        """PATCH /v2/orders/{id} with the new stop (on its tick): Alpaca answers with the replacing order and the
        old one ends `replaced`."""
        try:
            stop = price_text(stop_price)
        except ValueError as exc:
            raise BrokerError(f"stop of {broker_order_id}: {exc}", retryable=False,
                              kind=BrokerErrorKind.INVALID) from None
        resp = self._call("PATCH", f"/v2/orders/{quote(broker_order_id, safe='')}", json={"stop_price": stop})
        if resp.status_code >= 400:
            raise broker_error(resp, f"replace of {broker_order_id}")
        return parse_order(self._json(resp), self.prefix)

    def _with_legs(self, raw: Any) -> BrokerOrder:
        """An order with its legs: a bracket/oto/oco answered without them is asked for again, nested."""
        if isinstance(raw, dict) and (raw.get("order_class") or "simple") != "simple" and raw.get("legs") is None:
            raw = self._order_raw(str(raw.get("id"))) or raw
        return parse_order(raw, self.prefix)

    def _order_raw(self, broker_order_id: str) -> Any:
        resp = self._call("GET", f"/v2/orders/{quote(broker_order_id, safe='')}", params={"nested": "true"})
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise broker_error(resp, f"lookup of order {broker_order_id}")
        return self._json(resp)

    def fractionable(self, symbol: str) -> bool:
        """Alpaca's `fractionable` flag of the asset (GET /v2/assets/{symbol}; an unknown asset is not), asked once
        per container. An answer that cannot be read raises BrokerError: no fractional order on a guess."""
        key = (self._api.base_url, symbol)
        if key not in _FRACTIONABLE:
            resp = self._call("GET", f"/v2/assets/{quote(symbol, safe='')}")
            if resp.status_code == 404:
                _FRACTIONABLE[key] = False
            elif resp.status_code >= 400:
                raise broker_error(resp, f"asset {symbol}")
            else:
                raw = self._json(resp)
                _FRACTIONABLE[key] = isinstance(raw, dict) and raw.get("fractionable") is True
        return _FRACTIONABLE[key]

    # -- holdings and the account ----------------------------------------------------------------------
    def positions(self) -> dict[str, float]:
        """What the broker holds (GET /v2/positions): symbol -> signed quantity (short positions negative)."""
        raw = self._get_json("/v2/positions", "positions")
        try:
            return {str(p["symbol"]): abs(float(p["qty"])) * (-1 if p.get("side") == "short" else 1) for p in raw}
        except (KeyError, TypeError, ValueError) as exc:
            raise BrokerError(f"alpaca positions unreadable ({type(exc).__name__}: {exc})", retryable=True,
                              kind=BrokerErrorKind.UNAVAILABLE) from None

    def account(self) -> BrokerAccount:
        return parse_account(self._get_json("/v2/account", "account"))

    def clock(self) -> MarketClock:
        return parse_clock(self._get_json("/v2/clock", "clock"))

    def fee_activities(self, since: datetime) -> list[FeeActivity]:
        """FEE activities after `since`, oldest first (GET /v2/account/activities/FEE, paged by the last id)."""
        params: dict[str, str | int] = {"after": rfc3339(since), "direction": "asc", "page_size": FEE_PAGE_SIZE}
        out: list[FeeActivity] = []
        for _ in range(MAX_FEE_PAGES):
            page = self._get_json("/v2/account/activities/FEE", "fee activities", params)
            if not isinstance(page, list):
                raise BrokerError("alpaca fee activities: not a list", retryable=True, kind=BrokerErrorKind.UNAVAILABLE)
            out.extend(parse_fee(a) for a in page)
            if len(page) < FEE_PAGE_SIZE:
                return out
            params["page_token"] = out[-1].activity_id
        raise BrokerError(f"alpaca fee activities: more than {MAX_FEE_PAGES} pages", retryable=True,
                          kind=BrokerErrorKind.UNAVAILABLE)

    # -- HTTP ------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, params: dict[str, str | int] | None = None,
              json: dict[str, Any] | None = None) -> requests.Response:
        try:
            return self._api.request(method, path, params=params, json=json)
        except AlpacaUnavailable as exc:
            raise unavailable_error(exc) from None

    def _get_json(self, path: str, what: str, params: dict[str, str | int] | None = None) -> Any:
        resp = self._call("GET", path, params=params)
        if resp.status_code >= 400:
            raise broker_error(resp, what)
        return self._json(resp)

    @staticmethod
    def _json(resp: requests.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise BrokerError(f"alpaca answered HTTP {resp.status_code} without JSON: {resp.text[:200]}",
                              retryable=True, kind=BrokerErrorKind.UNAVAILABLE) from None
