"""Dataset export: the trade log's labelled decisions -> Nova JSONL in S3 (a Step Functions task)."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from functools import cache
    from typing import TYPE_CHECKING, Any

    from aws_lambda_powertools.metrics import MetricUnit

    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import dataset_export_deps
    from mytrader.observability import logger, metrics, tracer
    from mytrader.usecases.learn import apply_defaults, export_dataset

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    SETTINGS = PipelineSettings.from_env()
    deps = cache(lambda: dataset_export_deps(SETTINGS))  # built once per container, on first use


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any] | None, context: LambdaContext) -> dict[str, Any]:
    d = deps()
    config = apply_defaults((event or {}).get("config") or {}, SETTINGS.finetune_base_model)
    result = export_dataset(d.tradelog, d.market, d.s3, d.bucket, d.clock.now(), config)
    metrics.add_metric(name="DatasetTrainRecords", unit=MetricUnit.Count, value=result.train_records)
    response = result.response()
    logger.info("dataset export", extra={k: v for k, v in response.items() if k != "label_balance"})
    return response
