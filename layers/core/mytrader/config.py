"""Settings of the decision core and the risk engine. One pydantic model; its hash is the config version."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mytrader.models import Mode

DEFAULT_MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"  # inference profile of Claude Haiku 4.5
LOCAL_MODEL_ID = "local.advisor-model-v1"  # deterministic local model, never an LLM


class RiskLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt limit is an error, never silently the default

    max_position_pct: float = Field(20.0, gt=0, le=100, description="max % of equity in one position")
    max_order_notional: float = Field(25_000.0, gt=0, description="max notional of one order (USD)")
    max_open_positions: int = Field(5, ge=1)
    max_orders_per_minute: int = Field(20, ge=1)
    daily_loss_limit_pct: float = Field(3.0, gt=0, description="daily loss that trips the kill switch")
    max_consecutive_stopouts: int = Field(3, ge=1)
    cooldown_bars: int = Field(5, ge=0, description="bars without new entries after the stop-out streak")
    stop_atr_min: float = Field(1.0, gt=0, description="stop at least this many ATRs from entry")
    stop_atr_max: float = Field(4.0, gt=0)
    target_atr_min: float = Field(1.0, gt=0)
    target_atr_max: float = Field(8.0, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> RiskLimits:
        """Each ATR range has its minimum at or below its maximum (else no stop or target could be placed)."""
        for low, high in (("stop_atr_min", "stop_atr_max"), ("target_atr_min", "target_atr_max")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} {getattr(self, low):g} is above {high} {getattr(self, high):g}: "
                                 f"set {low} <= {high}")
        return self


class AdvisorSettings(BaseModel):
    enabled: bool = Field(True, description="false: no LLM (nor sentiment) call anywhere; every mode runs as baseline")
    model_id: str = LOCAL_MODEL_ID
    min_confidence: float = Field(0.55, ge=0, le=1)
    response_mode: str = Field("tool", pattern="^(tool|json)$")
    requery_change_threshold: float = Field(0.35, ge=0, description="material change that forces a query")
    requery_max_age_bars: int = Field(10, ge=1, description="query at least this often while flat")
    daily_token_budget: int = Field(2_000_000, ge=0)
    anonymise: bool = False  # look-ahead-safe prompts: no symbol, no calendar dates
    max_tokens: int = 220
    temperature: float = 0.0


class DataGuard(BaseModel):
    """What market data is trusted (mytrader.market.guard; both drivers). Gaps and staleness count exchange
    sessions. The jump filter and the collar gate entries only: a close always executes."""
    max_gap_sessions: int = Field(1, ge=0, description="most sessions missing between two bars; more quarantines "
                                                        "the symbol while the gap is inside the gap window")
    gap_window_bars: int = Field(20, ge=1, description="bars after a gap during which no decision is made")
    max_stale_sessions: int = Field(1, ge=0, description="complete sessions the last bar may lag the cycle")
    jump_atr: float = Field(10.0, gt=0, description="a jump is beyond this many ATRs from the previous close ...")
    jump_pct: float = Field(50.0, gt=0, description="... AND beyond this % from it (both): the bar is quarantined")
    atr_bars: int = Field(14, ge=1, description="true ranges averaged for the jump filter's ATR")
    collar_pct: float = Field(15.0, gt=0, description="an entry whose quote is further than this % from the last "
                                                      "trusted close (the decision's reference price) is rejected")


class StrategyChoice(BaseModel):
    """Which strategy decides: a built-in name, a file path or module:Class, and its parameters (the strategy
    validates them). Part of the config hash, so a different strategy gives different decision ids."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field("momentum_reversion", min_length=1,
                      description="a built-in strategy, a file path or module:Class")
    params: dict[str, Any] = Field(default_factory=dict, description="the strategy's parameters (it checks them)")


class TradingConfig(BaseModel):
    mode: Mode = Mode.CONSENSUS
    allow_short: bool = False
    fractional_shares: bool = Field(False, description="size entries in fractions of a share (ledger.FRACTION); "
                                                       "at Alpaca only on fractionable assets, long, day orders")
    initial_equity: float = Field(100_000.0, gt=0)
    fee_bps: float = Field(1.0, ge=0)
    slippage_bps: float = Field(2.0, ge=0)
    time_limit_bars: int = Field(10, ge=1)
    warmup_bars: int = Field(60, ge=35)
    risk: RiskLimits = RiskLimits()
    advisor: AdvisorSettings = AdvisorSettings()
    data_guard: DataGuard = DataGuard()
    strategy: StrategyChoice = StrategyChoice()

    @model_validator(mode="after")
    def _no_llm_means_baseline(self) -> TradingConfig:
        """With the LLM switched off every mode decides as the baseline (the strategy alone, nothing asked)."""
        if not self.advisor.enabled and self.mode != Mode.BASELINE:
            self.mode = Mode.BASELINE
        return self

    @property
    def version(self) -> str:
        """Changes whenever a decision-relevant setting changes; part of every decision_id."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
