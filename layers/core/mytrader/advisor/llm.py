"""The LLM advisor: one Converse call with a forced tool (or JSON text), one repair retry, then fallback.

`client` is anything with Bedrock Runtime's `converse(**kwargs)`: boto3's bedrock-runtime client, or the
local advisor model in process. Nothing here knows which.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

from mytrader.advisor.costs import CostRecord, RunCost
from mytrader.advisor.parsing import AdviceError, parse_advice
from mytrader.advisor.prompt import TOOL_NAME, PromptInputs, prompt_hash, system_prompt, tool_config, user_prompt
from mytrader.config import AdvisorSettings
from mytrader.models import LlmAdvice, LlmCall

log = logging.getLogger(__name__)


class ConverseClient(Protocol):
    """Requests and responses are the Converse API's JSON, as boto3 takes and returns them."""

    def converse(self, **kwargs: Any) -> dict[str, Any]: ...


class ResponseCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, response: dict[str, Any]) -> None: ...


@dataclass
class InMemoryResponseCache:
    data: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, response: dict[str, Any]) -> None:
        self.data[key] = response


@dataclass
class TokenBudget:
    """Tokens spent per UTC day; once the day's budget is spent the advisor falls back to the strategy."""
    daily_limit: int
    spent: dict[str, int] = field(default_factory=dict)

    def exhausted(self, day: str) -> bool:
        return self.daily_limit > 0 and self.spent.get(day, 0) >= self.daily_limit

    def add(self, day: str, tokens: int) -> None:
        self.spent[day] = self.spent.get(day, 0) + tokens


@dataclass
class AdvisorStats:
    """One advisor's counters. Calls, tokens and cost are read from the cost record (mytrader.advisor.costs),
    as this advisor's run would have cost alone."""
    fallbacks: int = 0
    repairs: int = 0
    injection_flags: int = 0
    fallback_reasons: dict[str, int] = field(default_factory=dict)  # by kind: invalid_output, service_error, ...
    invalid_answers: dict[str, int] = field(default_factory=dict)  # bad answers by shape (repaired or not)
    record: CostRecord = field(default_factory=CostRecord, repr=False)
    run: str = ""

    def costs(self) -> RunCost:
        return self.record.run_cost(self.run)

    @property
    def calls(self) -> int:
        """Requests sent to the model (a repaired answer is two)."""
        return self.costs().fresh_calls

    @property
    def cache_hits(self) -> int:
        return self.costs().cache_hits

    @property
    def input_tokens(self) -> int:
        return self.costs().input_tokens

    @property
    def output_tokens(self) -> int:
        return self.costs().output_tokens

    @property
    def cost_usd(self) -> float:
        return self.costs().cost_usd


class LlmAdvisor:
    def __init__(self, client: ConverseClient, settings: AdvisorSettings, cache: ResponseCache | None = None,
                 budget: TokenBudget | None = None, model_id: str | None = None, costs: CostRecord | None = None,
                 run: str = ""):
        """`costs` records every call (shared by the runs that share `cache`, each under its own `run`)."""
        self.client, self.settings = client, settings
        self.model_id = model_id or settings.model_id
        self.cache = cache if cache is not None else InMemoryResponseCache()
        self.budget = budget or TokenBudget(settings.daily_token_budget)
        self.costs = costs if costs is not None else CostRecord()
        self.run = run
        self.stats = AdvisorStats(record=self.costs, run=run)
        self.keep_raw = True  # the raw answer is logged with each decision; throughput backtests skip it
        static = {k: v for k, v in self.request(None).items() if k != "messages"}  # model, system, tools, params
        self._static_key = hashlib.sha256(json.dumps(static, sort_keys=True).encode()).hexdigest()

    def request(self, inputs: PromptInputs | None) -> dict[str, Any]:
        mode = self.settings.response_mode
        req: dict[str, Any] = {
            "modelId": self.model_id,
            "system": [{"text": system_prompt(mode)}],
            "messages": [{"role": "user", "content": [{"text": user_prompt(inputs) if inputs is not None else ""}]}],
            "inferenceConfig": {"maxTokens": self.settings.max_tokens, "temperature": self.settings.temperature},
        }
        if mode == "tool":
            req["toolConfig"] = tool_config()
        return req

    def advise(self, inputs: PromptInputs, day: str, injection_flags: int = 0) -> tuple[LlmAdvice | None, LlmCall]:
        req = self.request(inputs)
        system, user = req["system"][0]["text"], req["messages"][0]["content"][0]["text"]
        call = _Draft(model_id=self.model_id, prompt_hash=prompt_hash(system, user, self.model_id),
                      injection_flags=injection_flags)
        self.stats.injection_flags += injection_flags
        # the response cache key: hash(model id + system + tools + parameters) and the prompt
        key = hashlib.sha256(f"{self._static_key}|{user}".encode()).hexdigest()
        cached = self.cache.get(key)
        if cached is not None:
            try:
                advice = parse_advice(cached, inputs.price, bool(inputs.limits.get("allow_short")),
                                      self.settings.response_mode)
                self.costs.cached(self.run, key, self.model_id)
                call.cached = True
                call.raw_answer = _raw(cached) if self.keep_raw else None
                return advice, call.done()
            except AdviceError:
                pass  # a cached bad answer is asked again
        if self.budget.exhausted(day):
            return None, self._fallback(call, "token_budget")
        messages = list(req["messages"])
        for attempt in (1, 2):
            call.attempts = attempt
            started = time.perf_counter()
            try:
                response = self.client.converse(**{**req, "messages": messages})
            except Exception as exc:  # throttling, timeouts, service faults: degrade, never crash
                code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
                return None, self._fallback(call, f"service_error:{code or type(exc).__name__}")
            call.latency_ms += (time.perf_counter() - started) * 1000
            self._count_usage(call, response, day, key)
            try:
                advice = parse_advice(response, inputs.price, bool(inputs.limits.get("allow_short")),
                                      self.settings.response_mode)
            except AdviceError as err:
                call.raw_answer = _raw(response)
                self.stats.invalid_answers[err.kind] = self.stats.invalid_answers.get(err.kind, 0) + 1
                if attempt == 1:
                    self.stats.repairs += 1
                    messages = messages + _repair_turn(response, err, self.settings.response_mode == "tool")
                    log.info("advisor answer invalid (%s); asking once more", err)
                    continue
                return None, self._fallback(call, f"invalid_output:{err.kind}")
            call.raw_answer = _raw(response) if self.keep_raw else None
            self.cache.put(key, response)
            return advice, call.done()
        raise AssertionError("unreachable")

    def _count_usage(self, call: _Draft, response: dict[str, Any], day: str, key: str) -> None:
        usage = response.get("usage") or {}
        tin, tout = int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))
        call.input_tokens += tin
        call.output_tokens += tout
        call.cost_usd = round(call.cost_usd + self.costs.fresh(self.run, key, self.model_id, tin, tout), 8)
        self.budget.add(day, tin + tout)

    def _fallback(self, call: _Draft, reason: str) -> LlmCall:
        call.fallback_reason = reason
        self.stats.fallbacks += 1
        kind = reason.split(":")[0]
        self.stats.fallback_reasons[kind] = self.stats.fallback_reasons.get(kind, 0) + 1
        log.warning("advisor fallback to strategy: %s", reason)
        return call.done()


class _Draft(SimpleNamespace):
    """LlmCall while it is being filled in: plain attributes on the hot path, validated once by done().
    Its fields and defaults are LlmCall's own, so the two cannot drift apart."""

    def __init__(self, **given: Any) -> None:
        defaults = {name: f.default for name, f in LlmCall.model_fields.items() if not f.is_required()}
        super().__init__(**{**defaults, **given})

    def done(self) -> LlmCall:
        return LlmCall(**vars(self))


def _raw(response: dict[str, Any]) -> str:
    output = response.get("output") if isinstance(response, dict) else None
    message = output.get("message") if isinstance(output, dict) else None
    content = (message.get("content") if isinstance(message, dict) else None) or []
    return json.dumps(content, separators=(",", ":"), default=str)[:4000]


def _repair_turn(response: dict[str, Any], err: AdviceError, tool_mode: bool = True) -> list[dict[str, Any]]:
    """Show the model its own answer and a one-line reason, once. In tool mode a single call of the expected tool
    is answered with an error toolResult (the Converse way); every other shape (several calls, another tool, text,
    nothing, any tool call in JSON mode) is replayed as text, so the conversation stays valid whatever was sent."""
    reason = " ".join(str(err).split())[:240]
    msg = f"Invalid answer ({reason}). Answer again with exactly one decision, valid this time."
    output = response.get("output") if isinstance(response, dict) else None
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    tool_uses = [b["toolUse"] for b in blocks if "toolUse" in b]
    if tool_mode and len(tool_uses) == 1 and isinstance(tool_uses[0], dict) and tool_uses[0].get("name") == TOOL_NAME \
            and isinstance(tool_uses[0].get("input"), dict) and isinstance(tool_uses[0].get("toolUseId"), str):
        use = tool_uses[0]
        return [{"role": "assistant", "content": [{"toolUse": use}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"],
                                                             "content": [{"text": msg}], "status": "error"}}]}]
    if tool_uses:
        text = json.dumps(tool_uses, separators=(",", ":"), default=str)
    else:
        text = "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))
    return [{"role": "assistant", "content": [{"text": text.strip()[:2000] or "(empty)"}]},
            {"role": "user", "content": [{"text": msg}]}]
