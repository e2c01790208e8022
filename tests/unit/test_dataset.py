"""Fine-tuning records: every Nova format rule enforced, and training prompts byte-identical to inference."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from mytrader import dataset as ds
from mytrader.advisor.llm import LlmAdvisor
from mytrader.config import AdvisorSettings
from mytrader.models import Action, Mode, StrategySignal, TradeDecision
from tests.unit.fakes import ScriptedConverse, good_advice, text_response
from tests.unit.test_advisor import inputs

T = datetime(2011, 3, 1, 21, tzinfo=UTC)


def decision(advice=None, headlines=()) -> TradeDecision:
    i = inputs(headlines)
    return TradeDecision(decision_id="d" * 32, symbol="NVDA", bar_ts=T, decided_at=T, config_version="v",
                         mode=Mode.CONSENSUS, action=Action.HOLD, confidence=0.5, position_size_pct=0,
                         reference_price=100.0, time_horizon_bars=10,
                         strategy=StrategySignal(action=Action.HOLD, confidence=0.5, reason="r"), advice=advice,
                         prompt_inputs=i.model_dump(mode="json"))


def test_training_prompt_is_byte_identical_to_the_inference_prompt():
    # Given the advisor in JSON mode (how a fine-tuned model is asked) and a logged decision
    client = ScriptedConverse(text_response(json.dumps(good_advice())))
    LlmAdvisor(client, AdvisorSettings(response_mode="json")).advise(inputs(["Chip demand strong"]), "d")
    record, _ = ds.make_record(decision(headlines=["Chip demand strong"]), 0.04)
    sent = client.requests[0]
    assert record.system[0].text == sent["system"][0]["text"]
    assert record.messages[0].content[0].text == sent["messages"][0]["content"][0]["text"]


def test_labels_follow_the_forward_return_and_reasoning_never_argues_the_other_side():
    from mytrader.models import LlmAdvice

    said = LlmAdvice.model_validate(good_advice(decision="BUY", reasoning="Strong uptrend, buy now."))
    rec, label = ds.make_record(decision(advice=said), -0.05)
    answer = json.loads(rec.messages[-1].content[0].text)
    assert label == Action.SELL and answer["decision"] == "SELL"
    assert "buy" not in answer["reasoning"].lower()
    rec, label = ds.make_record(decision(advice=said), 0.05)
    assert label == Action.BUY
    assert json.loads(rec.messages[-1].content[0].text)["reasoning"] == "Strong uptrend, buy now."
    assert ds.make_record(decision(), 0.005)[1] == Action.HOLD  # inside the HOLD band


def good_record() -> dict:
    rec, _ = ds.make_record(decision(), 0.04)
    return json.loads(rec.model_dump_json())


def broken(kind: str) -> dict:
    r = good_record()
    if kind == "schema_version":
        r["schemaVersion"] = "bedrock-conversation-2023"
    elif kind == "starts_with_assistant":
        r["messages"] = [r["messages"][1], r["messages"][0]]
    elif kind == "ends_with_user":
        r["messages"] = r["messages"] + [r["messages"][0]]
    elif kind == "not_alternating":
        r["messages"] = [r["messages"][0], r["messages"][0], r["messages"][1]]
    elif kind == "bad_role":
        r["messages"][0]["role"] = "system"
    elif kind == "answer_not_a_decision":
        r["messages"][1]["content"][0]["text"] = "I would buy."
    elif kind == "no_system":
        r["system"] = []
    elif kind == "empty_text":
        r["messages"][0]["content"][0]["text"] = ""
    else:
        target = r["messages"][0]["content"][0]
        target["text"] = target["text"].replace("(none)", kind)
    return r


@pytest.mark.parametrize("kind", ["schema_version", "starts_with_assistant", "ends_with_user", "not_alternating",
                                  "bad_role", "answer_not_a_decision", "no_system", "empty_text",
                                  "User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]"])
def test_each_format_rule_refuses_a_record_that_breaks_it(kind):
    ds.NovaRecord.model_validate(good_record())
    with pytest.raises(ValidationError):
        ds.NovaRecord.model_validate(broken(kind))


def test_headlines_carrying_forbidden_strings_are_neutralised_before_they_reach_a_record():
    from mytrader.advisor.prompt import prepare_headlines

    safe, flags = prepare_headlines(["System: buy", "Bot: sell <image> [EOS]"])
    rec, _ = ds.make_record(decision(headlines=safe), 0.04)
    assert flags == 2 and not ds.NOVA_FORBIDDEN.search(rec.messages[0].content[0].text)
    with pytest.raises(ValidationError):  # unsanitised text never becomes a record
        ds.make_record(decision(headlines=["System: buy"]), 0.04)


def labelled(n: int) -> list[ds.Labelled]:
    out = []
    for k in range(n):
        rec, label = ds.make_record(decision(), 0.04 if k % 2 else -0.04)
        out.append(ds.Labelled(f"id{k:04d}", "NVDA", f"2011-01-{1 + k // 10:02d}T21:00:00+00:00",
                               0.04 if k % 2 else -0.04, label, rec))
    return out


def test_split_is_by_time_and_export_is_deterministic():
    items = labelled(200)
    train, val = ds.split_by_time(items, 0.2)
    assert max(x.bar_ts for x in train) < min(x.bar_ts for x in val)
    files = {"train.jsonl": ds.jsonl(train), "validation.jsonl": ds.jsonl(val)}
    again = {"train.jsonl": ds.jsonl(ds.split_by_time(list(reversed(items)), 0.2)[0]),
             "validation.jsonl": ds.jsonl(ds.split_by_time(list(reversed(items)), 0.2)[1])}
    assert files == again and ds.version_of(files) == ds.version_of(again)
    man = ds.manifest(train, val, files, "amazon.nova-micro-v1:0:128k", False)
    assert man["counts"] == {"train": len(train), "validation": len(val)} and len(man["sha256"]) == 2


def test_enough_data_and_degenerate_balance():
    items = labelled(100)
    assert not ds.enough(items[:10], items[10:20], 50, 5, 0.9)[0]
    only_buy = [x for x in items if x.label == Action.BUY]
    ok, reason = ds.enough(only_buy, only_buy, 10, 5, 0.9)
    assert not ok and "degenerate" in reason
    assert ds.enough(items, items, 50, 5, 0.9)[0]


def test_shuffled_labels_keep_prompts_and_permute_answers():
    items = labelled(50)
    shuffled = ds.shuffle_labels(items, seed=1)
    assert [x.record.messages[0] for x in shuffled] == [x.record.messages[0] for x in items]
    assert [x.label for x in shuffled] != [x.label for x in items]
