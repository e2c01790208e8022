"""The DLQ lifecycle, decided once (usecases/dead_letters.py), on the in-memory trade log and an SQS-like DLQ."""
from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mytrader.adapters.tradelog import TradeLog
from mytrader.models import Action, DecisionStatus, Mode, StrategySignal, TradeDecision, make_decision_id
from mytrader.ports import QueuedMessage
from mytrader.usecases.admission import DecisionMessage, message_for, parse_message
from mytrader.usecases.dead_letters import redrive_dead_letters, sweep_dead_letters

NOW = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)
SYMBOLS = ("NVDA", "ORCL", "AAPL", "MSFT", "AMZN")


class FakeDlq:
    """SQS's receive semantics: at most 10 visible messages per receive, hidden until deleted (the sweep's visibility
    outlasts a run); a FIFO group delivers nothing more while one of its messages is in flight."""

    def __init__(self, bodies: list[tuple[str, str]]) -> None:  # (group, body)
        self.messages = [(f"m{i}", group, body) for i, (group, body) in enumerate(bodies)]
        self.in_flight: set[str] = set()
        self.receives = 0

    def receive(self) -> list[QueuedMessage]:
        self.receives += 1
        busy = {g for mid, g, _ in self.messages if mid in self.in_flight}
        out = [QueuedMessage(message_id=mid, receipt_handle=f"rh-{mid}", body=body)
               for mid, group, body in self.messages if group not in busy][:10]
        self.in_flight |= {m.message_id for m in out}
        return out

    def delete(self, messages: list[QueuedMessage]) -> None:
        gone = {m.message_id for m in messages}
        self.messages = [m for m in self.messages if m[0] not in gone]
        self.in_flight -= gone


def recorded(tl: TradeLog, n: int) -> list[tuple[TradeDecision, str]]:
    """n PENDING decisions and the documents the trade log stores for them."""
    out = []
    for i in range(n):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        d = TradeDecision(decision_id=make_decision_id(symbol, NOW, f"v{i}"), symbol=symbol, bar_ts=NOW,
                          decided_at=NOW, config_version=f"v{i}", mode=Mode.CONSENSUS, action=Action.BUY,
                          confidence=0.8, position_size_pct=5.0, reference_price=100.0, time_horizon_bars=5,
                          strategy=StrategySignal(action=Action.BUY, confidence=0.7, reason="trend"))
        assert tl.put_decision(d)
        row = tl.get_decision_row(d.decision_id)
        assert row is not None
        out.append((d, row["doc"]))
    return out


def genuine(d: TradeDecision, doc: str) -> tuple[str, str]:
    return d.symbol, message_for(d, doc).model_dump_json()


def test_fifty_dead_letters_are_all_archived_in_one_sweep_and_redriven_from_the_archive():
    # Given 50 PENDING decisions whose 50 genuine messages sit in the DLQ, across 5 FIFO groups
    tl = TradeLog.in_memory()
    decisions = recorded(tl, 50)
    dlq = FakeDlq([genuine(d, doc) for d, doc in decisions])
    # When one sweep runs
    result = sweep_dead_letters(tl, dlq, NOW)
    # Then every decision is DEAD_LETTERED with its message archived on the record, and the DLQ is empty
    assert (result.marked, result.orphans, result.deleted, result.errors) == (50, 0, 50, 0)
    assert dlq.messages == []
    for d, doc in decisions:
        row = tl.get_decision_row(d.decision_id)
        assert row is not None and row["status"] == "DEAD_LETTERED"
        assert row["dead_letter_body"] == message_for(d, doc).model_dump_json()
    # When the operator redrives
    sent: list[tuple[DecisionMessage, str]] = []
    again = redrive_dead_letters(tl, lambda m, dedup: sent.append((m, dedup)), stamp="20260105")
    # Then each decision is PENDING again and its archived pointer was sent once, under a fresh dedup id
    assert again.redriven == 50 and len(sent) == 50
    assert {m.decision_id for m, _ in sent} == {d.decision_id for d, _ in decisions}
    assert all(dedup.endswith("-redrive-20260105") for _, dedup in sent)
    assert tl.count_by_status()["PENDING"] == 50
    # and a second redrive finds nothing to send (the condition: only from DEAD_LETTERED)
    assert redrive_dead_letters(tl, lambda m, d: sent.append((m, d)), stamp="x").redriven == 0 and len(sent) == 50


def test_only_a_genuine_pointer_ends_its_decision_anything_else_is_archived_as_an_orphan():
    tl = TradeLog.in_memory()
    (d, doc), (done, done_doc) = recorded(tl, 2)
    assert tl.mark_terminal(done.decision_id, DecisionStatus.EXECUTED, "filled")
    forged = message_for(d, doc).model_copy(update={"digest": "0" * len(message_for(d, doc).digest)})
    bodies = [("x", "not json at all"), ("x", '{"decision_id": "nope"}'), ("x", "\ud800 lone surrogate"),
              (d.symbol, forged.model_dump_json()), genuine(done, done_doc), genuine(d, doc)]
    dlq = FakeDlq(bodies)
    result = sweep_dead_letters(tl, dlq, NOW)
    # the forged pointer did not end the decision; its genuine message did; the executed one stays EXECUTED
    assert (result.marked, result.orphans, result.errors) == (1, 5, 0) and dlq.messages == []
    assert tl.get_decision_row(d.decision_id)["status"] == "DEAD_LETTERED"  # type: ignore[index]
    assert tl.get_decision_row(done.decision_id)["status"] == "EXECUTED"  # type: ignore[index]
    orphans = tl.orphans()
    assert len(orphans) == 5 and all("body" in o and o["reason"].startswith("dead letter:") for o in orphans)
    assert any("no longer PENDING" in o["reason"] for o in orphans)


class RefusingLog(TradeLog):
    """A trade log whose archive writes fail (throttled): the sweep must leave the messages in the DLQ."""

    def mark_dead_lettered(self, *args, **kwargs) -> bool:
        raise RuntimeError("throttled")


def test_a_dead_letter_whose_archive_cannot_be_written_stays_in_the_dlq():
    tl = RefusingLog.in_memory()
    decisions = recorded(tl, 3)
    dlq = FakeDlq([genuine(d, doc) for d, doc in decisions])
    result = sweep_dead_letters(tl, dlq, NOW)
    assert (result.marked, result.deleted, result.errors) == (0, 0, 3)
    assert len(dlq.messages) == 3 and tl.count_by_status()["PENDING"] == 3


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=6))
def test_any_body_is_archived_never_raised(bodies):
    tl = TradeLog.in_memory()
    dlq = FakeDlq([("g", b) for b in bodies])
    result = sweep_dead_letters(tl, dlq, NOW)
    assert result.deleted == len(bodies) and result.errors == 0 and dlq.messages == []
    assert len(tl.orphans()) == len(bodies)


def test_redrive_rebuilds_the_pointer_of_a_decision_dead_lettered_before_the_archive_existed():
    tl = TradeLog.in_memory()
    ((d, doc),) = recorded(tl, 1)
    assert tl.mark_terminal(d.decision_id, DecisionStatus.DEAD_LETTERED, "old sweep")  # no archived body
    sent: list[DecisionMessage] = []
    assert redrive_dead_letters(tl, lambda m, _: sent.append(m), stamp="s").redriven == 1
    assert sent == [parse_message(message_for(d, doc).model_dump_json())]
