"""Decision cycle: EventBridge Scheduler -> decisions for the universe -> trade log + SQS FIFO."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from functools import cache
    from typing import TYPE_CHECKING, Any

    from aws_lambda_powertools.metrics import MetricUnit
    from pydantic import ValidationError

    from mytrader.app.safe_start import not_started, started
    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import decision_cycle_deps
    from mytrader.observability import logger, metrics, tracer
    from mytrader.usecases.decide import ScheduleEvent, run_cycle

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    SETTINGS = PipelineSettings.from_env()
    deps = cache(lambda: decision_cycle_deps(SETTINGS))  # built once per container, on first use


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    d = started(deps)
    if d is None:  # the broker secret still holds the placeholder: no decision at all (safe_start.py)
        return not_started()
    try:
        schedule = ScheduleEvent.model_validate(event)
    except ValidationError as exc:
        logger.error("malformed schedule event", extra={"errors": exc.errors(include_url=False)[:5]})
        metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
        return {"status": "rejected_event", "error": str(exc.errors(include_url=False)[0]["msg"])}
    result = run_cycle(schedule, d)
    metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=result.decisions)
    metrics.add_metric(name="LlmCalls", unit=MetricUnit.Count, value=result.llm_calls)
    if result.entries_failed_closed:  # a gate (mode, model) could not be read: entries refused, alarmed
        metrics.add_metric(name="EntriesFailedClosed", unit=MetricUnit.Count, value=result.entries_failed_closed)
    metrics.add_metric(name="LlmFallbacks", unit=MetricUnit.Count, value=result.fallbacks)
    metrics.add_metric(name="LlmInputTokens", unit=MetricUnit.Count, value=result.input_tokens)
    metrics.add_metric(name="LlmOutputTokens", unit=MetricUnit.Count, value=result.output_tokens)
    metrics.add_metric(name="LlmCostMicroUsd", unit=MetricUnit.Count, value=round(result.cost_usd * 1e6))
    metrics.add_metric(name="CycleLatency", unit=MetricUnit.Milliseconds, value=result.wall_ms)
    return result.response()
