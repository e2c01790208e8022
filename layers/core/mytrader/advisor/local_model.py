"""The local advisor model: a deterministic logistic model that answers Converse requests.

It is NOT an LLM and says so in every answer. It reads the same inputs the prompt carries (it parses the
prompt), weighs them differently from the strategy (momentum over 20 days, reversal over 5, sentiment),
and answers in Bedrock's Converse shapes (tool use or JSON text, stopReason, token usage), so every path
downstream of the LLM runs. Its weights can be fitted on a training set (the embedded fine-tuning job).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any, TypedDict

from pydantic import BaseModel

from mytrader.advisor.pricing import estimate_tokens, tokens_for_chars
from mytrader.advisor.prompt import TOOL_NAME, PromptInputs, parse_inputs_from_prompt

FEATURES = ("ret_5", "ret_20", "rsi_c", "macd_atr", "bb_c", "sentiment", "volume_z", "sma_gap", "trend", "strategy")
LABEL_NOTE = "local advisor model (deterministic, not an LLM)"


class LocalModelWeights(BaseModel):
    name: str = "prior-v1"
    weights: list[float] = [-3.0, 4.0, -0.8, 1.5, -0.6, 2.0, 0.1, 5.0, 0.3, 0.6]
    bias: float = 0.0
    buy_above: float = 0.56
    sell_below: float = 0.44


def model_inputs(inputs: PromptInputs) -> list[float]:
    f, s = inputs.features, inputs.strategy
    action = {"BUY": 1.0, "SELL": -1.0}.get(str(s.get("action")), 0.0)
    trend = {"trend_up": 1.0, "trend_down": -1.0}.get(str(f.get("regime")), 0.0)
    return [
        float(f["ret_5"]), float(f["ret_20"]), (float(f["rsi"]) - 50) / 50, float(f["macd_atr"]),
        float(f["bb_pct_b"]) - 0.5, float(inputs.sentiment.get("score", 0.0)), float(f["volume_z"]) / 3,
        float(f["sma_gap"]), trend, action,
    ]


class AdviceAnswer(TypedDict):
    """What the model answers: LlmAdvice's fields, as the tool input (or the JSON text)."""
    decision: str
    confidence: float
    position_size_pct: float
    reasoning: str
    key_factors: list[str]
    stop_loss: float | None
    take_profit: float | None
    risk_assessment: str
    time_horizon: str


def probability_up(weights: LocalModelWeights, x: list[float]) -> float:
    """`x` has one value per FEATURES entry, as do the weights (the prior's and every fitted set)."""
    z = sum(w * v for w, v in zip(weights.weights, x, strict=True)) + weights.bias  # ten terms: plain Python wins
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def advise_from_inputs(inputs: PromptInputs, weights: LocalModelWeights) -> AdviceAnswer:
    x = model_inputs(inputs)
    p = probability_up(weights, x)
    price = inputs.price
    atr = float(inputs.features["atr_pct"]) * price
    short_ok = bool(inputs.limits.get("allow_short"))
    if p >= weights.buy_above:
        decision, conf = "BUY", 0.5 + (p - 0.5) * 2.5
    elif p <= weights.sell_below:
        decision, conf = "SELL", 0.5 + (0.5 - p) * 2.5
    else:
        decision, conf = "HOLD", 0.5
    conf = round(min(0.95, conf), 2)
    contrib = [w * v for w, v in zip(weights.weights, x, strict=True)]
    top = sorted(range(len(FEATURES)), key=lambda i: -abs(contrib[i]))[:3]
    factors = [f"{FEATURES[i]} {'+' if contrib[i] >= 0 else '-'}" for i in top]
    vol = float(inputs.features.get("vol", 0.3))
    risk = "HIGH" if vol > 0.6 else "MEDIUM" if vol > 0.3 else "LOW"
    answer: AdviceAnswer = {
        "decision": decision, "confidence": conf,
        "position_size_pct": round(float(inputs.limits.get("max_pct", 10)) * conf, 1) if decision != "HOLD" else 0.0,
        "reasoning": f"{LABEL_NOTE}: P(up)={p:.2f} from weighted inputs.",
        "key_factors": factors, "stop_loss": None, "take_profit": None,
        "risk_assessment": risk, "time_horizon": "DAYS",
    }
    if decision == "BUY":
        answer["stop_loss"], answer["take_profit"] = round(price - 2 * atr, 4), round(price + 3 * atr, 4)
    elif decision == "SELL" and short_ok:
        answer["stop_loss"], answer["take_profit"] = round(price + 2 * atr, 4), round(price - 3 * atr, 4)
    return answer


class LocalAdvisorModel:
    """Answers `converse(**request)` like Bedrock Runtime does. `weights_for(model_id)` picks the
    weights (a fitted custom model answers with its own)."""

    def __init__(self, weights: LocalModelWeights | None = None,
                 weights_for: Callable[[str], LocalModelWeights | None] | None = None):
        self._default = weights or LocalModelWeights()
        self._weights_for = weights_for

    def converse(self, **req: Any) -> dict[str, Any]:
        weights = (self._weights_for(req.get("modelId", "")) if self._weights_for else None) or self._default
        user_text = next(b["text"] for m in req["messages"] if m["role"] == "user" for b in m["content"] if "text" in b)
        inputs = parse_inputs_from_prompt(user_text)
        answer = advise_from_inputs(inputs, weights)
        sent_chars = sum(len(s.get("text", "")) for s in req.get("system", [])) + len(json.dumps(req["messages"]))
        out_text = json.dumps(answer, separators=(",", ":"))
        if "toolConfig" in req:
            sent_chars += _json_chars(req["toolConfig"])
            tool_id = "tooluse_" + hashlib.sha256(user_text.encode()).hexdigest()[:16]
            content: list[dict[str, Any]] = [{"toolUse": {"toolUseId": tool_id, "name": TOOL_NAME, "input": answer}}]
            stop = "tool_use"
        else:
            content, stop = [{"text": out_text}], "end_turn"
        tin, tout = tokens_for_chars(sent_chars), estimate_tokens(out_text)
        return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                "usage": {"inputTokens": tin, "outputTokens": tout, "totalTokens": tin + tout},
                "metrics": {"latencyMs": 0}}


_CHARS: dict[str, int] = {}


def _json_chars(tool_config: dict[str, Any]) -> int:
    """Length of the tool configuration as sent; the schema is the same on every call, so measured once."""
    key = ",".join(t["toolSpec"]["name"] + str(id(t["toolSpec"]["inputSchema"]["json"])) for t in tool_config["tools"])
    if key not in _CHARS:
        _CHARS[key] = len(json.dumps(tool_config))
    return _CHARS[key]
