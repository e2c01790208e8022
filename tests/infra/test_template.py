"""Assertions on the synthesized template: the product a user deploys."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mytrader.stack_spec import EXECUTOR_TIMEOUT_S, FUNCTIONS, MAX_RECEIVE_COUNT
from tests.infra.conftest import ROOT, resources, synth


def by_name(template, kind, prop, value):
    return next(v for v in resources(template, kind).values() if v["Properties"].get(prop) == value)


def test_fifo_queue_and_its_fifo_dlq(template):
    q = by_name(template, "AWS::SQS::Queue", "QueueName", "mytrader-decisions.fifo")["Properties"]
    dlq_id = next(k for k, v in resources(template, "AWS::SQS::Queue").items()
                  if v["Properties"].get("QueueName") == "mytrader-decisions-dlq.fifo")
    assert q["FifoQueue"] is True and q["ContentBasedDeduplication"] is False
    assert q["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
                                  "maxReceiveCount": MAX_RECEIVE_COUNT}
    assert q["VisibilityTimeout"] >= 6 * EXECUTOR_TIMEOUT_S
    assert q["SqsManagedSseEnabled"] is True


def test_executor_event_source_reports_batch_item_failures(template):
    (esm,) = resources(template, "AWS::Lambda::EventSourceMapping").values()
    p = esm["Properties"]
    assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and p["BatchSize"] == 10
    assert p["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_trade_log_has_pitr_retain_ttl_and_gsis(template):
    t = next(v for v in resources(template, "AWS::DynamoDB::GlobalTable").values()
             if v["Properties"]["TableName"] == "mytrader-trade-log")
    assert t["DeletionPolicy"] == "Retain" and t["UpdateReplacePolicy"] == "Retain"
    replica = t["Properties"]["Replicas"][0]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert t["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert {g["IndexName"] for g in t["Properties"]["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}
    assert t["Properties"]["SSESpecification"]["SSEEnabled"] is True


def test_every_bucket_and_queue_denies_plain_http(template):
    for kind, pol in (("AWS::S3::BucketPolicy", "PolicyDocument"), ("AWS::SQS::QueuePolicy", "PolicyDocument")):
        policies = resources(template, kind)
        assert policies
        for p in policies.values():
            deny = [s for s in p["Properties"][pol]["Statement"] if s["Effect"] == "Deny"]
            assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in deny)
    assert len(resources(template, "AWS::S3::BucketPolicy")) == len(resources(template, "AWS::S3::Bucket"))
    for b in resources(template, "AWS::S3::Bucket").values():
        p = b["Properties"]
        assert p["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
        assert "BucketEncryption" in p


def test_schedule_time_zone_expression_and_dlq(template):
    # Given the stack: outcomes at 16:20 New York books the fills at the open, the decisions at 16:25 see the completed
    # bar (the SIP feed's 15 minutes have passed)
    s = by_name(template, "AWS::Scheduler::Schedule", "Name", "mytrader-decision-cycle")["Properties"]
    assert s["ScheduleExpression"] == "cron(25 16 ? * MON-FRI *)"
    o = by_name(template, "AWS::Scheduler::Schedule", "Name", "mytrader-outcomes")["Properties"]
    assert o["ScheduleExpression"] == "cron(20 16 ? * MON-FRI *)"
    assert o["ScheduleExpressionTimezone"] == "America/New_York"
    assert s["ScheduleExpressionTimezone"] == "America/New_York"
    dlq = s["Target"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert "FifoQueue" not in template["Resources"][dlq]["Properties"]  # Scheduler takes no FIFO DLQ
    assert json.loads(s["Target"]["Input"])["scheduled_time"] == "<aws.scheduler.scheduled-time>"


def test_both_scheduled_functions_send_failed_invocations_to_the_schedule_dlq(template):
    """Given the template, then the decision cycle and outcomes (invoked asynchronously by Scheduler) each have an
    on-failure destination, the schedule DLQ, and their roles may send to it (sqs:SendMessage only)."""
    configs = list(resources(template, "AWS::Lambda::EventInvokeConfig").values())
    functions = sorted(c["Properties"]["FunctionName"]["Ref"].rstrip("0123456789ABCDEF") for c in configs)
    assert functions == ["decisionsdecisioncyclefn", "executionoutcomesfn"]
    for cfg in configs:
        dest = cfg["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        assert dest["Fn::GetAtt"][0].startswith("decisionsscheduledlq")
        fn = cfg["Properties"]["FunctionName"]["Ref"]
        assert fn.startswith(("decisionsdecisioncyclefn", "executionoutcomesfn"))
        role = template["Resources"][fn]["Properties"]["Role"]["Fn::GetAtt"][0]
        statements = [st for res in resources(template, "AWS::IAM::Policy").values()
                      if {"Ref": role} in res["Properties"]["Roles"]
                      for st in res["Properties"]["PolicyDocument"]["Statement"]]
        (send,) = [st for st in statements if st.get("Sid") == "AsyncFailuresToDeadLetterQueue"]
        assert send["Action"] == "sqs:SendMessage" and send["Resource"] == dest


def test_state_machine_is_the_shared_definition_with_customization_and_promotion(template):
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    text = sm["Properties"]["DefinitionString"]
    shipped = (ROOT / "layers/core/mytrader/data/finetune.asl.json").read_text()
    assert text == shipped
    states = json.loads(text)["States"]
    assert {"Start fine-tuning job", "Deploy candidate model", "Evaluate candidate against active model",
            "Promote candidate", "Reject candidate", "Fine-tuning failed"} <= set(states)
    assert set(sm["Properties"]["DefinitionSubstitutions"]) == {"FinetuneTasksArn", "DatasetExportArn"}


def test_iam_has_no_star_action_and_star_resources_only_where_listed(template):
    allowed_star = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                    "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries",
                    "comprehend:BatchDetectSentiment", "comprehend:DetectSentiment",
                    # Step Functions execution logging: CloudWatch Logs delivery has no resource-level permissions
                    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                    "logs:DescribeLogGroups"}
    for pol in resources(template, "AWS::IAM::Policy").values():
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            assert "*" not in actions
            if "*" in res:
                assert set(actions) <= allowed_star, actions


def test_passrole_is_scoped_to_the_bedrock_role(template):
    role_id = next(k for k, v in resources(template, "AWS::IAM::Role").items()
                   if v["Properties"].get("RoleName") == "mytrader-bedrock-customization")
    passes = [st for pol in resources(template, "AWS::IAM::Policy").values()
              for st in pol["Properties"]["PolicyDocument"]["Statement"] if st["Action"] == "iam:PassRole"]
    assert passes and all(st["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]} for st in passes)


def test_every_function_traces_keeps_logs_and_uses_the_layer(template):
    fns = resources(template, "AWS::Lambda::Function")
    ours = {k: v for k, v in fns.items() if v["Properties"].get("FunctionName", "").startswith("mytrader-")}
    assert {v["Properties"]["FunctionName"] for v in ours.values()} == {s.name("mytrader") for s in FUNCTIONS.values()}
    (layer_id,) = resources(template, "AWS::Lambda::LayerVersion")
    groups = resources(template, "AWS::Logs::LogGroup")
    for fn in ours.values():
        p = fn["Properties"]
        assert p["TracingConfig"] == {"Mode": "Active"} and p["Runtime"] == "python3.13"
        assert p["Architectures"] == ["arm64"] and p["Layers"] == [{"Ref": layer_id}]
        assert p["LoggingConfig"]["LogFormat"] == "JSON"
        group = groups[p["LoggingConfig"]["LogGroup"]["Ref"]]
        assert group["Properties"]["RetentionInDays"] == 30
        assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(
            p["Environment"]["Variables"])


def test_alarms_and_dashboard(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 7
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    # every function's cold starts (Powertools' ColdStart metric, by function name) are on the dashboard
    assert body.count('\\"ColdStart\\"') == 5, body[:300]
    for service in ("decision-cycle", "executor", "outcomes", "dataset-export", "finetune-tasks"):
        assert f"mytrader-{service}" in body


def _alarm_on(template, metric: str) -> dict:
    (alarm,) = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
                if a["Properties"].get("MetricName") == metric]
    return alarm


@pytest.mark.parametrize("metric,service", [("UnknownDecision", "mytrader-executor"),
                                            ("EntriesFailedClosed", "mytrader-decision-cycle"),
                                            ("PositionsUnchecked", "mytrader-outcomes")])
def test_fail_safe_alarms_fire_on_the_first_occurrence(template, metric, service):
    # Given the synthesized stack / When a metric of the fail-safe issue is emitted once by its function
    alarm = _alarm_on(template, metric)
    # Then an alarm on that function's metric fires at >= 1 in one period and notifies the alarm topic
    assert alarm["Namespace"] == "MyTrader" and alarm["Statistic"] == "Sum"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["EvaluationPeriods"] == 1 and alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"]


def _universes(template) -> dict[str, list[str]]:
    env = {f["Properties"]["FunctionName"]: f["Properties"].get("Environment", {}).get("Variables", {})
           for f in resources(template, "AWS::Lambda::Function").values()}
    return {name: json.loads(v["UNIVERSE"]) for name, v in env.items() if "UNIVERSE" in v}


def test_executor_and_outcomes_get_the_universe_from_context(tmp_path, template):
    from mytrader_infra.settings import DeploySettings

    # Given the default context / Then the executor and the outcomes function (which builds the executor's
    # dependencies) get the universe the schedule decides on, as a JSON list
    default = DeploySettings().universe
    assert _universes(template) == {"mytrader-executor": default, "mytrader-outcomes": default}
    # When the universe is overridden on the command line (-c universe=NVDA,ORCL) / Then they get that one
    custom = synth(tmp_path, {"universe": "NVDA,ORCL"}, nag=False)
    assert _universes(custom) == {"mytrader-executor": ["NVDA", "ORCL"], "mytrader-outcomes": ["NVDA", "ORCL"]}


def test_broker_secret_value_is_generated_not_in_the_template(template):
    (secret,) = resources(template, "AWS::SecretsManager::Secret").values()
    assert "SecretString" not in secret["Properties"] and "GenerateSecretString" in secret["Properties"]
    assert secret["Properties"]["Name"] == "mytrader/broker/paper"


def test_every_acknowledgement_names_an_exact_finding_with_a_reason():
    from mytrader_infra.nag import ACKNOWLEDGEMENTS

    for finding, reason in ACKNOWLEDGEMENTS:
        rule = finding.split("::", 1)[1]
        assert rule.startswith("AwsSolutions-") and len(reason) >= 25
        if rule.startswith(("AwsSolutions-IAM4", "AwsSolutions-IAM5")):
            assert "[" in rule, f"blanket acknowledgement {finding}"  # granular findings only
    assert len({f for f, _ in ACKNOWLEDGEMENTS}) == len(ACKNOWLEDGEMENTS)


def test_an_unacknowledged_finding_fails_the_synth(tmp_path, monkeypatch):
    from mytrader_infra import nag

    monkeypatch.setattr(nag, "ACKNOWLEDGEMENTS", [a for a in nag.ACKNOWLEDGEMENTS if "SMG4" not in a[0]])
    with pytest.raises(Exception, match="SMG4"):
        synth(tmp_path)


def test_live_trading_needs_alpaca_and_gets_its_own_secret(tmp_path):
    with pytest.raises(Exception, match="live_trading=true needs broker=alpaca"):
        synth(tmp_path / "a", {"live_trading": "true"}, nag=False)
    t = synth(tmp_path / "b", {"live_trading": "true", "broker": "alpaca"}, nag=False)
    (secret,) = resources(t, "AWS::SecretsManager::Secret").values()
    assert secret["Properties"]["Name"] == "mytrader/broker/live"
    envs = [f["Properties"]["Environment"]["Variables"] for f in resources(t, "AWS::Lambda::Function").values()
            if "ALPACA_TRADING_URL" in f["Properties"].get("Environment", {}).get("Variables", {})]
    assert envs and all(e["ALPACA_TRADING_URL"] == "https://api.alpaca.markets" for e in envs)


def test_cfn_lint_passes(cdk_out):
    cfn_lint = str(Path(sys.executable).parent / "cfn-lint")
    res = subprocess.run([cfn_lint, "-i", "W3005", "--", str(cdk_out / "MyTrader.template.json")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
