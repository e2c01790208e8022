"""The embedded AWS is no kinder than AWS: each handler runs as its own role with the synthesized template's
policies, and a grant taken away or a condition the request does not meet is denied with the service's own
AccessDenied answer (mytrader_tools/embedded/iam)."""
from __future__ import annotations

import copy
import itertools

import pytest
from botocore.exceptions import ClientError

from mytrader_tools.embedded.iam.policy import Policy
from mytrader_tools.embedded.iam.roles import Role
from mytrader_tools.embedded.iam.template import VARIANTS, load_template
from mytrader_tools.embedded.stack import FunctionFailed, LocalStack

_ids = itertools.count()
EXPORT = "mytrader-dataset-export"  # the function whose grant the proofs take away (template names)


def role_policies(template: dict, function_name: str) -> list[dict]:
    """The AWS::IAM::Policy documents attached to a function's role in the template."""
    fn = next(r for r in template["Resources"].values()
              if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["FunctionName"] == function_name)
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    return [r["Properties"]["PolicyDocument"] for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]]


def statements_granting(template: dict, function_name: str, action: str) -> list[dict]:
    out = []
    for doc in role_policies(template, function_name):
        for st in doc["Statement"]:
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if st["Effect"] == "Allow" and action in acts:
                out.append(st)
    assert out, f"the template grants {function_name} no {action}: the proof needs another grant"
    return out


def without(template: dict, function_name: str, action: str) -> dict:
    """The template with `action` taken out of every statement of the function's role (a statement left with no
    action is removed: IAM refuses an empty Action)."""
    t = copy.deepcopy(template)
    for st in statements_granting(t, function_name, action):
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        st["Action"] = [a for a in acts if a != action]
    for doc in role_policies(t, function_name):
        doc["Statement"] = [st for st in doc["Statement"] if st.get("Action") != []]
    return t


def with_condition(template: dict, function_name: str, action: str, condition: dict) -> dict:
    t = copy.deepcopy(template)
    for st in statements_granting(t, function_name, action):
        st["Condition"] = condition
    return t


def local_stack(embedded, template: dict | None = None) -> LocalStack:
    return LocalStack(embedded, prefix=f"iam{next(_ids)}", template=template).create()


@pytest.fixture(scope="module")
def template():
    return load_template(VARIANTS["local"])


def test_dataset_export_runs_with_its_role_as_synthesized(embedded, template):
    """Given the synthesized template, when the dataset export runs, then it succeeds (the control for the proofs
    below: only the changed grant makes the difference)."""
    assert "reason" in local_stack(embedded, template).invoke("dataset_export", {})


def test_a_grant_taken_away_denies_the_call_that_needed_it(embedded, template, iam_denials_expected):
    """Given the template without the dataset export's dynamodb:Query, when the export runs, then the handler fails
    on AccessDeniedException naming the action, as it would on AWS."""
    stack = local_stack(embedded, without(template, EXPORT, "dynamodb:Query"))
    with pytest.raises(FunctionFailed) as failed:
        stack.invoke("dataset_export", {})
    assert "AccessDeniedException" in str(failed.value) and "dynamodb:Query" in str(failed.value)
    assert iam_denials_expected.expected_denied["dataset_export"] >= 1


def test_a_condition_the_request_does_not_meet_denies_it(embedded, template, iam_denials_expected):
    """Given the dataset export's Query granted only on resources tagged for another stack, when the export runs,
    then the trade log (tagged otherwise) is denied."""
    other = {"StringEquals": {"aws:ResourceTag/mytrader:stack": "another-stack"}}
    stack = local_stack(embedded, with_condition(template, EXPORT, "dynamodb:Query", other))
    with pytest.raises(FunctionFailed, match="AccessDeniedException"):
        stack.invoke("dataset_export", {})


def test_a_condition_key_the_embedded_aws_cannot_judge_denies(embedded, template, iam_denials_expected):
    """Given the Query grant conditioned on dynamodb:LeadingKeys (not evaluated here), then the call is denied and
    the answer names the key."""
    leading = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["DECISION#"]}}
    stack = local_stack(embedded, with_condition(template, EXPORT, "dynamodb:Query", leading))
    with pytest.raises(FunctionFailed, match="dynamodb:LeadingKeys"):
        stack.invoke("dataset_export", {})


def test_each_function_has_its_own_role(stack, iam_denials_expected):
    """Given the decision cycle's credentials, then it reads its parameters but not the executor's idempotency
    table, which the executor's credentials do read."""
    cycle, executor = stack._sessions["decision_cycle"], stack._sessions["executor"]
    key = {"id": {"S": "nothing"}}
    table = stack.settings_env["IDEMPOTENCY_TABLE"]
    assert "Item" not in executor.client("dynamodb").get_item(TableName=table, Key=key)
    with pytest.raises(ClientError) as denied:
        cycle.client("dynamodb").get_item(TableName=table, Key=key)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert cycle.client("ssm").get_parameter(Name=stack.params["MODE"])["Parameter"]["Value"]


def test_a_denial_answers_in_each_services_own_shape(embedded, stack, iam_denials_expected):
    """Given a role with no policy, when it calls each kind of service, then the SDK sees that service's
    AccessDenied: JSON __type for JSON protocols (SQS's query-compatible code), XML for S3 and SNS."""
    from mytrader_tools.embedded.iam.gate import RoleSession

    trust = Policy.from_document("trust", {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"Service": "lambda.amazonaws.com"}}]}, True)
    nobody = Role("Nobody", f"arn:aws:iam::{embedded.gate.account}:role/nobody", trust, ())
    session = RoleSession(embedded.gate.assume(stack.client("sts"), nobody, "nobody", "lambda.amazonaws.com"),
                          embedded.region)
    calls = {
        ("dynamodb", "AccessDeniedException", 400): lambda c: c.get_item(
            TableName=stack.settings_env["TRADE_LOG_TABLE"], Key={"pk": {"S": "a"}, "sk": {"S": "b"}}),
        ("sqs", "AccessDenied", 400): lambda c: c.send_message(
            QueueUrl=stack.settings_env["DECISIONS_QUEUE_URL"], MessageBody="{}", MessageGroupId="g",
            MessageDeduplicationId="d"),
        ("s3", "AccessDenied", 403): lambda c: c.get_object(Bucket=stack.bucket, Key="market-data/NVDA.csv"),
        ("sns", "AuthorizationError", 403): lambda c: c.publish(TopicArn=stack.topic_arn, Message="m"),
        ("lambda", "AccessDeniedException", 403): lambda c: c.invoke(FunctionName=stack.function_name("outcomes")),
        ("bedrock-runtime", "AccessDeniedException", 403): lambda c: c.converse(
            modelId="local.advisor-model-v1", messages=[{"role": "user", "content": [{"text": "hi"}]}]),
        ("ssm", "AccessDeniedException", 400): lambda c: c.get_parameter(Name=stack.params["MODE"]),
    }
    for (service, code, status), call in calls.items():
        with pytest.raises(ClientError) as denied:
            call(session.client(service))
        err = denied.value.response
        assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == (code, status), service
        assert "is not authorized to perform" in err["Error"]["Message"], service


def test_a_missing_price_file_is_no_such_key_only_with_list_bucket(embedded, template, iam_denials_expected):
    """Given the decision cycle's grants (s3:GetObject under market-data/ and s3:ListBucket on the bucket), when it
    reads a price file that does not exist, then S3 says NoSuchKey (the source records a skip); given the template
    without the ListBucket grant, then the same read is AccessDenied, as S3 answers a caller that may not list."""
    cycle_name = "mytrader-decision-cycle"
    missing = {"Key": "market-data/NOPE.csv"}
    stack = local_stack(embedded, template)
    stack.client("s3").put_object(Bucket=stack.bucket, Key="market-data/NVDA.csv", Body=b"date,open\n")
    s3 = stack._sessions["decision_cycle"].client("s3")
    with pytest.raises(ClientError) as no_key:
        s3.get_object(Bucket=stack.bucket, **missing)
    assert no_key.value.response["Error"]["Code"] == "NoSuchKey"
    assert s3.get_object(Bucket=stack.bucket, Key="market-data/NVDA.csv")["Body"].read()  # present: read

    stack = local_stack(embedded, without(template, cycle_name, "s3:ListBucket"))
    stack.client("s3").put_object(Bucket=stack.bucket, Key="market-data/NVDA.csv", Body=b"date,open\n")
    s3 = stack._sessions["decision_cycle"].client("s3")
    with pytest.raises(ClientError) as denied:
        s3.get_object(Bucket=stack.bucket, **missing)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.get_object(Bucket=stack.bucket, Key="market-data/NVDA.csv")["Body"].read()  # present: still read
