"""AWS-facing adapters of the pipeline: clients, parameters, clocks, S3 market data, DynamoDB caches."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property

import boto3
from botocore.config import Config

from mytrader.clock import SystemClock, parse_utc
from mytrader.errors import DataQualityError
from mytrader.pipeline.settings import PipelineSettings
from mytrader.stack_spec import PARAMETER_DEFAULTS, SENTIMENT_TTL_S, parameter_names

BOTO = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)


class Aws:
    """boto3 clients created once per container (AWS_ENDPOINT_URL points them at the embedded AWS locally)."""

    def __init__(self, region: str | None = None):
        self.region = region

    def client(self, name: str, **kw):
        return boto3.client(name, config=kw.pop("config", BOTO), region_name=self.region, **kw)

    @cached_property
    def dynamodb(self):
        return self.client("dynamodb")

    @cached_property
    def sqs(self):
        return self.client("sqs")

    @cached_property
    def s3(self):
        return self.client("s3")

    @cached_property
    def ssm(self):
        return self.client("ssm")

    @cached_property
    def bedrock_runtime(self):
        # No SDK retries: a throttled or timed-out advisor call falls back to the strategy at once (counted),
        # which keeps the cycle inside its deadline; the next cycle asks again.
        return self.client("bedrock-runtime", config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                                                            read_timeout=20, connect_timeout=5))

    @cached_property
    def comprehend(self):
        return self.client("comprehend")


class Params:
    """Active model id, mode and kill switch from SSM through Powertools Parameters (cached briefly)."""

    def __init__(self, settings: PipelineSettings, ssm_client):
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        self.names = parameter_names(settings.param_prefix)
        self.max_age = settings.params_max_age_s
        self._ssm = SSMProvider(boto3_client=ssm_client)

    def get(self, key: str, fresh: bool = False) -> str:
        try:
            return self._ssm.get(self.names[key], max_age=0 if fresh else self.max_age, force_fetch=fresh)
        except Exception:
            if key in PARAMETER_DEFAULTS:
                return PARAMETER_DEFAULTS[key]
            raise

    def kill_switch(self, fresh: bool = True) -> bool:
        return self.get("KILL_SWITCH", fresh=fresh).strip().lower() in ("on", "true", "1", "halt")


class ReplayClock:
    """Embedded AWS only: the replay driver writes the simulated time to an SSM parameter."""

    def __init__(self, params: Params):
        self.params = params

    def now(self) -> datetime:
        return parse_utc(self.params.get("REPLAY_CLOCK", fresh=True))


def make_clock(settings: PipelineSettings, params: Params):
    return ReplayClock(params) if settings.clock_source == "replay" else SystemClock()


class S3MarketData:
    """Price files in s3://<bucket>/market-data/<SYMBOL>.csv, parsed once per container and replayed."""

    def __init__(self, s3, bucket: str, max_staleness: timedelta = timedelta(days=5), ttl_s: float = 300):
        self.s3, self.bucket, self.max_staleness, self.ttl_s = s3, bucket, max_staleness, ttl_s
        self._cache: dict[str, tuple] = {}

    def full(self, symbol: str):
        from mytrader.market.sources import parse_price_csv  # numpy, only when prices are read

        hit = self._cache.get(symbol)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=f"market-data/{symbol}.csv")["Body"].read().decode()
        except self.s3.exceptions.NoSuchKey:
            raise DataQualityError(symbol, "no market data for this symbol") from None
        series = parse_price_csv(body, symbol)
        self._cache[symbol] = (time.monotonic(), series)
        return series

    def history(self, symbol: str, as_of: datetime):
        from mytrader.market.series import check_fresh

        s = self.full(symbol).upto(as_of)
        if len(s) == 0:
            raise DataQualityError(symbol, f"no bars at or before {as_of.isoformat()}")
        check_fresh(s, as_of, self.max_staleness)
        return s

    def quote(self, symbol: str, at: datetime) -> float:
        """The paper broker's quote: the open of the session bar that `at` falls in (replay semantics)."""
        s = self.full(symbol)
        i = int(s.ts.searchsorted(int(at.timestamp())))
        if i >= len(s) or s.time(i).date() != at.astimezone(UTC).date():
            raise DataQualityError(symbol, f"no bar for the session of {at.isoformat()}")
        return float(s.open[i])

    def bar_at(self, symbol: str, at: datetime) -> int:
        s = self.full(symbol)
        i = int(s.ts.searchsorted(int(at.timestamp()), side="right")) - 1
        return i


class DynamoSentimentCache:
    def __init__(self, client, table: str):
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
        items = [{"PutRequest": {"Item": {"key": {"S": k}, "score": {"N": str(Decimal(str(round(v, 6))))},
                                          "expires_at": {"N": str(expires)}}}} for k, v in scores.items()]
        for start in range(0, len(items), 25):
            self.db.batch_write_item(RequestItems={self.table: items[start:start + 25]})


class DynamoTokenBudget:
    """The advisor's daily token budget, shared by every container through a counter item."""

    def __init__(self, client, table: str, daily_limit: int):
        self.db, self.table, self.daily_limit = client, table, daily_limit

    def exhausted(self, day: str) -> bool:
        if self.daily_limit <= 0:
            return False
        resp = self.db.get_item(TableName=self.table, Key={"pk": {"S": "BUDGET#tokens"}, "sk": {"S": f"DAY#{day}"}})
        return int(resp.get("Item", {}).get("tokens", {}).get("N", "0")) >= self.daily_limit

    def add(self, day: str, tokens: int) -> None:
        self.db.update_item(TableName=self.table, Key={"pk": {"S": "BUDGET#tokens"}, "sk": {"S": f"DAY#{day}"}},
                            UpdateExpression="ADD tokens :t", ExpressionAttributeValues={":t": {"N": str(tokens)}})


def broker_credentials(settings: PipelineSettings, aws: Aws) -> tuple[str, str]:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    raw = SecretsProvider(boto3_client=aws.client("secretsmanager")).get(settings.broker_secret_arn, max_age=300)
    data = json.loads(raw)
    return data["key_id"], data["secret_key"]
