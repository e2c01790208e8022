"""The template's roles and resource policies, resolved onto the embedded stack.

A role's policies are exactly the template's: its inline `Policies`, every AWS::IAM::Policy and
AWS::IAM::ManagedPolicy that lists it in `Roles`, and its `ManagedPolicyArns` (AWS managed policies are known by
their documents in MANAGED; an unknown one fails the run). Resource policies: S3 bucket policies (on the bucket
and its objects), SQS queue policies, SNS topic policies.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mytrader_tools.embedded.iam.policy import Policy
from mytrader_tools.embedded.iam.resolver import Resolver, Unresolvable

# AWS managed policies the template attaches, by name: their documents as AWS publishes them.
MANAGED: dict[str, dict[str, Any]] = {
    "service-role/AWSLambdaBasicExecutionRole": {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": "*"}]},
}


@dataclass(frozen=True)
class Role:
    logical_id: str
    arn: str
    trust: Policy
    policies: tuple[Policy, ...]
    policy_logical_ids: tuple[str, ...] = ()  # the AWS::IAM::Policy resources attached


@dataclass
class StackIam:
    """What one embedded stack's principals may do: roles by ARN, each function's and state machine's role."""
    roles: dict[str, Role] = field(default_factory=dict)  # role ARN -> role
    functions: dict[str, Role] = field(default_factory=dict)  # function name -> its role
    state_machines: dict[str, Role] = field(default_factory=dict)  # state machine ARN -> its role
    resource_policies: list[tuple[str, Policy]] = field(default_factory=list)  # (resource ARN, policy)


def stack_iam(template: Mapping[str, Any], resolver: Resolver) -> StackIam:
    resources = template.get("Resources", {})
    attached: dict[str, list[tuple[str, Policy]]] = {}
    for lid, res in resources.items():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            props = res["Properties"]
            policy = Policy.from_document(lid, resolver.resolve(props["PolicyDocument"]))
            for role_ref in props.get("Roles", []):
                attached.setdefault(_ref_target(role_ref), []).append((lid, policy))
            if props.get("Users") or props.get("Groups"):
                raise Unresolvable(f"{lid}: policies on users or groups are not emulated")
    out = StackIam()
    for lid, res in resources.items():
        if res["Type"] == "AWS::IAM::Role":
            role = _role(lid, res["Properties"], attached.get(lid, []), resolver)
            out.roles[role.arn] = role
    by_logical = {r.logical_id: r for r in out.roles.values()}
    for lid, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Lambda::Function":
            out.functions[resolver.ref(lid)] = by_logical[_ref_target(props["Role"])]
        elif res["Type"] == "AWS::StepFunctions::StateMachine":
            out.state_machines[resolver.ref(lid)] = by_logical[_ref_target(props["RoleArn"])]
        else:
            out.resource_policies.extend(_resource_policies(lid, res, resolver))
    return out


def _ref_target(node: Any) -> str:
    """The logical id a Ref or a GetAtt names (roles are attached by Ref, functions name theirs by GetAtt)."""
    if isinstance(node, dict) and "Ref" in node:
        return str(node["Ref"])
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        return str(node["Fn::GetAtt"][0])
    raise Unresolvable(f"a role is named by {node!r}, neither Ref nor Fn::GetAtt of a role in the template")


def _role(lid: str, props: Mapping[str, Any], attached: list[tuple[str, Policy]], resolver: Resolver) -> Role:
    policies = [Policy.from_document(f"{lid}/{p['PolicyName']}", resolver.resolve(p["PolicyDocument"]))
                for p in props.get("Policies", [])]
    for arn in resolver.resolve(props.get("ManagedPolicyArns", [])):
        name = arn.split(":policy/", 1)[-1]
        if not arn.startswith("arn:aws:iam::aws:policy/") or name not in MANAGED:
            raise Unresolvable(f"{lid}: managed policy {arn} is not known to the embedded AWS (roles.MANAGED)")
        policies.append(Policy.from_document(name, MANAGED[name]))
    policies.extend(p for _, p in attached)
    trust = Policy.from_document(f"{lid}/trust", resolver.resolve(props["AssumeRolePolicyDocument"]),
                                 resource_policy=True)
    return Role(lid, resolver.get_att(lid, "Arn"), trust, tuple(policies), tuple(name for name, _ in attached))


def _resource_policies(lid: str, res: Mapping[str, Any], resolver: Resolver) -> list[tuple[str, Policy]]:
    kind, props = res["Type"], res.get("Properties", {})
    if kind == "AWS::S3::BucketPolicy":
        doc = Policy.from_document(lid, resolver.resolve(props["PolicyDocument"]), resource_policy=True)
        return [(f"arn:aws:s3:::{resolver.resolve(props['Bucket'])}", doc)]
    if kind == "AWS::SQS::QueuePolicy":
        doc = Policy.from_document(lid, resolver.resolve(props["PolicyDocument"]), resource_policy=True)
        return [(resolver.get_att(_ref_target(q), "Arn"), doc) for q in props["Queues"]]
    if kind == "AWS::SNS::TopicPolicy":
        doc = Policy.from_document(lid, resolver.resolve(props["PolicyDocument"]), resource_policy=True)
        return [(resolver.resolve(t), doc) for t in props["Topics"]]
    if kind in ("AWS::Lambda::Permission", "AWS::SecretsManager::ResourcePolicy", "AWS::KMS::Key"):
        # resource policies of principals the embedded AWS does not run (Scheduler, EventBridge) or on keys it
        # does not emulate: recorded here, not evaluated
        return []
    return []
