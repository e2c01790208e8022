"""The audited deploy defects, asserted on the synthesized template where the embedded AWS cannot express them
(moto ignores KMS key policies and SNS topic policies) and where a grant must follow from a code path."""
from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest

from mytrader.stack_spec import INFERENCE_PROFILE_DESTINATIONS, SECRET_NOT_SET_METRIC
from tests.infra.conftest import ROOT, resources, synth

ACCOUNT, REGION = "123456789012", "us-east-1"
PROFILE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
GLOBAL_PROFILE = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
BASE = "anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture(scope="module")
def s3_template(tmp_path_factory) -> dict:
    """S3 market data and news, and a `global.` inference profile (nag runs in the default template's synth)."""
    return synth(tmp_path_factory.mktemp("s3"), {"market_data": "s3", "news_source": "s3", "model_id": GLOBAL_PROFILE},
                 nag=False)


def render(value: Any) -> str:
    """An ARN of the template as a string: pseudo parameters filled in, other references as {LogicalId[.Attr]}."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(render(p) for p in parts)
    if "Ref" in value:
        return {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION}.get(
            value["Ref"], "{" + value["Ref"] + "}")
    if "Fn::GetAtt" in value:
        return "{" + ".".join(value["Fn::GetAtt"]) + "}"
    raise AssertionError(f"unexpected intrinsic {value}")


def as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def statements(template: dict, function_name: str) -> list[dict]:
    """The identity-policy statements of the function's role, actions and resources rendered."""
    fn = next(f for f in resources(template, "AWS::Lambda::Function").values()
              if f["Properties"].get("FunctionName") == function_name)
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    out = []
    for pol in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in pol["Properties"]["Roles"]:
            for st in pol["Properties"]["PolicyDocument"]["Statement"]:
                out.append({**st, "Action": as_list(st["Action"]),
                            "Resource": [render(r) for r in as_list(st["Resource"])]})
    return out


def allowed(sts: list[dict], action: str, arn: str) -> list[dict]:
    """The Allow statements that name `action` on `arn` (wildcards as IAM matches them; conditions not judged)."""
    return [s for s in sts if s["Effect"] == "Allow" and any(fnmatchcase(action, a) for a in s["Action"])
            and any(fnmatchcase(arn, r) for r in s["Resource"])]


def actions(sts: list[dict]) -> set[str]:
    return {a for s in sts for a in s["Action"]}


# -- No alarm was ever delivered: the topic was under alias/aws/sns ---------------------------------------------------
def test_the_alarm_topic_key_lets_cloudwatch_alarms_publish(template):
    (topic,) = resources(template, "AWS::SNS::Topic").values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]  # a key of the stack, not alias/aws/sns
    key = template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    (grant,) = [s for s in key["KeyPolicy"]["Statement"]
                if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert grant["Effect"] == "Allow" and set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert grant["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    # and the topic lets CloudWatch publish, from this account only
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    (publish,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                  if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert publish["Action"] == "sns:Publish" and "aws:SourceAccount" in publish["Condition"]["StringEquals"]


# -- The fine-tuning workflow died at its first step: the task Lambdas read the broker secret ----------------------
def test_the_finetune_tasks_read_no_broker_secret_and_no_market_source(template, s3_template):
    for t in (template, s3_template):
        tasks = statements(t, "mytrader-finetune-tasks")
        assert not {a for a in actions(tasks) if a.startswith("secretsmanager:")}
        assert not allowed(tasks, "s3:GetObject", "{storagedatasets58EEB726.Arn}/market-data/NVDA.csv")


def test_the_export_may_read_exactly_the_market_source_it_is_configured_with(template, s3_template):
    # Alpaca market data (the default): the export reads the broker secret, which holds Alpaca's keys
    alpaca = statements(template, "mytrader-dataset-export")
    assert allowed(alpaca, "secretsmanager:GetSecretValue", "{storagebrokersecret544ABE2D}")
    assert not allowed(alpaca, "s3:GetObject", "{storagedatasets58EEB726.Arn}/market-data/NVDA.csv")
    # S3 market data: the export reads market-data/*, and no secret
    s3 = statements(s3_template, "mytrader-dataset-export")
    assert allowed(s3, "s3:GetObject", "{storagedatasets58EEB726.Arn}/market-data/NVDA.csv")
    assert not {a for a in actions(s3) if a.startswith("secretsmanager:")}


def test_the_decision_cycle_and_executor_read_the_secret_only_where_alpaca_is_used(template, s3_template):
    secret = "{storagebrokersecret544ABE2D}"
    assert allowed(statements(template, "mytrader-decision-cycle"), "secretsmanager:GetSecretValue", secret)
    for fn in ("mytrader-decision-cycle", "mytrader-executor", "mytrader-outcomes"):  # s3 data, paper broker
        assert not allowed(statements(s3_template, fn), "secretsmanager:GetSecretValue", secret), fn


# -- Manual approval could not work -------------------------------------------------------------------------------
def test_the_approval_request_may_write_its_parameter_and_no_task_token_grant_is_scoped(template):
    tasks = statements(template, "mytrader-finetune-tasks")
    assert allowed(tasks, "ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/mytrader/pending-approval")
    for pol in resources(template, "AWS::IAM::Policy").values():
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            if any(a.startswith("states:SendTask") for a in as_list(st["Action"])):
                assert st["Resource"] == "*"  # those actions take no resource (and the CLI sends them, not a task)


def test_an_approval_request_that_fails_is_a_failure_not_a_rejection():
    states = json.loads((ROOT / "layers/core/mytrader/data/finetune.asl.json").read_text())["States"]
    catches = {tuple(c["ErrorEquals"]): c["Next"] for c in states["Wait for manual approval"]["Catch"]}
    assert catches[("Rejected", "States.Timeout")] == "Reject candidate"
    assert catches[("States.ALL",)] == "Delete candidate after failure"
    assert states["Delete candidate after failure"]["Next"] == "Notify failure"
    evaluate = states["Evaluate candidate against active model"]["Catch"]
    assert [c["Next"] for c in evaluate] == ["Delete candidate after failure"]  # an unjudged candidate is deleted


# -- Least privilege ----------------------------------------------------------------------------------------------
def test_no_function_may_write_or_delete_market_data(template, s3_template):
    for t in (template, s3_template):
        for fn in ("mytrader-decision-cycle", "mytrader-executor", "mytrader-outcomes", "mytrader-dataset-export"):
            sts = statements(t, fn)
            for action in ("s3:PutObject", "s3:DeleteObject"):
                assert not allowed(sts, action, "{storagedatasets58EEB726.Arn}/market-data/NVDA.csv"), (fn, action)


def invoke_resources(t: dict, function_name: str) -> list[str]:
    return sorted({r for s in statements(t, function_name) if "bedrock:InvokeModel" in s["Action"]
                   for r in s["Resource"]})


def test_the_finetune_tasks_invoke_only_the_configured_model_and_this_stacks_deployments(template):
    profile_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{PROFILE}"
    regions = INFERENCE_PROFILE_DESTINATIONS[PROFILE][REGION]
    deployments = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/*"
    want = sorted({profile_arn, deployments, *(f"arn:aws:bedrock:{r}::foundation-model/{BASE}" for r in regions)})
    for fn in ("mytrader-finetune-tasks", "mytrader-decision-cycle"):
        assert invoke_resources(template, fn) == want, fn
        for s in statements(template, fn):
            if "bedrock:InvokeModel" in s["Action"] and s["Resource"] == [deployments]:
                assert s["Condition"] == {"StringEquals": {"aws:ResourceTag/mytrader:stack": "mytrader"}}
            elif "bedrock:InvokeModel" in s["Action"] and "foundation-model" in s["Resource"][0]:
                assert render(s["Condition"]["StringEquals"]["bedrock:InferenceProfileArn"]) == profile_arn


def test_a_global_profile_is_granted_its_region_less_foundation_model(s3_template):
    got = invoke_resources(s3_template, "mytrader-decision-cycle")
    assert f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{GLOBAL_PROFILE}" in got
    assert f"arn:aws:bedrock:::foundation-model/{BASE}" in got
    assert f"arn:aws:bedrock:{REGION}::foundation-model/{BASE}" in got
    assert not [r for r in got if "*::" in r or r.endswith("foundation-model/*")]


def test_a_profile_missing_from_the_pinned_table_is_refused_at_synth(tmp_path):
    with pytest.raises(Exception, match="INFERENCE_PROFILE_DESTINATIONS"):
        synth(tmp_path, {"model_id": "eu.anthropic.claude-haiku-4-5-20251001-v1:0"}, nag=False)


def test_a_tagged_deployment_may_be_created_and_tagged_for_this_stack_only(template):
    tasks = statements(template, "mytrader-finetune-tasks")
    deployment = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/abcdefabcdef"
    (tagging,) = allowed(tasks, "bedrock:TagResource", deployment)
    # (CreateCustomModelDeployment is authorised on the custom model alone: IAM's reference lists no deployment
    # resource for it, so a deployment ARN in its statement would be dead weight)
    assert not allowed(tasks, "bedrock:CreateCustomModelDeployment", deployment)
    assert tagging["Condition"] == {"StringEquals": {"aws:RequestTag/mytrader:stack": "mytrader"}}
    (create,) = allowed(tasks, "bedrock:CreateCustomModelDeployment",
                        f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/m/abcdefabcdef")
    assert create["Condition"] == {"StringEquals": {"aws:ResourceTag/mytrader:stack": "mytrader"}}


# -- Alarms -----------------------------------------------------------------------------------------------------------
def test_outcomes_errors_and_the_placeholder_secret_are_alarmed(template):
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    outcomes_fn = next(k for k, f in resources(template, "AWS::Lambda::Function").items()
                       if f["Properties"].get("FunctionName") == "mytrader-outcomes")
    (errors,) = [a for a in alarms if a.get("MetricName") == "Errors"
                 and a["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": outcomes_fn}}]]
    assert errors["AlarmActions"] and errors["Threshold"] == 0
    (not_set,) = [a for a in alarms if SECRET_NOT_SET_METRIC in json.dumps(a.get("Metrics", []))]
    services = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for m in not_set["Metrics"] if "MetricStat" in m}
    assert services == {"mytrader-decision-cycle", "mytrader-executor", "mytrader-outcomes"}
    assert (not_set["ComparisonOperator"], not_set["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert not_set["AlarmActions"]
