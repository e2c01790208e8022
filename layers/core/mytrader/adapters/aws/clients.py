"""boto3 clients made once per container (AWS_ENDPOINT_URL points them at the embedded AWS locally)."""
from __future__ import annotations

from functools import cached_property

import boto3
from botocore.config import Config

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


