"""Fine-tuning workflow tasks: one action per Step Functions state (see finetune.asl.json)."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from functools import cache

    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import learning_deps
    from mytrader.observability import logger, metrics, tracer
    from mytrader.usecases.learn import apply_defaults

    SETTINGS = PipelineSettings.from_env()
    deps = cache(lambda: learning_deps(SETTINGS))  # built once per container, on first use


class UnknownAction(ValueError):
    pass


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    action = (event or {}).get("action")
    if action == "defaults":
        return apply_defaults(event.get("input") or {}, SETTINGS.finetune_base_model)
    tasks = deps()[0]
    state = event.get("state") or {}
    if action == "notify":
        return tasks.notify(state, event.get("outcome", "unknown"))
    if action == "request_approval":
        return tasks.request_approval(event["token"], state)
    handlers = {"create_job": tasks.create_job, "job_status": tasks.job_status,
                "create_deployment": tasks.create_deployment, "deployment_status": tasks.deployment_status,
                "evaluate": tasks.evaluate, "promote": tasks.promote, "reject": tasks.reject}
    if action not in handlers:
        raise UnknownAction(f"unknown action {action!r}")
    result = handlers[action](state)
    logger.info("finetune task", extra={"action": action, "result": result})
    return result
