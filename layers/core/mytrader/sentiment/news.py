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
        if text is not None:
            raw = text
        elif path is not None:
            raw = Path(path).read_text(encoding="utf-8", errors="replace")
        else:
            raise TypeError("CsvHeadlineSource needs a path or a text")
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


def record_skips(what: str, skipped: list[str], kept: deque[str]) -> None:
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


