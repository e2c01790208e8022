"""Turn a Converse reply into validated LlmAdvice, or a clear reason why not."""
from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from mytrader.advisor.prompt import TOOL_NAME
from mytrader.models import Action, LlmAdvice, validate_levels


class AdviceError(ValueError):
    """The model's answer is unusable; `kind` names the failure for metrics."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def reply_payload(response: dict[str, Any]) -> tuple[object, str]:
    """(tool input or None, concatenated text) from a Converse response. The tool input is whatever the model
    sent: a JSON object when it kept to the schema."""
    if response.get("stopReason") in ("content_filtered", "guardrail_intervened"):
        raise AdviceError("refusal", f"stopReason {response['stopReason']}")
    content = (response.get("output") or {}).get("message", {}).get("content") or []
    tool_input, texts = None, []
    for block in content:
        if "toolUse" in block and block["toolUse"].get("name") == TOOL_NAME:
            tool_input = block["toolUse"].get("input")
        elif "text" in block:
            texts.append(block["text"])
    return tool_input, "".join(texts)


def parse_advice(response: dict[str, Any], price: float, allow_short: bool) -> LlmAdvice:
    tool_input, text = reply_payload(response)
    if tool_input is None:
        if not text.strip():
            raise AdviceError("empty", "no tool call and no text")
        tool_input = _json_object(text)
    if not isinstance(tool_input, dict):
        raise AdviceError("not_json", "answer is not a JSON object")
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


def _json_object(text: str) -> object:
    """The JSON value from the first `{` to the last `}` of the text (an object, when it parses)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        if any(w in text.lower() for w in ("i can't", "i cannot", "i won't", "unable to", "not able to")):
            raise AdviceError("refusal", text.strip()[:120])
        raise AdviceError("not_json", text.strip()[:120])
    try:
        return json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        raise AdviceError("not_json", str(exc)) from None
