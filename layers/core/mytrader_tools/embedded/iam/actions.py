"""The IAM authorisations a request needs: actions and resource ARNs, as AWS derives them.

By default the action is `<IAM prefix>:<operation>` and its resources are those of the action's resource types in
the knowledge base, each ARN made from the type's format with values read from the request (EXTRACT); where
several types fit, the most specific ARN is used (a table's index over the table). An action with no resource
types is authorised on "*". Operations whose IAM action differs, or that need several, are in SPECIAL:

  dynamodb TransactWriteItems / TransactGetItems .. one check per item (PutItem, UpdateItem, DeleteItem,
                                                     ConditionCheckItem, GetItem on the item's table)
  dynamodb BatchWriteItem / BatchGetItem ......... the batch action on every table named
  s3 ............................................. the IAM action of the operation (HeadObject -> GetObject, ...)
  bedrock-runtime Converse ....................... bedrock:InvokeModel on the model; through an inference
                                                   profile, also on the foundation model in this region with
                                                   bedrock:InferenceProfileArn set
  bedrock CreateModelCustomizationJob ............ on the new custom model and the base model, and iam:PassRole
                                                   on the job's role (iam:PassedToService bedrock.amazonaws.com)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mytrader_tools.embedded.iam import knowledge
from mytrader_tools.embedded.iam.policy import Check

IAM_PREFIX = {"stepfunctions": "states", "bedrock-runtime": "bedrock", "cloudwatch": "cloudwatch"}
UNKNOWN_ID = "00000000-new"  # stands for the id AWS gives a resource being created: only a wildcard matches it
# operations whose IAM action has another name: (service, operation) -> action name
ACTION_NAMES = {("lambda", "Invoke"): "InvokeFunction", ("lambda", "InvokeAsync"): "InvokeFunction",
                ("lambda", "InvokeWithResponseStream"): "InvokeFunction"}
S3_ACTIONS = {"HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket",
              "HeadBucket": "ListBucket", "ListObjectVersions": "ListBucketVersions", "ListBuckets": "ListAllMyBuckets",
              "PutBucketEncryption": "PutEncryptionConfiguration", "GetBucketEncryption": "GetEncryptionConfiguration",
              "DeleteBucketEncryption": "PutEncryptionConfiguration", "GetObjectAttributes": "GetObjectAttributes",
              "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject",
              "AbortMultipartUpload": "AbortMultipartUpload", "DeleteObjects": "DeleteObject"}
INFERENCE_GEOGRAPHIES = ("us", "eu", "apac", "global", "us-gov", "jp", "au", "ca")


class Underivable(ValueError):
    """The embedded AWS cannot tell which resource a request acts on: the request is denied, never guessed."""


class Lookups(Protocol):
    """What the endpoint knows beyond the request: full ARNs behind names, resource tags, model aliases."""
    region: str
    account: str

    def secret_arn(self, secret_id: str) -> str: ...

    def bedrock_arn(self, kind: str, identifier: str) -> str: ...

    def tags(self, arn: str) -> Mapping[str, str] | None: ...

    def model_id(self, model_id: str) -> str: ...


@dataclass
class Ctx:
    params: Mapping[str, Any]
    look: Lookups
    extra: dict[str, str] = field(default_factory=dict)

    def arn(self, prefix: str, resource_type: str, **values: str) -> str:
        return knowledge.format_arn(knowledge.arn_format(prefix, resource_type), "aws", self.look.region,
                                    self.look.account, **values)


def _name_from(value: str, marker: str) -> str:
    return value.split(marker, 1)[1] if value.startswith("arn:") and marker in value else value


def _table(c: Ctx) -> list[str] | None:
    name = c.params.get("TableName")
    return [c.arn("dynamodb", "table", TableName=_name_from(name, ":table/"))] if name else None


def _index(c: Ctx) -> list[str] | None:
    name, index = c.params.get("TableName"), c.params.get("IndexName")
    if not (name and index):
        return None
    return [c.arn("dynamodb", "index", TableName=_name_from(name, ":table/"), IndexName=index)]


def _queue(c: Ctx) -> list[str] | None:
    url, name = c.params.get("QueueUrl"), c.params.get("QueueName")
    name = url.rstrip("/").rsplit("/", 1)[1] if url else name
    return [c.arn("sqs", "queue", QueueName=name)] if name else None


def _topic(c: Ctx) -> list[str] | None:
    arn = c.params.get("TopicArn") or c.params.get("TargetArn")
    return [arn] if arn else None


def _parameter(c: Ctx) -> list[str] | None:
    names = c.params.get("Names") or ([c.params["Name"]] if c.params.get("Name") else None)
    if names is None and c.params.get("Path"):
        names = [c.params["Path"]]
    if not names:
        return None
    return [n if n.startswith("arn:") else c.arn("ssm", "parameter", ParameterNameWithoutLeadingSlash=n.lstrip("/"))
            for n in names]


def _secret(c: Ctx) -> list[str] | None:
    sid = c.params.get("SecretId")
    return [c.look.secret_arn(sid)] if sid else None


def _bucket(c: Ctx) -> list[str] | None:
    b = c.params.get("Bucket")
    return [c.arn("s3", "bucket", BucketName=b)] if b else None


def _object(c: Ctx) -> list[str] | None:
    b, k = c.params.get("Bucket"), c.params.get("Key")
    return [c.arn("s3", "object", BucketName=b, ObjectName=k)] if b and k else None


def _function(c: Ctx) -> list[str] | None:
    fn = c.params.get("FunctionName")
    if not fn:
        return None
    if not fn.startswith("arn:"):
        fn = c.arn("lambda", "function", FunctionName=fn)
    qualifier = c.params.get("Qualifier")
    return [f"{fn}:{qualifier}" if qualifier and fn.count(":") == 6 else fn]


def _state_machine(c: Ctx) -> list[str] | None:
    arn = c.params.get("stateMachineArn")
    return [arn] if arn else None


def _execution(c: Ctx) -> list[str] | None:
    arn = c.params.get("executionArn")
    return [arn] if arn else None


def _role(c: Ctx) -> list[str] | None:
    arn = c.params.get("RoleArn") or c.params.get("roleArn")
    return [arn] if arn else None


def _bedrock(kind: str, *params: str) -> Callable[[Ctx], list[str] | None]:
    def extract(c: Ctx) -> list[str] | None:
        ident = next((c.params[p] for p in params if c.params.get(p)), None)
        return [c.look.bedrock_arn(kind, ident)] if ident else None
    return extract


EXTRACT: dict[tuple[str, str], Callable[[Ctx], list[str] | None]] = {
    ("dynamodb", "table"): _table, ("dynamodb", "index"): _index, ("sqs", "queue"): _queue,
    ("sns", "topic"): _topic, ("ssm", "parameter"): _parameter, ("secretsmanager", "Secret"): _secret,
    ("s3", "bucket"): _bucket, ("s3", "object"): _object, ("lambda", "function"): _function,
    ("states", "statemachine"): _state_machine, ("states", "stateMachine"): _state_machine,
    ("states", "execution"): _execution, ("iam", "role"): _role,
    ("bedrock", "model-customization-job"): _bedrock("model-customization-job", "jobIdentifier"),
    ("bedrock", "custom-model"): _bedrock("custom-model", "modelIdentifier", "modelArn"),
    ("bedrock", "custom-model-deployment"): _bedrock("custom-model-deployment", "customModelDeploymentIdentifier"),
}


def needs(service: str, operation: str, params: Mapping[str, Any], look: Lookups) -> list[Check]:
    """Every authorisation the request needs (all must be allowed)."""
    c = Ctx(params, look)
    special = SPECIAL.get((service, operation))
    if special is not None:
        return special(c)
    prefix = IAM_PREFIX.get(service, service)
    renamed = S3_ACTIONS.get(operation) if service == "s3" else ACTION_NAMES.get((service, operation))
    name = renamed or operation
    return _default(f"{prefix}:{name}", c)


def _default(action: str, c: Ctx) -> list[Check]:
    if not knowledge.exists(action):
        raise Underivable(f"{action} is no IAM action in the knowledge base")
    types = knowledge.resource_types(action)
    if not types:
        return [Check(action, "*", _context(c, "*"))]
    found: list[list[str]] = []
    for rt in types:
        extractor = EXTRACT.get((action.split(":")[0], rt.name))
        arns = extractor(c) if extractor else None
        if arns:
            found.append(arns)
    if not found:
        raise Underivable(f"{action}: no resource of types {[t.name for t in types]} can be read from the request")
    arns = max(found, key=lambda a: len(a[0]))  # the most specific (an index over its table)
    return [Check(action, arn, _context(c, arn)) for arn in arns]


def _context(c: Ctx, arn: str) -> dict[str, str]:
    ctx = {"aws:securetransport": "true", **c.extra}  # SDKs talk TLS to AWS; the local endpoint is loopback HTTP
    tags = c.look.tags(arn) if arn != "*" else None
    for k, v in (tags or {}).items():
        ctx[f"aws:resourcetag/{k.lower()}"] = v
    return ctx


def _transact_write(c: Ctx) -> list[Check]:
    out: list[Check] = []
    ops = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
    for item in c.params.get("TransactItems") or []:
        for kind, body in item.items():
            out += _default(f"dynamodb:{ops[kind]}", Ctx(body, c.look))
    return out


def _transact_get(c: Ctx) -> list[Check]:
    return [ck for item in c.params.get("TransactItems") or [] for ck in _default("dynamodb:GetItem",
                                                                                 Ctx(item["Get"], c.look))]


def _batch(action: str) -> Callable[[Ctx], list[Check]]:
    def checks(c: Ctx) -> list[Check]:
        return [ck for table in c.params.get("RequestItems") or {} for ck in _default(action, Ctx({"TableName": table},
                                                                                                  c.look))]
    return checks


def _get_object(c: Ctx) -> list[Check]:
    return _default("s3:GetObjectVersion" if c.params.get("VersionId") else "s3:GetObject", c)


def _copy_object(c: Ctx) -> list[Check]:
    source = str(c.params.get("CopySource", "")).lstrip("/").split("?")[0]
    bucket, _, key = source.partition("/")
    return _default("s3:PutObject", c) + _default("s3:GetObject", Ctx({"Bucket": bucket, "Key": key}, c.look))


def _invoke_model(action: str) -> Callable[[Ctx], list[Check]]:
    def checks(c: Ctx) -> list[Check]:
        model = c.look.model_id(str(c.params.get("modelId", "")))
        if model.startswith("arn:"):
            return [Check(action, model, _context(c, model))]
        geography, _, base = model.partition(".")
        if geography in INFERENCE_GEOGRAPHIES and base:
            profile = c.arn("bedrock", "inference-profile", ResourceId=model)
            foundation = c.arn("bedrock", "foundation-model", ResourceId=base)
            routed = Ctx(c.params, c.look, {"bedrock:inferenceprofilearn": profile})
            return [Check(action, profile, _context(c, profile)),
                    Check(action, foundation, _context(routed, foundation))]
        arn = c.arn("bedrock", "foundation-model", ResourceId=model)
        return [Check(action, arn, _context(c, arn))]
    return checks


def _create_customization_job(c: Ctx) -> list[Check]:
    name = str(c.params.get("customModelName", ""))
    base = str(c.params.get("baseModelIdentifier", ""))
    new_model = c.arn("bedrock", "custom-model", ResourceId=f"{name}/{UNKNOWN_ID}")
    base_arn = base if base.startswith("arn:") else c.arn("bedrock", "foundation-model", ResourceId=base)
    action = "bedrock:CreateModelCustomizationJob"
    passed = Ctx(c.params, c.look, {"iam:passedtoservice": "bedrock.amazonaws.com"})
    role = str(c.params.get("roleArn", ""))
    return [Check(action, new_model, _context(c, new_model)), Check(action, base_arn, _context(c, base_arn)),
            Check("iam:PassRole", role, _context(passed, role))]


SPECIAL: dict[tuple[str, str], Callable[[Ctx], list[Check]]] = {
    ("dynamodb", "TransactWriteItems"): _transact_write, ("dynamodb", "TransactGetItems"): _transact_get,
    ("dynamodb", "BatchWriteItem"): _batch("dynamodb:BatchWriteItem"),
    ("dynamodb", "BatchGetItem"): _batch("dynamodb:BatchGetItem"),
    ("s3", "GetObject"): _get_object, ("s3", "CopyObject"): _copy_object,
    ("bedrock-runtime", "Converse"): _invoke_model("bedrock:InvokeModel"),
    ("bedrock-runtime", "InvokeModel"): _invoke_model("bedrock:InvokeModel"),
    ("bedrock-runtime", "ConverseStream"): _invoke_model("bedrock:InvokeModelWithResponseStream"),
    ("bedrock-runtime", "InvokeModelWithResponseStream"): _invoke_model("bedrock:InvokeModelWithResponseStream"),
    ("bedrock", "CreateModelCustomizationJob"): _create_customization_job,
}
