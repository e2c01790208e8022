"""Safe start on the embedded AWS: with the broker secret still holding the deploy-time placeholder, the functions
that need it (here with Alpaca market data) decide nothing, order nothing, and hand the executor's batch back.

The handlers run in process with the test's (administrator) credentials: what is tested is their behaviour on the
placeholder, not their grants (tests/infra asserts the secret is granted exactly where Alpaca is used)."""
from __future__ import annotations

import json

from mytrader.adapters.tradelog import TradeLog
from mytrader.stack_spec import FUNCTIONS
from mytrader_tools.embedded.services import LocalFunction
from mytrader_tools.embedded.stack import LAMBDAS

CLOSED_PORT = "http://127.0.0.1:9"  # were Alpaca ever called, it would fail here, never reach the network
PLACEHOLDER = json.dumps({"key_id": "set-me", "secret_key": "generated-by-cloudformation"})


def on_alpaca(embedded, stack, key: str) -> str:
    """The function `key` of this stack, registered again with Alpaca market data and news."""
    spec = FUNCTIONS[key]
    name = f"{stack.prefix}-{spec.name_suffix}-alpaca"
    env = {**stack.settings_env, "MARKET_DATA": "alpaca", "NEWS_SOURCE": "alpaca",
           "ALPACA_DATA_URL": CLOSED_PORT, "ALPACA_TRADING_URL": CLOSED_PORT}
    embedded.bridge.register(LocalFunction(name, LAMBDAS / spec.folder / "handler.py", env, spec.memory_mb,
                                           spec.timeout_s))
    return name


def invoke(embedded, name: str, payload: dict) -> dict:
    result, error = embedded.bridge.invoke(name, payload)
    assert error is None, result
    assert isinstance(result, dict)
    return result


def test_placeholder_secret_means_no_decision_no_order_and_no_lost_message(embedded, stack):
    # Given a fresh deploy: the broker secret still holds the placeholder
    stack.client("secretsmanager").put_secret_value(SecretId=stack.settings_env["BROKER_SECRET_ARN"],
                                                    SecretString=PLACEHOLDER)
    tl = TradeLog(stack.client("dynamodb"), stack.settings_env["TRADE_LOG_TABLE"])
    # When the decision schedule fires
    out = invoke(embedded, on_alpaca(embedded, stack, "decision_cycle"),
                 {"scheduled_time": "2011-03-01T21:00:00+00:00", "universe": ["NVDA", "ORCL"]})
    # Then nothing is decided, recorded or sent, and the function says why
    assert out["status"] == "not_configured" and "doctor" in out["hint"]
    assert sum(tl.count_by_status().values()) == 0
    attrs = stack.client("sqs").get_queue_attributes(QueueUrl=stack.queue_urls["decisions"],
                                                     AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    # When the executor is handed a batch anyway, Then every message goes back to SQS (redelivered, never lost)
    records = [{"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": "{}", "attributes": {},
                "messageAttributes": {}, "eventSource": "aws:sqs"} for i in range(2)]
    handed_back = invoke(embedded, on_alpaca(embedded, stack, "executor"), {"Records": records})
    assert handed_back == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    # When the outcomes schedule fires, Then it does nothing either (no close, no re-send, no sweep)
    assert invoke(embedded, on_alpaca(embedded, stack, "outcomes"), {})["status"] == "not_configured"
