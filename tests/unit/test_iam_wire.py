"""Requests read back into botocore's terms (iam/wire.py) and the authorisations they need (iam/actions.py): each
request is made by botocore's own serializer, so what is read back must be what was sent."""
from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.serialize import create_serializer

from mytrader_tools.embedded.iam import actions, wire

ACCOUNT = "123456789012"


def sent(service: str, operation: str, params: dict) -> wire.Call:
    """Given botocore's serialization of the operation, when the endpoint reads it back, then this Call."""
    model = wire.service_model(service)
    op = model.operation_model(operation)
    request = create_serializer(model.resolved_protocol).serialize_to_request(params, op)
    url = urlsplit(request["url_path"])
    body = request["body"]
    if isinstance(body, dict):  # query protocol: a form
        from urllib.parse import urlencode

        body = urlencode(body)
    body = body.encode() if isinstance(body, str) else (body or b"")
    qs = request["query_string"]
    pairs = parse_qsl(qs) if isinstance(qs, str) else [(k, v) for k, vs in qs.items()
                                                       for v in (vs if isinstance(vs, list) else [vs])]
    query = tuple(parse_qsl(url.query, keep_blank_values=True)) + tuple(pairs)
    headers = {k.lower(): str(v) for k, v in request["headers"].items()}
    signing = model.metadata.get("signingName") or model.metadata["endpointPrefix"]
    return wire.read(signing, wire.HttpRequest(request["method"], url.path, query, headers, body))


@pytest.mark.parametrize(("service", "operation", "params"), [
    ("dynamodb", "PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}, "n": {"N": "1"}},
                             "ConditionExpression": "attribute_not_exists(pk)"}),
    ("sqs", "SendMessage", {"QueueUrl": "http://127.0.0.1:1/123456789012/q.fifo", "MessageBody": "{}",
                            "MessageGroupId": "NVDA", "MessageDeduplicationId": "d"}),
    ("sns", "Publish", {"TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:t", "Message": "m", "Subject": "s",
                        "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}}),
    ("s3", "PutObject", {"Bucket": "b", "Key": "market-data/NVDA.csv", "Body": b"x,y", "ContentType": "text/csv"}),
    ("s3", "CopyObject", {"Bucket": "b", "Key": "k2", "CopySource": "b/k1"}),
    ("s3", "PutBucketVersioning", {"Bucket": "b", "VersioningConfiguration": {"Status": "Enabled"}}),
    ("s3", "DeleteObject", {"Bucket": "b", "Key": "market-data/NVDA.csv"}),  # not AbortMultipartUpload (same URI)
    ("s3", "AbortMultipartUpload", {"Bucket": "b", "Key": "k", "UploadId": "u1"}),
    ("s3", "GetObject", {"Bucket": "b", "Key": "k"}),
    ("lambda", "Invoke", {"FunctionName": "t1-executor", "Payload": b"{}", "InvocationType": "Event"}),
    ("bedrock-runtime", "Converse", {"modelId": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
                                     "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
    ("bedrock", "GetModelCustomizationJob", {
        "jobIdentifier": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-customization-job/abc"}),
    ("ssm", "GetParameter", {"Name": "/t1/mode"}),
])
def test_a_request_reads_back_as_the_operation_and_parameters_botocore_sent(service, operation, params):
    call = sent(service, operation, params)
    assert (call.service, call.operation.name, call.errors) == (service, operation, [])
    got = {k: call.params[k] for k in params}
    if "Payload" in params or "Body" in params:
        key = "Payload" if "Payload" in params else "Body"
        assert bytes(got.pop(key)) == params[key]
        params = {k: v for k, v in params.items() if k != key}
    assert got == params


def test_a_request_that_breaks_the_model_is_reported():
    """Given a PutItem without its required Item, then the Call carries botocore's validation error."""
    model = wire.service_model("dynamodb")
    req = wire.HttpRequest("POST", "/", (), {"x-amz-target": "DynamoDB_20120810.PutItem"},
                           json.dumps({"TableName": "t", "Bogus": 1}).encode())
    call = wire.read("dynamodb", req)
    assert model.operation_model("PutItem") == call.operation
    assert any("Item" in e and "Bogus" in e for e in call.errors)


def test_a_local_answer_is_walked_against_the_output_shape():
    """Given Converse answers, then an unknown member, a wrong type, a bad enum value or an unmodelled error code
    are reported, and a well-formed answer is not."""
    call = sent("bedrock-runtime", "Converse", {"modelId": "m", "messages": [{"role": "user",
                                                                              "content": [{"text": "hi"}]}]})
    good: dict = {"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 3}}
    assert wire.response_errors(call, 200, {}, json.dumps(good).encode()) == []
    bad = {**good, "stopReason": "done", "extra": 1, "usage": {**good["usage"], "inputTokens": "1"}}
    errors = wire.response_errors(call, 200, {}, json.dumps(bad).encode())
    assert len(errors) == 3, errors
    assert wire.response_errors(call, 429, {"x-amzn-ErrorType": "ThrottlingException"}, b"{}") == []
    assert wire.response_errors(call, 400, {"x-amzn-ErrorType": "Oops"}, b"{}")
    assert wire.response_errors(call, 400, {"x-amzn-ErrorType": "ThrottlingException"}, b"{}")  # the model: 429


class Look:
    region, account = "us-east-1", ACCOUNT

    def secret_arn(self, secret_id):
        return f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{secret_id}-AbCdEf"

    def bedrock_arn(self, kind, identifier):
        if identifier.startswith("arn:"):
            return identifier
        return f"arn:aws:bedrock:us-east-1:{ACCOUNT}:{kind}/{identifier}"

    def tags(self, arn):
        return {"mytrader:stack": "t1"} if "custom-model-deployment" in arn else None

    def model_id(self, model_id):
        return {"local.advisor-model-v1": "us.anthropic.claude-haiku-4-5-20251001-v1:0"}.get(model_id, model_id)


def checks(service: str, operation: str, params: dict) -> list[tuple[str, str]]:
    return [(c.action, c.resource) for c in actions.needs(service, operation, params, Look())]


def test_a_transaction_needs_each_items_action_on_its_table():
    """Given a TransactWriteItems with a Put, an Update and a ConditionCheck, then three item-level checks."""
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/"
    items = [{"Put": {"TableName": "a", "Item": {}}}, {"Update": {"TableName": "b", "Key": {}}},
             {"ConditionCheck": {"TableName": "a", "Key": {}}}]
    assert checks("dynamodb", "TransactWriteItems", {"TransactItems": items}) == [
        ("dynamodb:PutItem", table + "a"), ("dynamodb:UpdateItem", table + "b"),
        ("dynamodb:ConditionCheckItem", table + "a")]


def test_resources_come_from_the_request_by_the_actions_arn_formats():
    """Given requests of each kind, then the resource AWS authorises: an index over its table, the queue of a URL,
    the parameter without its leading slash, the object key, "*" where the action has no resource types."""
    base = f"us-east-1:{ACCOUNT}"
    assert checks("dynamodb", "Query", {"TableName": "t", "IndexName": "gsi1"}) == [
        ("dynamodb:Query", f"arn:aws:dynamodb:{base}:table/t/index/gsi1")]
    assert checks("sqs", "ReceiveMessage", {"QueueUrl": "http://h/123/q.fifo"}) == [
        ("sqs:ReceiveMessage", f"arn:aws:sqs:{base}:q.fifo")]
    assert checks("ssm", "GetParameter", {"Name": "/t1/mode"}) == [
        ("ssm:GetParameter", f"arn:aws:ssm:{base}:parameter/t1/mode")]
    assert checks("s3", "HeadObject", {"Bucket": "b", "Key": "k/x"}) == [("s3:GetObject", "arn:aws:s3:::b/k/x")]
    assert checks("comprehend", "BatchDetectSentiment", {"TextList": ["x"], "LanguageCode": "en"}) == [
        ("comprehend:BatchDetectSentiment", "*")]
    assert checks("stepfunctions", "SendTaskSuccess", {"taskToken": "t", "output": "{}"}) == [
        ("states:SendTaskSuccess", "*")]
    assert checks("lambda", "Invoke", {"FunctionName": "t1-outcomes"}) == [
        ("lambda:InvokeFunction", f"arn:aws:lambda:{base}:function:t1-outcomes")]


def test_converse_through_an_inference_profile_needs_the_profile_and_the_model_it_routes_to():
    """Given the local advisor model (standing for the deployed Claude profile), then InvokeModel on the profile, and
    on the foundation model with bedrock:InferenceProfileArn naming the profile."""
    got = actions.needs("bedrock-runtime", "Converse", {"modelId": "local.advisor-model-v1"}, Look())
    profile = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert [(c.action, c.resource) for c in got] == [
        ("bedrock:InvokeModel", profile),
        ("bedrock:InvokeModel", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0")]
    assert got[1].context["bedrock:inferenceprofilearn"] == profile


def test_a_customization_job_needs_the_models_and_passing_its_role():
    got = checks("bedrock", "CreateModelCustomizationJob", {
        "customModelName": "m1", "baseModelIdentifier": "amazon.nova-micro-v1:0:128k",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/t1-bedrock-customization"})
    assert [a for a, _ in got] == ["bedrock:CreateModelCustomizationJob"] * 2 + ["iam:PassRole"]
    assert got[1][1] == "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0:128k"
    assert got[2][1].endswith(":role/t1-bedrock-customization")
