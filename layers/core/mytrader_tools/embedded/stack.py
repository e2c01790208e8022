"""Creates the stack's resources on the embedded AWS from the same spec the CDK app reads
(mytrader.stack_spec), and registers the project's handlers with the env vars each function gets.

Each function runs as its own role: the synthesized template's (iam/template.py, cached by its inputs), its
policies resolved onto this stack's names (EmbeddedNames, iam/resolver.py), its STS credentials issued by the
embedded AWS and handed to the handler as a boto3 Session (the bridge makes it the ambient session of every
`Aws()` the handler builds). The endpoint's gate then decides every call by those policies."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from mytrader.config import DEFAULT_MODEL_ID, LOCAL_MODEL_ID
from mytrader.stack_spec import (
    DEFAULT_PREFIX,
    FUNCTIONS,
    PARAMETER_DEFAULTS,
    QUEUES,
    STATE_MACHINE_NAME,
    TABLES,
    QueueSpec,
    parameter_names,
)
from mytrader_tools.embedded.faults import FaultPlan
from mytrader_tools.embedded.iam.gate import RoleSession
from mytrader_tools.embedded.iam.policy import Policy
from mytrader_tools.embedded.iam.resolver import Resolver, ResourceValues, Unresolvable, physical_values
from mytrader_tools.embedded.iam.roles import StackIam, stack_iam
from mytrader_tools.embedded.iam.template import load_template

if TYPE_CHECKING:
    from mytrader_tools.embedded.endpoint import EmbeddedAws

ACCOUNT = "123456789012"  # moto's default account
DRIVER_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10})
REPO = Path(__file__).resolve().parents[4]
LAMBDAS = REPO / "lambdas"
STATE_MACHINE_FILE = REPO / "layers" / "core" / "mytrader" / "data" / "finetune.asl.json"
# The symbols the executor may open positions in (env UNIVERSE): the demo's and the tests'. A run trading others
# passes its own, e.g. create(extra_env={"UNIVERSE": json.dumps(symbols)}).
DEFAULT_UNIVERSE = ("NVDA", "ORCL", "AAPL", "MSFT", "AMZN", "GOOGL")


@dataclass
class LocalStack:
    embedded: EmbeddedAws
    prefix: str = DEFAULT_PREFIX
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    bucket: str = ""
    topic_arn: str = ""
    state_machine_arn: str = ""
    settings_env: dict[str, str] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    template: dict[str, Any] | None = field(default=None, repr=False)  # None: the synthesized one (cached)
    secret_arn: str = ""
    iam: StackIam | None = field(default=None, repr=False)
    _clients: dict = field(default_factory=dict, repr=False)
    _sessions: dict[str, Any] = field(default_factory=dict, repr=False)  # function key -> its role's session

    @property
    def params(self) -> dict[str, str]:
        return parameter_names(self.prefix)

    def client(self, name: str):
        if name not in self._clients:
            self._clients[name] = boto3.client(name, region_name=self.embedded.region, config=DRIVER_CONFIG)
        return self._clients[name]

    def function_client(self, key: str, name: str):
        """A client with a function's role, for what AWS does as that function (the SQS event source mapping polls
        the queue with the executor's role); the administrator's client when IAM is off."""
        session = self._sessions.get(key)
        if session is None:
            return self.client(name)
        cached = f"{key}:{name}"
        if cached not in self._clients:
            self._clients[cached] = session.client(name, config=DRIVER_CONFIG)
        return self._clients[cached]

    def create(self, extra_env: dict[str, str] | None = None, active_model: str = LOCAL_MODEL_ID,
               faults: FaultPlan | None = None) -> LocalStack:
        """`faults` (or FAULT_* keys in extra_env, taken out of it) wrap the functions' adapters (faults.py)."""
        extra_env = dict(extra_env or {})
        from_env = FaultPlan.pop_from_env(extra_env)
        self.faults = faults if faults is not None else from_env
        ddb, sqs, s3, ssm = self.client("dynamodb"), self.client("sqs"), self.client("s3"), self.client("ssm")
        for t in TABLES:
            create_table(ddb, t, self.prefix)
        for q in QUEUES:
            self._create_queue(sqs, q)
        self.bucket = f"{self.prefix}-datasets-local"
        s3.create_bucket(Bucket=self.bucket)
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(Bucket=self.bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        names = self.params
        values = {**PARAMETER_DEFAULTS, "ACTIVE_MODEL": active_model, "REPLAY_CLOCK": "2000-01-01T00:00:00Z"}
        for key, name in names.items():
            ssm.put_parameter(Name=name, Value=values[key], Type="String", Overwrite=True)
        secret = self.client("secretsmanager").create_secret(
            Name=f"{self.prefix}/broker", SecretString=json.dumps({"key_id": "local", "secret_key": "local"}))
        self.secret_arn = secret["ARN"]
        self.topic_arn = self.client("sns").create_topic(Name=f"{self.prefix}-alarms")["TopicArn"]
        from mytrader.stack_spec import DECISIONS_DLQ, DECISIONS_QUEUE, IDEMPOTENCY, SENTIMENT_CACHE, TRADE_LOG

        self.settings_env = {
            "TRADE_LOG_TABLE": TRADE_LOG.name(self.prefix), "IDEMPOTENCY_TABLE": IDEMPOTENCY.name(self.prefix),
            "SENTIMENT_TABLE": SENTIMENT_CACHE.name(self.prefix),
            "DECISIONS_QUEUE_URL": self.queue_urls[DECISIONS_QUEUE.suffix],
            "DECISIONS_DLQ_URL": self.queue_urls[DECISIONS_DLQ.suffix], "DATA_BUCKET": self.bucket,
            "PARAM_PREFIX": self.prefix, "CLOCK_SOURCE": "replay", "BROKER": "paper", "MARKET_DATA": "s3",
            "NEWS_SOURCE": "none", "SENTIMENT_SCORER": "comprehend", "BROKER_SECRET_ARN": secret["ARN"],
            "ALARM_TOPIC_ARN": self.topic_arn, "STATE_MACHINE_NAME": f"{self.prefix}-{STATE_MACHINE_NAME}",
            "BEDROCK_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{self.prefix}-bedrock-customization",
            "UNIVERSE": json.dumps(list(DEFAULT_UNIVERSE)),
            **extra_env,
        }
        sm_name = f"{self.prefix}-{STATE_MACHINE_NAME}"
        sm_role = f"arn:aws:iam::{ACCOUNT}:role/{self.prefix}-finetune"
        if self.embedded.gate is not None:
            self._assume_roles()
            assert self.iam is not None
            sm_role = next(r.arn for arn, r in self.iam.state_machines.items() if arn.endswith(f":{sm_name}"))
        self.register_functions()
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=sm_name, definition=self.state_machine_definition(), roleArn=sm_role)["stateMachineArn"]
        return self

    def _assume_roles(self) -> None:
        """The template's roles resolved onto this stack; STS credentials of each function's role."""
        template = self.template if self.template is not None else load_template(self.deploy_overrides())
        resolver = Resolver(template, EmbeddedNames(self), self.embedded.region, ACCOUNT,
                            template_prefix=deployed_context().get("prefix", DEFAULT_PREFIX), prefix=self.prefix)
        self.iam = stack_iam(template, resolver)
        self._add_local_only_grants(self.iam)
        gate = self.embedded.gate
        assert gate is not None
        gate.add_stack(self.iam)
        gate.model_aliases[LOCAL_MODEL_ID] = deployed_context().get("model_id", DEFAULT_MODEL_ID)
        sts = self.client("sts")
        for key in FUNCTIONS:
            role = self.iam.functions.get(self.function_name(key))
            if role is None:
                raise Unresolvable(f"the template has no function {self.function_name(key)} (renamed from its prefix)")
            creds = gate.assume(sts, role, key, "lambda.amazonaws.com")
            self._sessions[key] = RoleSession(creds, self.embedded.region)

    def deploy_overrides(self) -> dict[str, str]:
        """The CDK context this stack stands for (grants follow these settings): its functions' market data, news
        source and broker."""
        env = self.settings_env
        return {"market_data": env["MARKET_DATA"], "news_source": env["NEWS_SOURCE"], "broker": env["BROKER"]}

    def _add_local_only_grants(self, iam: StackIam) -> None:
        """What only the embedded stack's functions do, granted to them here and nowhere else: the replay clock's
        parameter (CLOCK_SOURCE=replay; deployed functions read the system clock)."""
        replay = Policy.from_document("local-only/replay-clock", {"Statement": [{
            "Effect": "Allow", "Action": "ssm:GetParameter",
            "Resource": f"arn:aws:ssm:{self.embedded.region}:{ACCOUNT}:parameter{self.params['REPLAY_CLOCK']}"}]})
        for name, role in list(iam.functions.items()):
            iam.functions[name] = replace(role, policies=(*role.policies, replay))

    def function_arn(self, key: str) -> str:
        return f"arn:aws:lambda:{self.embedded.region}:{ACCOUNT}:function:{self.function_name(key)}"

    def state_machine_definition(self) -> str:
        """The very ASL the CDK app deploys, with this stack's function ARNs substituted."""
        return (STATE_MACHINE_FILE.read_text().replace("${FinetuneTasksArn}", self.function_arn("finetune_tasks"))
                .replace("${DatasetExportArn}", self.function_arn("dataset_export")))

    def register_functions(self, overrides: dict[str, dict[str, str]] | None = None) -> None:
        from mytrader_tools.embedded.faults import FaultyFunction
        from mytrader_tools.embedded.services import LocalFunction

        for key, spec in FUNCTIONS.items():
            env = {**self.settings_env, **(overrides or {}).get(key, {})}
            path = LAMBDAS / spec.folder / "handler.py"
            fn = (FaultyFunction(spec.name(self.prefix), path, env, spec.memory_mb, spec.timeout_s, plan=self.faults)
                  if self.faults else LocalFunction(spec.name(self.prefix), path, env, spec.memory_mb, spec.timeout_s))
            fn.session = self._sessions.get(key)
            self.embedded.bridge.register(fn)

    def function_name(self, key: str) -> str:
        return FUNCTIONS[key].name(self.prefix)

    def _create_queue(self, sqs, q: QueueSpec) -> None:
        attrs = {"VisibilityTimeout": str(q.visibility_s), "MessageRetentionPeriod": str(q.retention_s)}
        if q.fifo:
            attrs.update(FifoQueue="true", ContentBasedDeduplication="false")
        if q.dlq:
            attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": self.queue_arns[q.dlq],
                                                 "maxReceiveCount": q.max_receive})
        url = sqs.create_queue(QueueName=q.name(self.prefix), Attributes=attrs)["QueueUrl"]
        self.queue_urls[q.suffix] = url
        created = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        self.queue_arns[q.suffix] = created["QueueArn"]

    def set_param(self, key: str, value: str) -> None:
        self.client("ssm").put_parameter(Name=self.params[key], Value=value, Type="String", Overwrite=True)

    def get_param(self, key: str) -> str:
        return self.client("ssm").get_parameter(Name=self.params[key])["Parameter"]["Value"]

    def invoke(self, key: str, payload: dict) -> dict:
        resp = self.client("lambda").invoke(FunctionName=self.function_name(key), Payload=json.dumps(payload).encode())
        body = json.loads(resp["Payload"].read() or b"null")
        if resp.get("FunctionError"):
            raise FunctionFailed(key, body)
        return body

    def upload_prices(self, files: dict[str, Path]) -> None:
        s3 = self.client("s3")
        for symbol, path in files.items():
            s3.put_object(Bucket=self.bucket, Key=f"market-data/{symbol}.csv", Body=Path(path).read_bytes())


@cache
def deployed_context() -> dict[str, Any]:
    """cdk.json's context: the prefix and model id the synthesized template was made with."""
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text()).get("context", {})
    return context


class EmbeddedNames:
    """The embedded stack's name for each template resource a policy can reference (resolver.Names): the
    template's physical name with the deploy prefix replaced, or what this stack created under another name."""

    def __init__(self, stack: LocalStack):
        self.stack = stack

    def values(self, logical_id: str, resource: Mapping[str, Any], resolver: Resolver) -> ResourceValues:
        s = self.stack
        kind, props = resource["Type"], resource.get("Properties", {})
        path = resource.get("Metadata", {}).get("aws:cdk:path", "")
        standard = physical_values(logical_id, resource, resolver)
        if kind == "AWS::SQS::Queue":  # moto's queue URL
            name = resolver.rename(props["QueueName"])
            url = next((u for u in s.queue_urls.values() if u.rstrip("/").endswith("/" + name)), None)
            return ResourceValues(url, {**standard.attrs, "QueueUrl": url or ""})
        if kind == "AWS::SecretsManager::Secret" and path.endswith("/broker-secret/Resource"):
            return ResourceValues(s.secret_arn, {"Id": s.secret_arn})
        if kind == "AWS::S3::Bucket" and path.endswith("/datasets/Resource"):
            return ResourceValues(s.bucket, {"Arn": f"arn:aws:s3:::{s.bucket}",
                                             "DomainName": f"{s.bucket}.s3.amazonaws.com"})
        return standard


class FunctionFailed(RuntimeError):
    def __init__(self, key: str, body: dict):
        super().__init__(f"{key} failed: {body.get('errorType')}: {body.get('errorMessage')}")
        self.body = body


def create_table(ddb, t, prefix: str) -> None:
    attrs = {t.pk: "S"}
    keys = [{"AttributeName": t.pk, "KeyType": "HASH"}]
    if t.sk:
        attrs[t.sk] = "S"
        keys.append({"AttributeName": t.sk, "KeyType": "RANGE"})
    gsis = []
    for name, pk, sk in t.gsis:
        attrs[pk], attrs[sk] = "S", "S"
        gsis.append({"IndexName": name, "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"},
                                                      {"AttributeName": sk, "KeyType": "RANGE"}],
                     "Projection": {"ProjectionType": "ALL"}})
    kw = {"GlobalSecondaryIndexes": gsis} if gsis else {}
    ddb.create_table(TableName=t.name(prefix), BillingMode="PAY_PER_REQUEST", KeySchema=keys,
                     AttributeDefinitions=[{"AttributeName": k, "AttributeType": v} for k, v in attrs.items()],
                     SSESpecification={"Enabled": True}, **kw)
    if t.ttl:
        ddb.update_time_to_live(TableName=t.name(prefix),
                                TimeToLiveSpecification={"Enabled": True, "AttributeName": t.ttl})
