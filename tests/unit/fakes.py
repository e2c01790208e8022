"""In-memory fakes for unit tests."""
from __future__ import annotations

import json


def tool_response(payload: dict, input_tokens: int = 500, output_tokens: int = 80) -> dict:
    return {"output": {"message": {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "t1", "name": "trade_decision", "input": payload}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens}}


def text_response(text: str, stop: str = "end_turn") -> dict:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}] if text is not None else []}},
            "stopReason": stop, "usage": {"inputTokens": 400, "outputTokens": 30}}


class ScriptedConverse:
    """Answers converse() with the scripted responses in order (an Exception instance is raised)."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[dict] = []

    def converse(self, **req):
        self.requests.append(json.loads(json.dumps(req)))
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        return item


def good_advice(**over) -> dict:
    base = {"decision": "BUY", "confidence": 0.8, "position_size_pct": 15.0, "reasoning": "trend and news agree",
            "key_factors": ["trend up", "positive news"], "stop_loss": 90.0, "take_profit": 120.0,
            "risk_assessment": "LOW", "time_horizon": "DAYS"}
    base.update(over)
    return base
