"""Admission: what the executor may act on. Pure (no I/O): the caller reads the record and the clock.

The message on the decisions queue is only a pointer to the decision record the decider stored: its id, symbol,
action and the digest of the record's document. The executor parses the pointer (`parse_message`), reads the
record by id, and `admit` decides:

  ORPHAN    no record with that id: nothing to execute (the decider always writes before it sends);
  TERMINAL  the record is no longer PENDING (already executed, rejected, skipped, dead-lettered);
  REJECT    the message differs from the record (a forged or corrupted message: the record is left as it is,
            `reject_record` False), or the record itself may not open a position (outside the universe, stamped in
            the future, stale, no protective stop that can be set: `reject_record` True, the caller records it);
  ADMIT     execute `decision`: the RECORD's decision, never the message, with protective levels ensured.

A reduce-only close always executes: it is exempt from the universe and age checks and needs no stop.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mytrader.models import Action, DecisionStatus, Symbol, TradeDecision

if TYPE_CHECKING:
    from mytrader.config import TradingConfig

MAX_MESSAGE_BYTES = 64 * 1024  # a pointer is ~150 bytes; anything near SQS's 256 KB is not one of ours
DIGEST_CHARS = 32
LEVEL_SLACK = 1e-4  # the engine rounds levels to 4 decimals toward the price: a clamped bound may sit this inside

# make_decision_id gives 32 hex characters; ids are looked up, never interpreted, so any short id of safe
# characters is accepted and anything else (spaces, quotes, separators, control characters) is malformed
DecisionId = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z._:-]{0,99}$")]
Digest = Annotated[str, Field(pattern=rf"^[0-9a-f]{{{DIGEST_CHARS}}}$")]


class MalformedMessage(ValueError):
    """A message that is not a decision pointer. Never succeeds on retry: it reaches the DLQ."""


class DecisionMessage(BaseModel):
    """The decisions queue's message: a pointer to the recorded decision."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: DecisionId
    symbol: Symbol
    action: Action
    digest: Digest  # record_digest of the record's stored document


def record_digest(doc: str) -> str:
    """The digest of a decision record's stored document (`doc`, the decision's JSON as the trade log keeps it)."""
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def message_for(decision: TradeDecision, doc: str) -> DecisionMessage:
    """The pointer to a recorded decision whose stored document is `doc`."""
    return DecisionMessage(decision_id=decision.decision_id, symbol=decision.symbol, action=decision.action,
                           digest=record_digest(doc))


def _no_constant(name: str) -> Any:
    raise MalformedMessage(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedMessage(f"duplicate field {key!r}")
        out[key] = value
    return out


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "missing":
            parts.append(f"missing field {where!r}")
        elif err["type"] == "extra_forbidden":
            parts.append(f"unexpected field {where!r}")
        else:
            parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def parse_message(body: str) -> DecisionMessage:
    """The pointer in a queue message body. Raises MalformedMessage with a one-line reason."""
    if not isinstance(body, str):
        raise MalformedMessage(f"body is {type(body).__name__}, not text")
    size = len(body.encode("utf-8", "surrogatepass")) if len(body) <= MAX_MESSAGE_BYTES else len(body)
    if size > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"body of {size} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = json.loads(body, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except MalformedMessage:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(_one_line(f"not JSON: {exc}")) from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"not a JSON object: {type(obj).__name__}")
    try:
        return DecisionMessage.model_validate(obj)
    except ValidationError as exc:
        raise MalformedMessage(_one_line(_explain(exc))) from None


class AdmissionKind(StrEnum):
    ADMIT = "admit"
    ORPHAN = "orphan"
    TERMINAL = "terminal"
    REJECT = "reject"


@dataclass(frozen=True)
class Admission:
    """What the executor does with one message. `decision` is set for ADMIT (and for a REJECT of a readable
    record); `reject_record` says whether a REJECT is the record's fault (record it REJECTED) or the message's
    (leave the record PENDING: the genuine message or the outcomes' re-send will still come)."""
    kind: AdmissionKind
    reason: str = ""
    decision: TradeDecision | None = None
    reject_record: bool = False

    @property
    def admitted(self) -> bool:
        return self.kind is AdmissionKind.ADMIT


def _reject(reason: str, decision: TradeDecision | None = None, *, record: bool = True) -> Admission:
    return Admission(AdmissionKind.REJECT, reason, decision, reject_record=record)


def _record_decision(row: dict[str, Any]) -> TradeDecision | str:
    doc = row.get("doc")
    if not isinstance(doc, str):
        return "the record has no decision document"
    try:
        return TradeDecision.model_validate_json(doc)
    except ValueError as exc:
        return _one_line(f"the record's decision is unreadable: {exc}", 200)


def _differs(message: DecisionMessage, record: TradeDecision, doc: str) -> str | None:
    for name in ("decision_id", "symbol", "action"):
        if getattr(message, name) != getattr(record, name):
            return name
    if not hmac.compare_digest(message.digest, record_digest(doc)):
        return "digest"
    return None


def _entry_gate(d: TradeDecision, now: datetime, universe: frozenset[str], max_age: timedelta,
                max_future: timedelta) -> str | None:
    """Why the record may not open a position, or None."""
    if d.action == Action.HOLD:
        return "a HOLD decision is not an order"
    if not universe:
        return "universe not configured: no entries"
    if d.symbol not in universe:
        return f"symbol {d.symbol} outside the universe"
    if d.decided_at.tzinfo is None or d.decided_at.utcoffset() is None:
        return f"decided_at {d.decided_at.isoformat()} has no timezone"
    if d.decided_at > now + max_future:
        return f"stamped in the future: decided {d.decided_at.isoformat()}, now {now.isoformat()}"
    if now - d.decided_at > max_age:
        return f"stale: decided {d.decided_at.isoformat()}, older than {max_age}"
    return None


def admit(message: DecisionMessage, row: dict[str, Any] | None, *, now: datetime, universe: frozenset[str],
          max_age: timedelta, max_future: timedelta, reduces: bool, cfg: TradingConfig) -> Admission:
    """Whether (and what) to execute for `message`, given the record `row` read by its decision_id (None: no
    record). `reduces`: the decision closes or reduces the position held (the caller knows the book). `now` must
    be timezone-aware."""
    if row is None:
        return Admission(AdmissionKind.ORPHAN, f"no decision record {message.decision_id}")
    status = str(row.get("status", ""))
    if status != DecisionStatus.PENDING.value:
        return Admission(AdmissionKind.TERMINAL, status)
    record = _record_decision(row)
    if isinstance(record, str):
        return _reject(record)
    field = _differs(message, record, row["doc"])
    if field is not None:
        return _reject(f"message differs from the record ({field})", record, record=False)
    if reduces:  # a close always executes: no universe, age or level checks
        return Admission(AdmissionKind.ADMIT, "reduce-only close", record)
    gate = _entry_gate(record, now, universe, max_age, max_future)
    if gate is not None:
        return _reject(gate, record)
    protected = protective_levels(record, cfg)
    if isinstance(protected, str):
        return _reject(protected, record)
    changed = [name for name in ("stop_loss", "take_profit", "time_horizon_bars")
               if getattr(protected, name) != getattr(record, name)]
    return Admission(AdmissionKind.ADMIT, f"levels set: {', '.join(changed)}" if changed else "", protected)


# -- protective levels -------------------------------------------------------------------------------------------
def _finite_positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _level_ok(level: float | None, price: float, toward: int, lo: float, hi: float, atr: float | None) -> bool:
    """`level` lies on the `toward` side of `price` (+1 above, -1 below), between lo and hi ATRs away when the ATR
    is known."""
    if level is None or not _finite_positive(level):
        return False
    dist = (level - price) * toward
    if dist <= 0:
        return False
    if atr is None:
        return True
    return lo * atr - LEVEL_SLACK <= dist <= hi * atr + LEVEL_SLACK


def _engine_levels(d: TradeDecision, cfg: TradingConfig, atr: float) -> tuple[float | None, float | None, int]:
    """The engine's own default stop, target and horizon for this entry without advice (2 and 3 ATRs, clamped
    to the risk bounds, rounded toward the price). Imported here: the engine brings numpy, which the executor
    loads only for a record that needs it."""
    from mytrader.engine import DecisionEngine

    atr_pct = d.features.atr_pct if d.features is not None and math.isfinite(d.features.atr_pct) else 0.0
    _, stop, target, horizon = DecisionEngine(cfg, None)._size_and_levels(
        d.action, d.confidence, None, d.reference_price, atr, atr_pct, None)
    return stop, target, horizon


def _strategy_time_limit(cfg: TradingConfig) -> int:
    """The configured strategy's time limit (the config's when it declares none or cannot be loaded)."""
    from mytrader.strategies import StrategyError, load_strategy

    try:
        return load_strategy(cfg.strategy.name, cfg.strategy.params).time_limit(cfg.time_limit_bars)
    except StrategyError:
        return cfg.time_limit_bars


def protective_levels(d: TradeDecision, cfg: TradingConfig) -> TradeDecision | str:
    """No position without a stop. For a BUY/SELL entry: a missing stop, or one on the wrong side or outside
    [stop_atr_min, stop_atr_max] ATRs of the reference price, becomes the engine's default; the same for the
    target within [target_atr_min, target_atr_max]; a horizon outside [1, 2 x the time limit] (the strategy's, else
    time_limit_bars) becomes that limit. Without a known ATR a valid stop is kept (a bad target is dropped), and an
    entry without a valid stop is refused: the reason is returned (fail closed)."""
    if d.action not in (Action.BUY, Action.SELL):
        return d
    risk, price = cfg.risk, d.reference_price
    sign = 1 if d.action == Action.BUY else -1
    atr = d.features.atr if d.features is not None and _finite_positive(d.features.atr) else None
    update: dict[str, Any] = {}
    if not 1 <= d.time_horizon_bars <= 2 * cfg.time_limit_bars:
        limit = _strategy_time_limit(cfg)  # a long-horizon strategy declares its own limit (loaded only then)
        if not 1 <= d.time_horizon_bars <= 2 * limit:
            update["time_horizon_bars"] = limit
    stop_ok = _level_ok(d.stop_loss, price, -sign, risk.stop_atr_min, risk.stop_atr_max, atr)
    target_ok = d.take_profit is None or _level_ok(d.take_profit, price, sign, risk.target_atr_min,
                                                    risk.target_atr_max, atr)
    if atr is None:
        if not stop_ok:
            return "no valid stop-loss and no ATR to set one: entry refused"
        if not target_ok:
            update["take_profit"] = None
    elif not (stop_ok and target_ok and d.take_profit is not None):
        stop, target, _ = _engine_levels(d, cfg, atr)
        if not stop_ok:
            if not _finite_positive(stop) or not _level_ok(stop, price, -sign, 0.0, math.inf, None):
                return f"no valid stop-loss: ATR {atr} gives none from {price}"
            update["stop_loss"] = stop
        if not target_ok or d.take_profit is None:
            update["take_profit"] = target if _finite_positive(target) else None
    return d.model_copy(update=update) if update else d
