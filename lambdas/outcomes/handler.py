"""Outcomes: close on stop/target/time, reconcile orders, re-send stuck decisions, mark dead letters."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from functools import cache

    from aws_lambda_powertools.metrics import MetricUnit

    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import exec_deps
    from mytrader.observability import logger, metrics, tracer
    from mytrader.usecases.manage import run_outcomes

    SETTINGS = PipelineSettings.from_env()
    deps = cache(lambda: exec_deps(SETTINGS))  # built once per container, on first use


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    d, clock, market, aws = deps()
    result = run_outcomes(clock.now(), d, market, aws.sqs, SETTINGS.decisions_queue_url, SETTINGS.decisions_dlq_url)
    for key in ("closed", "reconciled", "resent", "dead_lettered", "errors"):
        metrics.add_metric(name=f"Outcomes{key.title().replace('_', '')}", unit=MetricUnit.Count, value=result[key])
    metrics.add_metric(name="RealisedPnl", unit=MetricUnit.Count, value=result.get("realised_pnl", 0.0))
    metrics.add_metric(name="PositionMismatches", unit=MetricUnit.Count,
                       value=len(result.get("position_mismatches", [])))
    return result
