"""Execution: the executor on the FIFO queue and the outcomes function on its own schedule."""
from __future__ import annotations

import json

from aws_cdk import Duration, TimeZone
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct

from mytrader.stack_spec import EXECUTOR_MAX_CONCURRENCY

from .access import grant_sources, grant_table
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
        self.executor.add_event_source(sources.SqsEventSource(
            decisions.queue, batch_size=10, report_batch_item_failures=True, max_concurrency=EXECUTOR_MAX_CONCURRENCY))
        self.outcomes = make_function(self, "outcomes", prefix=p, layer=layer, arch=settings.architecture,
                                      env={**env, **queue_env})
        self.schedule = scheduler.Schedule(
            self, "outcomes-schedule", schedule_name=f"{p}-outcomes",
            schedule=scheduler.ScheduleExpression.cron(time_zone=TimeZone.AMERICA_NEW_YORK,
                                                       **cron_parts(settings.outcomes_schedule)),
            target=targets.LambdaInvoke(self.outcomes, dead_letter_queue=decisions.schedule_dlq, retry_attempts=2,
                                        max_event_age=Duration.minutes(10)))
        # Least privilege: no parameter is read (the kill switch lives on the account, the clock is the system's);
        # quotes and bars come from the market source, orders go to the paper book or Alpaca.
        for fn in (self.executor, self.outcomes):
            grant_table(storage.trade_log, fn, write=True, indexes=True)
            grant_sources(storage, fn, settings, market=True, broker=True)
        grant_table(storage.idempotency, self.executor, write=True)
        decisions.queue.grant_send_messages(self.outcomes)  # re-sends decisions stuck in PENDING
        decisions.dlq.grant_consume_messages(self.outcomes)  # archives dead letters in the trade log, then deletes
