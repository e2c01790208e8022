"""Pipeline settings, parsed once from the environment the stack gives each function."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from mytrader.config import RiskLimits, TradingConfig
from mytrader.models import Mode, Symbol
from mytrader.stack_spec import FINETUNE_BASE_MODEL

_SYMBOL = TypeAdapter(Symbol)


def _is_symbol(s: str) -> bool:
    try:
        _SYMBOL.validate_python(s)
        return True
    except ValidationError:
        return False


class PipelineSettings(BaseModel):
    trade_log_table: str
    idempotency_table: str = ""
    sentiment_table: str = ""
    decisions_queue_url: str = ""
    decisions_dlq_url: str = ""
    data_bucket: str = ""
    param_prefix: str = "mytrader"
    clock_source: str = Field("system", pattern="^(system|replay)$")
    broker: str = Field("paper", pattern="^(paper|alpaca)$")
    broker_secret_arn: str = ""
    alpaca_trading_url: str = "https://paper-api.alpaca.markets"
    alpaca_data_url: str = "https://data.alpaca.markets"
    alpaca_feed: str = Field("sip", pattern="^(sip|iex)$")  # daily bars: SIP (consolidated) unless the plan lacks it
    alpaca_order_prefix: str = Field("", max_length=64)  # per deployment, so two stacks on one account never collide
    market_data: str = Field("s3", pattern="^(s3|alpaca)$")
    news_source: str = Field("none", pattern="^(none|s3|alpaca)$")
    sentiment_scorer: str = Field("comprehend", pattern="^(comprehend|lexicon)$")
    concurrency: int = Field(64, ge=1, le=64)  # symbols decided in parallel (bounded by Bedrock quotas)
    idempotency: bool = True  # the control experiment switches it off; never off in a deployment
    params_max_age_s: int = 5
    initial_equity: float = 100_000.0
    allow_short: bool = False
    risk_json: str = ""
    # The decision settings of the project's config file (mytrader.app.project_config: trading_json): risk,
    # advisor, fees, strategy. The mode and the model come from SSM; RISK_JSON, INITIAL_EQUITY and ALLOW_SHORT,
    # when set, win over it. LLM_ENABLED=false: every mode decides as the baseline and no news is scored.
    trading_json: str = ""
    llm_enabled: bool = True
    bedrock_role_arn: str = ""
    alarm_topic_arn: str = ""
    finetune_base_model: str = FINETUNE_BASE_MODEL
    state_machine_name: str = ""
    # The symbols the executor may open positions in (env UNIVERSE: a JSON list or a comma list). Empty: not
    # configured, and every entry is rejected. An unreadable value or entry fails closed without failing the
    # function: it admits nothing (entries are rejected as outside the universe), and closes still run.
    universe: frozenset[str] = frozenset()
    decision_max_future_s: int = Field(300, ge=0)  # the executor rejects entries stamped later than now + this

    @field_validator("universe", mode="before")
    @classmethod
    def _universe(cls, v: object) -> frozenset[str]:
        if isinstance(v, str):
            try:
                v = json.loads(v) if v.strip().startswith("[") else v.split(",")
            except ValueError:
                return frozenset()
        if not isinstance(v, list | tuple | set | frozenset):
            return frozenset()
        return frozenset(s.strip() for s in v if isinstance(s, str) and _is_symbol(s.strip()))

    @property
    def decision_max_future(self) -> timedelta:
        return timedelta(seconds=self.decision_max_future_s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PipelineSettings:
        source: Mapping[str, str] = os.environ if env is None else env
        fields = {name: source[name.upper()] for name in cls.model_fields if name.upper() in source}
        return cls.model_validate(fields)

    def trading_config(self, mode: str, model_id: str) -> TradingConfig:
        merged: dict[str, Any] = json.loads(self.trading_json) if self.trading_json else {}
        advisor = {**merged.get("advisor", {}), "model_id": model_id}
        advisor.setdefault("response_mode", response_mode_for(model_id))
        advisor["enabled"] = self.llm_enabled and advisor.get("enabled", True)
        for name in ("initial_equity", "allow_short"):  # set explicitly, or nothing in TRADING_JSON
            if name in self.model_fields_set or name not in merged:
                merged[name] = getattr(self, name)
        if self.risk_json or "risk" not in merged:
            merged["risk"] = RiskLimits.model_validate_json(self.risk_json) if self.risk_json else RiskLimits()
        return TradingConfig.model_validate({**merged, "mode": Mode(mode), "advisor": advisor})


def response_mode_for(model_id: str) -> str:
    """Fine-tuned (custom) models answer in JSON text; foundation models through the forced tool."""
    return "json" if model_id.startswith("arn:") and "custom-model" in model_id else "tool"
