"""News sources behind one interface: CSV replay of dated headlines, RSS (feedparser), Alpaca news."""
from __future__ import annotations

import ast
import bisect
import csv
import html
import io
import logging
from collections import deque
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol

from mytrader.market.calendar import NEW_YORK
from mytrader.models import NewsItem

log = logging.getLogger(__name__)


class NewsSource(Protocol):
    def items(self, symbol: str, start: datetime, as_of: datetime) -> list[NewsItem]:
        """Items usable at as_of (available_from <= as_of) and published on or after start."""
        ...


def clean_headline(raw: str) -> str:
    """Undo the mess of scraped headlines: Python bytes literals, HTML entities, embedded line breaks."""
    text = raw.strip()
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        try:
            value = ast.literal_eval(text)
            text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
        except (ValueError, SyntaxError):
            text = text[2:-1]
    text = html.unescape(html.unescape(text))
    return " ".join(text.split())


def daily_available_from(day: date) -> datetime:
    """Headlines dated D may be posted after D's close: usable from the next day's open (09:30 New York)."""
    return datetime.combine(day + timedelta(days=1), time(9, 30), NEW_YORK).astimezone(UTC)


class CsvHeadlineSource:
    """Dated headlines (`Date,News`), market-wide: every symbol sees them. Real CSV parsing, so line
    breaks inside quoted fields stay inside one headline."""

    def __init__(self, path: Path | str | None = None, text: str | None = None, source: str = "headlines"):
        self.source = source
        raw = text if text is not None else Path(path).read_text(encoding="utf-8", errors="replace")
        rows: list[NewsItem] = []
        self.skipped: list[str] = []
        reader = csv.reader(io.StringIO(raw))
        header = [h.strip().lower() for h in next(reader, [])]
        try:
            di, ni = header.index("date"), header.index("news")
        except ValueError:
            raise ValueError(f"headline file needs Date and News columns, got {header}") from None
        for n, row in enumerate(reader, start=2):
            try:
                day = date.fromisoformat(row[di].strip())
                headline = clean_headline(row[ni])
            except (IndexError, ValueError) as exc:
                self.skipped.append(f"record {n}: {exc}")
                continue
            if not headline:
                self.skipped.append(f"record {n}: empty headline")
                continue
            published = datetime.combine(day, time(0, 0), NEW_YORK).astimezone(UTC)
            rows.append(NewsItem(source=source, headline=headline, published=published,
                                 available_from=daily_available_from(day)))
        if self.skipped:
            log.warning("headline file: %d records skipped, first: %s", len(self.skipped), self.skipped[0])
        rows.sort(key=lambda it: (it.available_from, it.headline))
        self._items = rows
        self._keys = [it.available_from for it in rows]

    def __len__(self) -> int:
        return len(self._items)

    def items(self, symbol: str, start: datetime, as_of: datetime) -> list[NewsItem]:
        hi = bisect.bisect_right(self._keys, as_of)
        lo = bisect.bisect_left(self._keys, start)
        return self._items[lo:hi]

    def all_items(self) -> list[NewsItem]:
        return list(self._items)


class RssSource:
    """A per-symbol RSS/Atom feed through feedparser; `url` may hold `{symbol}`. `fetch` returns the
    feed's text (the test seam)."""

    def __init__(self, url: str, fetch=None, source: str = "rss"):
        self.url, self.source = url, source
        self._fetch = fetch or _http_get_text
        self.skipped: deque[str] = deque(maxlen=100)  # the latest entries skipped, with why

    def items(self, symbol: str, start: datetime, as_of: datetime) -> list[NewsItem]:
        import feedparser

        feed = feedparser.parse(self._fetch(self.url.format(symbol=symbol)))
        out, skipped = [], []
        for n, entry in enumerate(feed.entries):
            stamp = entry.get("published_parsed") or entry.get("updated_parsed")
            title = clean_headline(entry.get("title", ""))
            if not stamp or not title:
                skipped.append(f"{symbol} entry {n}: {'no date' if not stamp else 'empty title'}")
                continue
            published = datetime(*stamp[:6], tzinfo=UTC)
            if start <= published <= as_of:
                out.append(NewsItem(source=self.source, headline=title, published=published,
                                    available_from=published, symbols=(symbol,)))
        _record_skips(f"rss {self.source}", skipped, self.skipped)
        return sorted(out, key=lambda it: it.published)


class AlpacaNewsSource:
    """Alpaca news API (GET /v1beta1/news), paged by next_page_token."""

    def __init__(self, key_id: str, secret_key: str, base_url: str = "https://data.alpaca.markets",
                 session=None, timeout: float = 10.0):
        import requests

        self._http = session or requests.Session()
        self._http.headers.update({"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key})
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.skipped: deque[str] = deque(maxlen=100)  # the latest items skipped, with why

    def items(self, symbol: str, start: datetime, as_of: datetime) -> list[NewsItem]:
        skipped: list[str] = []
        params = {"symbols": symbol, "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
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
        _record_skips("alpaca news", skipped, self.skipped)
        return sorted(out, key=lambda it: it.published)


def _record_skips(what: str, skipped: list[str], kept: deque[str]) -> None:
    """Malformed feed items never stop a decision, but each is logged with why and kept for inspection."""
    if skipped:
        kept.extend(skipped)
        log.warning("%s: %d items skipped, first: %s", what, len(skipped), skipped[0])


class MultiSource:
    def __init__(self, sources: list[NewsSource]):
        self.sources = sources

    def items(self, symbol: str, start: datetime, as_of: datetime) -> list[NewsItem]:
        seen, out = set(), []
        for src in self.sources:
            for it in src.items(symbol, start, as_of):
                if it.text_hash not in seen:
                    seen.add(it.text_hash)
                    out.append(it)
        return out


def _http_get_text(url: str) -> str:
    import requests

    resp = requests.get(url, timeout=10)
    resp.raise_for_status()
    return resp.text
