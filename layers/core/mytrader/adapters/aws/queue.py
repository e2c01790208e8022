"""The decisions queue and its DLQ on SQS: one message per actionable decision, grouped by symbol, deduplicated by
decision id (the adapters of the DecisionQueue and DeadLetterQueue ports)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from mytrader.ports import QueuedMessage

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import SQSClient
    from mytrader.models import TradeDecision


def send_decision(sqs: SQSClient, queue_url: str, decision: TradeDecision) -> None:
    body = decision.model_dump_json(exclude={"features", "prompt_inputs"})
    sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageGroupId=decision.symbol,
                     MessageDeduplicationId=decision.decision_id)


class SqsDecisionQueue:
    """One FIFO message per actionable decision, grouped by symbol, deduplicated by decision id."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self.sqs, self.queue_url = sqs, queue_url

    def send(self, decision: TradeDecision) -> None:
        send_decision(self.sqs, self.queue_url, decision)


class SqsDeadLetterQueue:
    """The DLQ read without consuming: received messages are hidden briefly, then released."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self.sqs, self.queue_url = sqs, queue_url

    def receive(self) -> list[QueuedMessage]:
        resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=5,
                                        WaitTimeSeconds=0)
        return [QueuedMessage(message_id=m["MessageId"], receipt_handle=m["ReceiptHandle"], body=m["Body"])
                for m in resp.get("Messages", [])]

    def release(self, message: QueuedMessage) -> None:
        self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle,
                                           VisibilityTimeout=0)
