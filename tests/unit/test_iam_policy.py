"""The embedded AWS's IAM evaluator (mytrader_tools/embedded/iam/policy.py): the decisions AWS documents for
identity and resource policies, on small hand-written policies."""
from __future__ import annotations

import pytest

from mytrader_tools.embedded.iam.policy import Check, Policy, Principal, evaluate

ACCOUNT = "123456789012"
ROLE = Principal(ACCOUNT, frozenset({f"arn:aws:iam::{ACCOUNT}:role/r"}))
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t-trade-log"


def policy(*statements: dict, resource_policy: bool = False) -> Policy:
    return Policy.from_document("p", {"Version": "2012-10-17", "Statement": list(statements)}, resource_policy)


def allowed(check: Check, *policies: Policy, resource: tuple[Policy, ...] = ()) -> bool:
    return evaluate(check, ROLE, policies, resource).allowed


def test_an_explicit_deny_wins_over_any_allow():
    """Given an Allow of dynamodb:* and a Deny of PutItem on the table, when PutItem is asked, then it is denied."""
    p = policy({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
               {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": TABLE})
    assert not allowed(Check("dynamodb:PutItem", TABLE), p)
    assert allowed(Check("dynamodb:GetItem", TABLE), p)


def test_nothing_allowed_is_denied():
    """Given no statement for the action, then the request is denied (implicit deny)."""
    decision = evaluate(Check("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q"), ROLE,
                        [policy({"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "*"})])
    assert not decision.allowed and "no statement allows" in decision.reason


def test_actions_match_case_insensitively_with_wildcards_and_resources_by_segment():
    """Given s3:GetObject* on a prefix, then GETOBJECT matches, and a wildcard in the region segment never spans the
    colon into the account."""
    p = policy({"Effect": "Allow", "Action": "s3:GetObject*", "Resource": "arn:aws:s3:::b/market-data/*"})
    assert allowed(Check("s3:GETOBJECT", "arn:aws:s3:::b/market-data/NVDA.csv"), p)
    assert not allowed(Check("s3:GetObject", "arn:aws:s3:::b/prompts/x"), p)
    q = policy({"Effect": "Allow", "Action": "sqs:*", "Resource": "arn:aws:sqs:us-*:1:q"})
    assert allowed(Check("sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q"), q)
    assert not allowed(Check("sqs:SendMessage", "arn:aws:sqs:us-east-1:2:q"), q)


def test_an_action_without_resource_types_is_granted_only_by_star():
    """Given SendTaskSuccess granted on a state machine ARN, when it is asked (its resource is "*"), then it is
    denied, as on AWS; granted on "*", it is allowed."""
    arn_only = policy({"Effect": "Allow", "Action": "states:SendTaskSuccess",
                       "Resource": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:sm"})
    assert not allowed(Check("states:SendTaskSuccess", "*"), arn_only)
    assert allowed(Check("states:SendTaskSuccess", "*"),
                   policy({"Effect": "Allow", "Action": "states:SendTaskSuccess", "Resource": "*"}))


def test_not_action_and_not_resource_exclude_what_they_name():
    """Given Allow NotAction dynamodb:DeleteItem and Allow s3:* NotResource one key, then those stay denied."""
    p = policy({"Effect": "Allow", "NotAction": "dynamodb:DeleteItem", "Resource": TABLE},
               {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::b/secret"})
    assert allowed(Check("dynamodb:PutItem", TABLE), p)
    assert not allowed(Check("dynamodb:DeleteItem", TABLE), p)
    assert allowed(Check("s3:GetObject", "arn:aws:s3:::b/other"), p)
    assert not allowed(Check("s3:GetObject", "arn:aws:s3:::b/secret"), p)


@pytest.mark.parametrize(("tags", "expected"), [({"aws:resourcetag/mytrader:stack": "t1"}, True),
                                                ({"aws:resourcetag/mytrader:stack": "t2"}, False), ({}, False)])
def test_a_resource_tag_condition_needs_the_tag(tags, expected):
    """Given InvokeModel on deployments tagged mytrader:stack=t1, then a deployment with another tag or none is
    denied."""
    p = policy({"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/mytrader:stack": "t1"}}})
    assert allowed(Check("bedrock:InvokeModel", "arn:aws:bedrock:us-east-1:1:custom-model-deployment/x", tags),
                   p) is expected


def test_if_exists_and_negated_operators_hold_when_the_key_is_absent():
    """Given StringEqualsIfExists and StringNotEquals on a key the request lacks, then both conditions hold."""
    p = policy({"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": "*", "Condition": {
        "StringEqualsIfExists": {"bedrock:InferenceProfileArn": "arn:aws:bedrock:us-east-1:1:inference-profile/x"},
        "StringNotEquals": {"aws:SourceAccount": "999999999999"}}})
    assert allowed(Check("bedrock:InvokeModel", "arn:aws:bedrock:us-east-1::foundation-model/m"), p)


def test_a_condition_key_the_embedded_aws_does_not_evaluate_denies():
    """Given an Allow conditioned on dynamodb:LeadingKeys (not evaluated here), then the request is denied and the
    reason names the key: a condition that cannot be judged never grants."""
    p = policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE,
                "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["a"]}}})
    decision = evaluate(Check("dynamodb:GetItem", TABLE), ROLE, [p])
    assert not decision.allowed and "dynamodb:LeadingKeys" in decision.reason


def test_a_bucket_policy_denying_plain_http_spares_tls_requests_and_names_no_grant():
    """Given CDK's enforce-SSL bucket policy (Deny s3:* when aws:SecureTransport is false), then a request carrying
    aws:SecureTransport=true is decided by the identity policy alone; with false, it is denied."""
    bucket = policy({"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
                     "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                     "Condition": {"Bool": {"aws:SecureTransport": "false"}}}, resource_policy=True)
    identity = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"})
    tls = Check("s3:GetObject", "arn:aws:s3:::b/k", {"aws:securetransport": "true"})
    plain = Check("s3:GetObject", "arn:aws:s3:::b/k", {"aws:securetransport": "false"})
    assert allowed(tls, identity, resource=(bucket,))
    assert not allowed(plain, identity, resource=(bucket,))
    assert not allowed(tls, resource=(bucket,))


def test_a_trust_policy_checks_the_service_and_the_source():
    """Given the Bedrock role's trust policy (service bedrock, aws:SourceAccount, ArnLike aws:SourceArn on jobs),
    then Bedrock assumes it for a job of this account only; Lambda may not."""
    trust = policy({"Effect": "Allow", "Principal": {"Service": "bedrock.amazonaws.com"}, "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {
                        "aws:SourceArn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-customization-job/*"}}},
                   resource_policy=True)
    role = f"arn:aws:iam::{ACCOUNT}:role/b"
    job = {"aws:sourceaccount": ACCOUNT,
           "aws:sourcearn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-customization-job/j"}
    bedrock = Principal(ACCOUNT, service="bedrock.amazonaws.com")
    lam = Principal(ACCOUNT, service="lambda.amazonaws.com")
    assert evaluate(Check("sts:AssumeRole", role, job), bedrock, [], [trust]).allowed
    assert not evaluate(Check("sts:AssumeRole", role, job), lam, [], [trust]).allowed
    other = {**job, "aws:sourcearn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:evaluation-job/j"}
    assert not evaluate(Check("sts:AssumeRole", role, other), bedrock, [], [trust]).allowed
