"""The Alpaca fixture's market data: daily bars per symbol (the prices its simulated market trades at), latest
trades and news, served in Alpaca's documented shapes and honouring the documented query parameters.

- GET /v2/stocks/{symbol}/bars: timeframe (daily only: 1Day/1D), start, end (RFC 3339 with an offset or `Z`, or
  a date), limit (1..10000, default 1000), feed (sip | iex | otc), sort (asc | desc), page_token (opaque, bound
  to its query). Bars exist only once their day has begun at the fixture's clock; today's is served while it
  forms, as Alpaca does. On the free plan (the default) SIP is refused within 15 minutes of the clock (403
  "subscription does not permit querying recent SIP data"). IEX bars carry `iex_volume_share` of the volume.
- GET /v2/stocks/{symbol}/trades/latest: feed (sip is "recent SIP": refused on the free plan); the price is
  `last_trade[symbol]` when set, else the fixture market's price at its clock.
- GET /v1beta1/news: symbols, start, end, limit (1..50, default 10), sort (desc | asc), page_token. Items whose
  `created_at` cannot be read are served as they are (the adapter must skip them, saying why).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mytrader.market.calendar import NEW_YORK, nyse

RECENT_SIP = timedelta(minutes=15)
FEEDS = ("sip", "iex", "otc")


def stamp(at: datetime) -> str:
    """UTC RFC 3339 with microseconds and `Z`, as Alpaca writes order and data times."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_query_time(raw: str | None, default: datetime) -> datetime:
    """A start/end parameter: RFC 3339 with an offset or `Z`, or a date. A time without an offset is refused
    (ValueError), as Alpaca refuses it."""
    if raw is None:
        return default
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
    at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"{raw!r} has no offset")
    return at.astimezone(UTC)


def _readable_time(raw: object) -> datetime | None:
    try:
        return parse_query_time(str(raw), datetime.min) if isinstance(raw, str) else None
    except ValueError:
        return None


def bar_day(bar: dict[str, Any]) -> date:
    """The session day of a daily bar (Alpaca stamps it at the start of its New York day)."""
    return datetime.fromisoformat(bar["t"].replace("Z", "+00:00")).astimezone(NEW_YORK).date()


class Pager:
    """Opaque page tokens bound to the query they continue (another query with the token is refused)."""

    @staticmethod
    def _key(path: str, q: dict[str, str]) -> str:
        blob = json.dumps([path, sorted((k, v) for k, v in q.items() if k != "page_token")])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def start(self, path: str, q: dict[str, str]) -> int:
        token = q.get("page_token")
        if not token:
            return 0
        try:
            raw = json.loads(base64.urlsafe_b64decode(token.encode()))
            if raw["k"] != self._key(path, q):
                raise ValueError("token of another query")
            return int(raw["i"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"invalid page_token: {exc}") from None

    def page(self, path: str, q: dict[str, str], rows: list[Any], size: int) -> tuple[list[Any], str | None]:
        first = self.start(path, q)
        nxt = first + size
        if nxt >= len(rows):
            return rows[first:], None
        token = base64.urlsafe_b64encode(json.dumps({"k": self._key(path, q), "i": nxt}).encode()).decode()
        return rows[first:nxt], token


class PriceBook:
    """Daily bars per symbol (Alpaca's shape) and latest-trade overrides: what the fixture's market trades at."""

    def __init__(self, fallback: float):
        self.bars: dict[str, list[dict[str, Any]]] = {}
        self.last_trade: dict[str, float] = {}
        self.fallback = fallback

    def day_bar(self, symbol: str, day: date) -> dict[str, Any] | None:
        for bar in self.bars.get(symbol, []):
            if bar_day(bar) == day:
                return bar
        return None

    def open_price(self, symbol: str, day: date) -> float:
        bar = self.day_bar(symbol, day)
        return float(bar["o"]) if bar is not None else self.price_at(symbol, nyse().session_open(day))

    def price_at(self, symbol: str, at: datetime) -> float:
        """The last trade, else the day's open during its session and its close after it (daily resolution), else
        the last close before, else the fixture's fallback price."""
        if symbol in self.last_trade:
            return self.last_trade[symbol]
        day = at.astimezone(NEW_YORK).date()
        cal = nyse()
        best: float | None = None
        for bar in sorted(self.bars.get(symbol, []), key=lambda b: b["t"]):
            d = bar_day(bar)
            if d < day:
                best = float(bar["c"])
            elif d == day and cal.is_session(d) and at >= cal.session_open(d):
                best = float(bar["o"]) if at < cal.session_close(d) else float(bar["c"])
        return best if best is not None else self.fallback


class MarketDataApi:
    """The data endpoints over a PriceBook and a news list; `now` is the fixture's clock."""

    def __init__(self, book: PriceBook):
        self.book = book
        self.news: list[Any] = []
        self.page_size = 10_000  # the server's own cap on a page (tests lower it to force paging)
        self.sip_recent_allowed = False  # the free plan: no SIP within 15 minutes
        self.iex_volume_share = 0.03
        self.pager = Pager()

    def bars(self, symbol: str, q: dict[str, str], now: datetime, path: str) -> tuple[int, Any]:
        if not re.fullmatch(r"1(Day|D)", q.get("timeframe", "")):
            return 422, {"message": f"invalid timeframe {q.get('timeframe')!r} (the fixture serves daily bars)"}
        feed = q.get("feed", "sip")
        if feed not in FEEDS:
            return 422, {"message": f"invalid feed {feed!r}"}
        window = _query_window(q, datetime.combine(now.astimezone(NEW_YORK).date(), datetime.min.time(), NEW_YORK),
                               now, default_limit=1000, max_limit=10_000)
        if isinstance(window, str):
            return 422, {"message": window}
        start, end, limit = window
        if feed == "sip" and not self.sip_recent_allowed and end > now - RECENT_SIP:
            return 403, {"message": "subscription does not permit querying recent SIP data"}
        rows = [self._feed_bar(b, feed) for b in self.book.bars.get(symbol, [])
                if start <= _bar_time(b) <= end and _bar_time(b) <= now]
        rows.sort(key=lambda b: b["t"], reverse=q.get("sort") == "desc")
        try:
            page, token = self.pager.page(path, q, rows, min(limit, self.page_size))
        except ValueError as exc:
            return 422, {"message": str(exc)}
        return 200, {"bars": page, "symbol": symbol, "next_page_token": token}

    def _feed_bar(self, bar: dict[str, Any], feed: str) -> dict[str, Any]:
        if feed != "iex":
            return dict(bar)
        return {**bar, "v": round(float(bar["v"]) * self.iex_volume_share)}

    def latest_trade(self, symbol: str, q: dict[str, str], now: datetime) -> tuple[int, Any]:
        feed = q.get("feed", "sip")
        if feed not in FEEDS:
            return 422, {"message": f"invalid feed {feed!r}"}
        if feed == "sip" and not self.sip_recent_allowed:
            return 403, {"message": "subscription does not permit querying recent SIP data"}
        if symbol not in self.book.last_trade and symbol not in self.book.bars:
            return 404, {"message": f"no trade for {symbol}"}
        return 200, {"symbol": symbol, "trade": {"t": stamp(now), "x": "V", "p": self.book.price_at(symbol, now),
                                                 "s": 100, "c": ["@"], "i": 1, "z": "C"}}

    def news_page(self, q: dict[str, str], now: datetime, path: str) -> tuple[int, Any]:
        window = _query_window(q, datetime(1970, 1, 1, tzinfo=UTC), now, default_limit=10, max_limit=50)
        if isinstance(window, str):
            return 422, {"message": window}
        start, end, limit = window
        wanted = {s for s in q.get("symbols", "").split(",") if s}
        rows = [n for n in self.news if _news_matches(n, wanted, start, min(end, now))]
        rows.sort(key=lambda n: _readable_time(n.get("created_at")) or start if isinstance(n, dict) else start,
                  reverse=q.get("sort", "desc") == "desc")
        try:
            page, token = self.pager.page(path, q, rows, min(limit, self.page_size))
        except ValueError as exc:
            return 422, {"message": str(exc)}
        return 200, {"news": page, "next_page_token": token}


def _query_window(q: dict[str, str], default_start: datetime, now: datetime, *, default_limit: int,
                  max_limit: int) -> tuple[datetime, datetime, int] | str:
    """start, end and limit of a data API query, or the 422 message Alpaca answers a bad one with."""
    try:
        start = parse_query_time(q.get("start"), default_start)
        end = parse_query_time(q.get("end"), now)
        limit = int(q.get("limit", str(default_limit)))
    except ValueError as exc:
        return f"invalid query: {exc}"
    if not 1 <= limit <= max_limit:
        return f"invalid limit {limit}"
    return start, end, limit


def _bar_time(bar: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(bar["t"].replace("Z", "+00:00")).astimezone(UTC)


def _news_matches(item: Any, wanted: set[str], start: datetime, end: datetime) -> bool:
    if not isinstance(item, dict):
        return True  # malformed: served as is
    symbols = item.get("symbols")
    if wanted and isinstance(symbols, list) and not wanted & set(symbols):
        return False
    at = _readable_time(item.get("created_at"))
    return at is None or start <= at <= end


def bars_from_series(series: Any) -> list[dict[str, Any]]:
    """A BarSeries (daily, stamped at the close) as Alpaca daily bars (stamped at the start of the NY day)."""
    out = []
    for i in range(len(series)):
        day = series.time(i).astimezone(NEW_YORK).date()
        t = datetime.combine(day, datetime.min.time(), NEW_YORK)
        out.append({"t": stamp(t).replace(".000000", ""), "o": float(series.open[i]), "h": float(series.high[i]),
                    "l": float(series.low[i]), "c": float(series.close[i]), "v": float(series.volume[i]),
                    "n": 1, "vw": float(series.close[i])})
    return out
