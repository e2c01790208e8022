"""Decisions: the decision-cycle function, its EventBridge Scheduler schedule, the FIFO queue and DLQs."""
from __future__ import annotations

from aws_cdk import Duration, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mytrader.stack_spec import DECISIONS_DLQ, DECISIONS_QUEUE, SCHEDULE_DLQ, SCHEDULE_TIMEZONE

from .access import (
    CACHE_BATCHES,
    TRADE_LOG_DECIDE,
    FailedInvocationsQueue,
    advisor_invoke_statements,
    allow,
    deployments_arn,
    grant_objects,
    grant_parameter_read,
    grant_sources,
    grant_table,
    stack_tag,
)
from .functions import make_function
from .settings import DeploySettings
from .storage import Storage


def cron_parts(expr: str) -> dict[str, str]:
    """'cron(min hour dom month dow year)' -> ScheduleExpression.cron keywords."""
    minute, hour, day, month, week_day, year = expr.strip()[5:-1].split()
    out = {"minute": minute, "hour": hour, "month": month, "year": year}
    if day != "?":
        out["day"] = day
    if week_day != "?":
        out["week_day"] = week_day
    return out


class Decisions(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: DeploySettings, storage: Storage,
                 layer: lambda_.ILayerVersion, env: dict[str, str]) -> None:
        super().__init__(scope, id)
        p = settings.prefix
        max_receive = DECISIONS_QUEUE.max_receive
        assert max_receive is not None  # the decisions queue always has a redrive policy
        self.dlq = sqs.Queue(self, "decisions-dlq", queue_name=DECISIONS_DLQ.name(p), fifo=True,
                             visibility_timeout=Duration.seconds(DECISIONS_DLQ.visibility_s),
                             retention_period=Duration.seconds(DECISIONS_DLQ.retention_s),
                             encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True)
        self.queue = sqs.Queue(
            self, "decisions", queue_name=DECISIONS_QUEUE.name(p), fifo=True, content_based_deduplication=False,
            visibility_timeout=Duration.seconds(DECISIONS_QUEUE.visibility_s),
            retention_period=Duration.seconds(DECISIONS_QUEUE.retention_s),
            encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=max_receive, queue=self.dlq))
        # Scheduler does not take FIFO queues as its DLQ; this standard queue also receives the function's
        # asynchronous failures (Scheduler invokes Lambda asynchronously, so errors never reach the schedule's DLQ).
        self.schedule_dlq = sqs.Queue(self, "schedule-dlq", queue_name=SCHEDULE_DLQ.name(p),
                                      visibility_timeout=Duration.seconds(SCHEDULE_DLQ.visibility_s),
                                      retention_period=Duration.seconds(SCHEDULE_DLQ.retention_s),
                                      encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True)
        self.function = make_function(self, "decision_cycle", prefix=p, layer=layer, arch=settings.architecture,
                                      env={**env, "DECISIONS_QUEUE_URL": self.queue.queue_url},
                                      strategy=settings.strategy_package)  # it decides with it
        self.function.configure_async_invoke(on_failure=FailedInvocationsQueue(self.schedule_dlq),
                                             retry_attempts=2, max_event_age=Duration.minutes(10))
        self.schedule = scheduler.Schedule(
            self, "decision-schedule", schedule_name=f"{p}-decision-cycle",
            description="Decision cycle during market hours; the handler checks the exchange calendar",
            schedule=scheduler.ScheduleExpression.cron(time_zone=TimeZone.AMERICA_NEW_YORK,
                                                       **cron_parts(settings.decision_schedule)),
            target=targets.LambdaInvoke(self.function, dead_letter_queue=self.schedule_dlq, retry_attempts=2,
                                        max_event_age=Duration.minutes(10),
                                        input=scheduler.ScheduleTargetInput.from_object({
                                            "scheduled_time": scheduler.ContextAttribute.scheduled_time,
                                            "universe": settings.universe})))
        assert SCHEDULE_TIMEZONE == "America/New_York"
        # Least privilege: each grant follows from a code path of the decision cycle under these settings.
        # decisions, skips, memos, the token budget
        grant_table(storage.trade_log, self.function, "TradeLog", TRADE_LOG_DECIDE)
        grant_sources(storage, self.function, settings, market=True, news=True)  # read only
        grant_objects(storage.datasets, self.function, "PromptArchive", ["s3:PutObject"], "prompts")
        allow(self.function, "PublishDecisions", ["sqs:SendMessage"], [self.queue.queue_arn])
        for key in ("MODE", "ACTIVE_MODEL", "SHADOW_MODEL"):  # the gates read each cycle (decide.py)
            grant_parameter_read(storage.params[key], self.function, f"Read{key.title().replace('_', '')}")
        for statement in advisor_invoke_statements(self, settings, "InvokeAdvisor"):
            self.function.add_to_role_policy(statement)
        self.function.add_to_role_policy(iam.PolicyStatement(
            sid="InvokePromotedCustomModel", actions=["bedrock:InvokeModel"], resources=[deployments_arn(self)],
            conditions=stack_tag(p)))
        if settings.news_source != "none":
            grant_table(storage.sentiment_cache, self.function, "SentimentCache", CACHE_BATCHES)
            self.function.add_to_role_policy(iam.PolicyStatement(
                sid="ComprehendSentiment", actions=["comprehend:BatchDetectSentiment"],
                resources=["*"]))  # Comprehend's sentiment APIs have no resource-level permissions
