"""Outcomes: close on stop/target/time, reconcile orders, re-send stuck decisions, mark dead letters."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from functools import cache
    from typing import TYPE_CHECKING, Any

    from aws_lambda_powertools.metrics import MetricUnit

    from mytrader.app.safe_start import not_started, started
    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import outcomes_deps
    from mytrader.observability import logger, metrics, tracer
    from mytrader.usecases.manage import run_outcomes

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    SETTINGS = PipelineSettings.from_env()
    deps = cache(lambda: outcomes_deps(SETTINGS))  # built once per container, on first use


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    d = started(deps)
    if d is None:  # the broker secret still holds the placeholder: nothing is closed or re-sent (safe_start.py)
        return not_started()
    result = run_outcomes(d.clock.now(), d.execution, d.market, d.queue, d.dead_letters)
    counts = {"Closed": result.closed, "Reconciled": result.reconciled, "Resent": result.resent,
              "DeadLettered": result.dead_lettered, "Errors": result.errors}
    for name, value in counts.items():
        metrics.add_metric(name=f"Outcomes{name}", unit=MetricUnit.Count, value=value)
    metrics.add_metric(name="RealisedPnl", unit=MetricUnit.Count, value=result.realised_pnl)
    metrics.add_metric(name="PositionMismatches", unit=MetricUnit.Count, value=len(result.position_mismatches or []))
    # a held position whose stop and target could not be checked (no bars, no trusted quote): alarmed at >= 1
    metrics.add_metric(name="PositionsUnchecked", unit=MetricUnit.Count, value=result.positions_unchecked)
    return result.response()
