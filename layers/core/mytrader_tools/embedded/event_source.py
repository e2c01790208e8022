"""The SQS event source mapping, emulated: receive up to 10 messages, invoke the executor with the SQS
event shape, delete what succeeded, and leave batchItemFailures to come back (as Lambda does with
ReportBatchItemFailures: they reappear when their visibility timeout ends, which the emulation does at once,
as the local administrator: Lambda's poller itself never calls ChangeMessageVisibility). moto's redrive moves a
message to the DLQ after maxReceiveCount receives."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass
class DrainStats:
    batches: int = 0
    delivered: int = 0
    succeeded: int = 0
    failed: int = 0
    function_errors: int = 0


def sqs_event(messages: list[dict], queue_arn: str, region: str) -> dict:
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
        "messageAttributes": {}, "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region} for m in messages]}


def drain(stack, max_batches: int = 500, batch_size: int = 10) -> DrainStats:
    """Deliver until the queue is empty (failed messages retried at once until they dead-letter)."""
    sqs, lam = stack.function_client("executor", "sqs"), stack.client("lambda")  # Lambda polls with its role
    clock = stack.client("sqs")  # what time does on AWS, done at once: the visibility timeout of a failure ends
    url, arn = stack.queue_urls["decisions"], stack.queue_arns["decisions"]
    stats = DrainStats()
    for _ in range(max_batches):
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=batch_size, VisibilityTimeout=30,
                                   AttributeNames=["All"], MessageSystemAttributeNames=["All"], WaitTimeSeconds=0)
        msgs = resp.get("Messages", [])
        if not msgs:
            break
        stats.batches += 1
        stats.delivered += len(msgs)
        out = lam.invoke(FunctionName=stack.function_name("executor"),
                         Payload=json.dumps(sqs_event(msgs, arn, stack.embedded.region)).encode())
        body = json.loads(out["Payload"].read() or b"null")
        if out.get("FunctionError"):
            stats.function_errors += 1
            failed = {m["MessageId"] for m in msgs}
        else:
            failed = {f["itemIdentifier"] for f in (body or {}).get("batchItemFailures", [])}
        for m in msgs:
            if m["MessageId"] in failed:
                stats.failed += 1
                clock.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
            else:
                stats.succeeded += 1
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return stats
