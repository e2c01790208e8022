"""The one intrinsic resolver (iam/resolver.py): CloudFormation's functions onto an embedded stack's names."""
from __future__ import annotations

import pytest

from mytrader_tools.embedded.iam.resolver import DeployedNames, Resolver, Unresolvable

TEMPLATE = {"Resources": {
    "tradelog": {"Type": "AWS::DynamoDB::GlobalTable", "Properties": {"TableName": "mytrader-trade-log"}},
    "queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "mytrader-decisions.fifo"}},
    "param": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": "/mytrader/mode"}},
    "widget": {"Type": "AWS::Some::Thing", "Properties": {}},
}}


@pytest.fixture
def resolver():
    """Given the template made with prefix "mytrader", resolved for an embedded stack with prefix "t7"."""
    return Resolver(TEMPLATE, DeployedNames(), "us-east-1", "123456789012", template_prefix="mytrader", prefix="t7")


def test_ref_getatt_join_and_pseudo_parameters(resolver):
    arn = {"Fn::Join": ["", [{"Fn::GetAtt": ["tradelog", "Arn"]}, "/index/*"]]}
    assert resolver.resolve(arn) == "arn:aws:dynamodb:us-east-1:123456789012:table/t7-trade-log/index/*"
    param = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":ssm:", {"Ref": "AWS::Region"}, ":",
                               {"Ref": "AWS::AccountId"}, ":parameter", {"Ref": "param"}]]}
    assert resolver.resolve(param) == "arn:aws:ssm:us-east-1:123456789012:parameter/t7/mode"


def test_sub_select_and_split(resolver):
    sub = {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${queue.QueueName}"}
    assert resolver.resolve(sub) == "arn:aws:sqs:us-east-1:123456789012:t7-decisions.fifo"
    with_vars = {"Fn::Sub": ["${Name}-x ${!Literal}", {"Name": {"Ref": "param"}}]}
    assert resolver.resolve(with_vars) == "/t7/mode-x ${Literal}"
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": "param"}]}]}) == "t7"


def test_the_deploy_prefix_is_renamed_where_it_is_a_name_part_only(resolver):
    """Given literals, then mytrader-... and :mytrader-... and a whole "mytrader" become t7, a tag key does not."""
    assert resolver.resolve("arn:aws:states:us-east-1:1:stateMachine:mytrader-finetune").endswith(":t7-finetune")
    assert resolver.resolve({"StringEquals": {"aws:ResourceTag/mytrader:stack": "mytrader"}}) == {
        "StringEquals": {"aws:ResourceTag/mytrader:stack": "t7"}}


@pytest.mark.parametrize("node", [{"Ref": "Nowhere"}, {"Fn::GetAtt": ["widget", "Arn"]},
                                  {"Fn::ImportValue": "x"}, {"Fn::GetAtt": ["tradelog", "NoSuchAttribute"]}])
def test_what_cannot_be_resolved_fails_the_run(resolver, node):
    with pytest.raises(Unresolvable):
        resolver.resolve(node)
