"""Pydantic v2 models for everything that crosses a boundary: bars, features, news, advice, decisions, orders."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class RiskLevel(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class TimeHorizon(StrEnum):
    INTRADAY = "INTRADAY"
    DAYS = "DAYS"
    WEEKS = "WEEKS"


class Mode(StrEnum):
    BASELINE = "baseline"  # strategy alone, no LLM
    CONSENSUS = "consensus"  # both must agree
    OVERRIDE = "override"  # the LLM decides
    ADVISORY = "advisory"  # the LLM is only logged


class DecisionStatus(StrEnum):
    PENDING = "PENDING"
    EXECUTED = "EXECUTED"
    REJECTED = "REJECTED"
    SKIPPED = "SKIPPED"
    DEAD_LETTERED = "DEAD_LETTERED"


TERMINAL_STATES = frozenset({DecisionStatus.EXECUTED, DecisionStatus.REJECTED, DecisionStatus.SKIPPED,
                             DecisionStatus.DEAD_LETTERED})

Symbol = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9.\-]{0,9}$")]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class Bar(BaseModel):
    model_config = ConfigDict(frozen=True)
    symbol: Symbol
    ts: datetime  # bar close time, timezone-aware UTC
    open: float = Field(gt=0)
    high: float = Field(gt=0)
    low: float = Field(gt=0)
    close: float = Field(gt=0)
    volume: float = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Bar:
        if self.high < self.low:
            raise ValueError(f"high {self.high} < low {self.low}")
        if not (self.low <= self.open <= self.high and self.low <= self.close <= self.high):
            raise ValueError("open/close outside [low, high]")
        return self


class FeatureVector(BaseModel):
    """Features of one symbol as of one bar; every value depends only on bars <= ts."""
    model_config = ConfigDict(frozen=True)
    symbol: Symbol
    ts: datetime
    close: float
    sma_fast: float
    sma_slow: float
    ema_fast: float
    rsi: float
    macd: float
    macd_signal: float
    macd_hist: float
    atr: float
    atr_pct: float
    bb_pct_b: float
    volatility: float  # annualised realised volatility of daily log returns
    volume_z: float
    ret_5: float
    ret_20: float
    regime_trend: str  # "trend_up" | "trend_down" | "range"
    regime_vol: str  # "low_vol" | "high_vol"


class NewsItem(BaseModel):
    model_config = ConfigDict(frozen=True)
    source: str
    headline: str = Field(min_length=1)
    published: datetime
    available_from: datetime  # when a decision may first see it (look-ahead rule)
    symbols: tuple[str, ...] = ()

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.headline.encode("utf-8")).hexdigest()[:32]


class SentimentScore(BaseModel):
    score: float = Field(ge=-1.0, le=1.0)
    n_items: int = Field(ge=0)
    by_source: dict[str, float] = Field(default_factory=dict)
    scorer: str = "none"


class StrategySignal(BaseModel):
    action: Action
    confidence: Unit
    reason: str


class LlmAdvice(BaseModel):
    """The structured answer the advisor must produce; pydantic is the validator of every LLM reply."""
    model_config = ConfigDict(extra="forbid")
    decision: Action = Field(description="BUY, SELL or HOLD")
    confidence: float = Field(ge=0.0, le=1.0, description="0..1")
    position_size_pct: float = Field(ge=0.0, le=100.0, description="% of equity, 0..100")
    reasoning: str = Field(min_length=1, max_length=600, description="<=40 words")
    key_factors: list[str] = Field(min_length=1, max_length=5, description="<=3 short factors")
    stop_loss: float | None = Field(default=None, gt=0, description="price, or null")
    take_profit: float | None = Field(default=None, gt=0, description="price, or null")
    risk_assessment: RiskLevel
    time_horizon: TimeHorizon = TimeHorizon.DAYS

    @field_validator("key_factors")
    @classmethod
    def _short_factors(cls, v: list[str]) -> list[str]:
        return [f.strip()[:80] for f in v if f.strip()] or ["none"]


def validate_levels(side: Action, entry: float, stop: float | None, target: float | None) -> None:
    """A long needs stop < entry < target; a short needs target < entry < stop. Raises ValueError."""
    if side == Action.BUY:
        if stop is not None and not stop < entry:
            raise ValueError(f"long stop {stop} must be below entry {entry}")
        if target is not None and not target > entry:
            raise ValueError(f"long target {target} must be above entry {entry}")
    elif side == Action.SELL:
        if stop is not None and not stop > entry:
            raise ValueError(f"short stop {stop} must be above entry {entry}")
        if target is not None and not target < entry:
            raise ValueError(f"short target {target} must be below entry {entry}")


class LlmCall(BaseModel):
    """What one advisor consultation cost and produced (or why it fell back)."""
    model_id: str
    prompt_hash: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    cached: bool = False
    attempts: int = 0
    fallback_reason: str | None = None
    raw_answer: str | None = None
    injection_flags: int = 0


def make_decision_id(symbol: str, bar_ts: datetime, config_version: str) -> str:
    key = f"{symbol}|{bar_ts.isoformat()}|{config_version}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class TradeDecision(BaseModel):
    decision_id: str
    symbol: Symbol
    bar_ts: datetime
    decided_at: datetime
    config_version: str
    mode: Mode
    action: Action
    confidence: Unit
    position_size_pct: float = Field(ge=0.0, le=100.0)
    reference_price: float = Field(gt=0)
    stop_loss: float | None = None
    take_profit: float | None = None
    time_horizon_bars: int = Field(ge=1)
    strategy: StrategySignal
    advice: LlmAdvice | None = None
    llm: LlmCall | None = None
    sentiment: SentimentScore | None = None
    features: FeatureVector | None = None
    reason: str = ""
    prompt_inputs: dict[str, Any] | None = None  # what the prompt carried, to rebuild it byte for byte
    sizing_equity: float | None = None  # book equity when decided: orders are sized on it in every driver
    status: DecisionStatus = DecisionStatus.PENDING
    status_reason: str = ""

    @model_validator(mode="after")
    def _levels(self) -> TradeDecision:
        if self.action in (Action.BUY, Action.SELL) and self.position_size_pct > 0:
            validate_levels(self.action, self.reference_price, self.stop_loss, self.take_profit)
        return self


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Order(BaseModel):
    client_order_id: str
    symbol: Symbol
    side: OrderSide
    qty: float = Field(gt=0)
    submitted_at: datetime
    broker_order_id: str | None = None
    status: str = "new"  # new | accepted | partially_filled | filled | rejected | canceled
    reduce_only: bool = False


class Fill(BaseModel):
    client_order_id: str
    symbol: Symbol
    side: OrderSide
    qty: float = Field(gt=0)
    price: float = Field(gt=0)
    fee: float = Field(ge=0)
    filled_at: datetime


class Position(BaseModel):
    symbol: Symbol
    qty: float  # >0 long, <0 short
    avg_price: float
    opened_at: datetime
    decision_id: str
    stop_loss: float | None = None
    take_profit: float | None = None
    time_limit_bars: int = 20
    bars_held: int = 0
    llm_action: Action | None = None


@dataclass(frozen=True)
class QueryMemo:
    """What the LLM was last asked about for a symbol; persisted between cycles (trade log in the pipeline)."""
    bar_index: int
    rsi: float
    sentiment: float
    regime: str


class TradeOutcome(BaseModel):
    decision_id: str
    symbol: Symbol
    side: Action
    entry_ts: datetime
    exit_ts: datetime
    entry_price: float
    exit_price: float
    qty: float
    pnl: float
    return_pct: float
    holding_bars: int
    exit_reason: str  # stop_loss | take_profit | time_limit | signal | end_of_data | flatten
    llm_action: Action | None = None
    llm_right: bool | None = None
