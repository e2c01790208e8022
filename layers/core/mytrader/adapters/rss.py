"""RSS/Atom headlines through feedparser."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from mytrader.models import NewsItem
from mytrader.sentiment.news import clean_headline, record_skips


class RssSource:
    """A per-symbol RSS/Atom feed through feedparser; `url` may hold `{symbol}`. `fetch` returns the
    feed's text (the test seam)."""

    def __init__(self, url: str, fetch: Callable[[str], str] | None = None, source: str = "rss"):
        self.url, self.source = url, source
        self._fetch = fetch or _http_get_text
        self.skipped: deque[str] = deque(maxlen=100)  # the latest entries skipped, with why

    def items(self, symbol: str, start: datetime, as_of: datetime) -> list[NewsItem]:
        import feedparser

        feed = feedparser.parse(self._fetch(self.url.format(symbol=symbol)))
        out: list[NewsItem] = []
        skipped: list[str] = []
        for n, entry in enumerate(feed.entries):
            stamp = entry.get("published_parsed") or entry.get("updated_parsed")
            title = clean_headline(entry.get("title", ""))
            if not stamp or not title:
                skipped.append(f"{symbol} entry {n}: {'no date' if not stamp else 'empty title'}")
                continue
            year, month, day, hour, minute, second = stamp[:6]  # a UTC struct_time
            published = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            if start <= published <= as_of:
                out.append(NewsItem(source=self.source, headline=title, published=published,
                                    available_from=published, symbols=(symbol,)))
        record_skips(f"rss {self.source}", skipped, self.skipped)
        return sorted(out, key=lambda it: it.published)


def _http_get_text(url: str) -> str:
    import requests

    resp = requests.get(url, timeout=10)
    resp.raise_for_status()
    return resp.text
