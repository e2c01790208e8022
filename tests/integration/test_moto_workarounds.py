"""Each moto gap the embedded AWS works around, checked (see mytrader_tools/embedded/moto_workarounds.py)."""
from __future__ import annotations

import json
import os
from typing import Any

import boto3

from mytrader_tools.embedded.moto_workarounds import step_functions_executes


def test_step_functions_execution_is_switched_on_and_task_calls_route_here(embedded):
    assert step_functions_executes(embedded)
    assert os.environ["MOTO_PORT"] == str(embedded.port)


def test_comprehend_batch_sentiment_is_served_locally(embedded):
    c = boto3.client("comprehend")
    out = c.batch_detect_sentiment(TextList=["Great record profits", "Terrible crash and losses"], LanguageCode="en")
    s = {r["Index"]: r["Sentiment"] for r in out["ResultList"]}
    assert s == {0: "POSITIVE", 1: "NEGATIVE"}
    try:
        c.batch_detect_sentiment(TextList=["x"] * 26, LanguageCode="en")
        raise AssertionError("26 documents must be refused")
    except c.exceptions.BatchSizeLimitExceededException:
        pass


def test_converse_is_served_by_the_local_advisor_model(embedded):
    from mytrader.advisor.llm import LlmAdvisor
    from mytrader.config import AdvisorSettings
    from tests.unit.test_advisor import inputs

    advice, call = LlmAdvisor(boto3.client("bedrock-runtime"), AdvisorSettings()).advise(inputs(), "d")
    assert advice is not None and "not an LLM" in advice.reasoning and call.input_tokens > 0


def test_lambda_invoke_runs_our_handler(stack):
    out = boto3.client("lambda").invoke(FunctionName=stack.function_name("decision_cycle"), Payload=json.dumps({}))
    assert json.loads(out["Payload"].read())["status"] == "rejected_event"


def test_fast_dynamodb_queries_return_what_moto_returns(stack):
    """Workaround 7: the partition-only query and the unsorted GSI pre-pass give moto's own results."""
    from mytrader.adapters.tradelog import DynamoStore, TradeLog, to_item

    ddb = boto3.client("dynamodb")
    table = stack.settings_env["TRADE_LOG_TABLE"]
    for k in range(120):
        ddb.put_item(TableName=table, Item=to_item({"pk": f"P#{k % 3}", "sk": f"{k:04d}", "gsi2pk": f"G#{k % 4}",
                                                    "gsi2sk": f"{(k * 7) % 50:04d}", "v": k}))
    store = TradeLog(ddb, table).store
    assert isinstance(store, DynamoStore)

    def both():
        main = [r["v"] for r in store._all(KeyConditionExpression="pk = :p AND sk > :s",
                                           ExpressionAttributeValues=to_item({":p": "P#1", ":s": "0010"}))]
        gsi = [r["v"] for r in store._all(IndexName="gsi2", KeyConditionExpression="gsi2pk = :p", Limit=7,
                                          ExpressionAttributeValues=to_item({":p": "G#2"}))]
        return main, gsi

    fast = both()
    from moto.dynamodb.models.table import Table

    moto_table: Any = Table  # its methods are swapped by assignment
    patched = moto_table.query, moto_table.all_items
    try:  # moto's original code path, for comparison
        moto_table.query = moto_table.query.__wrapped_original__
        moto_table.all_items = moto_table.all_items.__wrapped_original__
        slow = both()
    finally:
        moto_table.query, moto_table.all_items = patched
    assert fast == slow and len(fast[0]) == 36 and len(fast[1]) == 30


def test_transaction_undo_restores_what_moto_restores(embedded):
    """Workaround 8: a failed transaction puts back only the items it touched (and drops its stream records),
    leaving the table as moto's whole-table copy would; no table is copied, none is kept by moto's tracker."""
    from botocore.exceptions import ClientError
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
    from moto.dynamodb.models.table import Table

    ddb = boto3.client("dynamodb")
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][embedded.region]

    def s(v: str) -> dict[str, str]:
        return {"S": v}

    def run(name: str) -> tuple[list[str], list[Any], int, bool]:
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        for k in range(30):
            ddb.put_item(TableName=name, Item={"pk": s(f"P{k % 3}"), "sk": s(f"{k:02d}"), "v": {"N": str(k)},
                                               "m": {"M": {"l": {"L": [{"N": "1"}]}}}})
        table = backend.tables[name]

        def key(pk: str, sk: str) -> dict[str, Any]:
            return {"TableName": name, "Key": {"pk": s(pk), "sk": s(sk)}}

        failing = s("nope")
        transactions = [
            [{"Put": {"TableName": name, "Item": {"pk": s("P9"), "sk": s("new")}}},
             {"Update": {**key("P1", "01"), "UpdateExpression": "SET v = :x, m.l[0] = :x",
                         "ExpressionAttributeValues": {":x": {"N": "99"}}}},
             {"Delete": key("P2", "02")},
             {"Update": {**key("P0", "new"), "UpdateExpression": "SET v = :x",
                         "ExpressionAttributeValues": {":x": {"N": "7"}}}},
             {"ConditionCheck": {**key("P0", "00"), "ConditionExpression": "v = :f",
                                 "ExpressionAttributeValues": {":f": failing}}}],
            [{"Put": {"TableName": name, "Item": {"pk": s("P1"), "sk": s("04"), "v": {"N": "0"}}}},
             {"Delete": key("P1", "04")}],  # two operations on one item: refused, after the Put was applied
            [{"Update": {**key("P0", "03"), "UpdateExpression": "SET v = v + :one",
                         "ExpressionAttributeValues": {":one": {"N": "1"}}}},
             {"Put": {"TableName": name, "Item": {"pk": s("P2"), "sk": s("05")},
                      "ConditionExpression": "attribute_not_exists(pk)"}}],
            [{"Update": {**key("P0", "03"), "UpdateExpression": "SET v = v + :one",
                         "ExpressionAttributeValues": {":one": {"N": "1"}}}}],  # succeeds
        ]
        codes = []
        for items in transactions:
            try:
                ddb.transact_write_items(TransactItems=items)
                codes.append("ok")
            except ClientError as exc:
                reasons = [r["Code"] for r in exc.response.get("CancellationReasons", [])]
                codes.append(f"{exc.response['Error']['Code']} {reasons}")
        rows = sorted((r["pk"]["S"], r["sk"]["S"], json.dumps(r, sort_keys=True))
                      for r in ddb.scan(TableName=name, ConsistentRead=True)["Items"])
        stream: Any = backend.tables[name].stream_shard
        return codes, rows, len(stream.items), backend.tables[name] is table

    def two_operations_in_one_entry(name: str) -> list[Any]:
        """moto applies the first item, then refuses the second entry without rolling back: the undo log does."""
        first = {"Put": {"TableName": name, "Item": {"pk": s("P8"), "sk": s("a")}}}
        both = {"Put": {"TableName": name, "Item": {"pk": s("P8"), "sk": s("b")}},
                "Delete": {"TableName": name, "Key": {"pk": s("P8"), "sk": s("c")}}}
        try:
            ddb.transact_write_items(TransactItems=[first, both])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ValidationException"
        return ddb.query(TableName=name, KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": s("P8")})["Items"]

    moto_backend: Any = DynamoDBBackend
    patched = moto_backend.transact_write_items
    tracker: Any = Table  # moto keeps every instance of its models here until the next reset
    tracked = len(tracker.instances_tracked)
    undo = run("undo_table")
    assert two_operations_in_one_entry("undo_table") == []
    assert len(tracker.instances_tracked) == tracked + 1  # the table itself, no copy
    try:
        moto_backend.transact_write_items = patched.__wrapped_original__
        whole_copy = run("copy_table")
        assert len(two_operations_in_one_entry("copy_table")) == 1  # moto's own path keeps the first Put
    finally:
        moto_backend.transact_write_items = patched
    assert undo[0] == whole_copy[0] and undo[0][-1] == "ok" and undo[0][0].startswith("TransactionCanceledException")
    assert undo[1] == whole_copy[1] and len(undo[1]) == 30
    assert undo[2] == whole_copy[2] == 31  # 30 puts and the one transaction that succeeded
    assert undo[3] and not whole_copy[3]  # moto swaps in its copy of the table; the undo log keeps the table
