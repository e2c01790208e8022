"""Fine-tuning settings and the workflow's Bedrock requests (usecases/learn.py), without AWS."""
from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import pytest
from pydantic import ValidationError

from mytrader.adapters.tradelog import TradeLog
from mytrader.usecases.learn import (
    EvaluationUnreliable,
    FinetuneConfig,
    FinetuneTasks,
    WorkflowState,
    apply_defaults,
    request_token,
)
from tests.unit.fakes import ScriptedConverse


def test_the_default_hyperparameters_are_novas_three_within_their_documented_ranges():
    # Given the console's `{}` / When the workflow applies its defaults
    hp = apply_defaults({}).hyperparameters.api()
    # Then Nova gets exactly epochCount, learningRate and learningRateWarmupSteps (no batchSize), as strings
    assert hp == {"epochCount": "2", "learningRate": "0.00001", "learningRateWarmupSteps": "0"}


@pytest.mark.parametrize("hyperparameters", [
    {"batchSize": "1"}, {"epochCount": "0"}, {"epochCount": "6"}, {"epochCount": "1.5"},
    {"learningRate": "0.0000009"}, {"learningRate": "0.00011"}, {"learningRateWarmupSteps": "-1"},
    {"learningRateWarmupSteps": "101"}])
def test_settings_outside_novas_documented_ranges_are_refused_before_any_job(hyperparameters):
    with pytest.raises(ValidationError):
        apply_defaults({"hyperparameters": hyperparameters})


@pytest.mark.parametrize("given,sent", [
    ({"epochCount": 5, "learningRate": 1e-4, "learningRateWarmupSteps": 100},
     {"epochCount": "5", "learningRate": "0.0001", "learningRateWarmupSteps": "100"}),
    ({"epochCount": "1", "learningRate": "0.000001"},
     {"epochCount": "1", "learningRate": "0.000001", "learningRateWarmupSteps": "0"})])
def test_the_range_bounds_are_accepted_and_sent_as_plain_decimals(given, sent):
    assert apply_defaults({"hyperparameters": given}).hyperparameters.api() == sent


def test_a_non_nova_base_model_is_refused():
    with pytest.raises(ValidationError, match="base_model"):
        apply_defaults({"base_model": "meta.llama3-8b-instruct-v1:0"})


def test_the_config_survives_the_workflow_state_round_trip():
    cfg = apply_defaults({"hyperparameters": {"epochCount": "3"}})
    again = WorkflowState.model_validate({"config": json.loads(json.dumps(cfg.model_dump()))}).config
    assert again == cfg


class RecordingBedrock:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def create_model_customization_job(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("job", kw))
        return {"jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/abc"}

    def create_custom_model_deployment(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("deployment", kw))
        return {"customModelDeploymentArn": "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abc"}


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 -- boto3's keyword names
        return {"Body": BytesIO(self.objects[Key])}


class FakeSsm:
    def get_parameter(self, Name: str) -> dict[str, Any]:  # noqa: N803
        return {"Parameter": {"Value": "us.anthropic.claude-haiku-4-5-20251001-v1:0"}}


def tasks(runtime: Any = None, bedrock: Any = None, s3: Any = None) -> FinetuneTasks:
    fakes: dict[str, Any] = {"bedrock": bedrock or RecordingBedrock(), "runtime": runtime, "ssm": FakeSsm(),
                             "s3": s3 or FakeS3(), "sns": None}
    return FinetuneTasks(prefix="mytrader", tl=TradeLog.in_memory(), bucket="b", role_arn="arn:role", topic_arn="",
                         **fakes)


def state(run_id: str, **more: Any) -> WorkflowState:
    dataset = {"enough": True, "reason": "ok", "train_records": 300, "validation_records": 50, "skipped": {},
               "label_balance": {}, "version": "v1", "prefix": "datasets/v1", "train_uri": "s3://b/datasets/v1/t",
               "validation_uri": "s3://b/datasets/v1/v"}
    return WorkflowState.model_validate({"config": FinetuneConfig(run_id=run_id).model_dump(), "dataset": dataset,
                                         **more})


def test_create_calls_carry_a_client_request_token_derived_from_the_run_id():
    bedrock = RecordingBedrock()
    t = tasks(bedrock=bedrock)
    # Given the same run retried, and another run
    job, again, other = t.create_job(state("r1")), t.create_job(state("r1")), t.create_job(state("r2"))
    tokens = [kw["clientRequestToken"] for _, kw in bedrock.calls]
    # Then a retry sends the same token and another run another one, each valid for Bedrock
    assert tokens[0] == tokens[1] != tokens[2] and "r1" in tokens[0]
    assert bedrock.calls[0][1]["hyperParameters"] == {"epochCount": "2", "learningRate": "0.00001",
                                                      "learningRateWarmupSteps": "0"}
    trained = state("r1", job=job.model_dump(), training={"status": "Completed", "failure_message": "",
                                                          "model_arn": "arn:aws:bedrock:::custom-model/x"})
    t.create_deployment(trained)
    t.create_deployment(trained)
    (_, d1), (_, d2) = bedrock.calls[3:]
    assert d1["clientRequestToken"] == d2["clientRequestToken"] != tokens[0]
    assert again == job and other.job_name != job.job_name


@pytest.mark.parametrize("name", ["-a-b-", "x" * 300, "mytrader-ft-abc-20260101000000", "--"])
def test_request_tokens_match_bedrocks_pattern(name):
    import re

    assert re.fullmatch(r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,254}[a-zA-Z0-9])?", request_token(name))


def test_evaluation_fails_instead_of_judging_when_too_many_answers_fell_back():
    from mytrader.advisor.prompt import PromptInputs, user_prompt

    # Given a validation set, and a runtime whose every call is throttled even after the SDK's retries
    inputs = PromptInputs(symbol="SYN", date="2015-01-02", price=50.0, features={"rsi": 50.0}, strategy={},
                          sentiment={}, position={}, limits={})
    s3 = FakeS3()
    s3.objects["datasets/v1/validation.jsonl"] = json.dumps(
        {"messages": [{"role": "user", "content": [{"text": user_prompt(inputs)}]}]}).encode()
    s3.objects["datasets/v1/validation_outcomes.json"] = json.dumps(
        [{"decision_id": "d1", "bar_ts": "2015-01-02T21:00:00Z", "label": "BUY", "forward_return": 0.02}]).encode()
    t = tasks(runtime=ScriptedConverse(RuntimeError("ThrottlingException")), s3=s3)
    deployed = state("r1", deployment={"deployment_arn": "arn:aws:bedrock:us-east-1:1:custom-model-deployment/x",
                                       "name": "x"})
    # When the candidate is evaluated / Then the run fails, naming why, rather than scoring HOLDs nobody said
    with pytest.raises(EvaluationUnreliable, match="fell back"):
        t.evaluate(deployed)


class NoSecretAws:
    """An Aws whose every client is a placeholder, except the broker secret, which must not be read."""
    dynamodb = ssm = s3 = sns = bedrock = bedrock_runtime_retrying = object()

    @property
    def secretsmanager(self) -> Any:
        raise AssertionError("the fine-tuning tasks read the broker secret")


def test_the_finetune_tasks_are_built_without_the_broker_secret_or_a_market_source():
    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import finetune_tasks

    # Given the default deploy: Alpaca market data, news and broker (all behind the broker secret)
    settings = PipelineSettings(trade_log_table="t", market_data="alpaca", news_source="alpaca", broker="alpaca",
                                broker_secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:mytrader/broker/paper")
    # When the tasks' dependencies are built (every action, notify on failure included, starts here)
    built = finetune_tasks(settings, NoSecretAws())  # type: ignore[arg-type]
    # Then the secret was never read, and nothing holds a market source
    assert isinstance(built, FinetuneTasks) and not hasattr(built, "market")
