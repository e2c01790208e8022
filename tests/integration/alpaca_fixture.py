"""An HTTP fixture of Alpaca's documented REST shapes (Trading API v2 orders, Market Data v2 bars,
News v1beta1), keeping its own order ledger. Serves on 127.0.0.1 only; tests never touch the network."""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class AlpacaFixture:
    def __init__(self, fill_price: float = 10.0):
        self.orders: list[dict] = []
        self.fill_mode = "filled"  # filled | partial | new
        self.fill_price = fill_price
        self.fail_next: list[int] = []  # HTTP statuses to answer the next order posts with
        self.bars: dict[str, list[dict]] = {}
        self.news: list[dict] = []
        self.last_trade: dict[str, float] = {}
        self.page_size = 2
        handler = type("Handler", (_AlpacaHandler,), {"fixture": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def place(self, body: dict) -> tuple[int, dict]:
        """POST /v2/orders: the status and body Alpaca answers an order with."""
        if self.fail_next:
            return self.fail_next.pop(0), {"message": "injected"}
        if any(o["client_order_id"] == body.get("client_order_id") for o in self.orders):
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        qty = float(body["qty"])
        filled = {"filled": qty, "partial": qty / 2, "new": 0.0}[self.fill_mode]
        order = {"id": str(uuid.uuid4()), "client_order_id": body["client_order_id"], "symbol": body["symbol"],
                 "side": body["side"], "qty": body["qty"], "type": body.get("type", "market"),
                 "time_in_force": body.get("time_in_force", "day"),
                 "status": {"filled": "filled", "partial": "partially_filled", "new": "new"}[self.fill_mode],
                 "filled_qty": str(filled), "filled_avg_price": str(self.fill_price) if filled else None,
                 "created_at": "2024-01-02T14:30:00Z"}
        self.orders.append(order)
        return 200, order

    def by_client_order_id(self, q: dict[str, str]) -> tuple[int, Any]:
        match = [o for o in self.orders if o["client_order_id"] == q.get("client_order_id")]
        return (200, match[0]) if match else (404, {"code": 40410000, "message": "order not found"})

    def bars_page(self, symbol: str, q: dict[str, str]) -> tuple[int, Any]:
        rows = self.bars.get(symbol, [])
        start = int(q.get("page_token", "0"))
        page = rows[start:start + self.page_size]
        nxt = str(start + self.page_size) if start + self.page_size < len(rows) else None
        return 200, {"bars": page, "symbol": symbol, "next_page_token": nxt}

    def latest_trade(self, symbol: str) -> tuple[int, Any]:
        if symbol not in self.last_trade:
            return 404, {"message": "not found"}
        return 200, {"symbol": symbol, "trade": {"t": "2024-01-02T15:00:00Z", "x": "V",
                                                 "p": self.last_trade[symbol], "s": 100}}

    def answer_get(self, path: str, q: dict[str, str]) -> tuple[int, Any]:
        """GET: the status and body for one documented path (404 for anything else)."""
        if path == "/v2/orders:by_client_order_id":
            return self.by_client_order_id(q)
        if path == "/v2/positions":
            return 200, self.positions()
        if path.startswith("/v2/stocks/") and path.endswith("/bars"):
            return self.bars_page(path.split("/")[3], q)
        if path.startswith("/v2/stocks/") and path.endswith("/trades/latest"):
            return self.latest_trade(path.split("/")[3])
        if path == "/v1beta1/news":
            return 200, {"news": self.news, "next_page_token": None}
        return 404, {"message": "not found"}

    def positions(self) -> list[dict]:
        """Open positions in the documented shape (qty unsigned, side long|short), from the filled orders."""
        held: dict[str, float] = {}
        for o in self.orders:
            signed = float(o["filled_qty"] or 0) * (1 if o["side"] == "buy" else -1)
            held[o["symbol"]] = held.get(o["symbol"], 0.0) + signed
        return [{"asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, sym)), "symbol": sym, "exchange": "NASDAQ",
                 "asset_class": "us_equity", "qty": str(abs(q)), "side": "long" if q > 0 else "short",
                 "avg_entry_price": str(self.fill_price), "market_value": str(abs(q) * self.fill_price)}
                for sym, q in sorted(held.items()) if abs(q) > 1e-9]

    def fill_all(self) -> None:
        for o in self.orders:
            o.update(status="filled", filled_qty=o["qty"], filled_avg_price=str(self.fill_price))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _AlpacaHandler(BaseHTTPRequestHandler):
    """Serves one AlpacaFixture (`fixture`, set on the subclass each fixture makes)."""

    fixture: AlpacaFixture

    def log_message(self, *a):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self):
        if not (self.headers.get("APCA-API-KEY-ID") and self.headers.get("APCA-API-SECRET-KEY")):
            self._send(403, {"message": "forbidden."})
            return False
        return True

    def do_POST(self):
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if urlparse(self.path).path != "/v2/orders":
            return self._send(404, {"message": "not found"})
        self._send(*self.fixture.place(body))

    def do_GET(self):
        if not self._authorised():
            return
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self._send(*self.fixture.answer_get(url.path, q))
