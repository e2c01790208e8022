"""The embedded DynamoDB is no kinder than DynamoDB: linearizable under concurrent requests, and able to answer
writes with the conflicts DynamoDB reports under contention (see mytrader_tools/embedded/endpoint.py)."""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mytrader_tools.embedded.endpoint import DynamoFaults

_names = itertools.count()


@pytest.fixture
def faults(embedded):
    yield embedded.router
    embedded.router.dynamodb_faults = DynamoFaults()


def _client():
    return boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 1},
                                                  max_pool_connections=32))


def _table(client, ranged: bool = False) -> str:
    name = f"ddb{next(_names)}"
    keys = [("pk", "HASH")] + ([("sk", "RANGE")] if ranged else [])
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
                        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys])
    return name


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_concurrent_conditional_transactions_lose_no_write(embedded):
    """8 threads x 50 increments of one versioned counter, each with a log item in a second table that two other
    threads fill at the same time: moto's failed transactions used to put back an old copy of that table."""
    client = _client()
    counters, log = _table(client), _table(client, ranged=True)
    client.put_item(TableName=counters, Item={"pk": {"S": "c"}, "n": {"N": "0"}, "version": {"N": "0"}})
    threads, per_thread, writers, per_writer = 8, 50, 2, 150
    cancelled = [0] * threads

    def increment(t: int) -> None:
        done = 0
        item = client.get_item(TableName=counters, Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"]
        while done < per_thread:
            version = int(item["version"]["N"])
            try:
                client.transact_write_items(TransactItems=[
                    {"Update": {"TableName": counters, "Key": {"pk": {"S": "c"}},
                                "UpdateExpression": "SET n = n + :one, version = :next",
                                "ConditionExpression": "version = :v", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                                "ExpressionAttributeValues": {":one": {"N": "1"}, ":v": {"N": str(version)},
                                                              ":next": {"N": str(version + 1)}}}},
                    {"Put": {"TableName": log, "Item": {"pk": {"S": "tx"}, "sk": {"S": f"{t}-{done}"},
                                                        "version": {"N": str(version + 1)}},
                             "ConditionExpression": "attribute_not_exists(pk)"}}])
                done += 1
                item = {"version": {"N": str(version + 1)}}
            except ClientError as exc:
                assert _code(exc) == "TransactionCanceledException", exc.response
                reasons = exc.response["CancellationReasons"]
                assert [r["Code"] for r in reasons] == ["ConditionalCheckFailed", "None"], reasons
                item = reasons[0]["Item"]  # the counter as the transaction found it: retry from there
                cancelled[t] += 1

    def write(w: int) -> None:
        for k in range(per_writer):
            client.put_item(TableName=log, Item={"pk": {"S": "w"}, "sk": {"S": f"{w}-{k}"}})

    with ThreadPoolExecutor(threads + writers) as pool:
        futures = [pool.submit(increment, t) for t in range(threads)] + [pool.submit(write, w) for w in range(writers)]
        for f in futures:
            f.result()

    successes = threads * per_thread
    counter = client.get_item(TableName=counters, Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"]
    assert int(counter["n"]["N"]) == int(counter["version"]["N"]) == successes
    rows = _scan(client, log)
    tx = [r for r in rows if r["pk"]["S"] == "tx"]
    assert len(tx) == successes
    assert sorted(int(r["version"]["N"]) for r in tx) == list(range(1, successes + 1))  # each version won once
    assert len([r for r in rows if r["pk"]["S"] == "w"]) == writers * per_writer
    assert sum(cancelled) > 0  # the threads did contend: the retry path ran


def _scan(client, table: str) -> list[dict]:
    out: list[dict] = []
    kw: dict = {}
    while True:
        page = client.scan(TableName=table, ConsistentRead=True, **kw)
        out.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return out
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_injected_transaction_conflict_has_dynamodbs_shape_and_applies_nothing(faults):
    client = _client()
    table = _table(client)
    client.put_item(TableName=table, Item={"pk": {"S": "old"}, "v": {"N": "1"}})
    faults.dynamodb_faults = injector = DynamoFaults(transaction_conflict_rate=1.0, seed=3)
    items = [{"Put": {"TableName": table, "Item": {"pk": {"S": "new"}}}},
             {"Update": {"TableName": table, "Key": {"pk": {"S": "old"}}, "UpdateExpression": "SET v = :two",
                         "ExpressionAttributeValues": {":two": {"N": "2"}}}},
             {"Delete": {"TableName": table, "Key": {"pk": {"S": "old2"}}}},
             {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "old"}},
                                 "ConditionExpression": "attribute_exists(pk)"}}]
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=items)
    resp = raised.value.response
    assert _code(raised.value) == "TransactionCanceledException"
    assert isinstance(raised.value, client.exceptions.TransactionCanceledException)  # the modeled error class
    reasons = resp["CancellationReasons"]
    assert len(reasons) == len(items) and all(isinstance(r, dict) for r in reasons)
    conflicts = [r for r in reasons if r["Code"] == "TransactionConflict"]
    assert conflicts and all(r["Message"] == "Transaction is ongoing for the item" for r in conflicts)
    assert all(r == {"Code": "None"} for r in reasons if r["Code"] != "TransactionConflict")
    assert resp["Error"]["Message"].startswith("Transaction cancelled, please refer cancellation reasons")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "TransactionCanceledException"
    assert injector.injected["TransactWriteItems"] == injector.seen["TransactWriteItems"] == 1

    faults.dynamodb_faults = DynamoFaults()
    assert "Item" not in client.get_item(TableName=table, Key={"pk": {"S": "new"}}, ConsistentRead=True)
    assert client.get_item(TableName=table, Key={"pk": {"S": "old"}})["Item"]["v"] == {"N": "1"}


def test_injected_single_item_write_conflicts(faults):
    client = _client()
    table = _table(client)
    client.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    faults.dynamodb_faults = injector = DynamoFaults(write_conflict_rate=1.0)
    calls = {"PutItem": lambda: client.put_item(TableName=table, Item={"pk": {"S": "b"}}),
             "UpdateItem": lambda: client.update_item(TableName=table, Key={"pk": {"S": "a"}},
                                                      UpdateExpression="SET v = :v",
                                                      ExpressionAttributeValues={":v": {"N": "2"}}),
             "DeleteItem": lambda: client.delete_item(TableName=table, Key={"pk": {"S": "a"}})}
    for operation, call in calls.items():
        with pytest.raises(ClientError) as raised:
            call()
        assert _code(raised.value) == "TransactionConflictException", operation
        assert isinstance(raised.value, client.exceptions.TransactionConflictException)
        assert raised.value.response["Error"]["Message"] == "Transaction is ongoing for the item"
        assert injector.injected[operation] == 1
    # reads and transactions are not single-item writes: untouched
    assert client.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"]["v"] == {"N": "1"}
    client.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {"pk": {"S": "c"}}}}])
    faults.dynamodb_faults = DynamoFaults()
    assert "Item" not in client.get_item(TableName=table, Key={"pk": {"S": "b"}})
    assert "Item" in client.get_item(TableName=table, Key={"pk": {"S": "c"}})


def test_conditions_stay_real_under_the_injector(faults):
    """Only conflicts are injected: a failed condition is moto's own verdict, reported for its item."""
    client = _client()
    table = _table(client)
    faults.dynamodb_faults = DynamoFaults(transaction_conflict_rate=0.0, write_conflict_rate=0.0)
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": "x"}}}},
            {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "missing"}},
                                "ConditionExpression": "attribute_exists(pk)"}}])
    assert [r["Code"] for r in raised.value.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert "Item" not in client.get_item(TableName=table, Key={"pk": {"S": "x"}})


def _run_transactions(client, table: str, count: int) -> list[int]:
    cancelled = []
    for i in range(count):
        try:
            client.transact_write_items(TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": f"a{i}"}}}},
                {"Put": {"TableName": table, "Item": {"pk": {"S": f"b{i}"}}}}])
        except ClientError as exc:
            assert _code(exc) == "TransactionCanceledException"
            assert "TransactionConflict" in [r["Code"] for r in exc.response["CancellationReasons"]]
            cancelled.append(i)
    return cancelled


def test_conflict_rate_is_seeded_and_near_its_share(faults):
    client = _client()
    table = _table(client)
    faults.dynamodb_faults = injector = DynamoFaults(transaction_conflict_rate=0.1, seed=42)
    cancelled = _run_transactions(client, table, 200)
    assert injector.seen["TransactWriteItems"] == 200
    assert injector.injected["TransactWriteItems"] == len(cancelled)
    assert 10 <= len(cancelled) <= 40, len(cancelled)  # 5 % to 20 %
    faults.dynamodb_faults = DynamoFaults()
    assert len(_scan(client, table)) == 2 * (200 - len(cancelled))  # the cancelled ones wrote nothing

    faults.dynamodb_faults = DynamoFaults(transaction_conflict_rate=0.1, seed=42)  # same seed, same faults
    assert _run_transactions(client, _table(client), 200) == cancelled


def test_the_router_s_injector_is_configured_in_place(faults):
    """The router starts with an injector that injects nothing; a harness turns it up and down in place."""
    client = _client()
    table = _table(client)
    injector = faults.dynamodb_faults
    assert injector.transaction_conflict_rate == injector.write_conflict_rate == 0.0
    client.put_item(TableName=table, Item={"pk": {"S": "a"}})
    assert injector.injected_total() == 0 and not injector.seen
    injector.configure(write_conflict_rate=1.0, seed=1)
    with pytest.raises(ClientError) as raised:
        client.put_item(TableName=table, Item={"pk": {"S": "b"}})
    assert _code(raised.value) == "TransactionConflictException" and injector.injected_total() == 1
    injector.configure(write_conflict_rate=0.0)
    client.put_item(TableName=table, Item={"pk": {"S": "b"}})
    assert injector.injected_total() == 1


def test_other_services_do_not_wait_for_dynamodb(embedded):
    """The DynamoDB lock is DynamoDB's alone: while it is held, SQS still answers (within the read timeout)."""
    sqs = boto3.client("sqs", config=Config(read_timeout=5, retries={"mode": "standard", "max_attempts": 1}))
    with embedded.router._dynamodb_lock:
        url = sqs.create_queue(QueueName=f"q{next(_names)}")["QueueUrl"]
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
