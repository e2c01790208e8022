"""Dataset export: the trade log's labelled decisions -> Nova JSONL in S3 (a Step Functions task)."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from functools import cache

    from aws_lambda_powertools.metrics import MetricUnit

    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import learning_deps
    from mytrader.observability import logger, metrics, tracer
    from mytrader.usecases.learn import apply_defaults, export_dataset

    SETTINGS = PipelineSettings.from_env()
    deps = cache(lambda: learning_deps(SETTINGS))  # built once per container, on first use


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    _, tl, market, clock, aws = deps()
    config = apply_defaults((event or {}).get("config") or {}, SETTINGS.finetune_base_model)
    result = export_dataset(tl, market, aws.s3, SETTINGS.data_bucket, clock.now(), config)
    metrics.add_metric(name="DatasetTrainRecords", unit=MetricUnit.Count, value=result["train_records"])
    logger.info("dataset export", extra={k: v for k, v in result.items() if k != "label_balance"})
    return result
