"""Admission: the executor acts only on the decision the decider recorded; the message is a pointer to it.

Each hostile message or record of the fail-safe issue is refused, or (a missing stop, an absurd horizon) made safe
from the record's own ATR. A SELL while flat is the executor's to skip (it knows the book), not admission's.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mytrader.adapters.aws.queue import recorded_doc, send_decision
from mytrader.adapters.tradelog import TradeLog
from mytrader.config import RiskLimits, TradingConfig
from mytrader.engine import DecisionEngine
from mytrader.models import (
    Action,
    DecisionStatus,
    FeatureVector,
    LlmAdvice,
    Mode,
    RiskLevel,
    StrategySignal,
    TradeDecision,
    make_decision_id,
)
from mytrader.usecases.admission import (
    MAX_MESSAGE_BYTES,
    Admission,
    AdmissionKind,
    DecisionMessage,
    MalformedMessage,
    admit,
    parse_message,
    protective_levels,
    record_digest,
)

NOW = datetime(2020, 3, 2, 15, 0, tzinfo=UTC)
CFG = TradingConfig()
UNIVERSE = frozenset({"NVDA", "ORCL"})
MAX_AGE, MAX_FUTURE = timedelta(days=4), timedelta(minutes=5)
ATR = 2.0


def features(symbol: str = "NVDA", atr: float = ATR) -> FeatureVector:
    return FeatureVector(symbol=symbol, ts=NOW, close=100.0, sma_fast=99.0, sma_slow=97.0, ema_fast=99.5, rsi=55.0,
                         macd=0.4, macd_signal=0.3, macd_hist=0.1, atr=atr, atr_pct=atr / 100.0, bb_pct_b=0.6,
                         volatility=0.3, volume_z=0.2, ret_5=0.01, ret_20=0.03, regime_trend="trend_up",
                         regime_vol="low_vol")


def decision(symbol: str = "NVDA", action: Action = Action.BUY, **over) -> TradeDecision:
    base = dict(decision_id=make_decision_id(symbol, NOW, "v1"), symbol=symbol, bar_ts=NOW,
                decided_at=NOW - timedelta(minutes=1), config_version="v1", mode=Mode.CONSENSUS, action=action,
                confidence=0.8, position_size_pct=10.0, reference_price=100.0,
                stop_loss=96.0 if action == Action.BUY else 104.0, take_profit=106.0 if action == Action.BUY else 94.0,
                time_horizon_bars=10, strategy=StrategySignal(action=action, confidence=0.7, reason="trend"),
                features=features(symbol), sizing_equity=100_000.0)
    return TradeDecision(**{**base, **over})


def row_of(d: TradeDecision, status: str = "PENDING") -> dict:
    """The record as the trade log stores and reads it back (its in-memory twin), in the given status."""
    tl = TradeLog.in_memory()
    assert tl.put_decision(d)
    row = tl.get_decision_row(d.decision_id)
    assert row is not None
    return {**row, "status": status}


def pointer(d: TradeDecision, **over) -> DecisionMessage:
    return DecisionMessage(**{"decision_id": d.decision_id, "symbol": d.symbol, "action": d.action,
                              "digest": record_digest(d.model_dump_json()), **over})


def run(d: TradeDecision, message: DecisionMessage | None = None, *, row: dict | None = None, now: datetime = NOW,
        universe: frozenset[str] = UNIVERSE, reduces: bool = False, cfg: TradingConfig = CFG) -> Admission:
    return admit(message or pointer(d), row_of(d) if row is None else row, now=now, universe=universe,
                 max_age=MAX_AGE, max_future=MAX_FUTURE, reduces=reduces, cfg=cfg)


def body(**over) -> str:
    d = decision()
    fields = {"decision_id": d.decision_id, "symbol": "NVDA", "action": "BUY", "digest": "0" * 32, **over}
    return json.dumps({k: v for k, v in fields.items() if v is not ...})


# -- parse_message: every malformed body is refused with a one-line reason ---------------------------------------
def test_a_pointer_parses():
    # Given a well-formed pointer / When parsed / Then its four fields, and nothing else
    m = parse_message(body())
    assert (m.symbol, m.action, m.digest) == ("NVDA", Action.BUY, "0" * 32)


@pytest.mark.parametrize("raw,why", [
    ("{not json", "not JSON"),
    ("", "not JSON"),
    ('["NVDA", "BUY"]', "not a JSON object"),
    ('"NVDA"', "not a JSON object"),
    ("null", "not a JSON object"),
    (body(digest=...), "missing field 'digest'"),
    (body(decision_id=...), "missing field 'decision_id'"),
    (body(sizing_equity=1e12), "unexpected field 'sizing_equity'"),  # the record's equity only, never the message's
    (body(stop_loss=None), "unexpected field 'stop_loss'"),
    (body(decision_id=12345), "decision_id"),  # wrong types
    (body(symbol=["NVDA"]), "symbol"),
    (body(action="buy"), "action"),
    (body(action="SHORT_EVERYTHING"), "action"),
    (body(digest=7), "digest"),
    (body(symbol="nvda; drop"), "symbol"),  # invalid symbols
    (body(symbol="TOOLONGSYMBOL"), "symbol"),
    (body(decision_id="x#DEC y"), "decision_id"),  # separators and spaces: never an id
    (body(decision_id=""), "decision_id"),
    (body(digest="z" * 32), "digest"),
    (body().replace('"BUY"', "NaN"), "NaN"),
    ('{"decision_id": Infinity}', "Infinity"),
    ('{"symbol": "NVDA", "symbol": "ORCL"}', "duplicate field 'symbol'"),
    ("[" * 60_000, "not JSON"),  # nesting deeper than the parser goes
])
def test_malformed_bodies_are_refused_with_a_one_line_reason(raw, why):
    # Given a hostile or corrupted body / When parsed
    with pytest.raises(MalformedMessage) as err:
        parse_message(raw)
    # Then it is refused, saying why on one short line
    assert why in str(err.value) and "\n" not in str(err.value) and len(str(err.value)) <= 300


def test_a_240_kb_body_is_refused_before_parsing():
    # Given a 240 KB body (a decision with its whole prompt, or junk), well-formed JSON otherwise
    raw = body(padding="x" * 240 * 1024)
    # When parsed / Then refused for its size
    with pytest.raises(MalformedMessage, match=f"exceeds {MAX_MESSAGE_BYTES}"):
        parse_message(raw)


def test_the_old_whole_decision_message_is_malformed():
    # Given a message carrying the whole decision, as before pointers / When parsed / Then refused (extra fields)
    with pytest.raises(MalformedMessage, match="unexpected field"):
        parse_message(decision().model_dump_json(exclude={"features", "prompt_inputs"}))


# -- admit: the record decides, the message only points --------------------------------------------------------
def test_a_pointer_matching_its_pending_record_admits_the_record():
    # Given a recorded PENDING decision and the pointer the decider sends for it
    d = decision()
    # When admitted
    a = run(d)
    # Then the record's decision is executed, as recorded
    assert a.kind is AdmissionKind.ADMIT and a.admitted and a.decision == d and a.reason == ""


def test_an_id_with_no_record_is_an_orphan():
    # Given a pointer with a well-formed id that was never recorded / When admitted / Then nothing to execute
    a = admit(pointer(decision()), None, now=NOW, universe=UNIVERSE, max_age=MAX_AGE, max_future=MAX_FUTURE,
              reduces=False, cfg=CFG)
    assert a.kind is AdmissionKind.ORPHAN and a.decision is None


@pytest.mark.parametrize("status", ["EXECUTED", "REJECTED", "SKIPPED", "DEAD_LETTERED"])
def test_a_record_no_longer_pending_is_terminal(status):
    # Given a record already decided / When its pointer arrives again / Then terminal, its status the reason
    a = run(decision(), row=row_of(decision(), status))
    assert (a.kind, a.reason) == (AdmissionKind.TERMINAL, status)


@pytest.mark.parametrize("field,value", [
    ("symbol", "ORCL"),
    ("action", Action.SELL),
    ("digest", record_digest("something else")),
])
def test_a_message_differing_from_its_record_is_rejected_and_the_record_left_alone(field, value):
    # Given a recorded decision and a pointer to it that differs in one field (forged or corrupted)
    d = decision()
    # When admitted
    a = run(d, pointer(d, **{field: value}))
    # Then rejected, naming the field; the record is not marked (the genuine message may still come)
    assert a.kind is AdmissionKind.REJECT and a.reason == f"message differs from the record ({field})"
    assert not a.reject_record


def test_a_record_edited_after_the_send_no_longer_matches():
    # Given a pointer sent for the recorded decision, and the record's document changed afterwards (size raised)
    d = decision()
    edited = d.model_copy(update={"position_size_pct": 100.0, "sizing_equity": 1e12})
    # When admitted against the edited record / Then the digest differs
    a = run(edited, pointer(d))
    assert a.kind is AdmissionKind.REJECT and a.reason.endswith("(digest)")


@pytest.mark.parametrize("row,why", [
    ({"status": "PENDING"}, "no decision document"),
    ({"status": "PENDING", "doc": "{truncated"}, "unreadable"),
    ({"status": "PENDING", "doc": decision().model_dump_json().replace('"stop_loss":96.0', '"stop_loss":101.0')},
     "unreadable"),  # a long stop above the entry, with a size: not a valid decision
])
def test_an_unreadable_record_is_rejected(row, why):
    # Given a PENDING record whose document is missing or invalid / When admitted / Then rejected, on the record
    a = run(decision(), row=row)
    assert a.kind is AdmissionKind.REJECT and why in a.reason and a.reject_record


@pytest.mark.parametrize("universe,why", [
    (frozenset(), "universe not configured"),
    (frozenset({"ORCL"}), "symbol NVDA outside the universe"),
])
def test_an_entry_outside_the_universe_is_rejected(universe, why):
    # Given an entry in NVDA and a universe without it (or none configured) / When admitted / Then rejected
    a = run(decision(), universe=universe)
    assert a.kind is AdmissionKind.REJECT and a.reason.startswith(why) and a.reject_record


def test_an_entry_stamped_in_the_future_is_rejected():
    # Given an entry decided an hour after now (a clock or a forger ahead of the executor)
    d = decision(decided_at=NOW + timedelta(hours=1))
    # When admitted / Then rejected
    a = run(d)
    assert a.kind is AdmissionKind.REJECT and a.reason.startswith("stamped in the future")


def test_a_little_clock_skew_is_tolerated():
    # Given an entry stamped a minute ahead of the executor's clock (within max_future) / Then admitted
    assert run(decision(decided_at=NOW + timedelta(minutes=1))).admitted


def test_a_stale_entry_is_rejected():
    # Given an entry decided five days ago (a backlog, a DLQ redrive) / When admitted / Then rejected as stale
    a = run(decision(decided_at=NOW - timedelta(days=5)))
    assert a.kind is AdmissionKind.REJECT and a.reason.startswith("stale:")


def test_a_naive_timestamp_in_the_record_is_rejected():
    # Given a record whose decided_at has no timezone / When admitted / Then rejected (never compared as local time)
    a = run(decision(decided_at=datetime(2020, 3, 2, 14, 59)))
    assert a.kind is AdmissionKind.REJECT and "no timezone" in a.reason


def test_a_hold_record_is_not_an_order():
    d = decision(action=Action.HOLD, position_size_pct=0.0, stop_loss=None, take_profit=None)
    a = run(d)
    assert a.kind is AdmissionKind.REJECT and "HOLD" in a.reason


def test_a_reduce_only_close_is_exempt_from_universe_age_and_levels():
    # Given a close of a held position: outside the universe, a week old, without stop, target or features
    d = decision(symbol="TSLA", action=Action.SELL, decided_at=NOW - timedelta(days=7), position_size_pct=0.0,
                 stop_loss=None, take_profit=None, features=None, time_horizon_bars=10**9)
    # When admitted as reducing the position / Then it executes, as recorded (a close always executes)
    a = run(d, universe=frozenset(), reduces=True)
    assert a.kind is AdmissionKind.ADMIT and a.decision == d


def test_a_close_still_has_to_match_its_record():
    # Given a close and a pointer to it with another digest / When admitted / Then rejected all the same
    d = decision(action=Action.SELL, position_size_pct=0.0, stop_loss=None, take_profit=None)
    a = run(d, pointer(d, digest="f" * 32), reduces=True)
    assert a.kind is AdmissionKind.REJECT and a.reason.endswith("(digest)")


# -- protective levels: no position without a stop ---------------------------------------------------------------
def test_an_entry_without_stop_and_a_billion_bar_horizon_gets_the_atr_stop_and_the_time_limit():
    # Given a recorded entry without stop or target, held for 10^9 bars, ATR 2 at a price of 100
    d = decision(stop_loss=None, take_profit=None, time_horizon_bars=10**9)
    # When admitted
    a = run(d)
    # Then it executes with the engine's default levels (2 and 3 ATRs) and the configured time limit
    assert a.kind is AdmissionKind.ADMIT and a.decision is not None
    assert (a.decision.stop_loss, a.decision.take_profit) == (96.0, 106.0)
    assert a.decision.time_horizon_bars == CFG.time_limit_bars
    assert a.reason == "levels set: stop_loss, take_profit, time_horizon_bars"


def test_a_short_without_stop_gets_its_stop_above():
    d = decision(action=Action.SELL, stop_loss=None, take_profit=None)
    protected = protective_levels(d, TradingConfig(allow_short=True))
    assert isinstance(protected, TradeDecision) and (protected.stop_loss, protected.take_profit) == (104.0, 94.0)


def test_an_entry_without_stop_and_without_atr_is_rejected():
    # Given a recorded entry without stop whose features (hence ATR) are unknown
    d = decision(stop_loss=None, take_profit=None, features=None)
    # When admitted / Then rejected: no stop can be set (fail closed)
    a = run(d)
    assert a.kind is AdmissionKind.REJECT and "no valid stop-loss" in a.reason and a.reject_record


@pytest.mark.parametrize("atr", [0.0, float("nan"), float("inf")])
def test_an_unusable_atr_counts_as_unknown(atr):
    d = decision(stop_loss=None, features=features(atr=1.0).model_copy(update={"atr": atr}))
    assert isinstance(protective_levels(d, CFG), str)


def test_without_atr_a_valid_stop_is_kept():
    d = decision(features=None)
    assert protective_levels(d, CFG) is d


@pytest.mark.parametrize("stop", [99.9, 50.0])  # 0.05 and 25 ATRs away: outside [1, 4] ATRs
def test_a_stop_outside_the_atr_band_is_replaced(stop):
    protected = protective_levels(decision(stop_loss=stop), CFG)
    assert isinstance(protected, TradeDecision) and protected.stop_loss == 96.0


def test_a_stop_on_the_wrong_side_is_replaced():
    # Given a record without size (levels unchecked by the model) whose long stop sits above the entry
    d = decision(position_size_pct=0.0, stop_loss=103.0)
    protected = protective_levels(d, CFG)
    assert isinstance(protected, TradeDecision) and protected.stop_loss == 96.0


def test_a_target_outside_its_band_is_replaced_and_the_stop_kept():
    protected = protective_levels(decision(stop_loss=97.0, take_profit=500.0), CFG)
    assert isinstance(protected, TradeDecision) and (protected.stop_loss, protected.take_profit) == (97.0, 106.0)


def test_the_bands_follow_the_risk_limits():
    # Given tighter limits: stops within 1 to 1.5 ATRs / Then the default stop is clamped to 1.5 ATRs
    cfg = TradingConfig(risk=RiskLimits(stop_atr_min=1.0, stop_atr_max=1.5))
    protected = protective_levels(decision(stop_loss=None), cfg)
    assert isinstance(protected, TradeDecision) and protected.stop_loss == 97.0


@pytest.mark.parametrize("stop,target", [(1.0, 500.0), (200.0, 0.01)])
def test_levels_the_engine_clamps_to_the_bounds_are_kept(stop, target):
    # Given an LLM-led entry whose stop and target the engine clamped to the ATR bounds (rounded toward the price)
    advice = LlmAdvice(decision=Action.BUY, confidence=0.9, position_size_pct=10.0, reasoning="r", key_factors=["k"],
                       stop_loss=stop, take_profit=target, risk_assessment=RiskLevel.LOW)
    _, s, t, h = DecisionEngine(CFG, None)._size_and_levels(Action.BUY, 0.9, advice, 100.123456, 1.777777, 0.02, None)
    d = decision(reference_price=100.123456, stop_loss=s, take_profit=t, time_horizon_bars=h,
                 features=features(atr=1.777777))
    # When protected / Then nothing changes: the engine's own levels are valid
    assert protective_levels(d, CFG) is d


# -- the pointer the queue sends is admitted against the record the trade log stores -----------------------------
class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send_message(self, **kw) -> dict:
        self.sent.append(kw)
        return {"MessageId": "m1"}


def test_the_sent_pointer_matches_the_stored_record():
    # Given a decision recorded as the trade log stores it, and sent
    d = decision(prompt_inputs={"symbol": "NVDA", "headlines": ["x" * 500] * 20})
    sqs = RecordingSqs()
    send_decision(sqs, "url", d)  # type: ignore[arg-type]  # a recording stand-in for the SQS client
    (sent,) = sqs.sent
    # Then the message is a small pointer, grouped by symbol and deduplicated by decision id
    assert len(sent["MessageBody"]) < 200 and sent["MessageGroupId"] == "NVDA"
    assert sent["MessageDeduplicationId"] == d.decision_id
    # And the executor admits the record it points to
    assert run(d, parse_message(sent["MessageBody"])).decision == d


def test_a_decision_read_back_with_its_row_status_is_sent_with_the_stored_digest():
    # Given a PENDING record read back (redriven: the row's status reason is not in the stored document)
    d = decision()
    read_back = d.model_copy(update={"status": DecisionStatus.PENDING, "status_reason": "redriven from the DLQ"})
    sqs = RecordingSqs()
    # When re-sent (the outcomes' re-send of a stuck decision)
    send_decision(sqs, "url", read_back)  # type: ignore[arg-type]  # a recording stand-in for the SQS client
    # Then the pointer still matches the stored document
    assert recorded_doc(read_back) == row_of(d)["doc"]
    assert run(d, parse_message(sqs.sent[0]["MessageBody"])).admitted
