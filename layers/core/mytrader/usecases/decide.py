"""The decision cycle: for each symbol of the universe, decide as of the schedule's time, record, enqueue.

Write first (conditional put, status PENDING), then send: a crash in between loses nothing, because a
redelivered schedule finds the record still PENDING and sends it again (FIFO deduplication and the
executor's idempotency absorb the repeat). One symbol's failure never stops the others.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, Field, field_validator

from mytrader import ledger
from mytrader.adapters.tradelog import TradeLog
from mytrader.advisor.llm import AdvisorStats, LlmAdvisor
from mytrader.advisor.prompt import PromptInputs, system_prompt, user_prompt
from mytrader.app.settings import PipelineSettings, response_mode_for
from mytrader.config import AdvisorSettings, TradingConfig
from mytrader.engine import DecisionContext, DecisionEngine
from mytrader.errors import DataQualityError
from mytrader.features import compute_features
from mytrader.market.calendar import NEW_YORK, nyse
from mytrader.market.guard import check_cycle
from mytrader.models import (
    Action,
    DecisionStatus,
    LlmCall,
    Mode,
    Position,
    QueryMemo,
    SentimentScore,
    TradeDecision,
    make_decision_id,
)
from mytrader.strategies import StrategyError, default_strategy, load_strategy
from mytrader.usecases import response_of

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import S3Client
    from mytrader.advisor.llm import TokenBudget as InMemoryTokenBudget
    from mytrader.ports import ConverseClient, DecisionQueue, News, Parameters, PriceHistory, TokenBudget
    from mytrader.strategies import Strategy

log = logging.getLogger(__name__)


class ScheduleEvent(BaseModel):
    scheduled_time: datetime
    universe: list[str] = Field(min_length=1, max_length=1000)

    @field_validator("scheduled_time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("scheduled_time needs a timezone (ISO 8601 with Z or an offset)")
        return v

    @field_validator("universe")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        import re

        bad = [s for s in v if not re.fullmatch(r"[A-Z][A-Z0-9.\-]{0,9}", s)]
        if bad:
            raise ValueError(f"invalid symbols {bad[:5]}")
        return list(dict.fromkeys(v))


@dataclass
class CycleMemory:
    """What one container remembers between cycles, to skip writes already made."""
    account_ready: bool = False
    rolled_day: str = ""


@dataclass(frozen=True)
class CycleDeps:
    tradelog: TradeLog
    market: PriceHistory
    news: News | None
    advisor_client: ConverseClient
    queue: DecisionQueue
    s3: S3Client | None  # the prompt archive (with `bucket`); None: prompts are not archived
    bucket: str
    params: Parameters
    settings: PipelineSettings
    budget: TokenBudget | None = None
    memory: CycleMemory = field(default_factory=CycleMemory)


class SymbolResult(StrEnum):
    SENT = "sent"
    RESENT = "resent"  # a redelivered schedule found the record still PENDING and sent it again
    HOLD = "hold"
    SKIPPED = "skipped"
    ALREADY_DONE = "already_done"
    ERROR = "error"  # failed, and recording the failure failed too


@dataclass(frozen=True)
class SymbolOutcome:
    """One symbol's part of a cycle (only the fields that apply are set)."""
    symbol: str
    result: SymbolResult
    decision_id: str | None = None
    reason: str | None = None
    action: str | None = None
    llm: bool | None = None  # the advisor was asked
    fallback: bool | None = None  # ... and the decision fell back to the strategy
    failed_closed: bool = False  # an entry refused because a gate was unreadable (not in the response)
    to_send: TradeDecision | None = None  # recorded PENDING, sent after every symbol is decided (not in the response)

    def response(self) -> dict[str, Any]:
        return response_of(self, exclude=frozenset({"failed_closed", "to_send"}))


@dataclass(frozen=True)
class CycleResult:
    """One decision cycle. `response()` is the function's JSON; a closed market has status, as_of and
    decisions only. Dataclasses, not pydantic models: a model class costs every cold start."""
    status: str  # ok | market_closed
    as_of: str
    decisions: int
    mode: str | None = None
    model_id: str | None = None
    results: dict[str, int] | None = None
    llm_calls: int = 0
    fallbacks: int = 0
    fallback_reasons: dict[str, int] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    injection_flags: int | None = None
    wall_ms: float = 0.0
    per_symbol: list[SymbolOutcome] | None = None
    entries_failed_closed: int = 0
    failed_closed_reason: str | None = None

    def response(self) -> dict[str, Any]:
        if self.status == "market_closed":
            return {"status": self.status, "as_of": self.as_of, "decisions": self.decisions}
        out = response_of(self, exclude=frozenset({"per_symbol"}))
        if self.per_symbol is not None:
            out["per_symbol"] = [o.response() for o in self.per_symbol]
        return out


@dataclass(frozen=True)
class _Cycle:
    """What every symbol of one cycle shares."""
    as_of: datetime
    cfg: TradingConfig
    engine: DecisionEngine
    deps: CycleDeps
    equity: float
    shadow: LlmAdvisor | None
    refuse_entries: str | None = None  # a gate could not be read: why every entry is refused (exits still run)
    strategy_error: str | None = None  # the configured strategy did not load: why every symbol is skipped


def run_cycle(ev: ScheduleEvent, deps: CycleDeps) -> CycleResult:
    as_of = ev.scheduled_time
    cal = nyse()
    day = as_of.astimezone(NEW_YORK).date()
    if not (cal.covers(day) and cal.is_session(day) and as_of >= cal.session_close(day)):
        # decisions are made on completed daily bars only: after the session's close (stack_spec.DECISION_SCHEDULE)
        log.info("no session closed on the day of %s: no decisions", as_of.isoformat())
        return CycleResult(status="market_closed", as_of=as_of.isoformat(), decisions=0)
    cfg, model_id, refuse_entries = _gated_config(deps)
    if not deps.memory.account_ready:
        deps.tradelog.ensure_account(cfg.initial_equity)
        deps.memory.account_ready = True
    if deps.memory.rolled_day != as_of.date().isoformat():
        deps.tradelog.begin_day(as_of.date().isoformat())
        deps.memory.rolled_day = as_of.date().isoformat()
    equity = deps.tradelog.account_state().book_equity
    positions = {p.symbol: p for p in deps.tradelog.positions()}  # one query and one batch read for the
    memos = deps.tradelog.memos(ev.universe)  # whole universe instead of two reads per symbol
    # LlmAdvisor still annotates its in-memory budget class; any ports.TokenBudget (exhausted/add) serves it
    advisor = None if refuse_entries else LlmAdvisor(deps.advisor_client, cfg.advisor,
                                                     budget=cast("InMemoryTokenBudget | None", deps.budget))
    strategy, strategy_error = _configured_strategy(cfg)
    engine = DecisionEngine(cfg, advisor, strategy=strategy)
    shadow_id = deps.params.get("SHADOW_MODEL")
    shadow = None
    if shadow_id not in ("", "none", model_id):
        shadow = LlmAdvisor(deps.advisor_client, AdvisorSettings(model_id=shadow_id,
                                                                 response_mode=response_mode_for(shadow_id)))
    cycle = _Cycle(as_of, cfg, engine, deps, equity, None if refuse_entries else shadow, refuse_entries,
                   strategy_error)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(deps.settings.concurrency, len(ev.universe))) as pool:
        outcomes = list(pool.map(lambda s: _safe_symbol(cycle, s, positions.get(s), memos.get(s)), ev.universe))
    outcomes = _send_in_symbol_order(deps.queue, outcomes)
    counts = Counter(o.result.value for o in outcomes)
    stats = advisor.stats if advisor is not None else AdvisorStats()
    return CycleResult(status="ok", as_of=as_of.isoformat(), mode=cfg.mode.value, model_id=model_id,
                       decisions=len(outcomes), results=dict(counts), llm_calls=stats.calls, fallbacks=stats.fallbacks,
                       fallback_reasons=stats.fallback_reasons, input_tokens=stats.input_tokens,
                       output_tokens=stats.output_tokens, cost_usd=round(stats.cost_usd, 6),
                       injection_flags=stats.injection_flags,
                       wall_ms=round((time.perf_counter() - started) * 1000, 1), per_symbol=outcomes,
                       entries_failed_closed=sum(1 for o in outcomes if o.failed_closed),
                       failed_closed_reason=refuse_entries)


def _gated_config(deps: CycleDeps) -> tuple[TradingConfig, str, str | None]:
    """The trading config from the mode and model parameters. A gate that cannot be read (throttled, deleted, not
    a valid mode) fails closed: the cycle still decides in baseline mode without the advisor, so signal exits
    go out, but every entry is refused with the reason (and counted)."""
    try:
        mode, model_id = deps.params.get("MODE", strict=True), deps.params.get("ACTIVE_MODEL", strict=True)
        return deps.settings.trading_config(mode, model_id), model_id, None
    except Exception as exc:  # any failure to read or parse a gate: no entries
        reason = f"fail closed: trading parameters unreadable ({type(exc).__name__}: {exc})"[:300]
        log.error(reason)
        return deps.settings.trading_config(Mode.BASELINE.value, "none"), "none", reason


def _configured_strategy(cfg: TradingConfig) -> tuple[Strategy, str | None]:
    """The config's strategy, loaded and checked; one that does not load skips every symbol with the reason
    (stops, targets and time limits are still enforced by the outcomes function), never a crash loop."""
    try:
        return load_strategy(cfg.strategy.name, cfg.strategy.params), None
    except StrategyError as exc:
        log.error("strategy unavailable: %s", exc)
        return default_strategy(), f"strategy unavailable: {exc}"[:300]


def _safe_symbol(cycle: _Cycle, symbol: str, position: Position | None, memo: QueryMemo | None) -> SymbolOutcome:
    try:
        return _cycle_symbol(cycle, symbol, position, memo)
    except DataQualityError as exc:
        return _skip(cycle, symbol, f"bad market data: {exc.problem}")
    except StrategyError as exc:  # the strategy's own code failed on this symbol: a recorded skip with the reason
        return _skip(cycle, symbol, f"strategy error: {exc}"[:300])
    except Exception as exc:  # one symbol's fault never stops the others; it is recorded
        log.exception("symbol %s failed", symbol)
        try:
            return _skip(cycle, symbol, f"error: {type(exc).__name__}: {exc}"[:300])
        except Exception:
            return SymbolOutcome(symbol=symbol, result=SymbolResult.ERROR, reason=str(exc)[:200])


def _skip(cycle: _Cycle, symbol: str, reason: str) -> SymbolOutcome:
    as_of = cycle.as_of
    decision_id = make_decision_id(symbol, as_of, cycle.engine.version)
    cycle.deps.tradelog.put_skip(decision_id, symbol, as_of.isoformat(), reason, as_of.isoformat())
    log.warning("skipped %s at %s: %s", symbol, as_of.isoformat(), reason)
    return SymbolOutcome(symbol=symbol, result=SymbolResult.SKIPPED, decision_id=decision_id, reason=reason)


def _cycle_symbol(cycle: _Cycle, symbol: str, position: Position | None, memo: QueryMemo | None) -> SymbolOutcome:
    deps, cfg, as_of = cycle.deps, cycle.cfg, cycle.as_of
    if cycle.strategy_error:
        return _skip(cycle, symbol, cycle.strategy_error)
    history = deps.market.history(symbol, as_of)
    untrusted = check_cycle(history, as_of, cfg.data_guard)  # stale, a gap, or a jump: no decision this cycle
    if untrusted:
        return _skip(cycle, symbol, f"quarantined: {untrusted}"[:300])
    frame = compute_features(history)
    i = len(history) - 1
    strategy = cycle.engine.strategy
    warmup = max(cfg.warmup_bars, strategy.warmup)
    if i < warmup or not frame.valid(i):
        return _skip(cycle, symbol, f"warm-up: {len(history)} bars, need {warmup}")
    arrays = strategy.arrays(frame)
    sentiment, headlines = _news(deps, symbol, as_of)
    ctx = DecisionContext(frame, arrays, i, sentiment, headlines, position, cycle.equity, memo)
    decision, new_memo = cycle.engine.decide(ctx, as_of)
    if new_memo is not None and new_memo != ctx.last_query:
        deps.tradelog.put_memo(symbol, new_memo)
    if decision.llm is not None and deps.s3 is not None and deps.bucket:
        _archive_prompt(deps, deps.s3, decision, decision.llm, cfg)
    if cycle.shadow is not None and decision.llm is not None:
        _shadow(deps, cycle.shadow, decision)
    llm, fallback = decision.llm is not None, bool(decision.llm and decision.llm.fallback_reason)
    if decision.action == Action.HOLD:
        decision = decision.model_copy(update={"status": DecisionStatus.SKIPPED,
                                               "status_reason": f"hold: {decision.reason}"[:300]})
        deps.tradelog.put_decision(decision)
        return SymbolOutcome(symbol=symbol, result=SymbolResult.HOLD, decision_id=decision.decision_id, llm=llm,
                             fallback=fallback)
    if cycle.refuse_entries and not (position is not None and ledger.reduces(decision.action, position.qty)):
        refused = decision.model_copy(update={"status": DecisionStatus.SKIPPED,
                                              "status_reason": cycle.refuse_entries})
        deps.tradelog.put_decision(refused)
        return SymbolOutcome(symbol=symbol, result=SymbolResult.SKIPPED, decision_id=decision.decision_id,
                             reason=cycle.refuse_entries, failed_closed=True)
    created = deps.tradelog.put_decision(decision)
    if not created:
        row = deps.tradelog.get_decision_row(decision.decision_id)
        if row is None or row["status"] != DecisionStatus.PENDING.value:
            return SymbolOutcome(symbol=symbol, result=SymbolResult.ALREADY_DONE, decision_id=decision.decision_id)
        decision = deps.tradelog.get_decision(decision.decision_id) or decision
    return SymbolOutcome(symbol=symbol, result=SymbolResult.SENT if created else SymbolResult.RESENT,
                         decision_id=decision.decision_id, action=decision.action.value,
                         llm=decision.llm is not None, fallback=bool(decision.llm and decision.llm.fallback_reason),
                         to_send=decision)


def _send_in_symbol_order(queue: DecisionQueue, outcomes: list[SymbolOutcome]) -> list[SymbolOutcome]:
    """The recorded decisions go to the queue in symbol order, the order the backtester executes them in. A send
    that fails leaves its decision PENDING (outcomes re-sends it) and is reported as a skip with the error."""
    failed: dict[str, SymbolOutcome] = {}
    for o, decision in sorted([(o, d) for o in outcomes if (d := o.to_send) is not None], key=lambda p: p[0].symbol):
        try:
            queue.send(decision)
        except Exception as exc:
            log.exception("send of %s failed", o.decision_id)
            failed[o.symbol] = SymbolOutcome(symbol=o.symbol, result=SymbolResult.SKIPPED, decision_id=o.decision_id,
                                             reason=f"error: send failed: {type(exc).__name__}: {exc}"[:300])
    return [failed.get(o.symbol, o) for o in outcomes]


def _news(deps: CycleDeps, symbol: str, as_of: datetime) -> tuple[SentimentScore, list[str]]:
    if deps.news is None:
        return SentimentScore(score=0.0, n_items=0), []
    try:
        return deps.news.at(symbol, as_of)
    except Exception as exc:  # Comprehend or a news API failing: decide without sentiment, say so
        log.error("sentiment unavailable for %s: %s", symbol, exc)
        return SentimentScore(score=0.0, n_items=0, scorer="unavailable"), []


def _shadow(deps: CycleDeps, shadow: LlmAdvisor, decision: TradeDecision) -> None:
    """Shadow mode: the candidate answers the same prompt; logged by decision_id + model_id, never traded."""
    advice, call = shadow.advise(PromptInputs.model_validate(decision.prompt_inputs),
                                 decision.bar_ts.date().isoformat())
    deps.tradelog.put_shadow(decision.decision_id, shadow.model_id, {
        "decision_id": decision.decision_id, "symbol": decision.symbol, "bar_ts": decision.bar_ts.isoformat(),
        "decision": advice.decision.value if advice else None, "confidence": advice.confidence if advice else None,
        "fallback": call.fallback_reason, "cost_usd": call.cost_usd})


def _archive_prompt(deps: CycleDeps, s3: S3Client, decision: TradeDecision, llm: LlmCall,
                    cfg: TradingConfig) -> None:
    inputs = PromptInputs.model_validate(decision.prompt_inputs)
    body = {"system": system_prompt(cfg.advisor.response_mode), "user": user_prompt(inputs),
            "model_id": llm.model_id, "inputs": decision.prompt_inputs}
    try:
        s3.put_object(Bucket=deps.bucket, Key=f"prompts/{llm.prompt_hash}.json",
                      Body=json.dumps(body).encode(), ContentType="application/json")
    except Exception as exc:  # the decision record keeps the inputs; the archive is a convenience
        log.warning("prompt archive failed: %s", exc)
