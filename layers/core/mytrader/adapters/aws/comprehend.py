"""Amazon Comprehend BatchDetectSentiment as a sentiment scorer (25 documents a call, billed in units)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from mytrader.sentiment.scoring import COMPREHEND_BATCH, comprehend_units, truncate_utf8

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import ComprehendClient


class ComprehendScorer:
    """BatchDetectSentiment, 25 documents a call; score = Positive - Negative. A failed document or
    batch raises: the caller decides to skip sentiment for the cycle, never to invent a score."""

    name = "comprehend"

    def __init__(self, client: ComprehendClient, language: str = "en"):
        self._client, self.language = client, language
        self.units_billed = 0
        self.calls = 0

    def score(self, texts: list[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(texts), COMPREHEND_BATCH):
            batch = [truncate_utf8(t) for t in texts[start:start + COMPREHEND_BATCH]]
            resp = self._client.batch_detect_sentiment(TextList=batch, LanguageCode=self.language)
            self.calls += 1
            self.units_billed += sum(comprehend_units(t) for t in batch)
            if resp.get("ErrorList"):
                err = resp["ErrorList"][0]
                raise RuntimeError(f"comprehend failed on document {err.get('Index')}: {err.get('ErrorCode')}")
            scores = [0.0] * len(batch)
            for r in resp["ResultList"]:
                s = r["SentimentScore"]
                scores[r["Index"]] = float(s["Positive"]) - float(s["Negative"])
            out.extend(scores)
        return out
