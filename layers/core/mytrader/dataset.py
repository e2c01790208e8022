"""Fine-tuning datasets from the trade log, in the Amazon Nova conversation format (bedrock-conversation-2024).

One record per symbol-cycle whose forward outcome is known (not only closed trades: HOLDs and consensus
disagreements are labelled too). The user turn is the exact prompt the advisor sends at inference, rebuilt
from the logged inputs; the assistant turn is the decision that was right in hindsight (labels.py: the
realised forward return over the horizon, with a HOLD band), as JSON text, because the fine-tuned model
answers without tool use. Where the label disagrees with what the model said, the reasoning is regenerated
to argue for the label. Validation is strictly later in time than training. Deterministic: the same
trade log gives byte-identical files under the same version.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, TypedDict

from pydantic import BaseModel, Field, field_validator, model_validator

from mytrader.advisor.prompt import PromptInputs, system_prompt, user_prompt
from mytrader.labels import HOLD_BAND, label_confidence, label_for_return
from mytrader.models import Action, LlmAdvice, TradeDecision

FORMAT = "bedrock-conversation-2024"
NOVA_FORBIDDEN = re.compile(r"User:|Bot:|Assistant:|System:|<image>|<video>|\[EOS\]")


class TextBlock(BaseModel):
    text: str = Field(min_length=1)


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: list[TextBlock] = Field(min_length=1, max_length=1)


class NovaRecord(BaseModel):
    """One JSONL line. Refuses anything Nova fine-tuning would reject."""
    schemaVersion: Literal["bedrock-conversation-2024"]
    system: list[TextBlock] = Field(min_length=1, max_length=1)
    messages: list[Turn] = Field(min_length=2)

    @field_validator("messages")
    @classmethod
    def _alternating(cls, turns: list[Turn]) -> list[Turn]:
        if turns[0].role != "user" or turns[-1].role != "assistant":
            raise ValueError("messages must start with user and end with assistant")
        for a, b in pairwise(turns):
            if a.role == b.role:
                raise ValueError("roles must alternate user/assistant")
        return turns

    @model_validator(mode="after")
    def _no_forbidden_strings(self) -> NovaRecord:
        texts = [self.system[0].text] + [t.content[0].text for t in self.messages]
        for text in texts:
            m = NOVA_FORBIDDEN.search(text)
            if m:
                raise ValueError(f"text contains {m.group(0)!r}, which Nova rejects")
        answer = self.messages[-1].content[0].text
        LlmAdvice.model_validate_json(answer)  # the assistant turn is a valid decision
        return self


@dataclass(frozen=True)
class Labelled:
    decision_id: str
    symbol: str
    bar_ts: str
    forward_return: float
    label: Action
    record: NovaRecord


def assistant_answer(decision: TradeDecision, inputs: PromptInputs, forward_return: float) -> LlmAdvice:
    label = label_for_return(forward_return)
    confidence = label_confidence(forward_return)
    said = decision.advice
    if said is not None and said.decision == label:
        reasoning, factors = said.reasoning, list(said.key_factors)
    else:  # regenerated to argue for the label, never left arguing the other side
        f = inputs.features
        factors = [f"regime {f.get('regime')}", f"rsi {f.get('rsi')}", f"sentiment {inputs.sentiment.get('score')}"]
        reasoning = {Action.BUY: "Trend, momentum and news together favour a long position for the next sessions.",
                     Action.SELL: "Trend, momentum and news together point lower: exit or stay out.",
                     Action.HOLD: "The inputs do not support a move larger than the round-trip cost: hold."}[label]
    price = inputs.price
    atr = float(inputs.features.get("atr_pct", 0.02)) * price
    vol = float(inputs.features.get("vol", 0.3))
    return LlmAdvice(
        decision=label, confidence=confidence,
        position_size_pct=(round(float(inputs.limits.get("max_pct", 10)) * confidence, 1)
                           if label == Action.BUY else 0.0),
        reasoning=reasoning, key_factors=factors,
        stop_loss=round(price - 2 * atr, 4) if label == Action.BUY else None,
        take_profit=round(price + 3 * atr, 4) if label == Action.BUY else None,
        risk_assessment="HIGH" if vol > 0.6 else "MEDIUM" if vol > 0.3 else "LOW", time_horizon="DAYS")


def make_record(decision: TradeDecision, forward_return: float) -> tuple[NovaRecord, Action]:
    inputs = PromptInputs.model_validate(decision.prompt_inputs)
    answer = assistant_answer(decision, inputs, forward_return)
    record = NovaRecord(schemaVersion=FORMAT, system=[TextBlock(text=system_prompt("json"))], messages=[
        Turn(role="user", content=[TextBlock(text=user_prompt(inputs))]),
        Turn(role="assistant", content=[TextBlock(text=answer.model_dump_json(exclude_none=False))])])
    return record, answer.decision


def split_by_time(items: list[Labelled], validation_share: float) -> tuple[list[Labelled], list[Labelled]]:
    """Validation strictly later than training: the cut falls between two distinct bar times."""
    items = sorted(items, key=lambda x: (x.bar_ts, x.symbol, x.decision_id))
    if len(items) < 2:
        return items, []
    times = sorted({x.bar_ts for x in items})
    cut_index = max(1, int(len(times) * (1 - validation_share)))
    cut = times[min(cut_index, len(times) - 1)]
    return [x for x in items if x.bar_ts < cut], [x for x in items if x.bar_ts >= cut]


def shuffle_labels(items: list[Labelled], seed: int) -> list[Labelled]:
    """Negative control: the same prompts with their answers permuted (a model trained on this must not win)."""
    rng = random.Random(seed)
    answers = [x.record.messages[-1] for x in items]
    labels = [x.label for x in items]
    order = list(range(len(items)))
    rng.shuffle(order)
    out = []
    for x, k in zip(items, order, strict=True):
        rec = x.record.model_copy(update={"messages": [*x.record.messages[:-1], answers[k]]})
        out.append(Labelled(x.decision_id, x.symbol, x.bar_ts, x.forward_return, labels[k], rec))
    return out


def jsonl(items: list[Labelled]) -> bytes:
    return "".join(x.record.model_dump_json() + "\n" for x in items).encode()


def balance(items: list[Labelled]) -> dict[str, int]:
    c = Counter(x.label.value for x in items)
    return {a.value: c.get(a.value, 0) for a in Action}


def enough(train: list[Labelled], validation: list[Labelled], min_train: int, min_validation: int,
           max_label_share: float) -> tuple[bool, str]:
    if len(train) < min_train:
        return False, f"not enough data: {len(train)} training records, need {min_train}"
    if len(validation) < min_validation:
        return False, f"not enough data: {len(validation)} validation records, need {min_validation}"
    counts = balance(train)
    top = max(counts.values()) / max(1, len(train))
    if top > max_label_share:
        return False, f"not enough data: degenerate label balance {counts}"
    return True, "ok"


class Manifest(TypedDict):
    """manifest.json beside the dataset files."""
    format: str
    base_model: str
    hold_band: float
    counts: dict[str, int]  # train, validation
    label_balance: dict[str, dict[str, int]]  # train, validation -> BUY, SELL, HOLD
    date_range: dict[str, list[str] | None]  # train, validation -> [first, last] bar time, None when empty
    sha256: dict[str, str]  # file name -> digest
    labels_shuffled: bool
    source_decision_ids: list[str]


def manifest(train: list[Labelled], validation: list[Labelled], files: dict[str, bytes], base_model: str,
             shuffled: bool) -> Manifest:
    all_items = train + validation
    return {
        "format": FORMAT, "base_model": base_model, "hold_band": HOLD_BAND,
        "counts": {"train": len(train), "validation": len(validation)},
        "label_balance": {"train": balance(train), "validation": balance(validation)},
        "date_range": {"train": [train[0].bar_ts, train[-1].bar_ts] if train else None,
                       "validation": [validation[0].bar_ts, validation[-1].bar_ts] if validation else None},
        "sha256": {name: hashlib.sha256(body).hexdigest() for name, body in files.items()},
        "labels_shuffled": shuffled,
        "source_decision_ids": sorted(x.decision_id for x in all_items),
    }


def version_of(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode())
        h.update(files[name])
    return h.hexdigest()[:12]


def validation_outcomes(validation: list[Labelled]) -> bytes:
    rows = [{"decision_id": x.decision_id, "symbol": x.symbol, "bar_ts": x.bar_ts, "label": x.label.value,
             "forward_return": round(x.forward_return, 6)} for x in validation]
    return json.dumps(rows, separators=(",", ":")).encode()
