"""Execution: the executor on the FIFO queue and the outcomes function on its own schedule."""
from __future__ import annotations

import json

from aws_cdk import Duration, TimeZone
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct

from mytrader.stack_spec import EXECUTOR_MAX_CONCURRENCY

from .access import (
    IDEMPOTENCY_RECORDS,
    TRADE_LOG_BOOK,
    TRADE_LOG_EXECUTE,
    FailedInvocationsQueue,
    allow,
    grant_index_queries,
    grant_sources,
    grant_table,
)
from .decisions import Decisions, cron_parts
from .functions import make_function
from .settings import DeploySettings
from .storage import Storage


class Execution(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: DeploySettings, storage: Storage, decisions: Decisions,
                 layer: lambda_.ILayerVersion, env: dict[str, str]) -> None:
        super().__init__(scope, id)
        p = settings.prefix
        queue_env = {"DECISIONS_QUEUE_URL": decisions.queue.queue_url, "DECISIONS_DLQ_URL": decisions.dlq.queue_url,
                     # the symbols entries may be opened in: the executor rejects any other (closes still run)
                     "UNIVERSE": json.dumps(settings.universe)}
        self.executor = make_function(self, "executor", prefix=p, layer=layer, arch=settings.architecture,
                                      env={**env, **queue_env},
                                      strategy=settings.strategy_package)  # admission: its time limit
        # Batches of 10 with partial failures; at most 5 concurrent batches: message groups (symbols) still run
        # in parallel, while the broker and the account item see a bounded request rate.
        # (A mapping, not CDK's SqsEventSource, whose grant adds GetQueueUrl and ChangeMessageVisibility: the role
        # holds what AWS documents for the poller, ReceiveMessage, DeleteMessage and GetQueueAttributes.)
        self.executor.add_event_source_mapping(
            "decisions-queue", event_source_arn=decisions.queue.queue_arn, batch_size=10,
            report_batch_item_failures=True, max_concurrency=EXECUTOR_MAX_CONCURRENCY)
        allow(self.executor, "DecisionsQueueEvents",
              ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [decisions.queue.queue_arn])
        self.outcomes = make_function(self, "outcomes", prefix=p, layer=layer, arch=settings.architecture,
                                      env={**env, **queue_env})
        self.outcomes.configure_async_invoke(on_failure=FailedInvocationsQueue(decisions.schedule_dlq),
                                             retry_attempts=2, max_event_age=Duration.minutes(10))
        self.schedule = scheduler.Schedule(
            self, "outcomes-schedule", schedule_name=f"{p}-outcomes",
            schedule=scheduler.ScheduleExpression.cron(time_zone=TimeZone.AMERICA_NEW_YORK,
                                                       **cron_parts(settings.outcomes_schedule)),
            target=targets.LambdaInvoke(self.outcomes, dead_letter_queue=decisions.schedule_dlq, retry_attempts=2,
                                        max_event_age=Duration.minutes(10)))
        # Least privilege: no parameter is read (the kill switch lives on the account, the clock is the system's);
        # quotes and bars come from the market source, orders go to the paper book or Alpaca.
        for fn, used in ((self.executor, TRADE_LOG_EXECUTE), (self.outcomes, TRADE_LOG_BOOK)):
            grant_table(storage.trade_log, fn, "TradeLog", used)
            grant_index_queries(storage.trade_log, fn, "TradeLogIndexes")
            grant_sources(storage, fn, settings, market=True, broker=True)
        grant_table(storage.idempotency, self.executor, "IdempotencyRecords", IDEMPOTENCY_RECORDS)
        allow(self.outcomes, "ResendPendingDecisions", ["sqs:SendMessage"], [decisions.queue.queue_arn])
        allow(self.outcomes, "ArchiveDeadLetters", ["sqs:ReceiveMessage", "sqs:DeleteMessage"],  # then deleted
              [decisions.dlq.queue_arn])
