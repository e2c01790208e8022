"""The decisions queue: one message per actionable decision, grouped by symbol, deduplicated by decision id."""
from __future__ import annotations

from mytrader.models import TradeDecision


def send_decision(sqs, queue_url: str, decision: TradeDecision) -> None:
    body = decision.model_dump_json(exclude={"features", "prompt_inputs"})
    sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageGroupId=decision.symbol,
                     MessageDeduplicationId=decision.decision_id)
