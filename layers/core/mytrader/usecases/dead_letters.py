"""Dead letters: decisions whose messages reached the decisions queue's DLQ."""
from __future__ import annotations

from typing import TYPE_CHECKING

from mytrader.models import DecisionStatus

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import TradeLog
    from mytrader.ports import DeadLetterQueue


def mark_dead_letters(tl: TradeLog, dead_letters: DeadLetterQueue | None) -> int:
    """Decisions whose messages reached the DLQ end DEAD_LETTERED; the messages stay for `ops redrive-dlq`."""
    if dead_letters is None:
        return 0
    marked = 0
    seen: set[str] = set()
    for _ in range(100):
        msgs = dead_letters.receive()
        fresh = [m for m in msgs if m.message_id not in seen]
        for m in fresh:
            seen.add(m.message_id)
            decision_id = _genuine_decision_id(tl, m.body)
            if decision_id and tl.set_status(decision_id, DecisionStatus.DEAD_LETTERED,
                                             "message reached the DLQ after the configured receives"):
                marked += 1
        for m in msgs:  # leave every message in the DLQ, visible, for `ops redrive-dlq`
            dead_letters.release(m)
        if not fresh:
            break
    return marked


def _genuine_decision_id(tl: TradeLog, body: str) -> str | None:
    """The decision a dead letter stands for — only when it is a well-formed pointer that matches its record. A
    malformed or forged message that names a real decision must not end that decision: the genuine message (or
    the outcomes' re-send) still comes. Any body, however hostile, is just skipped (never an error here)."""
    from mytrader.usecases.admission import MalformedMessage, parse_message, record_digest

    try:
        message = parse_message(body)
    except MalformedMessage:
        return None
    row = tl.get_decision_row(message.decision_id)
    doc = row.get("doc") if row else None
    if not isinstance(doc, str) or record_digest(doc) != message.digest or row is None \
            or row.get("symbol") != message.symbol or row.get("action") != message.action.value:
        return None
    return message.decision_id
