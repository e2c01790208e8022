"""`mytrader ops` against the embedded AWS: status, halt/resume, flatten, redrive-dlq."""
from __future__ import annotations

import json
from datetime import date

from typer.testing import CliRunner

from mytrader.market.calendar import nyse
from mytrader.models import DecisionStatus
from mytrader.usecases.admission import message_for
from mytrader_tools.cli import app
from mytrader_tools.embedded import demo as D
from mytrader_tools.embedded.event_source import drain
from mytrader_tools.embedded.replay import replay
from tests.integration.test_pipeline_replay import recorded, tradelog


def run(*args) -> str:
    res = CliRunner().invoke(app, ["ops", *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_ops_commands(stack):
    prefix = stack.prefix
    # Given a replay that leaves a position open at its end
    end = date(2011, 2, 28)
    for extra in range(0, 40):
        replay(stack, D.load_series(), date(2011, 1, 3) if extra == 0 else end, end)
        if tradelog(stack).positions():
            break
        end = nyse().next_session(end)
    assert tradelog(stack).positions()
    status = json.loads(run("status", "--prefix", prefix))
    assert status["kill_switch"] == "off" and status["positions"] and status["queue_depth"]["decisions"] == 0
    run("halt", "--prefix", prefix)
    assert stack.get_param("KILL_SWITCH") == "on"
    # When flattening while halted, Then the positions close anyway (reduce-only)
    assert "close decisions queued" in run("flatten", "--prefix", prefix, "--yes")
    stack.set_param("REPLAY_CLOCK", nyse().session_open(nyse().next_session(nyse().next_session(end))).isoformat())
    drain(stack)
    assert tradelog(stack).positions() == []
    run("resume", "--prefix", prefix)
    assert stack.get_param("KILL_SWITCH") == "off"


def test_redrive_moves_dead_letters_back(stack):
    tl = tradelog(stack)
    d, day = None, date(2011, 1, 3)
    while d is None:
        day = nyse().next_session(day)
        out = stack.invoke("decision_cycle", {"scheduled_time": nyse().session_close(day).isoformat(),
                                              "universe": ["NVDA", "ORCL"]})
        sent = [r for r in out["per_symbol"] if r["result"] == "sent"]
        d = tl.get_decision(sent[0]["decision_id"]) if sent else None
    sqs = stack.client("sqs")
    sqs.purge_queue(QueueUrl=stack.queue_urls["decisions"])
    row = tl.get_decision_row(d.decision_id)
    assert row is not None
    pointer = message_for(d, row["doc"]).model_dump_json()  # the genuine message, dead-lettered
    sqs.send_message(QueueUrl=stack.queue_urls["decisions-dlq"], MessageBody=pointer, MessageGroupId=d.symbol,
                     MessageDeduplicationId="dl1")
    stack.invoke("outcomes", {})
    assert recorded(tl, d.decision_id).status == DecisionStatus.DEAD_LETTERED
    assert json.loads(run("redrive-dlq", "--prefix", stack.prefix))["redriven"] == 1
    assert recorded(tl, d.decision_id).status == DecisionStatus.PENDING
    stack.set_param("REPLAY_CLOCK", nyse().session_open(nyse().next_session(day)).isoformat())
    drain(stack)
    assert recorded(tl, d.decision_id).status == DecisionStatus.EXECUTED
