"""Safe start: a function whose broker keys are still the deploy-time placeholder does nothing.

`cdk deploy` starts both schedules at once, while the broker secret still holds `{"key_id": "set-me"}`. A function
that needs the keys (Alpaca market data, news or broker) then logs one line, counts `BrokerSecretNotSet` (alarmed
at >= 1) and returns without deciding, ordering or closing anything. Functions that need no keys (paper broker and
S3 data) never read the secret and are unaffected.

The executor must not lose the messages it was handed: it reports every message of the batch as failed, so SQS
redelivers them; after the queue's maxReceiveCount they reach the DLQ, where the outcomes' sweep archives each in the
trade log (DEAD_LETTERED), and `mytrader ops redrive-dlq` re-sends them once the keys are set (the executor still
rejects decisions older than DECISION_MAX_AGE_S). Dependencies are not cached after a failure: the next invocation
reads the secret again (Powertools caches it for SECRET_MAX_AGE_S).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit

from mytrader.adapters.aws.secrets import SecretNotSet
from mytrader.observability import logger, metrics
from mytrader.stack_spec import SECRET_NOT_SET_METRIC

T = TypeVar("T")
HINT = ("put your Alpaca keys in the broker secret (stack output BrokerSecretArn): aws secretsmanager "
        "put-secret-value --secret-id <arn> --secret-string '{\"key_id\": \"...\", \"secret_key\": \"...\"}'; "
        "then run `mytrader doctor`")


def started(build: Callable[[], T]) -> T | None:
    """The function's dependencies, or None (logged once, counted) while the broker secret is not set."""
    try:
        return build()
    except SecretNotSet as exc:
        logger.error(f"not started: {exc}; {HINT}")
        metrics.add_metric(name=SECRET_NOT_SET_METRIC, unit=MetricUnit.Count, value=1)
        return None


def not_started() -> dict[str, Any]:
    """What a function that did nothing returns."""
    return {"status": "not_configured", "reason": "broker secret not set", "hint": HINT}


def hand_back_batch(event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """The executor's answer while not started: every message reported failed (redelivered, never lost)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return {"batchItemFailures": [{"itemIdentifier": str(r.get("messageId", ""))}
                                  for r in (records if isinstance(records, list) else []) if isinstance(r, dict)]}
