"""Drift: what the embedded AWS creates, read back with describe/get calls, equals the synthesized template."""
from __future__ import annotations

import json

import pytest

from mytrader_tools.embedded.endpoint import EmbeddedAws
from mytrader_tools.embedded.stack import LocalStack
from tests.infra.conftest import resources


@pytest.fixture(scope="module")
def local_stack():
    with EmbeddedAws() as aws:
        yield LocalStack(aws).create()


def keys(schema) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def test_tables_match(template, local_stack):
    ddb = local_stack.client("dynamodb")
    for t in resources(template, "AWS::DynamoDB::GlobalTable").values():
        p = t["Properties"]
        desc = ddb.describe_table(TableName=p["TableName"])["Table"]
        assert keys(desc["KeySchema"]) == keys(p["KeySchema"])
        want_gsi = {g["IndexName"]: keys(g["KeySchema"]) for g in p.get("GlobalSecondaryIndexes", [])}
        got_gsi = {g["IndexName"]: keys(g["KeySchema"]) for g in desc.get("GlobalSecondaryIndexes", [])}
        assert got_gsi == want_gsi
        ttl = ddb.describe_time_to_live(TableName=p["TableName"])["TimeToLiveDescription"]
        assert ttl.get("AttributeName") == p.get("TimeToLiveSpecification", {}).get("AttributeName")
        assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_queues_match(template, local_stack):
    sqs = local_stack.client("sqs")
    by_arn_name = {}
    for q in resources(template, "AWS::SQS::Queue").values():
        p = q["Properties"]
        url = sqs.get_queue_url(QueueName=p["QueueName"])["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        by_arn_name[attrs["QueueArn"]] = p["QueueName"]
        assert (attrs.get("FifoQueue") == "true") == bool(p.get("FifoQueue"))
        assert int(attrs["VisibilityTimeout"]) == p.get("VisibilityTimeout", 30)
        assert int(attrs["MessageRetentionPeriod"]) == p["MessageRetentionPeriod"]
        if "RedrivePolicy" in p:
            redrive = json.loads(attrs["RedrivePolicy"])
            assert int(redrive["maxReceiveCount"]) == p["RedrivePolicy"]["maxReceiveCount"]
            assert by_arn_name.get(redrive["deadLetterTargetArn"], "").startswith("mytrader-decisions-dlq") or \
                redrive["deadLetterTargetArn"].endswith("mytrader-decisions-dlq.fifo")


def test_parameters_match(template, local_stack):
    ssm = local_stack.client("ssm")
    deployed = {p["Properties"]["Name"]: p["Properties"]["Value"]
                for p in resources(template, "AWS::SSM::Parameter").values()}
    local = {name: ssm.get_parameter(Name=name)["Parameter"]["Value"] for name in deployed}
    assert set(local) == set(deployed)
    assert local["/mytrader/mode"] == deployed["/mytrader/mode"] and local["/mytrader/kill-switch"] == "off"


def test_state_machine_definition_matches(template, local_stack):
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    got = local_stack.client("stepfunctions").describe_state_machine(stateMachineArn=local_stack.state_machine_arn)
    want = sm["Properties"]["DefinitionString"]
    for name in sm["Properties"]["DefinitionSubstitutions"]:
        key = {"FinetuneTasksArn": "finetune_tasks", "DatasetExportArn": "dataset_export"}[name]
        want = want.replace("${" + name + "}", local_stack.function_arn(key))
    assert json.loads(got["definition"]) == json.loads(want)
    assert sm["Properties"]["StateMachineName"] == got["name"]
