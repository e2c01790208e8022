"""The decisions queue and its DLQ on SQS: one message per actionable decision, grouped by symbol, deduplicated by
decision id (the adapters of the DecisionQueue and DeadLetterQueue ports).

The message is a pointer to the decision record, never the decision: {"decision_id", "symbol", "action", "digest"},
the digest being that of the record's stored document (usecases/admission.py). The executor reads the record and
executes it only if the pointer matches it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from mytrader.models import DecisionStatus
from mytrader.ports import QueuedMessage
from mytrader.usecases.admission import DecisionMessage, message_for

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import SQSClient
    from mytrader.models import TradeDecision


def recorded_doc(decision: TradeDecision) -> str:
    """The document the trade log stores for this decision when it records it PENDING (TradeLog.decision_item:
    the decision's JSON as decided, status PENDING, no status reason). A decision read back from the log carries
    the row's current status and reason; they are not part of the stored document."""
    return decision.model_copy(update={"status": DecisionStatus.PENDING, "status_reason": ""}).model_dump_json()


def send_pointer(sqs: SQSClient, queue_url: str, message: DecisionMessage, dedup_id: str | None = None) -> None:
    """Sends a pointer, grouped by its symbol, deduplicated by its decision id (`dedup_id`: a deliberate re-send,
    as a DLQ redrive, within the 5-minute deduplication window)."""
    sqs.send_message(QueueUrl=queue_url, MessageBody=message.model_dump_json(), MessageGroupId=message.symbol,
                     MessageDeduplicationId=(dedup_id or message.decision_id)[:128])


def send_decision(sqs: SQSClient, queue_url: str, decision: TradeDecision, doc: str | None = None,
                  dedup_id: str | None = None) -> DecisionMessage:
    """Sends the pointer to the recorded `decision`; `doc`: the record's stored document when the caller has it
    (by default the one `recorded_doc` rebuilds)."""
    message = message_for(decision, recorded_doc(decision) if doc is None else doc)
    send_pointer(sqs, queue_url, message, dedup_id)
    return message


class SqsDecisionQueue:
    """One FIFO message per actionable decision, grouped by symbol, deduplicated by decision id."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self.sqs, self.queue_url = sqs, queue_url

    def send(self, decision: TradeDecision) -> None:
        send_decision(self.sqs, self.queue_url, decision)


DLQ_SWEEP_VISIBILITY_S = 30  # long enough to archive a batch; a message not archived comes back after it


class SqsDeadLetterQueue:
    """The DLQ as the sweep reads it: received messages are hidden while archived, then deleted."""

    def __init__(self, sqs: SQSClient, queue_url: str) -> None:
        self.sqs, self.queue_url = sqs, queue_url

    def receive(self) -> list[QueuedMessage]:
        resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                        VisibilityTimeout=DLQ_SWEEP_VISIBILITY_S, WaitTimeSeconds=0)
        return [QueuedMessage(message_id=m["MessageId"], receipt_handle=m["ReceiptHandle"], body=m["Body"])
                for m in resp.get("Messages", [])]

    def delete(self, messages: list[QueuedMessage]) -> None:
        for m in messages:  # one DeleteMessage each (authorised as sqs:DeleteMessage, as the batch call would be)
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m.receipt_handle)
