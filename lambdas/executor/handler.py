"""Executor: SQS FIFO batches -> idempotent risk check, broker order and trade-log transaction.

Each message is a pointer to a decision record ({"decision_id", "symbol", "action", "digest"}); the use case reads
the record and executes it only if the pointer matches it (usecases/admission.py). A malformed message is logged,
counted and raised: it never succeeds on retry, so it reaches the DLQ after the configured receives."""
from __future__ import annotations

from mytrader.coldstart import init_phase

with init_phase():  # the container's one-time set-up, garbage collector off (see coldstart.py)
    from collections.abc import Callable
    from functools import cache
    from typing import TYPE_CHECKING, Any, cast

    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from mytrader.adapters.aws.clients import Aws
    from mytrader.app.safe_start import hand_back_batch, started
    from mytrader.app.settings import PipelineSettings
    from mytrader.app.wiring import executor_deps
    from mytrader.observability import logger, metrics, tracer
    from mytrader.stack_spec import IDEMPOTENCY_EXPIRY_S
    from mytrader.usecases.admission import DecisionMessage, MalformedMessage, parse_message
    from mytrader.usecases.execute import ExecutionResult, execute_decision

    if TYPE_CHECKING:
        from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
        from aws_lambda_powertools.utilities.typing import LambdaContext

    SETTINGS = PipelineSettings.from_env()
    AWS = Aws()  # one set of clients per container: the trade log and the idempotency store share DynamoDB's
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    # Keyed on the whole pointer: a forged pointer for a real decision (any field changed) gets its own key, so its
    # refusal is never replayed to the genuine message.
    idempotency = IdempotencyConfig(event_key_jmespath="[decision_id, symbol, action, digest]",
                                    raise_on_no_idempotency_key=True,
                                    expires_after_seconds=IDEMPOTENCY_EXPIRY_S)
    deps = cache(lambda: executor_deps(SETTINGS, AWS))  # built once per container, on first use


def _record_metrics(result: ExecutionResult) -> None:
    metrics.add_metric(name=f"Decision{result.result.value.title().replace('_', '')}", unit=MetricUnit.Count,
                       value=1)
    if result.halted_by is not None:  # the kill switch or the daily-loss limit refused an entry
        metrics.add_metric(name="KillSwitchRejections", unit=MetricUnit.Count, value=1)
    if result.pnl is not None:
        metrics.add_metric(name="RealisedPnl", unit=MetricUnit.Count, value=result.pnl)
    if result.result.value == "orphan":  # a pointer to no decision record: the decider always writes first
        logger.error("message names no decision record", extra={"decision_id": result.decision_id})
        metrics.add_metric(name="UnknownDecision", unit=MetricUnit.Count, value=1)


def _malformed(message_id: str, exc: MalformedMessage) -> MalformedMessage:
    logger.error("malformed decision message", extra={"message_id": message_id, "error": str(exc)[:300]})
    metrics.add_metric(name="MalformedMessages", unit=MetricUnit.Count, value=1)
    return MalformedMessage(str(exc)[:300])


def _execute(decision: dict[str, Any]) -> dict[str, Any]:
    """`decision`: the pointer as a dict (the idempotency layer keys on its decision_id)."""
    d = deps()
    result = execute_decision(DecisionMessage.model_validate(decision), d.clock.now(), d.execution)
    _record_metrics(result)
    return result.response()


@cache
def execute_once() -> Callable[..., dict[str, Any]]:
    """_execute behind Powertools idempotency, built on first use with the trade log's DynamoDB client (a store
    made at import would create a second client, and load botocore's endpoint and service data twice)."""
    persistence = DynamoDBPersistenceLayer(table_name=SETTINGS.idempotency_table, boto3_client=AWS.dynamodb)
    once: Callable[..., dict[str, Any]] = idempotent_function(data_keyword_argument="decision", config=idempotency,
                                                              persistence_store=persistence)(_execute)
    return once


def record_handler(record: SQSRecord) -> dict[str, Any]:
    try:
        pointer = parse_message(record.body).model_dump(mode="json")
        return execute_once()(decision=pointer) if SETTINGS.idempotency else _execute(pointer)
    except MalformedMessage as exc:  # unparseable, or (raised by the use case) not matching its record
        raise _malformed(record.message_id, exc) from None


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    if started(deps) is None:  # the broker secret still holds the placeholder: every message handed back to SQS,
        return cast("PartialItemFailureResponse", hand_back_batch(event))  # redelivered, never lost (safe_start.py)
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
