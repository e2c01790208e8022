"""Dead letters: decisions whose messages reached the decisions queue's DLQ, decided once.

The sweep (every outcomes run, and first thing in `ops redrive-dlq`) archives each dead letter in the trade log and
then deletes it from the DLQ:
  - a genuine pointer (well-formed, matching its PENDING record) marks the decision DEAD_LETTERED, the message's
    body kept on the record;
  - anything else -- malformed, forged, naming no record, or a decision already past PENDING -- is kept as an
    orphan with its body and the reason, and ends nothing.
A message is deleted only after its archive is written: a failed write leaves it in the DLQ for the next sweep.

The redrive (`ops redrive-dlq`) moves each DEAD_LETTERED decision back to PENDING under a condition (only from
DEAD_LETTERED: two redrives never send one decision twice) and re-sends the archived pointer, so the executor still
acts only on PENDING records. A decision moved to PENDING whose send then fails is re-sent by the outcomes' sweep of
stuck PENDING decisions.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mytrader.models import DecisionStatus

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import Row, TradeLog
    from mytrader.ports import DeadLetterQueue, QueuedMessage
    from mytrader.usecases.admission import DecisionMessage

log = logging.getLogger(__name__)
SWEEP_ROUNDS = 50  # receives of up to 10 per run: 500 dead letters; more wait for the next run (kept 14 days)


@dataclass(frozen=True)
class SweepResult:
    marked: int  # decisions moved to DEAD_LETTERED
    orphans: int  # dead letters archived without ending a decision
    deleted: int  # messages removed from the DLQ (each archived first)
    errors: int  # messages whose archive could not be written (left in the DLQ)


@dataclass(frozen=True)
class RedriveResult:
    redriven: int  # decisions back to PENDING, their pointer sent again
    skipped: int  # DEAD_LETTERED records with no pointer to send (no stored document)


def sweep_dead_letters(tl: TradeLog, dead_letters: DeadLetterQueue, now: datetime | None = None) -> SweepResult:
    at = now or datetime.now(UTC)
    marked = orphans = deleted = errors = 0
    for _ in range(SWEEP_ROUNDS):
        msgs = dead_letters.receive()
        if not msgs:
            break
        archived: list[QueuedMessage] = []
        for m in msgs:
            try:
                if _archive(tl, m, at):
                    marked += 1
                else:
                    orphans += 1
                archived.append(m)
            except Exception:  # the trade log refused the write: the message stays, and comes back
                log.exception("dead letter %s not archived; left in the DLQ", m.message_id)
                errors += 1
        if archived:
            try:
                dead_letters.delete(archived)
                deleted += len(archived)
            except Exception:  # archived already: they come back, and the next sweep archives them as orphans
                log.exception("archived dead letters not deleted; the next sweep sees them again")
                errors += len(archived)
    return SweepResult(marked=marked, orphans=orphans, deleted=deleted, errors=errors)


def mark_dead_letters(tl: TradeLog, dead_letters: DeadLetterQueue | None, now: datetime | None = None) -> int:
    """The outcomes' sweep: how many decisions it marked DEAD_LETTERED (0 without a DLQ)."""
    return sweep_dead_letters(tl, dead_letters, now).marked if dead_letters is not None else 0


def _archive(tl: TradeLog, m: QueuedMessage, at: datetime) -> bool:
    """True when the message marked its decision; False when it was kept as an orphan."""
    body = m.body.encode("utf-8", "replace").decode("utf-8")  # storable whatever it holds
    claimed, why = _read(tl, body)
    if why is None and claimed is not None:
        if tl.mark_dead_lettered(claimed, m.message_id, body, at):
            return True
        why = "its decision was no longer PENDING: nothing to end"
    tl.put_orphan(claimed or "", m.message_id, f"dead letter: {why}", at, body=body)
    return False


def _read(tl: TradeLog, body: str) -> tuple[str | None, str | None]:
    """(decision id claimed, why the body is not a genuine pointer -- None when it is). The decision a dead letter
    stands for only when it is a well-formed pointer that matches its record. A malformed or forged message that
    names a real decision must not end that decision: the genuine message (or the outcomes' re-send) still comes.
    Any body, however hostile, is just archived (never an error here)."""
    from mytrader.usecases.admission import MalformedMessage, parse_message, record_digest

    try:
        message = parse_message(body)
    except MalformedMessage as exc:
        return None, f"malformed: {str(exc)[:200]}"
    row = tl.get_decision_row(message.decision_id)
    doc = row.get("doc") if row else None
    if row is None or not isinstance(doc, str):
        return message.decision_id, "names no recorded decision"
    if record_digest(doc) != message.digest or row.get("symbol") != message.symbol \
            or row.get("action") != message.action.value:
        return message.decision_id, "does not match its decision record"
    return message.decision_id, None


def redrive_dead_letters(tl: TradeLog, send: Callable[[DecisionMessage, str], None], stamp: str,
                         limit: int = 1000) -> RedriveResult:
    """Every DEAD_LETTERED decision back to PENDING, its archived pointer sent again by `send(pointer, dedup_id)`
    (a new deduplication id per redrive, `stamp`). The executor rejects decisions older than its maximum age."""
    redriven = skipped = 0
    for row in tl.decisions_by_status(DecisionStatus.DEAD_LETTERED.value)[:limit]:
        pointer = _pointer(row)
        if pointer is None:
            skipped += 1
            continue
        if tl.mark_terminal(pointer.decision_id, DecisionStatus.PENDING, "redriven from the DLQ",
                            from_status=DecisionStatus.DEAD_LETTERED.value):
            send(pointer, f"{pointer.decision_id}-redrive-{stamp}")
            redriven += 1
    return RedriveResult(redriven=redriven, skipped=skipped)


def _pointer(row: Row) -> DecisionMessage | None:
    """The archived pointer when it still matches the record, else a fresh pointer to the record (decisions
    dead-lettered before the archive existed); None without a stored document."""
    from mytrader.models import TradeDecision
    from mytrader.usecases.admission import MalformedMessage, message_for, parse_message, record_digest

    doc = row.get("doc")
    if not isinstance(doc, str):
        return None
    archived = row.get("dead_letter_body")
    if isinstance(archived, str):
        try:
            message = parse_message(archived)
            if record_digest(doc) == message.digest and message.symbol == row.get("symbol"):
                return message
        except MalformedMessage:
            pass
    try:
        return message_for(TradeDecision.model_validate_json(doc), doc)
    except ValueError:
        return None
