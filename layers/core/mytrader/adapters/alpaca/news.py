"""Alpaca news API (GET /v1beta1/news)."""
from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mytrader.adapters.alpaca.session import DATA_URL, alpaca_session
from mytrader.models import NewsItem
from mytrader.sentiment.news import clean_headline, record_skips

if TYPE_CHECKING:
    import requests


class AlpacaNewsSource:
    """Alpaca news API (GET /v1beta1/news), paged by next_page_token."""

    def __init__(self, key_id: str, secret_key: str, base_url: str = DATA_URL,
                 session: requests.Session | None = None, timeout: float = 10.0):
        self._http = alpaca_session(key_id, secret_key, session)
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.skipped: deque[str] = deque(maxlen=100)  # the latest items skipped, with why

    def items(self, symbol: str, start: datetime, as_of: datetime) -> list[NewsItem]:
        skipped: list[str] = []
        params: dict[str, str | int] = {"symbols": symbol, "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "end": as_of.strftime("%Y-%m-%dT%H:%M:%SZ"), "limit": 50, "sort": "desc"}
        out: list[NewsItem] = []
        for _ in range(10):  # at most 500 items a call
            resp = self._http.get(f"{self.base_url}/v1beta1/news", params=params, timeout=self.timeout)
            resp.raise_for_status()
            body = resp.json()
            for raw in body.get("news") or []:
                try:
                    published = datetime.fromisoformat(raw["created_at"].replace("Z", "+00:00")).astimezone(UTC)
                    title = clean_headline(raw.get("headline") or "")
                except (KeyError, ValueError, AttributeError, TypeError) as exc:
                    skipped.append(f"{symbol} news id {raw.get('id') if isinstance(raw, dict) else '?'}: "
                                   f"{type(exc).__name__}: {exc}"[:200])
                    continue
                if not title:
                    skipped.append(f"{symbol} news id {raw.get('id')}: empty headline")
                    continue
                if published <= as_of:
                    out.append(NewsItem(source=f"alpaca:{raw.get('source', 'news')}", headline=title,
                                        published=published, available_from=published,
                                        symbols=tuple(raw.get("symbols") or ())))
            if not body.get("next_page_token"):
                break
            params["page_token"] = body["next_page_token"]
        record_skips("alpaca news", skipped, self.skipped)
        return sorted(out, key=lambda it: it.published)
