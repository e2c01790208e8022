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


def alarm_inbox(stack) -> str:
    """An SQS queue subscribed to the stack's alarm topic (what an operator's e-mail would receive)."""
    sqs = stack.client("sqs")
    q = sqs.create_queue(QueueName=f"{stack.prefix}-alarm-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.client("sns").subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn)
    return q


def notified(stack, inbox: str, word: str) -> bool:
    msgs = stack.client("sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
    return any(word in json.loads(m["Body"]).get("Subject", "") for m in msgs)


def test_a_failed_job_fails_the_workflow_and_notifies(stack, embedded):
    inbox = alarm_inbox(stack)
    learnable_world(stack)
    embedded.control.fail_jobs_with = "injected training failure"
    try:
        out = run(stack)
    finally:
        embedded.control.fail_jobs_with = None
    assert out["execution_status"] == "FAILED"
    assert "injected training failure" in out["cause"]
    assert notified(stack, inbox, "failed")
    assert stack.get_param("ACTIVE_MODEL") == "local.advisor-model-v1"


def test_settings_outside_novas_ranges_fail_before_any_job(stack, embedded):
    # Given a console input with a hyperparameter Nova does not take (each range: tests/unit/test_learn_settings.py)
    inbox = alarm_inbox(stack)
    learnable_world(stack)
    jobs_before = len(embedded.control.jobs)
    # When the workflow starts
    out = run(stack, hyperparameters={"epochCount": "2", "batchSize": "1"})
    # Then it fails at its first step, naming the setting, notifies, and no customization job was created
    assert out["execution_status"] == "FAILED" and "batchSize" in out["cause"]
    assert len(embedded.control.jobs) == jobs_before
    assert notified(stack, inbox, "failed")


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


def _tasks(stack):
    from mytrader.adapters.aws.clients import Aws
    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import finetune_tasks

    return finetune_tasks(PipelineSettings.from_env(stack.settings_env), Aws())


def test_a_retried_create_is_idempotent_on_its_client_request_token(stack, embedded):
    from mytrader.usecases.learn import FinetuneConfig, WorkflowState

    # Given the state a create task runs with (run id 20260101000000, dataset version abc)
    tasks = _tasks(stack)
    dataset = {"enough": True, "reason": "ok", "train_records": 300, "validation_records": 50, "skipped": {},
               "label_balance": {}, "version": "abc", "prefix": "datasets/abc",
               "train_uri": f"s3://{stack.bucket}/datasets/abc/train.jsonl",
               "validation_uri": f"s3://{stack.bucket}/datasets/abc/validation.jsonl"}
    state = WorkflowState(config=FinetuneConfig(run_id="20260101000000"), dataset=dataset)
    # When Step Functions runs the task again (a Lambda retry after a timeout)
    first, again = tasks.create_job(state), tasks.create_job(state)
    # Then Bedrock answers with the job it created the first time, and holds one job, not a name conflict
    assert again == first
    assert sum(j["jobName"] == first.job_name for j in embedded.control.jobs.values()) == 1
    # and the same token with a different request is refused, as Bedrock does
    bedrock = stack.client("bedrock")
    job = embedded.control.jobs[first.job_arn]
    with pytest.raises(bedrock.exceptions.ConflictException):
        bedrock.create_model_customization_job(
            jobName=first.job_name, customModelName=first.job_name, roleArn=job["roleArn"],
            baseModelIdentifier="amazon.nova-micro-v1:0:128k", trainingDataConfig=job["trainingDataConfig"],
            outputDataConfig=job["outputDataConfig"], hyperParameters={"epochCount": "3"},
            clientRequestToken=first.job_name)
    # Given a trained model (registered locally), the deployment is idempotent the same way
    model_arn = f"arn:aws:bedrock:us-east-1:123456789012:custom-model/{first.job_name}/abcdefabcdef"
    embedded.control.models[model_arn] = {"modelArn": model_arn, "modelName": first.job_name, "weights": None}
    trained = WorkflowState.model_validate({**state.model_dump(), "job": first.model_dump(), "training": {
        "status": "Completed", "failure_message": "", "model_arn": model_arn}})
    deployed, redeployed = tasks.create_deployment(trained), tasks.create_deployment(trained)
    assert redeployed == deployed
    assert sum(d["modelDeploymentName"] == deployed.name for d in embedded.control.deployments.values()) == 1


def _validation_set(stack, n: int) -> dict:
    """n validation records and their outcomes in S3, as the export writes them."""
    from mytrader.advisor.prompt import PromptInputs, user_prompt

    rng = random.Random(3)
    records, outcomes = [], []
    for i in range(n):
        inputs = PromptInputs(symbol="SYN", date="2015-01-02", price=50.0,
                              features={"rsi": 50.0, "macd_atr": 0.0, "bb_pct_b": 0.5, "atr_pct": 0.02, "vol": 0.3,
                                        "volume_z": 0.0, "ret_5": 0.0, "ret_20": round(rng.uniform(-0.1, 0.1), 4),
                                        "sma_gap": 0.0, "regime": "range", "vol_regime": "low_vol"},
                              strategy={"action": "HOLD", "confidence": 0.5}, sentiment={"score": 0.0, "n": 0},
                              position={"side": "flat"}, limits={"max_pct": 20.0, "allow_short": False})
        records.append({"messages": [{"role": "user", "content": [{"text": user_prompt(inputs)}]}]})
        outcomes.append({"decision_id": f"d{i}", "bar_ts": "2015-01-02T21:00:00+00:00", "label": "HOLD",
                         "forward_return": 0.0})
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key="datasets/v1/validation.jsonl",
                  Body="\n".join(json.dumps(r) for r in records).encode())
    s3.put_object(Bucket=stack.bucket, Key="datasets/v1/validation_outcomes.json", Body=json.dumps(outcomes).encode())
    return {"enough": True, "reason": "ok", "train_records": 300, "validation_records": n, "skipped": {},
            "label_balance": {}, "version": "v1", "prefix": "datasets/v1"}


def test_evaluation_waits_out_throttles_instead_of_counting_them_as_holds(stack, embedded):
    from mytrader.advisor.local_model import LocalModelWeights
    from mytrader.usecases.learn import FinetuneConfig, WorkflowState

    # Given a candidate deployment and a validation set of 40 prompts, and Bedrock throttling 20 % of the calls
    candidate = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/a1b2c3d4e5f6"
    embedded.runtime.weights_by_model[candidate] = LocalModelWeights()
    state = WorkflowState(config=FinetuneConfig(run_id="r1", eval_limit=40), dataset=_validation_set(stack, 40),
                          deployment={"deployment_arn": candidate, "name": "candidate"})
    injected = embedded.runtime.faults_injected
    embedded.runtime.configure(throttle_rate=0.2)
    try:
        # When the evaluation replays them through both models
        ev = _tasks(stack).evaluate(state)
    finally:
        embedded.runtime.configure(throttle_rate=0.0)
    # Then the throttles were retried: (almost) no answer fell back to a HOLD the model never gave
    assert embedded.runtime.faults_injected > injected
    assert ev.candidate.evaluated == ev.active.evaluated == 40
    assert ev.candidate.fallbacks + ev.active.fallbacks <= 2, ev
