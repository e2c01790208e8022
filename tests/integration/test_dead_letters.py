"""The DLQ lifecycle on the embedded AWS: the outcomes' sweep archives every dead letter in the trade log and empties
the DLQ in one run; `mytrader ops redrive-dlq` sends the archived pointers back as PENDING decisions. (50 dead letters
run in tests/unit/test_dead_letters.py against an SQS-like fake; here 12 -- more than one receive of 10, which is
where the old sweep stopped -- keep the embedded run short.)"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from mytrader.adapters.tradelog import TradeLog
from mytrader.models import Action, Mode, StrategySignal, TradeDecision, make_decision_id
from mytrader.usecases.admission import message_for
from mytrader_tools.cli import app

AT = datetime(2011, 3, 1, 21, 0, tzinfo=UTC)
SYMBOLS = ("NVDA", "ORCL", "AAPL")
N = 12


def depth(stack, queue: str) -> int:
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_urls[queue],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_every_dead_letter_is_marked_in_one_outcomes_run_and_redriven(stack):
    # Given 12 PENDING decisions whose genuine messages reached the DLQ (3 FIFO groups), and 2 hostile messages
    tl = TradeLog(stack.client("dynamodb"), stack.settings_env["TRADE_LOG_TABLE"])
    sqs, dlq = stack.client("sqs"), stack.queue_urls["decisions-dlq"]
    stack.set_param("REPLAY_CLOCK", (AT + timedelta(minutes=1)).isoformat())  # not yet "stuck": no re-send
    ids = []
    for i in range(N):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        d = TradeDecision(decision_id=make_decision_id(symbol, AT, f"dl{i}"), symbol=symbol, bar_ts=AT, decided_at=AT,
                          config_version=f"dl{i}", mode=Mode.CONSENSUS, action=Action.BUY, confidence=0.8,
                          position_size_pct=5.0, reference_price=100.0, time_horizon_bars=5,
                          strategy=StrategySignal(action=Action.BUY, confidence=0.7, reason="trend"))
        assert tl.put_decision(d)
        row = tl.get_decision_row(d.decision_id)
        assert row is not None
        sqs.send_message(QueueUrl=dlq, MessageBody=message_for(d, row["doc"]).model_dump_json(),
                         MessageGroupId=symbol, MessageDeduplicationId=f"dl{i}")
        ids.append(d.decision_id)
    for i, body in enumerate(["{not json", json.dumps({"decision_id": ids[0], "symbol": "NVDA"})]):
        sqs.send_message(QueueUrl=dlq, MessageBody=body, MessageGroupId="NVDA", MessageDeduplicationId=f"bad{i}")
    # When the outcomes function runs once
    out = stack.invoke("outcomes", {})
    # Then all 12 decisions are DEAD_LETTERED, the hostile bodies are archived as orphans, and the DLQ is empty
    assert out["dead_lettered"] == N
    assert tl.count_by_status()["DEAD_LETTERED"] == N
    assert len([o for o in tl.orphans() if o["reason"].startswith("dead letter:")]) == 2
    assert depth(stack, "decisions-dlq") == 0
    # When the operator redrives them
    res = CliRunner().invoke(app, ["ops", "redrive-dlq", "--prefix", stack.prefix])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["redriven"] == N
    # Then they are PENDING again, one message each on the decisions queue; nothing is left DEAD_LETTERED
    counts = tl.count_by_status()
    assert counts["PENDING"] == N and counts["DEAD_LETTERED"] == 0
    assert depth(stack, "decisions") == N
