"""Deploy-time settings from CDK context (cdk.json holds the defaults; override with -c key=value)."""
from __future__ import annotations

import json

from pydantic import BaseModel, Field, model_validator

from mytrader.config import DEFAULT_MODEL_ID, RiskLimits


class DeploySettings(BaseModel):
    prefix: str = Field("mytrader", pattern=r"^[a-z][a-z0-9-]{1,20}$")
    universe: list[str] = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"]
    decision_schedule: str = "cron(0/15 9-16 ? * MON-FRI *)"
    outcomes_schedule: str = "cron(5/15 9-17 ? * MON-FRI *)"
    mode: str = Field("consensus", pattern="^(consensus|override|advisory|baseline)$")
    model_id: str = DEFAULT_MODEL_ID
    broker: str = Field("paper", pattern="^(paper|alpaca)$")
    market_data: str = Field("alpaca", pattern="^(alpaca|s3)$")
    news_source: str = Field("alpaca", pattern="^(alpaca|s3|none)$")
    live_trading: bool = False
    risk: RiskLimits = RiskLimits()
    alarm_email: str = ""
    architecture: str = Field("arm64", pattern="^(arm64|x86_64)$")
    inference_regions: list[str] = ["us-east-1", "us-east-2", "us-west-2"]

    @model_validator(mode="after")
    def _live_needs_alpaca(self) -> DeploySettings:
        if self.live_trading and self.broker != "alpaca":
            raise ValueError("live_trading=true needs broker=alpaca")
        return self

    @property
    def alpaca_trading_url(self) -> str:
        return "https://api.alpaca.markets" if self.live_trading else "https://paper-api.alpaca.markets"

    @classmethod
    def from_context(cls, node) -> DeploySettings:
        raw = {}
        for name in cls.model_fields:
            value = node.try_get_context(name)
            if value is None:
                continue
            if isinstance(value, str) and name in ("universe", "risk", "inference_regions"):
                value = json.loads(value) if value.strip().startswith(("[", "{")) else value.split(",")
            if isinstance(value, str) and name == "live_trading":
                value = value.lower() == "true"
            raw[name] = value
        return cls.model_validate(raw)
