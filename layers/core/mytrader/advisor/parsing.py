"""Turn a Converse reply into validated LlmAdvice, or a clear reason why not.

Strict: an answer holds exactly one decision. In tool mode that is exactly one `toolUse` block naming the
trade_decision tool (text beside it is ignored); in JSON mode exactly one JSON object, with nothing after it but
whitespace or a closing code fence. Several answers, another tool, fields the schema does not know, duplicate
keys, NaN, a refusal, a cut-off or an empty answer are all unusable: the caller repairs once, then falls back.
"""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from mytrader.advisor.prompt import TOOL_NAME
from mytrader.models import Action, LlmAdvice, validate_levels

REFUSAL_STOPS = ("content_filtered", "guardrail_intervened")
_REFUSAL_WORDS = ("i can't", "i cannot", "i won't", "i will not", "unable to", "not able to", "i'm sorry",
                  "i am sorry", "i must decline")
_FENCE_OPEN = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*")
_FENCE_CLOSE = re.compile(r"\s*```\s*$")


class AdviceError(ValueError):
    """The model's answer is unusable; `kind` names the failure for metrics."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def reply_payload(response: dict[str, Any], mode: str = "tool") -> tuple[object, str]:
    """(tool input or None, concatenated text) from a Converse response, after the shape checks: a refusal stop,
    a cut-off answer, several tool calls, another tool's name, a tool call in JSON mode, content that is not a
    list of blocks all raise AdviceError. The tool input is whatever the model sent: a JSON object when it kept to
    the schema."""
    if not isinstance(response, dict):
        raise AdviceError("malformed", "response is not an object")
    stop = response.get("stopReason")
    if stop in REFUSAL_STOPS:
        raise AdviceError("refusal", f"stopReason {stop}")
    if stop == "max_tokens":
        raise AdviceError("truncated", "stopReason max_tokens: the answer was cut off")
    output = response.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if content is None:
        content = []
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise AdviceError("malformed", "message content is not a list of blocks")
    tools = [b["toolUse"] for b in content if "toolUse" in b]
    texts = [b["text"] for b in content if isinstance(b.get("text"), str)]
    if len(tools) > 1:
        raise AdviceError("several_answers", f"{len(tools)} toolUse blocks; exactly one is allowed")
    if tools:
        tool = tools[0]
        name = tool.get("name") if isinstance(tool, dict) else None
        if mode != "tool":
            raise AdviceError("unexpected_tool", f"a toolUse block ({name}) in JSON mode")
        if name != TOOL_NAME:
            raise AdviceError("wrong_tool", f"tool {str(name)[:40]!r}, expected {TOOL_NAME}")
        return tool.get("input"), "".join(texts)
    return None, "".join(texts)


def parse_advice(response: dict[str, Any], price: float, allow_short: bool, mode: str = "tool") -> LlmAdvice:
    tool_input, text = reply_payload(response, mode)
    if tool_input is None:
        if not text.strip():
            raise AdviceError("empty", "no tool call and no text")
        if _looks_like_refusal(text):
            raise AdviceError("refusal", text.strip()[:120])
        if mode == "tool":
            raise AdviceError("no_tool_call", f"text instead of the {TOOL_NAME} tool: {text.strip()[:80]}")
        tool_input = _json_object(text)
    if not isinstance(tool_input, dict):
        raise AdviceError("not_json", "answer is not a JSON object")
    extra = sorted(set(tool_input) - set(LlmAdvice.model_fields))
    if extra:
        raise AdviceError("extra_fields", f"fields outside the schema: {', '.join(str(k)[:30] for k in extra[:5])}")
    try:
        advice = LlmAdvice.model_validate(tool_input)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise AdviceError("schema", f"{where}: {first['msg']}") from None
    side = advice.decision if (advice.decision == Action.BUY or allow_short) else None
    if side is not None:
        try:
            validate_levels(side, price, advice.stop_loss, advice.take_profit)
        except ValueError as exc:
            raise AdviceError("levels", str(exc)) from None
    return advice


def _looks_like_refusal(text: str) -> bool:
    low = text.lower()
    return "{" not in text and any(w in low for w in _REFUSAL_WORDS)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise AdviceError("duplicate_keys", f"key {dup[:30]!r} given twice")
    return dict(pairs)


def _no_constants(name: str) -> object:
    raise AdviceError("not_json", f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def _json_object(text: str) -> object:
    """The one JSON object of a JSON-mode answer: prose may precede it, a code fence may wrap it; after it only
    whitespace or the closing fence. A second object or any other trailing text is refused."""
    body = _FENCE_CLOSE.sub("", _FENCE_OPEN.sub("", text, count=1), count=1)
    start = body.find("{")
    if start < 0:
        raise AdviceError("not_json", text.strip()[:120])
    try:
        value, end = _DECODER.raw_decode(body, start)
    except json.JSONDecodeError as exc:
        raise AdviceError("not_json", str(exc)) from None
    rest = _FENCE_CLOSE.sub("", body[end:]).strip()
    if rest:
        kind = "several_answers" if "{" in rest else "trailing_text"
        raise AdviceError(kind, f"text after the JSON object: {rest[:60]!r}")
    return value
