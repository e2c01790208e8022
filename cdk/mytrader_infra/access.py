"""Grants that follow from a function's code paths and the deploy settings: the market source it reads (S3 price
files or Alpaca, which needs the broker secret), the news source, and the advisor model's route (the inference
profile and the foundation model in each pinned destination region, see mytrader.stack_spec)."""
from __future__ import annotations

import jsii
from aws_cdk import Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mytrader.stack_spec import ModelRoute, model_route

from .settings import DeploySettings
from .storage import Storage

INVOKE = ["bedrock:InvokeModel"]  # Converse is authorised as bedrock:InvokeModel

# The item actions each use of a table makes (a TransactWriteItems is authorised as its items' Put/Update/Delete/
# ConditionCheck; BatchWriteItem as itself). Each list is what that function's code calls, as recorded by the
# embedded AWS (.build/iam-calls/last-run.json): no Scan, no DescribeTable, no stream actions.
_GET, _BATCH_GET, _QUERY = "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"
_PUT, _UPDATE, _DELETE = "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
TRADE_LOG_DECIDE = [_GET, _BATCH_GET, _QUERY, _PUT, _UPDATE]  # decisions, skips, memos, the token budget
TRADE_LOG_EXECUTE = [_GET, _PUT, _UPDATE, _DELETE, "dynamodb:ConditionCheckItem"]  # reserve, submit, settle
TRADE_LOG_BOOK = [_GET, _QUERY, _PUT, _UPDATE, _DELETE]  # outcomes: fills, exits, reconciliation, dead letters
IDEMPOTENCY_RECORDS = [_GET, _PUT, _UPDATE, _DELETE]  # Powertools' DynamoDBPersistenceLayer
CACHE_BATCHES = [_BATCH_GET, "dynamodb:BatchWriteItem"]  # the sentiment cache (adapters/aws/dynamo_caches.py)


def allow(fn: lambda_.IFunction, sid: str, actions: list[str], resources: list[str],
          conditions: dict[str, dict[str, str]] | None = None) -> None:
    """One named statement on the function's role (the Sid is how the unused-grant check finds it again)."""
    fn.add_to_role_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources, conditions=conditions))


def grant_table(table: ddb.ITableV2, fn: lambda_.IFunction, sid: str, actions: list[str]) -> None:
    """These item actions (and Query) on the table itself."""
    allow(fn, sid, actions, [table.table_arn])


def grant_index_queries(table: ddb.ITableV2, fn: lambda_.IFunction, sid: str) -> None:
    """Query on the table's GSIs (the trade log's documented access patterns by symbol, status, ...)."""
    allow(fn, sid, [_QUERY], [f"{table.table_arn}/index/*"])


def grant_objects(bucket: s3.IBucket, fn: lambda_.IFunction, sid: str, actions: list[str], prefix: str) -> None:
    """Object actions under a key prefix (no bucket-level action, no tagging, retention or legal hold)."""
    allow(fn, sid, actions, [bucket.arn_for_objects(f"{prefix}/*")])


def grant_parameter_read(param: ssm.IStringParameter, fn: lambda_.IFunction, sid: str) -> None:
    """GetParameter on the parameter (CDK's grant_read adds GetParameters and DescribeParameters, never called)."""
    allow(fn, sid, ["ssm:GetParameter"], [param.parameter_arn])


def uses_alpaca(settings: DeploySettings, *, market: bool = False, news: bool = False, broker: bool = False) -> bool:
    """Whether a function that reads the given sources needs the broker secret (Alpaca's keys)."""
    return ((market and settings.market_data == "alpaca") or (news and settings.news_source == "alpaca")
            or (broker and settings.broker == "alpaca"))


def grant_sources(storage: Storage, fn: lambda_.IFunction, settings: DeploySettings, *, market: bool = False,
                  news: bool = False, broker: bool = False) -> None:
    """Read access to exactly the sources the function's settings make it read. S3 price files: GetObject under
    market-data/ and ListBucket on the bucket, without which S3 answers a missing file (an unknown symbol) with
    AccessDenied instead of NoSuchKey, which the source turns into a recorded skip."""
    if market and settings.market_data == "s3":
        grant_objects(storage.datasets, fn, "MarketDataFiles", ["s3:GetObject"], "market-data")
        allow(fn, "MarketDataMissingFiles", ["s3:ListBucket"], [storage.datasets.bucket_arn])
    if news and settings.news_source == "s3":
        grant_objects(storage.datasets, fn, "NewsFile", ["s3:GetObject"], "news")
    if uses_alpaca(settings, market=market, news=news, broker=broker):
        allow(fn, "BrokerSecret", ["secretsmanager:GetSecretValue"], [storage.broker_secret.secret_arn])


def advisor_route(scope: Construct, settings: DeploySettings) -> ModelRoute:
    override = tuple(settings.inference_regions) if settings.inference_regions else None
    return model_route(settings.model_id, Stack.of(scope).region, override)


def advisor_invoke_statements(scope: Construct, settings: DeploySettings, sid: str) -> list[iam.PolicyStatement]:
    """InvokeModel on the configured advisor: its inference profile in the stack's region and the foundation model
    in the profile's destination regions, only through that profile (condition bedrock:InferenceProfileArn); a
    `global.` profile's foundation model also by its region-less ARN. A plain model id: that model, here."""
    stack = Stack.of(scope)
    route = advisor_route(scope, settings)

    def arn(region: str, account: str, resource: str) -> str:
        return f"arn:{stack.partition}:bedrock:{region}:{account}:{resource}"

    if route.profile_id is None:
        return [iam.PolicyStatement(sid=f"{sid}Model", actions=INVOKE,
                                    resources=[arn(stack.region, "", f"foundation-model/{route.base_model}")])]
    profile_arn = arn(stack.region, stack.account, f"inference-profile/{route.profile_id}")
    return [
        iam.PolicyStatement(sid=f"{sid}Profile", actions=INVOKE, resources=[profile_arn]),
        iam.PolicyStatement(sid=f"{sid}FoundationModel", actions=INVOKE,
                            resources=[arn(r, "", f"foundation-model/{route.base_model}") for r in route.regions],
                            conditions={"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}}),
    ]


def deployments_arn(scope: Construct) -> str:
    """Every custom-model deployment of the stack's account and region (narrowed by the mytrader:stack tag)."""
    stack = Stack.of(scope)
    return f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:custom-model-deployment/*"


def stack_tag(prefix: str, key: str = "aws:ResourceTag") -> dict[str, dict[str, str]]:
    """The condition that the resource (or, with aws:RequestTag, the request) carries this stack's tag."""
    return {"StringEquals": {f"{key}/mytrader:stack": prefix}}


@jsii.implements(lambda_.IDestination)
class FailedInvocationsQueue:
    """A queue as a function's on-failure destination for asynchronous invocations (Scheduler invokes that way).
    Lambda sends with the function's role, so the grant is sqs:SendMessage on the queue only (CDK's
    SqsDestination grants GetQueueUrl and GetQueueAttributes too, which nothing calls)."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(self, scope: Construct, fn: lambda_.IFunction, *,
             type: lambda_.DestinationType | None = None) -> lambda_.DestinationConfig:
        allow(fn, "AsyncFailuresToDeadLetterQueue", ["sqs:SendMessage"], [self.queue.queue_arn])
        return lambda_.DestinationConfig(destination=self.queue.queue_arn)
