"""The one resolver of CloudFormation intrinsics onto the embedded stack: Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
Fn::Select, Fn::Split and the pseudo parameters AWS::Region, AWS::AccountId, AWS::Partition, AWS::URLSuffix,
AWS::StackName. Anything else (another intrinsic, a resource the embedded stack cannot name, a template
parameter) raises Unresolvable: the run fails rather than guess a policy.

Resources are named by a `Names` (the embedded stack): for a logical id and its template resource, the value of
Ref and of each attribute. Literal strings in the template carry the deploy prefix (cdk.json's "prefix"): where it
stands as a name part (`mytrader-trade-log`, `:mytrader-finetune`, `/mytrader/`, a whole tag value) it becomes the
embedded stack's prefix.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Unresolvable(ValueError):
    """An intrinsic the embedded stack cannot resolve: the synthesized policy cannot be reproduced."""


@dataclass(frozen=True)
class ResourceValues:
    ref: str | None = None
    attrs: Mapping[str, str] = field(default_factory=dict)


class Names(Protocol):
    def values(self, logical_id: str, resource: Mapping[str, Any], resolver: Resolver) -> ResourceValues: ...


@dataclass
class Resolver:
    template: Mapping[str, Any]
    names: Names
    region: str
    account: str
    template_prefix: str
    prefix: str
    partition: str = "aws"
    stack_name: str = "MyTrader"

    def __post_init__(self) -> None:
        p = re.escape(self.template_prefix)
        self._prefix_part = re.compile(rf"(?:(?<=[:/])|^){p}(?=[-/.]|$)")
        self._cache: dict[str, ResourceValues] = {}

    def resolve(self, node: Any) -> Any:
        """A template value with every intrinsic replaced (lists and dicts walked)."""
        if isinstance(node, str):
            return self.rename(node)
        if isinstance(node, list):
            return [self.resolve(n) for n in node]
        if isinstance(node, dict):
            if len(node) == 1:
                (key, arg), = node.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self._intrinsic(key, arg)
            return {k: self.resolve(v) for k, v in node.items()}
        return node

    def rename(self, literal: str) -> str:
        """The deploy prefix where it stands as a name part, replaced by the embedded stack's."""
        if self.template_prefix == self.prefix:
            return literal
        return self._prefix_part.sub(self.prefix, literal)

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical, attr)
        if key == "Fn::Join":
            sep, items = arg
            parts = self.resolve(items)
            if not all(isinstance(p, str) for p in parts):
                raise Unresolvable(f"Fn::Join of non-strings: {parts!r}")
            return sep.join(parts)
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            sep, text = arg
            return self.resolve(text).split(sep)
        if key == "Fn::Sub":
            return self._sub(arg)
        raise Unresolvable(f"{key} is not resolved by the embedded stack: {arg!r}")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve(v) for k, v in variables.items()}

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attr = name.split(".", 1)
                return self.get_att(logical, attr)
            return self.ref(name)
        return self.rename(re.sub(r"\$\{([^}]+)\}", one, text))

    def ref(self, name: str) -> str:
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::Partition": self.partition,
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": self.stack_name}
        if name in pseudo:
            return pseudo[name]
        ref = self._values(name).ref
        if ref is None:
            raise Unresolvable(f"Ref {name}: the embedded stack has no value for it")
        return ref

    def get_att(self, logical: str, attr: str) -> str:
        value = self._values(logical).attrs.get(attr)
        if value is None:
            raise Unresolvable(f"Fn::GetAtt {logical}.{attr}: the embedded stack has no value for it")
        return value

    def _values(self, logical: str) -> ResourceValues:
        if logical not in self._cache:
            resource = self.template.get("Resources", {}).get(logical)
            if resource is None:
                raise Unresolvable(f"{logical} is neither a resource of the template nor a pseudo parameter")
            self._cache[logical] = self.names.values(logical, resource, self)
        return self._cache[logical]


def physical_values(logical_id: str, resource: Mapping[str, Any], resolver: Resolver) -> ResourceValues:
    """Ref and attributes of a resource as CloudFormation gives them, from its physical name (renamed); a resource
    without one is named after its logical id (as the embedded AWS names what it does not create)."""
    kind, props = resource["Type"], resource.get("Properties", {})
    region, account = resolver.region, resolver.account

    def named(prop: str) -> str:
        return resolver.rename(props[prop]) if prop in props else f"{resolver.prefix}-{logical_id}".lower()[:63]
    if kind in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{named('TableName')}"
        return ResourceValues(named("TableName"), {"Arn": arn, "StreamArn": f"{arn}/stream/*"})
    if kind == "AWS::SQS::Queue":
        name = named("QueueName")
        url = f"https://sqs.{region}.amazonaws.com/{account}/{name}"
        return ResourceValues(url, {"Arn": f"arn:aws:sqs:{region}:{account}:{name}", "QueueName": name,
                                    "QueueUrl": url})
    if kind == "AWS::SNS::Topic":
        arn = f"arn:aws:sns:{region}:{account}:{named('TopicName')}"
        return ResourceValues(arn, {"TopicArn": arn, "TopicName": named("TopicName")})
    if kind == "AWS::SSM::Parameter":
        return ResourceValues(named("Name"))
    if kind == "AWS::SecretsManager::Secret":
        arn = f"arn:aws:secretsmanager:{region}:{account}:secret:{named('Name')}-AbCdEf"
        return ResourceValues(arn, {"Id": arn})
    if kind == "AWS::S3::Bucket":
        name = named("BucketName")
        return ResourceValues(name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"})
    if kind == "AWS::Lambda::Function":
        return ResourceValues(named("FunctionName"),
                              {"Arn": f"arn:aws:lambda:{region}:{account}:function:{named('FunctionName')}"})
    if kind == "AWS::IAM::Role":
        return ResourceValues(named("RoleName"), {"Arn": f"arn:aws:iam::{account}:role/{named('RoleName')}",
                                                  "RoleId": named("RoleName")})
    if kind == "AWS::StepFunctions::StateMachine":
        arn = f"arn:aws:states:{region}:{account}:stateMachine:{named('StateMachineName')}"
        return ResourceValues(arn, {"Arn": arn, "Name": named("StateMachineName")})
    if kind == "AWS::Logs::LogGroup":
        return ResourceValues(named("LogGroupName"),
                              {"Arn": f"arn:aws:logs:{region}:{account}:log-group:{named('LogGroupName')}:*"})
    if kind == "AWS::KMS::Key":  # the embedded AWS creates no keys (moto's SQS, SNS and S3 do not encrypt)
        key_id = named("KeyId")
        return ResourceValues(key_id, {"Arn": f"arn:aws:kms:{region}:{account}:key/{key_id}", "KeyId": key_id})
    path = resource.get("Metadata", {}).get("aws:cdk:path", "no path")
    raise Unresolvable(f"{logical_id} ({kind}, {path}): the embedded AWS does not name it")


@dataclass
class DeployedNames:
    """Names as deployed (the template's own, no embedded stack): for checking the template itself."""
    def values(self, logical_id: str, resource: Mapping[str, Any], resolver: Resolver) -> ResourceValues:
        return physical_values(logical_id, resource, resolver)
