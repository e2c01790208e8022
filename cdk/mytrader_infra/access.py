"""Grants that follow from a function's code paths and the deploy settings: the market source it reads (S3 price
files or Alpaca, which needs the broker secret), the news source, and the advisor model's route (the inference
profile and the foundation model in each pinned destination region, see mytrader.stack_spec)."""
from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mytrader.stack_spec import ModelRoute, model_route

from .settings import DeploySettings
from .storage import Storage

INVOKE = ["bedrock:InvokeModel"]  # Converse is authorised as bedrock:InvokeModel
# The item actions the trade-log store and Powertools' idempotency use (a TransactWriteItems is authorised as its
# items' Put/Update/Delete/ConditionCheck). Unlike CDK's grant_read_data: no stream actions (no stream is read).
TABLE_READ = ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable", "dynamodb:GetItem",
              "dynamodb:Query", "dynamodb:Scan"]
TABLE_WRITE = ["dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]


def grant_table(table: ddb.ITableV2, fn: lambda_.IFunction, *, write: bool, indexes: bool = False) -> None:
    """Item access to a table (and its GSIs when it has some)."""
    resources = [table.table_arn] + ([f"{table.table_arn}/index/*"] if indexes else [])
    fn.add_to_role_policy(iam.PolicyStatement(actions=TABLE_READ + (TABLE_WRITE if write else []),
                                              resources=resources))


def grant_parameter_read(param: ssm.IStringParameter, fn: lambda_.IFunction) -> None:
    """GetParameter(s) on the parameter (CDK's grant_read adds DescribeParameters, which accepts only "*")."""
    fn.add_to_role_policy(iam.PolicyStatement(actions=["ssm:GetParameter", "ssm:GetParameters"],
                                              resources=[param.parameter_arn]))


def uses_alpaca(settings: DeploySettings, *, market: bool = False, news: bool = False, broker: bool = False) -> bool:
    """Whether a function that reads the given sources needs the broker secret (Alpaca's keys)."""
    return ((market and settings.market_data == "alpaca") or (news and settings.news_source == "alpaca")
            or (broker and settings.broker == "alpaca"))


def grant_sources(storage: Storage, fn: lambda_.IFunction, settings: DeploySettings, *, market: bool = False,
                  news: bool = False, broker: bool = False) -> None:
    """Read access to exactly the sources the function's settings make it read."""
    if market and settings.market_data == "s3":
        storage.datasets.grant_read(fn, "market-data/*")
    if news and settings.news_source == "s3":
        storage.datasets.grant_read(fn, "news/*")
    if uses_alpaca(settings, market=market, news=news, broker=broker):
        storage.broker_secret.grant_read(fn)


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
