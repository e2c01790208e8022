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
    from mytrader.adapters.tradelog import TradeLog, to_item

    ddb = boto3.client("dynamodb")
    table = stack.settings_env["TRADE_LOG_TABLE"]
    for k in range(120):
        ddb.put_item(TableName=table, Item=to_item({"pk": f"P#{k % 3}", "sk": f"{k:04d}", "gsi2pk": f"G#{k % 4}",
                                                    "gsi2sk": f"{(k * 7) % 50:04d}", "v": k}))
    tl = TradeLog(ddb, table)

    def both():
        main = [r["v"] for r in tl._query_all(KeyConditionExpression="pk = :p AND sk > :s",
                                              ExpressionAttributeValues=to_item({":p": "P#1", ":s": "0010"}))]
        gsi = [r["v"] for r in tl._query_all(IndexName="gsi2", KeyConditionExpression="gsi2pk = :p", Limit=7,
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
