"""Storage: trade log, idempotency and sentiment-cache tables, datasets bucket, SSM parameters, broker secret."""
from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as sm
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mytrader.stack_spec import IDEMPOTENCY, PARAMETER_DEFAULTS, SENTIMENT_CACHE, TRADE_LOG, TableSpec, parameter_names


def _table(scope: Construct, spec: TableSpec, prefix: str, retain: bool) -> ddb.TableV2:
    S = ddb.AttributeType.STRING
    return ddb.TableV2(
        scope, spec.key.lower(), table_name=spec.name(prefix),
        partition_key=ddb.Attribute(name=spec.pk, type=S),
        sort_key=ddb.Attribute(name=spec.sk, type=S) if spec.sk else None,
        billing=ddb.Billing.on_demand(), encryption=ddb.TableEncryptionV2.aws_managed_key(),
        point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True),
        time_to_live_attribute=spec.ttl, deletion_protection=retain,
        removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        global_secondary_indexes=[ddb.GlobalSecondaryIndexPropsV2(
            index_name=name, partition_key=ddb.Attribute(name=pk, type=S), sort_key=ddb.Attribute(name=sk, type=S))
            for name, pk, sk in spec.gsis] or None)


class Storage(Construct):
    def __init__(self, scope: Construct, id: str, *, prefix: str, model_id: str, mode: str,
                 live_trading: bool) -> None:
        super().__init__(scope, id)
        self.trade_log = _table(self, TRADE_LOG, prefix, retain=True)  # the record of every decision: never lost
        self.idempotency = _table(self, IDEMPOTENCY, prefix, retain=False)
        self.sentiment_cache = _table(self, SENTIMENT_CACHE, prefix, retain=False)
        self.access_logs = s3.Bucket(
            self, "access-logs", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))], removal_policy=RemovalPolicy.RETAIN)
        self.datasets = s3.Bucket(
            self, "datasets", versioned=True, encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="datasets/", removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(id="old-versions", noncurrent_version_expiration=Duration.days(90)),
                s3.LifecycleRule(id="prompt-archive", prefix="prompts/", transitions=[
                    s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                  transition_after=Duration.days(30))]),
                s3.LifecycleRule(id="finetune-outputs", prefix="finetune-output/", expiration=Duration.days(180)),
            ])
        names = parameter_names(prefix)
        values = {**PARAMETER_DEFAULTS, "ACTIVE_MODEL": model_id, "MODE": mode}
        self.params = {key: ssm.StringParameter(self, f"param-{key.lower()}", parameter_name=names[key],
                                                string_value=values[key], description=f"MyTrader {key.lower()}")
                       for key in ("ACTIVE_MODEL", "PREVIOUS_MODEL", "MODE", "KILL_SWITCH", "SHADOW_MODEL")}
        # The value is generated, never in the template; put the real keys in after deploy (README).
        self.broker_secret = sm.Secret(
            self, "broker-secret", secret_name=f"{prefix}/broker/{'live' if live_trading else 'paper'}",
            description="Alpaca API keys as JSON {key_id, secret_key}"
            + (" (LIVE trading)" if live_trading else " (paper)"),
            generate_secret_string=sm.SecretStringGenerator(
                secret_string_template='{"key_id": "set-me"}', generate_string_key="secret_key"))
