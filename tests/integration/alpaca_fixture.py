"""An HTTP fixture of Alpaca's documented REST shapes on 127.0.0.1 (tests never touch the network): Trading API
v2 (orders with bracket/oto/oco legs, cancel, replace, positions, account, clock, FEE activities), Market Data
v2 (daily bars, latest trades) and News v1beta1, with an explicit fixture clock.

The market behind the orders is in alpaca_fixture_market.py (queued after hours, filled at the open, day orders
expiring, resting legs), the data endpoints in alpaca_fixture_data.py.

Time: `fx.set_time(at)` moves the fixture's clock (running the opens and closes on the way), or pass
`clock=callable` and the fixture follows it before each request (e.g. a replay's clock).
Faults: `fx.inject(status, path=..., method=..., times=..., code=..., message=...)` answers the next matching
requests with that status (429 with X-Ratelimit-Limit/Remaining/Reset, Reset in epoch seconds of the fixture
clock; 0 drops the connection without an answer; `lose_answer=True` carries the request out and then drops the
connection, as when Alpaca took an order and the answer was lost); every answer carries the rate-limit headers.
Auth: both APCA headers are required (trading: 401 {"code": 40110000}; data: 403 as Alpaca's data API does);
`valid_keys` makes only that key pair valid (rotated keys).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from mytrader.adapters.alpaca.retry import RetryPolicy
from tests.integration.alpaca_fixture_data import MarketDataApi, PriceBook, bars_from_series
from tests.integration.alpaca_fixture_market import FixtureMarket, refused

DEFAULT_NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)  # Tuesday 10:00 New York: the market is open
DATA_PREFIXES = ("/v2/stocks/", "/v1beta1/")


@dataclass
class Fault:
    status: int  # 0: drop the connection without an answer
    method: str = ""  # "" matches any
    path: str = ""  # a path prefix; "" matches any
    times: int = 1  # -1: forever
    body: dict[str, Any] = field(default_factory=dict)
    reset_in: int = 2  # 429: X-Ratelimit-Reset = fixture clock + this many seconds
    lose_answer: bool = False  # the request is carried out, then the connection drops (status is ignored)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class AlpacaFixture:
    def __init__(self, fill_price: float = 10.0, now: datetime = DEFAULT_NOW,
                 clock: Callable[[], datetime] | None = None, cash: float = 100_000.0):
        self.book = PriceBook(fill_price)
        self.market = FixtureMarket(self.book, now, cash)
        self.data = MarketDataApi(self.book)
        self.clock = clock
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        self.valid_keys: tuple[str, str] | None = None
        self.nested_by_client_order_id = False  # the lookup by client id answers legs null (asked again, nested)
        self.lock = threading.RLock()
        handler = type("Handler", (_AlpacaHandler,), {"fixture": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    # -- what tests set and read ---------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.market.now

    def set_time(self, at: datetime) -> None:
        with self.lock:
            self.market.advance(at)

    @property
    def orders(self) -> list[dict[str, Any]]:
        return self.market.orders

    @property
    def bars(self) -> dict[str, list[dict[str, Any]]]:
        return self.book.bars

    @property
    def last_trade(self) -> dict[str, float]:
        return self.book.last_trade

    @property
    def news(self) -> list[Any]:
        return self.data.news

    @news.setter
    def news(self, items: list[Any]) -> None:
        self.data.news = items

    @property
    def page_size(self) -> int:
        return self.data.page_size

    @page_size.setter
    def page_size(self, size: int) -> None:
        self.data.page_size = size

    @property
    def fees(self) -> list[dict[str, Any]]:
        return self.market.fees

    def load_series(self, series: dict[str, Any]) -> None:
        """Daily BarSeries per symbol as the fixture's bars (the prices its market trades at)."""
        for symbol, s in series.items():
            self.book.bars[symbol] = bars_from_series(s)

    def inject(self, status: int, path: str = "", method: str = "", times: int = 1, code: int | None = None,
               message: str = "injected", reset_in: int = 2, lose_answer: bool = False) -> None:
        body: dict[str, Any] = {"message": message} if code is None else {"code": code, "message": message}
        with self.lock:
            self.faults.append(Fault(status, method.upper(), path, times, body, reset_in, lose_answer))

    def retry(self, slept: list[float], tries: int = 3) -> RetryPolicy:
        """A retry policy for adapters under test: sleeps are recorded, never taken; time is the fixture's."""
        return RetryPolicy(tries=tries, sleep=slept.append, clock=lambda: self.now.timestamp())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- serving -------------------------------------------------------------------------------------
    def rate_headers(self, remaining: int, reset_in: int = 60) -> dict[str, str]:
        return {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": str(remaining),
                "X-Ratelimit-Reset": str(int(self.now.timestamp()) + reset_in)}

    def handle(self, method: str, path: str, q: dict[str, str], body: Any,
               keys: tuple[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            if self.clock is not None:
                self.market.advance(self.clock())
            self.requests.append(Seen(method, path, q, body))
            fault = self._fault(method, path)
            if fault is not None and fault.lose_answer:
                self._route(method, path, q, body)
                return 0, None, {}
            if fault is not None:
                headers = self.rate_headers(0, fault.reset_in) if fault.status == 429 else self.rate_headers(199)
                return fault.status, fault.body, headers
            if not all(keys) or (self.valid_keys is not None and keys != self.valid_keys):
                data = path.startswith(DATA_PREFIXES)
                status, answer = (403, {"message": "forbidden"}) if data else refused(
                    401, "request is not authorized", 40110000)
                return status, answer, self.rate_headers(199)
            status, answer = self._route(method, path, q, body)
            return status, answer, self.rate_headers(199)

    def _fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (not fault.method or fault.method == method) and path.startswith(fault.path):
                if fault.times > 0:
                    fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _route(self, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        m, now = self.market, self.now
        parts = path.split("/")
        if path == "/v2/orders" and method == "POST":
            return m.place(body if isinstance(body, dict) else {})
        if path == "/v2/orders:by_client_order_id" and method == "GET":
            match = [o for o in m.all_orders() if o.get("client_order_id") == q.get("client_order_id")]
            return (200, m.render(match[0], self.nested_by_client_order_id)) if match else refused(
                404, "order not found", 40410000)
        if len(parts) == 4 and path.startswith("/v2/orders/"):
            return self._one_order(method, parts[3], q, body)
        if method != "GET":
            return refused(405, "method not allowed")
        routes: dict[str, Callable[[], tuple[int, Any]]] = {
            "/v2/positions": lambda: (200, m.positions()), "/v2/account": lambda: (200, m.account()),
            "/v2/clock": lambda: (200, m.clock()), "/v2/account/activities/FEE": lambda: m.fee_page(q),
            "/v1beta1/news": lambda: self.data.news_page(q, now, path)}
        if path in routes:
            return routes[path]()
        if path.startswith("/v2/stocks/") and path.endswith("/bars") and len(parts) == 5:
            return self.data.bars(unquote(parts[3]), q, now, path)
        if path.startswith("/v2/stocks/") and path.endswith("/trades/latest") and len(parts) == 6:
            return self.data.latest_trade(unquote(parts[3]), q, now)
        return refused(404, "not found")

    def _one_order(self, method: str, order_id: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        m = self.market
        if method == "DELETE":
            return m.cancel(order_id)
        if method == "PATCH":
            return m.replace(order_id, body if isinstance(body, dict) else {})
        order = m.find(order_id)
        if order is None:
            return refused(404, "order not found", 40410000)
        return 200, m.render(order, q.get("nested") == "true")


class _AlpacaHandler(BaseHTTPRequestHandler):
    """Serves one AlpacaFixture (`fixture`, set on the subclass each fixture makes)."""

    fixture: AlpacaFixture

    def log_message(self, *a: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        keys = (self.headers.get("APCA-API-KEY-ID") or "", self.headers.get("APCA-API-SECRET-KEY") or "")
        status, answer, headers = self.fixture.handle(method, url.path, q, body, keys)
        if status == 0:
            self.close_connection = True  # no answer at all: the client sees a dropped connection
            return
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")
