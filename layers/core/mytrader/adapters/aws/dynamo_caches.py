"""DynamoDB-backed caches shared by every container: headline sentiment and the advisor's daily token budget."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mytrader.stack_spec import SENTIMENT_TTL_S

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import DynamoDBClient
    from mytrader.adapters.tradelog import TradeLog


class DynamoSentimentCache:
    """Headline sentiment scores shared by every container, expiring after SENTIMENT_TTL_S."""

    def __init__(self, client: DynamoDBClient, table: str):
        self.db, self.table = client, table

    def get_many(self, keys: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for start in range(0, len(keys), 100):
            chunk = keys[start:start + 100]
            resp = self.db.batch_get_item(RequestItems={self.table: {"Keys": [{"key": {"S": k}} for k in chunk]}})
            for item in resp.get("Responses", {}).get(self.table, []):
                out[item["key"]["S"]] = float(item["score"]["N"])
        return out

    def put_many(self, scores: dict[str, float]) -> None:
        expires = int(time.time()) + SENTIMENT_TTL_S
        items: list[dict[str, Any]] = [
            {"PutRequest": {"Item": {"key": {"S": k}, "score": {"N": str(Decimal(str(round(v, 6))))},
                                     "expires_at": {"N": str(expires)}}}} for k, v in scores.items()]
        for start in range(0, len(items), 25):
            self.db.batch_write_item(RequestItems={self.table: items[start:start + 25]})


class DynamoTokenBudget:
    """The advisor's daily token budget, shared by every container through a counter item in the trade log."""

    def __init__(self, tradelog: TradeLog, daily_limit: int):
        self.tradelog, self.daily_limit = tradelog, daily_limit

    def exhausted(self, day: str) -> bool:
        return self.daily_limit > 0 and self.tradelog.tokens_used(day) >= self.daily_limit

    def add(self, day: str, tokens: int) -> None:
        self.tradelog.add_tokens(day, tokens)
