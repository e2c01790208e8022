"""Alpaca news API (GET /v1beta1/news)."""
from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mytrader.adapters.alpaca.data_api import data_pages
from mytrader.adapters.alpaca.retry import AlpacaHttp, RetryPolicy
from mytrader.adapters.alpaca.session import DATA_URL, alpaca_session
from mytrader.adapters.alpaca.times import parse_time, rfc3339
from mytrader.models import NewsItem
from mytrader.sentiment.news import clean_headline, record_skips

if TYPE_CHECKING:
    import requests

PAGE = 50  # Alpaca's largest news page
MAX_PAGES = 10  # at most 500 items a call, the newest first; older ones are left unread


class AlpacaNewsSource:
    """Alpaca news API (GET /v1beta1/news), newest first, paged by next_page_token. `start` and `end` are sent
    as UTC (converted, then written with `Z`). Throttling or an outage after the bounded retries raises
    DataUnavailable (retryable), any other refusal DataQualityError."""

    def __init__(self, key_id: str, secret_key: str, base_url: str = DATA_URL,
                 session: requests.Session | None = None, timeout: float = 10.0, retry: RetryPolicy | None = None):
        self._api = AlpacaHttp(alpaca_session(key_id, secret_key, session), base_url, timeout, retry)
        self.skipped: deque[str] = deque(maxlen=100)  # the latest items skipped, with why

    def items(self, symbol: str, start: datetime, as_of: datetime) -> list[NewsItem]:
        skipped: list[str] = []
        params: dict[str, str | int] = {"symbols": symbol, "start": rfc3339(start), "end": rfc3339(as_of),
                                        "limit": PAGE, "sort": "desc"}
        until = as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=UTC)
        out: list[NewsItem] = []
        for page in data_pages(self._api, "/v1beta1/news", params, "news", symbol, "news", MAX_PAGES, truncate=True):
            for raw in page:
                item = _item(symbol, raw, skipped)
                if item is not None and item.published <= until:
                    out.append(item)
        record_skips("alpaca news", skipped, self.skipped)
        return sorted(out, key=lambda it: it.published)


def _item(symbol: str, raw: Any, skipped: list[str]) -> NewsItem | None:
    """One article as a NewsItem, or None (recorded in `skipped` with why)."""
    try:
        published = parse_time(raw["created_at"])
        title = clean_headline(raw.get("headline") or "")
    except (KeyError, ValueError, AttributeError, TypeError) as exc:
        skipped.append(f"{symbol} news id {raw.get('id') if isinstance(raw, dict) else '?'}: "
                       f"{type(exc).__name__}: {exc}"[:200])
        return None
    if not title:
        skipped.append(f"{symbol} news id {raw.get('id')}: empty headline")
        return None
    return NewsItem(source=f"alpaca:{raw.get('source', 'news')}", headline=title, published=published,
                    available_from=published, symbols=tuple(raw.get("symbols") or ()))
