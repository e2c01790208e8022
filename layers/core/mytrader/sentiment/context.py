"""News context of a decision: the sentiment score and the headlines the prompt shows, as of a time."""
from __future__ import annotations

from datetime import datetime, timedelta

from mytrader.models import SentimentScore
from mytrader.sentiment.news import NewsSource
from mytrader.sentiment.scoring import SentimentAnalyzer


class NewsContext:
    def __init__(self, source: NewsSource, analyzer: SentimentAnalyzer, market_wide: bool = False):
        self.source, self.analyzer, self.market_wide = source, analyzer, market_wide
        self._memo: dict[tuple[str, datetime], tuple[SentimentScore, list[str]]] = {}

    def at(self, symbol: str, as_of: datetime) -> tuple[SentimentScore, list[str]]:
        key = ("*" if self.market_wide else symbol, as_of)
        hit = self._memo.get(key)
        if hit is None:
            start = as_of - timedelta(hours=self.analyzer.lookback_hours)
            items = self.source.items(symbol, start, as_of)
            hit = (self.analyzer.aggregate(items, as_of), [it.headline for it in items])
            if len(self._memo) > 50_000:
                self._memo.clear()
            self._memo[key] = hit
        return hit
