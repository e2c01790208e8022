"""Fine-tuning workflow tasks: one action per Step Functions state (see finetune.asl.json)."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from collections.abc import Callable
    from functools import cache
    from typing import TYPE_CHECKING, Any

    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import finetune_tasks
    from mytrader.observability import logger, metrics, tracer
    from mytrader.usecases.learn import FinetuneTasks, TaskResult, WorkflowState, apply_defaults

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.typing import LambdaContext

    SETTINGS = PipelineSettings.from_env()
    tasks_once = cache(lambda: finetune_tasks(SETTINGS))  # built once per container, on first use


class UnknownAction(ValueError):
    pass


def _state_task(tasks: FinetuneTasks, action: str) -> Callable[[WorkflowState], TaskResult] | None:
    handlers: dict[str, Callable[[WorkflowState], TaskResult]] = {
        "create_job": tasks.create_job, "job_status": tasks.job_status, "create_deployment": tasks.create_deployment,
        "deployment_status": tasks.deployment_status, "evaluate": tasks.evaluate, "promote": tasks.promote,
        "reject": tasks.reject}
    return handlers.get(action)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any] | None, context: LambdaContext) -> dict[str, Any]:
    event = event or {}
    action = str(event.get("action"))
    if action == "defaults":
        return apply_defaults(event.get("input") or {}, SETTINGS.finetune_base_model).model_dump()
    tasks = tasks_once()
    state = WorkflowState.model_validate(event.get("state") or {})
    if action == "notify":
        return tasks.notify(state, event.get("outcome", "unknown")).response()
    if action == "request_approval":
        return tasks.request_approval(event["token"], state).response()
    task = _state_task(tasks, action)
    if task is None:
        raise UnknownAction(f"unknown action {event.get('action')!r}")
    result = task(state).response()
    logger.info("finetune task", extra={"action": action, "result": result})
    return result
