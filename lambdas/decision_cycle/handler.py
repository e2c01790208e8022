"""Decision cycle: EventBridge Scheduler -> decisions for the universe -> trade log + SQS FIFO."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from functools import cache

    from aws_lambda_powertools.metrics import MetricUnit
    from pydantic import ValidationError

    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import decision_cycle_deps
    from mytrader.observability import logger, metrics, tracer
    from mytrader.usecases.decide import run_cycle

    SETTINGS = PipelineSettings.from_env()
    deps = cache(lambda: decision_cycle_deps(SETTINGS))  # built once per container, on first use


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    try:
        result = run_cycle(event, deps())
    except ValidationError as exc:
        logger.error("malformed schedule event", extra={"errors": exc.errors(include_url=False)[:5]})
        metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
        return {"status": "rejected_event", "error": str(exc.errors(include_url=False)[0]["msg"])}
    metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=result.get("decisions", 0))
    metrics.add_metric(name="LlmCalls", unit=MetricUnit.Count, value=result.get("llm_calls", 0))
    metrics.add_metric(name="LlmFallbacks", unit=MetricUnit.Count, value=result.get("fallbacks", 0))
    metrics.add_metric(name="LlmInputTokens", unit=MetricUnit.Count, value=result.get("input_tokens", 0))
    metrics.add_metric(name="LlmOutputTokens", unit=MetricUnit.Count, value=result.get("output_tokens", 0))
    metrics.add_metric(name="LlmCostMicroUsd", unit=MetricUnit.Count, value=round(result.get("cost_usd", 0) * 1e6))
    metrics.add_metric(name="CycleLatency", unit=MetricUnit.Milliseconds, value=result.get("wall_ms", 0))
    return result
