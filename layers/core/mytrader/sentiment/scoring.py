"""Headline sentiment: Amazon Comprehend or a local lexicon scorer, a cache per headline hash, and a
multi-source, recency-weighted aggregate in -1..+1."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from mytrader.models import NewsItem, SentimentScore

log = logging.getLogger(__name__)

COMPREHEND_BATCH = 25
COMPREHEND_MAX_BYTES = 5000  # 5 KB per document
COMPREHEND_UNIT_CHARS, COMPREHEND_MIN_UNITS = 100, 3


class Scorer(Protocol):
    name: str

    def score(self, texts: list[str]) -> list[float]:
        """One score in -1..+1 per text, in order."""
        ...


class LexiconScorer:
    """VADER, a lexicon model: offline, deterministic, no service calls."""

    name = "vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()

    def score(self, texts: list[str]) -> list[float]:
        return [float(self._vader.polarity_scores(t)["compound"]) for t in texts]


def truncate_utf8(text: str, max_bytes: int = COMPREHEND_MAX_BYTES) -> str:
    """Cut to at most max_bytes of UTF-8 without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def comprehend_units(text: str) -> int:
    """Comprehend bills per 100 characters with a 3-unit minimum per document."""
    return max(COMPREHEND_MIN_UNITS, math.ceil(len(text) / COMPREHEND_UNIT_CHARS))


class SentimentCache(Protocol):
    def get_many(self, keys: list[str]) -> dict[str, float]: ...

    def put_many(self, scores: dict[str, float]) -> None: ...


@dataclass
class InMemorySentimentCache:
    data: dict[str, float] = field(default_factory=dict)

    def get_many(self, keys: list[str]) -> dict[str, float]:
        return {k: self.data[k] for k in keys if k in self.data}

    def put_many(self, scores: dict[str, float]) -> None:
        self.data.update(scores)


class SentimentAnalyzer:
    """Scores items (cached by scorer + headline hash) and aggregates them with a recency half-life."""

    def __init__(self, scorer: Scorer, cache: SentimentCache | None = None, half_life_hours: float = 36.0,
                 lookback_hours: float = 96.0, max_items: int = 50):
        self.scorer, self.cache = scorer, cache or InMemorySentimentCache()
        self.half_life_hours, self.lookback_hours, self.max_items = half_life_hours, lookback_hours, max_items
        self.scored = 0

    def scores_for(self, items: list[NewsItem]) -> list[float]:
        keys = [f"{self.scorer.name}:{it.text_hash}" for it in items]
        known = self.cache.get_many(list(dict.fromkeys(keys)))
        todo = {k: it.headline for k, it in zip(keys, items, strict=True) if k not in known}
        if todo:
            fresh = dict(zip(todo, self.scorer.score(list(todo.values())), strict=True))
            self.scored += len(fresh)
            self.cache.put_many(fresh)
            known.update(fresh)
        return [known[k] for k in keys]

    def aggregate(self, items: list[NewsItem], as_of: datetime) -> SentimentScore:
        usable = [it for it in items if it.available_from <= as_of
                  and (as_of - it.available_from).total_seconds() <= self.lookback_hours * 3600]
        usable = usable[-self.max_items:]
        if not usable:
            return SentimentScore(score=0.0, n_items=0, scorer=self.scorer.name)
        scores = self.scores_for(usable)
        per_source: dict[str, list[tuple[float, float]]] = {}
        for it, s in zip(usable, scores, strict=True):
            age_h = max(0.0, (as_of - it.available_from).total_seconds() / 3600)
            w = 0.5 ** (age_h / self.half_life_hours)
            per_source.setdefault(it.source, []).append((w, s))
        by_source = {src: sum(w * s for w, s in pairs) / sum(w for w, _ in pairs) for src, pairs in per_source.items()}
        weights = {src: sum(w for w, _ in pairs) for src, pairs in per_source.items()}
        total = sum(weights.values())
        score = sum(by_source[s] * weights[s] for s in by_source) / total
        return SentimentScore(score=round(max(-1.0, min(1.0, score)), 4), n_items=len(usable),
                              by_source={k: round(v, 4) for k, v in sorted(by_source.items())}, scorer=self.scorer.name)
