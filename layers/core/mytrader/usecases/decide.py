"""The decision cycle: for each symbol of the universe, decide as of the schedule's time, record, enqueue.

Write first (conditional put, status PENDING), then send: a crash in between loses nothing, because a
redelivered schedule finds the record still PENDING and sends it again (FIFO deduplication and the
executor's idempotency absorb the repeat). One symbol's failure never stops the others.
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from mytrader.adapters.aws.queue import send_decision
from mytrader.adapters.tradelog import TradeLog
from mytrader.advisor.llm import LlmAdvisor
from mytrader.advisor.prompt import PromptInputs, system_prompt, user_prompt
from mytrader.app.settings import response_mode_for
from mytrader.config import AdvisorSettings, TradingConfig
from mytrader.engine import DecisionContext, DecisionEngine
from mytrader.errors import DataQualityError
from mytrader.features import compute_features
from mytrader.market.calendar import nyse
from mytrader.models import Action, DecisionStatus, SentimentScore, TradeDecision, make_decision_id
from mytrader.strategy import strategy_arrays

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
class CycleDeps:
    tradelog: TradeLog
    market: object  # MarketDataSource
    news: object | None  # NewsContext or None
    advisor_client: object  # converse client
    sqs: object
    queue_url: str
    s3: object | None
    bucket: str
    params: object  # Params
    settings: object  # PipelineSettings
    budget: object | None = None
    crash_before_send: float = 0.0
    account_ready: bool = False
    rolled_day: str = ""
    crashed: set[str] = field(default_factory=set)  # fault injection: each decision crashes at most once


class CrashInjected(RuntimeError):
    """Fault injection on the embedded AWS: the process 'dies' between the write and the send."""


def run_cycle(event: dict, deps: CycleDeps) -> dict:
    ev = ScheduleEvent.model_validate(event)
    as_of = ev.scheduled_time
    cal = nyse()
    if not cal.is_open(as_of):
        log.info("market closed at %s: no decisions", as_of.isoformat())
        return {"status": "market_closed", "as_of": as_of.isoformat(), "decisions": 0}
    mode, model_id = deps.params.get("MODE"), deps.params.get("ACTIVE_MODEL")
    cfg = deps.settings.trading_config(mode, model_id)
    if not deps.account_ready:
        deps.tradelog.ensure_account(cfg.initial_equity)
        deps.account_ready = True
    if deps.rolled_day != as_of.date().isoformat():
        deps.tradelog.roll_day(as_of.date().isoformat())
        deps.rolled_day = as_of.date().isoformat()
    equity = deps.tradelog.account_state().book_equity
    positions = {p.symbol: p for p in deps.tradelog.positions()}  # one query and one batch read for the
    memos = deps.tradelog.memos(ev.universe)  # whole universe instead of two reads per symbol
    advisor = LlmAdvisor(deps.advisor_client, cfg.advisor, budget=deps.budget)
    engine = DecisionEngine(cfg, advisor)
    shadow_id = deps.params.get("SHADOW_MODEL")
    shadow = None
    if shadow_id not in ("", "none", model_id):
        shadow = LlmAdvisor(deps.advisor_client, AdvisorSettings(model_id=shadow_id, response_mode=response_mode_for(shadow_id)))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(deps.settings.concurrency, len(ev.universe))) as pool:
        outcomes = list(pool.map(lambda s: _safe_symbol(s, as_of, cfg, engine, deps, equity, shadow,
                                                        positions.get(s), memos.get(s)), ev.universe))
    counts = Counter(o["result"] for o in outcomes)
    stats = advisor.stats
    return {"status": "ok", "as_of": as_of.isoformat(), "mode": cfg.mode.value, "model_id": model_id,
            "decisions": len(outcomes), "results": dict(counts), "llm_calls": stats.calls, "fallbacks": stats.fallbacks,
            "fallback_reasons": stats.fallback_reasons, "input_tokens": stats.input_tokens,
            "output_tokens": stats.output_tokens, "cost_usd": round(stats.cost_usd, 6),
            "injection_flags": stats.injection_flags, "wall_ms": round((time.perf_counter() - started) * 1000, 1),
            "per_symbol": outcomes}


def _safe_symbol(symbol, as_of, cfg, engine, deps, equity, shadow=None, position=None, memo=None) -> dict:
    try:
        return _cycle_symbol(symbol, as_of, cfg, engine, deps, equity, shadow, position, memo)
    except CrashInjected:
        raise
    except DataQualityError as exc:
        return _skip(deps, symbol, as_of, cfg, f"bad market data: {exc.problem}")
    except Exception as exc:  # one symbol's fault never stops the others; it is recorded
        log.exception("symbol %s failed", symbol)
        try:
            return _skip(deps, symbol, as_of, cfg, f"error: {type(exc).__name__}: {exc}"[:300])
        except Exception:
            return {"symbol": symbol, "result": "error", "reason": str(exc)[:200]}


def _skip(deps, symbol, as_of, cfg: TradingConfig, reason: str) -> dict:
    decision_id = make_decision_id(symbol, as_of, cfg.version)
    deps.tradelog.put_skip(decision_id, symbol, as_of.isoformat(), reason, as_of.isoformat())
    log.warning("skipped %s at %s: %s", symbol, as_of.isoformat(), reason)
    return {"symbol": symbol, "result": "skipped", "decision_id": decision_id, "reason": reason}


def _cycle_symbol(symbol: str, as_of: datetime, cfg: TradingConfig, engine: DecisionEngine, deps: CycleDeps,
                  equity: float, shadow: LlmAdvisor | None = None, position=None, memo=None) -> dict:
    history = deps.market.history(symbol, as_of)
    frame = compute_features(history)
    i = len(history) - 1
    if i < cfg.warmup_bars or not frame.valid(i):
        return _skip(deps, symbol, as_of, cfg, f"warm-up: {len(history)} bars, need {cfg.warmup_bars}")
    arrays = strategy_arrays(frame)
    sentiment, headlines = _news(deps, symbol, as_of)
    ctx = DecisionContext(frame, arrays, i, sentiment, headlines, position, equity, memo)
    decision, memo = engine.decide(ctx, as_of)
    if memo is not None and memo != ctx.last_query:
        deps.tradelog.put_memo(symbol, memo)
    if decision.llm is not None and deps.s3 is not None and deps.bucket:
        _archive_prompt(deps, decision, cfg)
    if shadow is not None and decision.llm is not None:
        _shadow(deps, shadow, decision)
    if decision.action == Action.HOLD:
        decision = decision.model_copy(update={"status": DecisionStatus.SKIPPED, "status_reason": f"hold: {decision.reason}"[:300]})
        deps.tradelog.put_decision(decision)
        return {"symbol": symbol, "result": "hold", "decision_id": decision.decision_id,
                "llm": decision.llm is not None, "fallback": bool(decision.llm and decision.llm.fallback_reason)}
    created = deps.tradelog.put_decision(decision)
    if not created:
        row = deps.tradelog.get_decision_row(decision.decision_id)
        if row is None or row["status"] != DecisionStatus.PENDING.value:
            return {"symbol": symbol, "result": "already_done", "decision_id": decision.decision_id}
        decision = deps.tradelog.get_decision(decision.decision_id) or decision
    if deps.crash_before_send and random.Random(decision.decision_id).random() < deps.crash_before_send \
            and decision.decision_id not in deps.crashed:
        deps.crashed.add(decision.decision_id)
        raise CrashInjected(f"injected crash between the decision write and the send ({symbol})")
    send_decision(deps.sqs, deps.queue_url, decision)
    return {"symbol": symbol, "result": "sent" if created else "resent", "decision_id": decision.decision_id,
            "action": decision.action.value, "llm": decision.llm is not None,
            "fallback": bool(decision.llm and decision.llm.fallback_reason)}


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
    advice, call = shadow.advise(PromptInputs.model_validate(decision.prompt_inputs), decision.bar_ts.date().isoformat())
    deps.tradelog.put_shadow(decision.decision_id, shadow.model_id, {
        "decision_id": decision.decision_id, "symbol": decision.symbol, "bar_ts": decision.bar_ts.isoformat(),
        "decision": advice.decision.value if advice else None, "confidence": advice.confidence if advice else None,
        "fallback": call.fallback_reason, "cost_usd": call.cost_usd})


def _archive_prompt(deps: CycleDeps, decision: TradeDecision, cfg: TradingConfig) -> None:
    inputs = PromptInputs.model_validate(decision.prompt_inputs)
    body = {"system": system_prompt(cfg.advisor.response_mode), "user": user_prompt(inputs),
            "model_id": decision.llm.model_id, "inputs": decision.prompt_inputs}
    try:
        deps.s3.put_object(Bucket=deps.bucket, Key=f"prompts/{decision.llm.prompt_hash}.json",
                           Body=json.dumps(body).encode(), ContentType="application/json")
    except Exception as exc:  # the decision record keeps the inputs; the archive is a convenience
        log.warning("prompt archive failed: %s", exc)
