"""The fine-tuning workflow on the embedded AWS: the real ASL on moto's engine, Lambda tasks, a local
customization job that really fits weights, a deployment that answers Converse with them."""
from __future__ import annotations

import json
import random
from datetime import date

import pytest
from typer.testing import CliRunner

from mytrader.adapters.tradelog import TradeLog
from mytrader.market.calendar import nyse
from mytrader.models import Action, Mode, StrategySignal, TradeDecision, make_decision_id
from mytrader_tools.cli import app
from mytrader_tools.embedded.learning import execution_summary, start_finetune, wait_execution

N_DAYS = 520


def learnable_world(stack, seed: int = 1) -> None:
    """One symbol whose next-session move follows ret_20 (which the active model weighs) and volume_z
    (which it ignores): a candidate fitted on the record can really beat it."""
    rng = random.Random(seed)
    day = date(2015, 1, 2)
    days: list[date] = []
    while len(days) < N_DAYS:
        if nyse().is_session(day):
            days.append(day)
        day = date.fromordinal(day.toordinal() + 1)
    tl = TradeLog(stack.client("dynamodb"), stack.settings_env["TRADE_LOG_TABLE"])
    price, moves = 50.0, []
    for d in days:
        ret20 = rng.choice([-1, 1]) * rng.uniform(0.03, 0.15)
        vz = rng.choice([-1, 1]) * rng.uniform(0.2, 2.0)
        up = ret20 * 10 + vz > 0
        moves.append(0.03 if up else -0.03)
        at = nyse().session_close(d)
        inputs = {"symbol": "SYN", "date": d.isoformat(), "price": round(price, 4),
                  "features": {"rsi": 50.0, "macd_atr": 0.0, "bb_pct_b": 0.5, "atr_pct": 0.02, "vol": 0.3,
                               "volume_z": round(vz * 3, 2), "ret_5": 0.0, "ret_20": round(ret20, 4), "sma_gap": 0.0,
                               "regime": "range", "vol_regime": "low_vol"},
                  "strategy": {"action": "HOLD", "confidence": 0.5}, "sentiment": {"score": 0.0, "n": 0},
                  "position": {"side": "flat"}, "limits": {"max_pct": 20.0, "allow_short": False}, "headlines": []}
        tl.put_decision(TradeDecision(
            decision_id=make_decision_id("SYN", at, "world"), symbol="SYN", bar_ts=at, decided_at=at,
            config_version="world", mode=Mode.CONSENSUS, action=Action.HOLD, confidence=0.5, position_size_pct=0,
            reference_price=price, time_horizon_bars=1, prompt_inputs=inputs, status="SKIPPED",
            strategy=StrategySignal(action=Action.HOLD, confidence=0.5, reason="world")))
    # prices such that close[i+1] / open[i+1] - 1 == moves[i]: the outcome of the decision at i
    rows, price = ["Date,Open,High,Low,Close,Volume"], 50.0
    for i, d in enumerate(days):
        open_ = price
        close = open_ * (1 + moves[i - 1]) if i else open_
        rows.append(f"{d.isoformat()},{open_:.4f},{max(open_, close) * 1.005:.4f},{min(open_, close) * 0.995:.4f},"
                    f"{close:.4f},100000")
        price = close
    stack.client("s3").put_object(Bucket=stack.bucket, Key="market-data/SYN.csv", Body="\n".join(rows).encode())
    stack.set_param("REPLAY_CLOCK", nyse().session_close(days[-1]).isoformat())


def run(stack, **config) -> dict:
    return execution_summary(stack, wait_execution(stack, start_finetune(stack, {"poll_seconds": 1, **config})))


def test_workflow_fine_tunes_evaluates_and_promotes_an_earned_candidate(stack):
    learnable_world(stack)
    out = run(stack)
    assert out["execution_status"] == "SUCCEEDED", out
    assert out["train_records"] >= 300
    ev = out["evaluation"]
    assert ev["candidate"]["accuracy"] >= ev["active"]["accuracy"] + 0.02
    assert out["promoted"] and out["active_model_id"] == out["candidate_model_id"]
    assert out["previous_model_id"] == "local.advisor-model-v1"
    # and the promoted model answers the decision cycle in JSON mode through its deployment ARN
    res = CliRunner().invoke(app, ["model", "rollback", "--prefix", stack.prefix])
    assert res.exit_code == 0, res.output
    assert stack.get_param("ACTIVE_MODEL") == "local.advisor-model-v1"
    assert stack.get_param("PREVIOUS_MODEL") == out["candidate_model_id"]


def test_negative_control_with_shuffled_labels_is_not_promoted(stack, embedded):
    learnable_world(stack)
    out = run(stack, shuffle_labels=True)
    assert out["execution_status"] == "SUCCEEDED", out
    assert not out["promoted"] and stack.get_param("ACTIVE_MODEL") == "local.advisor-model-v1"
    # the rejected candidate's deployment is deleted
    assert out["candidate_model_id"] not in embedded.control.deployments


def test_not_enough_data_ends_cleanly(stack):
    out = run(stack)
    assert out["execution_status"] == "SUCCEEDED"
    assert (out["train_records"] == 0 and "not enough data" in (out["dataset_reason"] or "")
            or out["dataset_version"] is None)


def test_a_failed_job_fails_the_workflow_and_notifies(stack):
    sqs = stack.client("sqs")
    q = sqs.create_queue(QueueName=f"{stack.prefix}-alarm-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.client("sns").subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn)
    learnable_world(stack)
    out = run(stack, hyperparameters={"epochCount": "0", "learningRate": "0.00001"})
    assert out["execution_status"] == "FAILED"
    assert "invalid hyperparameters" in out["cause"]
    msgs = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10).get("Messages", [])
    assert any("failed" in json.loads(m["Body"]).get("Subject", "") for m in msgs)
    assert stack.get_param("ACTIVE_MODEL") == "local.advisor-model-v1"


def test_console_input_is_validated(stack):
    out = run(stack, no_such_setting=1)
    assert out["execution_status"] == "FAILED" and "no_such_setting" in out["cause"]


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_manual_approval_through_the_cli(stack, embedded, answer):
    import time

    learnable_world(stack)
    arn = start_finetune(stack, {"poll_seconds": 1, "require_approval": True})
    ssm = stack.client("ssm")
    for _ in range(120):  # the workflow pauses on its task token once the candidate is evaluated
        try:
            ssm.get_parameter(Name=f"/{stack.prefix}/pending-approval")
            break
        except ssm.exceptions.ParameterNotFound:
            time.sleep(0.5)
    res = CliRunner().invoke(app, ["finetune", answer, "--prefix", stack.prefix])
    assert res.exit_code == 0, res.output
    out = execution_summary(stack, wait_execution(stack, arn))
    assert out["execution_status"] == "SUCCEEDED"
    if answer == "approve":
        assert out["promoted"] and stack.get_param("ACTIVE_MODEL") == out["candidate_model_id"]
    else:
        assert not out["promoted"] and stack.get_param("ACTIVE_MODEL") == "local.advisor-model-v1"
        assert out["candidate_model_id"] not in embedded.control.deployments
