"""Headline sources and scoring: real-world mess, Comprehend batching and billing, cache, aggregation."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mytrader.adapters.aws.comprehend import ComprehendScorer
from mytrader.adapters.rss import RssSource
from mytrader.models import NewsItem
from mytrader.sentiment.news import CsvHeadlineSource, clean_headline
from mytrader.sentiment.scoring import (
    InMemorySentimentCache,
    LexiconScorer,
    SentimentAnalyzer,
    comprehend_units,
    truncate_utf8,
)
from tests.conftest import shared_file


def test_bytes_literals_and_html_entities_are_cleaned():
    assert clean_headline("b'Georgia &amp; Russia at war'") == "Georgia & Russia at war"
    assert clean_headline('b"It\'s over"') == "It's over"
    assert clean_headline("Line one\nline two") == "Line one line two"


def test_quoted_line_breaks_stay_inside_one_headline():
    text = 'Date,News\n2010-01-04,"First line\nsecond line"\n2010-01-04,Plain\n2010-01-05,\n'
    src = CsvHeadlineSource(text=text)
    heads = [it.headline for it in src.all_items()]
    assert heads == ["First line second line", "Plain"]
    assert len(src.skipped) == 1  # the empty headline is a recorded skip, not a crash


def test_real_worldnews_file_loads_with_its_mess():
    src = CsvHeadlineSource(shared_file("worldnews-headlines-2008-2012.csv"))
    heads = [it.headline for it in src.all_items()]
    assert len(heads) > 41_000
    assert not any(h.startswith(("b'", 'b"')) for h in heads)
    assert not any("&amp;" in h or "\n" in h for h in heads)


class FakeComprehend:
    def __init__(self, fail_index: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_index = fail_index

    def batch_detect_sentiment(self, **kwargs: Any) -> dict[str, Any]:  # keyword-only, as boto3's
        texts, _language = kwargs["TextList"], kwargs["LanguageCode"]
        self.calls.append(list(texts))
        errors = ([{"Index": self.fail_index, "ErrorCode": "INTERNAL_SERVER_ERROR"}]
                  if self.fail_index is not None else [])
        results = [{"Index": i, "Sentiment": "POSITIVE",
                    "SentimentScore": {"Positive": 0.7 if "good" in t else 0.1, "Negative": 0.1 if "good" in t else 0.6,
                                       "Neutral": 0.2, "Mixed": 0.0}} for i, t in enumerate(texts)]
        return {"ResultList": results, "ErrorList": errors}


def test_comprehend_batches_25_truncates_on_utf8_and_counts_units():
    fake = FakeComprehend()
    scorer = ComprehendScorer(fake)
    texts = ["good news"] * 30 + ["é" * 3000]  # 6000 bytes: must be cut below 5000 bytes
    scores = scorer.score(texts)
    assert [len(c) for c in fake.calls] == [25, 6]
    assert len(fake.calls[1][-1].encode()) <= 5000 and fake.calls[1][-1] == "é" * 2500
    assert scores[0] == pytest.approx(0.6) and scores[-1] == pytest.approx(-0.5)
    assert scorer.units_billed == 30 * 3 + 25  # 3-unit minimum each; 2500 chars = 25 units
    assert comprehend_units("x" * 301) == 4


def test_truncation_never_splits_a_character():
    assert truncate_utf8("ab€", 4) == "ab"


def test_comprehend_error_raises_instead_of_inventing_a_score():
    with pytest.raises(RuntimeError, match="document 1"):
        ComprehendScorer(FakeComprehend(fail_index=1)).score(["a", "b"])


def _item(text, hours_ago, source="s1", now=datetime(2020, 1, 10, 21, tzinfo=UTC)):
    t = now - timedelta(hours=hours_ago)
    return NewsItem(source=source, headline=text, published=t, available_from=t)


def test_aggregate_weights_recent_news_more_and_caches_scores():
    now = datetime(2020, 1, 10, 21, tzinfo=UTC)
    cache = InMemorySentimentCache()
    analyzer = SentimentAnalyzer(LexiconScorer(), cache)
    items = [_item("Terrible crash, awful losses", 70), _item("Great gains, excellent results", 1)]
    score = analyzer.aggregate(items, now)
    assert score.score > 0.3 and score.n_items == 2 and -1 <= score.score <= 1
    assert analyzer.scored == 2
    analyzer.aggregate(items, now)
    assert analyzer.scored == 2  # second time from the cache
    assert len(cache.data) == 2


def test_aggregate_keeps_a_breakdown_per_source_and_ignores_future_items():
    now = datetime(2020, 1, 10, 21, tzinfo=UTC)
    analyzer = SentimentAnalyzer(LexiconScorer())
    items = [_item("Great gains", 2, "a"), _item("Awful losses", 2, "b"), _item("Wonderful", -5, "a")]
    score = analyzer.aggregate(items, now)
    assert set(score.by_source) == {"a", "b"} and score.n_items == 2


def test_rss_source_parses_a_feed_fixture():
    rss = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
    <item><title>NVDA beats &amp; raises</title><pubDate>Tue, 02 Mar 2010 15:00:00 GMT</pubDate></item>
    <item><title>Later news</title><pubDate>Fri, 05 Mar 2010 15:00:00 GMT</pubDate></item>
    <item><title>Undated</title></item><item><title> </title><pubDate>Tue, 02 Mar 2010 16:00:00 GMT</pubDate></item>
    </channel></rss>"""
    src = RssSource("https://feeds.example/{symbol}", fetch=lambda url: rss)
    items = src.items("NVDA", datetime(2010, 3, 1, tzinfo=UTC), datetime(2010, 3, 3, tzinfo=UTC))
    assert [i.headline for i in items] == ["NVDA beats & raises"]
    assert list(src.skipped) == ["NVDA entry 2: no date", "NVDA entry 3: empty title"]
