"""Deploy-time settings: the project config file (mytrader.toml, read by cdk/app.py) mapped onto CDK context;
`-c key=value` overrides a key. The defaults below apply to what neither sets."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from mytrader.config import DEFAULT_MODEL_ID, RiskLimits
from mytrader.stack_spec import DECISION_SCHEDULE, OUTCOMES_SCHEDULE

from .strategy_asset import PackagedStrategy, package_strategy

REPO = Path(__file__).resolve().parents[2]  # cdk/app.py reads REPO/mytrader.toml when -c config names no file


class DeploySettings(BaseModel):
    prefix: str = Field("mytrader", pattern=r"^[a-z][a-z0-9-]{1,20}$")
    universe: list[str] = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"]
    decision_schedule: str = DECISION_SCHEDULE  # once a day after the close (New York), on the completed bar
    outcomes_schedule: str = OUTCOMES_SCHEDULE
    mode: str = Field("consensus", pattern="^(consensus|override|advisory|baseline)$")
    model_id: str = DEFAULT_MODEL_ID
    broker: str = Field("paper", pattern="^(paper|alpaca)$")
    market_data: str = Field("alpaca", pattern="^(alpaca|s3)$")
    news_source: str = Field("alpaca", pattern="^(alpaca|s3|none)$")
    live_trading: bool = False
    risk: RiskLimits = RiskLimits()
    alarm_email: str = ""
    architecture: str = Field("arm64", pattern="^(arm64|x86_64)$")
    # destination regions of the advisor's inference profile; default: the pinned table in mytrader/stack_spec.py
    inference_regions: list[str] | None = None
    llm_enabled: bool = True  # false: no Bedrock or Comprehend call anywhere (the functions' LLM_ENABLED)
    trading_json: str = ""  # the config file's decision settings (strategy, advisor, fees): the functions' TRADING_JSON
    alpaca_feed: str = Field("sip", pattern="^(sip|iex)$")
    # client_order_id prefix at Alpaca, so two stacks on one Alpaca account never collide (default: "<prefix>-")
    alpaca_order_prefix: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{0,64}$")
    config: str = ""  # the config file (-c config=PATH): a strategy module of the user's is the file next to it
    # the user's strategy file the functions that load it get (strategy_asset.py), set by from_context
    _strategy: PackagedStrategy | None = PrivateAttr(None)

    @property
    def config_dir(self) -> Path:
        return Path(self.config).expanduser().resolve().parent if self.config else REPO

    @property
    def strategy_package(self) -> PackagedStrategy | None:
        return self._strategy

    def with_strategy_packaged(self) -> DeploySettings:
        """These settings with the configured strategy checked for deployment and, when it is a file of the
        user's, TRADING_JSON naming it where the functions find it (strategy_asset.py; StrategyDeployError)."""
        if not self.trading_json:
            return self
        trading_json, packaged = package_strategy(self.trading_json, self.config_dir)
        out = self.model_copy(update={"trading_json": trading_json})
        out._strategy = packaged
        return out

    @property
    def order_prefix(self) -> str:
        return self.alpaca_order_prefix if self.alpaca_order_prefix is not None else f"{self.prefix}-"

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
            if isinstance(value, str) and name in ("live_trading", "llm_enabled"):
                value = value.lower() == "true"
            raw[name] = value
        return cls.model_validate(raw).with_strategy_packaged()
