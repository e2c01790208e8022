"""Bad input and faults on the embedded AWS: each ends in a clear record, nothing lost, nothing doubled."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from mytrader.market.calendar import nyse
from mytrader.market.sources import synthetic_series
from mytrader.models import DecisionStatus
from mytrader.usecases.admission import message_for
from mytrader_tools.embedded import demo as D
from mytrader_tools.embedded.event_source import drain
from mytrader_tools.embedded.faults import FaultPlan
from mytrader_tools.embedded.replay import replay
from mytrader_tools.ops import Ops
from tests.integration.test_pipeline_replay import ledger_duplicates, recorded, tradelog

CLOSE = nyse().session_close(date(2011, 3, 1))


def series_csv(series) -> str:
    rows = ["Date,Open,High,Low,Close,Volume"]
    for i in range(len(series)):
        rows.append(f"{series.time(i).date().isoformat()},{series.open[i]:.4f},{series.high[i]:.4f},"
                    f"{series.low[i]:.4f},{series.close[i]:.4f},{int(series.volume[i])}")
    return "\n".join(rows) + "\n"


def upload_synthetic(stack, n: int) -> list[str]:
    s3 = stack.client("s3")
    symbols = [f"S{k:03d}" for k in range(n)]
    for k, sym in enumerate(symbols):
        body = series_csv(synthetic_series(sym, 320, seed=k, start=date(2010, 1, 4)))
        s3.put_object(Bucket=stack.bucket, Key=f"market-data/{sym}.csv", Body=body.encode())
    return symbols


def cycle(stack, universe, at=CLOSE):
    return stack.invoke("decision_cycle", {"scheduled_time": at.isoformat(), "universe": universe})


def test_converse_failing_20_percent_falls_back_20_percent_and_every_decision_ends(make_stack, embedded):
    # Given 200 symbols asking the advisor for the first time, and Converse throttling or timing out 20 % of calls
    stack = make_stack()
    universe = upload_synthetic(stack, 200)
    embedded.runtime.configure(throttle_rate=0.10, timeout_rate=0.10, seed=3)
    at = nyse().session_close(date(2011, 3, 1))
    out = cycle(stack, universe, at)
    asked = [r for r in out["per_symbol"] if r.get("llm")]
    fell_back = [r for r in asked if r.get("fallback")]
    rate = len(fell_back) / len(asked)
    # Then the measured fallback rate is 20 % +- 5 %, and every decision is terminal after execution
    assert len(asked) >= 150
    assert 0.15 <= rate <= 0.25, rate
    assert out["fallback_reasons"].get("service_error", 0) == len(fell_back)
    stack.set_param("REPLAY_CLOCK", nyse().session_open(date(2011, 3, 2)).isoformat())
    drain(stack)
    states = tradelog(stack).count_by_status()
    assert sum(states.values()) == 200 and states["PENDING"] == 0


def test_malformed_llm_output_is_repaired_or_falls_back(make_stack, embedded):
    stack = make_stack()
    universe = upload_synthetic(stack, 40)
    embedded.runtime.configure(malformed_rate=1.0)
    out = cycle(stack, universe)
    assert out["fallbacks"] == sum(1 for r in out["per_symbol"] if r.get("llm"))
    assert out["fallback_reasons"] == {"invalid_output": out["fallbacks"]}


def test_malformed_schedule_events_are_rejected_clearly(stack):
    for bad in ({}, {"scheduled_time": "yesterday", "universe": ["NVDA"]},
                {"scheduled_time": "2011-03-01T21:00:00", "universe": ["NVDA"]},  # no timezone
                {"scheduled_time": CLOSE.isoformat(), "universe": ["nvda; drop"]},
                {"scheduled_time": CLOSE.isoformat(), "universe": []}):
        out = cycle(stack, None) if False else stack.invoke("decision_cycle", bad)
        assert out["status"] == "rejected_event" and out["error"]
    assert sum(tradelog(stack).count_by_status().values()) == 0


def test_closed_market_and_bad_symbols_are_recorded_not_crashed(stack):
    saturday = datetime(2011, 3, 5, 21, tzinfo=UTC)
    assert cycle(stack, ["NVDA"], saturday)["status"] == "market_closed"
    out = cycle(stack, ["NVDA", "NOPE"])
    results = {r["symbol"]: r for r in out["per_symbol"]}
    assert results["NOPE"]["result"] == "skipped" and "no market data" in results["NOPE"]["reason"]
    assert results["NVDA"]["result"] in ("hold", "sent")


def retried(stack, at, tries: int = 3):
    """The cycle retried until a run completes: decisions are sent in symbol order after all are recorded, so each
    retry may die at the send of the next decision that has not crashed yet."""
    for _ in range(tries - 1):
        try:
            return cycle(stack, ["NVDA", "ORCL"], at)
        except Exception:
            continue
    return cycle(stack, ["NVDA", "ORCL"], at)


def test_crash_between_the_write_and_the_send_loses_nothing(make_stack):
    # Given a decision cycle that dies after writing each actionable decision, before sending it
    stack = make_stack(faults=FaultPlan(crash_before_send=1.0))
    series = D.load_series()
    days = [d for d in (date(2011, 1, 3) + timedelta(days=k) for k in range(60)) if nyse().is_session(d)]
    crashed = 0
    for day in days:
        at = nyse().session_close(day)
        stack.set_param("REPLAY_CLOCK", nyse().session_open(day).isoformat())
        drain(stack)
        stack.set_param("REPLAY_CLOCK", at.isoformat())
        stack.invoke("outcomes", {})
        try:
            cycle(stack, ["NVDA", "ORCL"], at)
        except Exception:
            crashed += 1
            out = retried(stack, at)  # the scheduler's retries of the same event
            assert any(r["result"] == "resent" for r in out["per_symbol"])
    del series
    assert crashed > 0
    stack.set_param("REPLAY_CLOCK", nyse().session_open(nyse().next_session(days[-1])).isoformat())
    drain(stack)
    states = tradelog(stack).count_by_status()
    assert states["PENDING"] == 0 and states["EXECUTED"] >= crashed
    assert sum(states.values()) == 2 * len(days)
    assert ledger_duplicates(stack) == 0


def test_sqs_dynamodb_and_broker_faults_lose_nothing_and_double_nothing(make_stack, embedded):
    stack = make_stack(faults=FaultPlan(broker_error_rate=0.3))
    embedded.router.faults.update({"dynamodb": 0.05, "sqs": 0.05})
    res = replay(stack, D.load_series(), date(2011, 1, 3), date(2011, 4, 29))
    embedded.router.faults.clear()
    states = tradelog(stack).count_by_status()
    assert embedded.router.faults_injected.get("dynamodb", 0) > 0
    assert sum(states.values()) == res.expected_decisions
    assert states["PENDING"] == 0
    assert ledger_duplicates(stack) == 0


def _pending_decision(stack, at, entry_only: bool = False):
    """The first decision the cycle sends after 2011-01-03 (with `entry_only`, one for a symbol not held)."""
    out = None
    day = date(2011, 1, 3)
    while out is None:
        day = nyse().next_session(day)
        r = cycle(stack, ["NVDA", "ORCL"], nyse().session_close(day))
        tl = tradelog(stack)
        sent = [x for x in r["per_symbol"] if x["result"] == "sent"
                and not (entry_only and tl.position(recorded(tl, x["decision_id"]).symbol) is not None)]
        if sent:
            out = recorded(tl, sent[0]["decision_id"]), day
    return out


def test_duplicated_and_stale_messages(stack):
    d, day = _pending_decision(stack, None)
    sqs = stack.client("sqs")
    # a duplicate of the same decision's pointer under another deduplication id
    row = tradelog(stack).get_decision_row(d.decision_id)
    assert row is not None
    sqs.send_message(QueueUrl=stack.queue_urls["decisions"], MessageBody=message_for(d, row["doc"]).model_dump_json(),
                     MessageGroupId=d.symbol, MessageDeduplicationId=d.decision_id + "-dup")
    stack.set_param("REPLAY_CLOCK", nyse().session_open(nyse().next_session(day)).isoformat())
    stats = drain(stack)
    assert stats.delivered == 2 and ledger_duplicates(stack) == 0
    assert recorded(tradelog(stack), d.decision_id).status == DecisionStatus.EXECUTED
    # a stale entry (the queue backed up for a week); a stale close would still execute: a close always does
    d2, day2 = _pending_decision(stack, None, entry_only=True)
    stack.set_param("REPLAY_CLOCK", (nyse().session_open(nyse().next_session(day2)) + timedelta(days=7)).isoformat())
    drain(stack)
    after = recorded(tradelog(stack), d2.decision_id)
    assert after.status == DecisionStatus.REJECTED and after.status_reason.startswith("stale")


def test_poison_messages_reach_the_dlq_and_never_end_the_decision_they_name(stack):
    d, day = _pending_decision(stack, None)
    sqs = stack.client("sqs")
    url = stack.queue_urls["decisions"]
    # the real message is consumed first, then two poison messages: one with a decision_id, one not JSON
    stack.set_param("REPLAY_CLOCK", nyse().session_open(nyse().next_session(day)).isoformat())
    drain(stack)
    poison = json.loads(d.model_dump_json())
    poison["decision_id"] = "f" * 32
    poison["symbol"] = "not a symbol"
    tl = tradelog(stack)
    tl.put_decision(d.model_copy(update={"decision_id": "f" * 32}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(poison), MessageGroupId="X", MessageDeduplicationId="p1")
    sqs.send_message(QueueUrl=url, MessageBody="{not json", MessageGroupId="Y", MessageDeduplicationId="p2")
    stats = drain(stack)
    assert stats.failed == 2 * 3  # each retried up to maxReceiveCount
    dlq = sqs.get_queue_attributes(QueueUrl=stack.queue_urls["decisions-dlq"],
                                   AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert int(dlq["ApproximateNumberOfMessages"]) == 2
    out = stack.invoke("outcomes", {})
    # Then the DLQ sweep does not end a real decision because a malformed message named it (the genuine
    # pointer, or the outcomes' re-send, still comes): it stays PENDING and is re-sent
    assert out["dead_lettered"] == 0
    assert recorded(tl, "f" * 32).status == DecisionStatus.PENDING
    # And a genuine pointer that ran out of receives does end its decision DEAD_LETTERED
    row = tl.get_decision_row("f" * 32)
    assert row is not None
    sqs.send_message(QueueUrl=stack.queue_urls["decisions-dlq"], MessageGroupId="f",
                     MessageBody=message_for(recorded(tl, "f" * 32), row["doc"]).model_dump_json(),
                     MessageDeduplicationId="genuine")
    assert stack.invoke("outcomes", {})["dead_lettered"] == 1
    assert recorded(tl, "f" * 32).status == DecisionStatus.DEAD_LETTERED


def test_kill_switch_blocks_entries_but_not_exits(stack):
    # Given an operator's halt (on the account, which every entry's reservation is conditioned on)
    tradelog(stack).ensure_account(D.demo_config().initial_equity)
    Ops(stack.prefix).set_kill_switch(True)
    res = replay(stack, D.load_series(), date(2011, 1, 3), date(2011, 3, 31))
    tl = tradelog(stack)
    rejected = tl.decisions_by_status("REJECTED")
    assert rejected and all("kill_switch" in r["status_reason"] for r in rejected)
    assert tl.fills() == [] and res.expected_decisions == sum(tl.count_by_status().values())


def test_comprehend_errors_leave_decisions_made_without_sentiment(make_stack, embedded):
    # Given headlines to score and Comprehend failing every call
    stack = make_stack(extra_env={"NEWS_SOURCE": "s3"})
    stack.client("s3").put_object(Bucket=stack.bucket, Key="news/headlines.csv",
                                  Body=b"Date,News\n2011-02-28,Chip makers rally on record demand\n")
    embedded.comprehend.fail_rate = 1.0
    out = cycle(stack, ["NVDA", "ORCL"])
    # Then both symbols still decided, each record says the sentiment was unavailable
    assert out["status"] == "ok" and {r["result"] for r in out["per_symbol"]} <= {"hold", "sent"}
    tl = tradelog(stack)
    docs = [recorded(tl, r["decision_id"]) for r in out["per_symbol"]]
    assert all(d.sentiment is not None and d.sentiment.scorer == "unavailable" and d.sentiment.n_items == 0
               for d in docs)
    # and with Comprehend back, the same headline is scored (and cached) on the next cycle
    embedded.comprehend.fail_rate = 0.0
    out = cycle(stack, ["NVDA"], nyse().session_close(date(2011, 3, 2)))
    d = recorded(tl, out["per_symbol"][0]["decision_id"])
    assert d.sentiment is not None and d.sentiment.scorer == "comprehend" and d.sentiment.n_items == 1
