"""hostile_messages: bodies no decision cycle sends, straight onto the decisions queue, beside genuine decisions.

Each case records genuine decisions as the decision cycle would (a TradeDecision, PENDING, through the trade log),
sends the hostile bodies with SQS, drains the queue into the executor, runs outcomes (dead letters get recorded),
and then sends the genuine pointer of every genuine decision still PENDING (the outcomes' re-send would, later)
so that nothing is lost by the case's own doing: the notes say when that was needed. Malformed bodies reach the
DLQ after 3 receives; that is expected.
"""
from __future__ import annotations

import json
from datetime import timedelta

from mytrader.models import Action, TradeDecision
from mytrader.usecases.admission import record_digest
from mytrader_tools.chaos.harness import CAL, EXEC_AT, EXEC_DAY, ChaosStack, features
from mytrader_tools.chaos.runner import Case
from mytrader_tools.embedded.stack import FunctionFailed

CLS = "hostile_messages"


def pointer_dict(cs: ChaosStack, d: TradeDecision) -> dict[str, object]:
    return dict(json.loads(cs.body(d)))


def outcomes(cs: ChaosStack) -> dict[str, object]:
    """The outcomes run; its failure is a finding (stops, targets, re-sends and dead letters all stop with it)."""
    try:
        return cs.outcomes()
    except FunctionFailed as exc:
        cs.expect(False, f"the outcomes function failed: {str(exc)[:160]}")
        return {}


def settle(cs: ChaosStack, genuine: list[TradeDecision]) -> None:
    """Drain, outcomes; then the genuine pointer of every genuine decision the hostile messages left PENDING."""
    cs.drain()
    outcomes(cs)
    pending = [d for d in genuine if cs.status(d)[0] == "PENDING"]
    if pending:
        cs.note(f"{len(pending)} genuine decision(s) still PENDING after the hostile messages: their genuine "
                "pointer sent after the case (the outcomes' re-send would send it later)")
        for d in pending:
            cs.send_genuine(d, dedup=f"{d.decision_id}-genuine")
        cs.drain()
        outcomes(cs)
    for d in genuine:
        state, reason = cs.status(d)
        cs.note(f"genuine {d.symbol} {d.action.value}: {state} {reason[:90]}".rstrip())


def expect_executed(cs: ChaosStack, d: TradeDecision, why: str) -> None:
    state, reason = cs.status(d)
    cs.expect(state == "EXECUTED", f"genuine {d.symbol} {d.action.value} ended {state} ({reason[:120]}): {why}")


def expect_status(cs: ChaosStack, d: TradeDecision, state: str, words: str) -> None:
    got, reason = cs.status(d)
    cs.expect(got == state and words in reason, f"{d.symbol} {d.action.value}: expected {state} ({words}), "
                                                f"got {got} ({reason[:120]})")


def expect_no_orders(cs: ChaosStack, why: str) -> None:
    orders = cs.orders()
    cs.expect(not orders, f"{len(orders)} broker orders: {why}")


def malformed_beside_genuine(cs: ChaosStack, make_bodies) -> None:
    """The shared shape: a genuine BUY NVDA, hostile bodies naming it (their own group), genuine pointer last."""
    d = cs.genuine("NVDA")
    bodies = make_bodies(cs, d)
    for k, body in enumerate(bodies):
        cs.send(body, group=f"hostile{k}")
    stats = cs.drain()
    cs.note(f"{len(bodies)} hostile bodies: {stats.failed} failed receives, DLQ depth {cs.dlq_depth()}")
    cs.expect(cs.orders() == [], "a hostile body placed an order")
    cs.expect(cs.dlq_depth() >= len(bodies), f"DLQ holds {cs.dlq_depth()} of {len(bodies)} malformed bodies")
    settle(cs, [d])
    expect_executed(cs, d, "a malformed message naming a genuine decision must not decide its fate")


# -- the cases ------------------------------------------------------------------------------------------------
def missing_fields(cs: ChaosStack) -> None:
    def bodies(cs: ChaosStack, d: TradeDecision) -> list[str]:
        full = pointer_dict(cs, d)
        return [json.dumps({k: v for k, v in full.items() if k != drop}) for drop in ("digest", "action", "symbol")]
    malformed_beside_genuine(cs, bodies)


def wrong_types(cs: ChaosStack) -> None:
    def bodies(cs: ChaosStack, d: TradeDecision) -> list[str]:
        full = pointer_dict(cs, d)
        return [json.dumps({**full, "symbol": ["NVDA"]}), json.dumps({**full, "action": 1}),
                json.dumps({**full, "digest": None}), json.dumps({**full, "decision_id": 12345})]
    malformed_beside_genuine(cs, bodies)


def not_json(cs: ChaosStack) -> None:
    def bodies(cs: ChaosStack, d: TradeDecision) -> list[str]:
        return ["{not json", "null", "[]", '"a string"', "[" * 5000 + "]" * 5000, "\ufffd\u2028 \u00e9"]
    malformed_beside_genuine(cs, bodies)


def invalid_symbol(cs: ChaosStack) -> None:
    def bodies(cs: ChaosStack, d: TradeDecision) -> list[str]:
        full = pointer_dict(cs, d)
        return [json.dumps({**full, "symbol": s}) for s in ("nvda; DROP TABLE", "NVDA ", "", "N" * 40)]
    malformed_beside_genuine(cs, bodies)


def naive_timestamp(cs: ChaosStack) -> None:
    naive = cs.genuine("ORCL", decided_at=EXEC_AT.replace(tzinfo=None) - timedelta(hours=1))
    d = cs.genuine("NVDA")
    cs.send(json.dumps({**pointer_dict(cs, d), "decided_at": "2011-03-02T09:00:00"}), group="hostile")
    cs.send_genuine(naive)
    settle(cs, [naive, d])
    expect_status(cs, naive, "REJECTED", "no timezone")
    expect_executed(cs, d, "a hostile body with a naive timestamp names it")


def nan_values(cs: ChaosStack) -> None:
    d = cs.genuine("NVDA")
    base = cs.body(d)
    for k, bad in enumerate(("NaN", "Infinity", "-Infinity")):
        cs.send(base.replace(f'"{d.decision_id}"', bad, 1) if k == 0 else base[:-1] + f', "x": {bad}}}',
                group=f"hostile{k}")
    nan_equity = cs.record(cs.decision("ORCL", sizing_equity=float("nan")))
    nan_stop = cs.record(cs.decision("AAA", stop=float("nan"), construct=True))
    nan_atr = cs.record(cs.decision("BBB", stop=None, construct=True,
                                    features=features("BBB", 100.0, 2.0).model_copy(update={"atr": float("nan")})))
    for x in (nan_equity, nan_stop, nan_atr):
        cs.send_genuine(x)
    settle(cs, [d, nan_equity, nan_stop, nan_atr])
    expect_executed(cs, d, "NaN bodies name it")
    expect_status(cs, nan_stop, "REJECTED", "stop")
    expect_status(cs, nan_atr, "REJECTED", "")


def deep_json_in_dlq(cs: ChaosStack) -> None:
    """A body nested 5,000 deep (10 KB, well under the size cap) dead-letters; then a held position's stop is hit.
    The executor refuses the body cleanly; outcomes reads every dead letter for its decision_id: does each run
    still complete while that body sits in the DLQ (14 days)?"""
    held = cs.genuine("DIP", price=100.0)
    cs.send_genuine(held)
    cs.drain()
    cs.send("[" * 5000 + "]" * 5000, group="deep")
    cs.drain()
    cs.clock(CAL.session_close(EXEC_DAY))  # DIP's bar traded through the stop at 95
    outcomes(cs)
    cs.expect(cs.tl.position("DIP") is None, "DIP is still held past its stop")
    cs.note(f"DLQ depth {cs.dlq_depth()}; DIP held: {cs.tl.position('DIP') is not None} (stops run before the dead "
            "letters are read)")


def stale_decision(cs: ChaosStack) -> None:
    d = cs.genuine("NVDA", decided_at=EXEC_AT - timedelta(days=7))
    cs.send_genuine(d)
    settle(cs, [d])
    expect_status(cs, d, "REJECTED", "stale")
    expect_no_orders(cs, "a stale entry traded")


def future_decision(cs: ChaosStack) -> None:
    d = cs.genuine("NVDA", decided_at=EXEC_AT + timedelta(days=1))
    soon = cs.genuine("ORCL", decided_at=EXEC_AT + timedelta(minutes=4))  # inside the allowed skew
    cs.send_genuine(d)
    cs.send_genuine(soon)
    settle(cs, [d, soon])
    expect_status(cs, d, "REJECTED", "future")
    expect_executed(cs, soon, "4 minutes ahead is inside the 5-minute skew")


def unknown_symbol(cs: ChaosStack) -> None:
    no_data = cs.genuine("AAPL", price=300.0)  # in the universe, no market data: no quote
    cs.send_genuine(no_data)
    ghost = cs.decision("QQQQ", price=50.0)  # never recorded: the pointer names no record
    cs.send(json.dumps({"decision_id": ghost.decision_id, "symbol": "QQQQ", "action": "BUY",
                        "digest": record_digest(ghost.model_dump_json())}), group="QQQQ")
    settle(cs, [no_data])
    expect_status(cs, no_data, "REJECTED", "no quote")
    cs.expect(len(cs.tl.orphans()) >= 1, "the pointer to no record was not kept as an orphan")
    expect_no_orders(cs, "an unknown symbol traded")


def outside_universe(cs: ChaosStack) -> None:
    d = cs.genuine("IBM", price=160.0)
    cs.send_genuine(d)
    settle(cs, [d])
    expect_status(cs, d, "REJECTED", "outside the universe")
    expect_no_orders(cs, "a symbol outside the universe traded")


def replayed_id(cs: ChaosStack) -> None:
    d = cs.genuine("NVDA")
    body = cs.body(d)
    cs.send(body, group="NVDA", dedup="first")
    cs.send(body, group="NVDA-replay", dedup="replay-1")
    cs.drain()
    cs.send(body, group="NVDA", dedup="replay-2")
    cs.outcomes()
    cs.drain()
    sell = cs.genuine("NVDA", Action.SELL)
    cs.send_genuine(sell)
    cs.drain()
    cs.send(body, group="NVDA", dedup="replay-after-close")  # the entry's pointer once more, position gone
    settle(cs, [d, sell])
    expect_executed(cs, d, "the first delivery")
    expect_executed(cs, sell, "the close")
    coids = [o.client_order_id for o in cs.orders()]
    cs.expect(coids.count(d.decision_id) == 1, f"{coids.count(d.decision_id)} entry orders for one decision")


def sell_while_flat(cs: ChaosStack) -> None:
    d = cs.genuine("ORCL", Action.SELL)
    cs.send_genuine(d)
    settle(cs, [d])
    expect_status(cs, d, "SKIPPED", "nothing to sell")
    expect_no_orders(cs, "a SELL while flat placed an order (a short in a long-only book)")


def extra_fields(cs: ChaosStack) -> None:
    def bodies(cs: ChaosStack, d: TradeDecision) -> list[str]:
        full = pointer_dict(cs, d)
        return [json.dumps({**full, "qty": 1e9}), json.dumps({**full, "position_size_pct": 100}),
                cs.body(d)[:-1] + f', "decision_id": "{d.decision_id}"}}']  # a duplicate key
    malformed_beside_genuine(cs, bodies)


def big_body(cs: ChaosStack) -> None:
    def bodies(cs: ChaosStack, d: TradeDecision) -> list[str]:
        return [json.dumps({**pointer_dict(cs, d), "pad": "x" * 240_000})]
    malformed_beside_genuine(cs, bodies)


def id_without_record(cs: ChaosStack) -> None:
    for k in range(3):
        ghost = cs.decision("NVDA")
        cs.send(json.dumps({"decision_id": ghost.decision_id, "symbol": "NVDA", "action": "BUY",
                            "digest": record_digest(ghost.model_dump_json())}), group=f"ghost{k}")
    settle(cs, [])
    cs.expect(len(cs.tl.orphans()) == 3, f"{len(cs.tl.orphans())} orphans kept for 3 pointers to no record")
    expect_no_orders(cs, "a pointer to no record traded")


def digest_mismatch(cs: ChaosStack) -> None:
    d = cs.genuine("NVDA", size_pct=5.0)
    forged_doc = d.model_copy(update={"position_size_pct": 100.0}).model_dump_json()
    full = pointer_dict(cs, d)
    cs.send(json.dumps({**full, "digest": record_digest(forged_doc)}), group="NVDA", dedup="forged-digest")
    cs.send(json.dumps({**full, "symbol": "ORCL"}), group="ORCL", dedup="forged-symbol")
    cs.send(json.dumps({**full, "action": "SELL"}), group="NVDA-sell", dedup="forged-action")
    cs.drain()
    state, _ = cs.status(d)
    cs.expect(state == "PENDING", f"a forged pointer changed the record to {state}")
    expect_no_orders(cs, "a forged pointer traded")
    settle(cs, [d])
    expect_executed(cs, d, "the genuine pointer after forged ones")
    for o in cs.orders():
        cs.expect(o.qty * (o.filled_avg_price or 0) <= 5.0 / 100 * 100_000 * 1.001,
                  f"order {o.client_order_id} sized {o.qty:g} x {o.filled_avg_price}: beyond the record's 5 %")


def huge_sizing_equity(cs: ChaosStack) -> None:
    d = cs.genuine("NVDA", size_pct=100.0, sizing_equity=1e12)
    cs.send_genuine(d)
    settle(cs, [d])
    expect_executed(cs, d, "sized on the book, not on the record's equity")
    cs.note("orders: " + ", ".join(f"{o.qty:g} x {o.filled_avg_price}" for o in cs.orders()))


def no_stop_huge_horizon(cs: ChaosStack) -> None:
    bare = cs.genuine("NVDA", stop=None, target=None, horizon=10**9)  # no stop, no ATR to set one
    price = 100.0
    with_atr = cs.genuine("AAA", stop=None, target=None, horizon=10**9, price=price,
                          features=features("AAA", price, 2.0))
    cs.send_genuine(bare)
    cs.send_genuine(with_atr)
    settle(cs, [bare, with_atr])
    expect_status(cs, bare, "REJECTED", "stop")
    expect_executed(cs, with_atr, "the engine sets a stop from the ATR and clamps the horizon")
    pos = cs.tl.position("AAA")
    if pos is not None:
        cs.note(f"AAA position: stop {pos.stop_loss}, target {pos.take_profit}, horizon {pos.time_limit_bars}")


def hold_and_forged_close(cs: ChaosStack) -> None:
    held = cs.genuine("NVDA")
    cs.send_genuine(held)
    cs.drain()
    other = cs.genuine("ORCL")
    hold = cs.genuine("AAA", Action.HOLD)
    full = pointer_dict(cs, held)
    cs.send(json.dumps({**full, "action": "SELL"}), group="NVDA", dedup="forged-close")  # the entry, as a SELL
    cs.send(json.dumps({**pointer_dict(cs, other), "symbol": "NVDA", "action": "SELL"}), group="NVDA-2",
            dedup="forged-close-2")  # another record's id, NVDA's symbol
    cs.send(json.dumps({**full, "action": "HOLD"}), group="NVDA-3", dedup="forged-hold")
    cs.send_genuine(hold)
    cs.drain()
    cs.expect(cs.tl.position("NVDA") is not None, "a forged SELL closed the NVDA position")
    cs.send_genuine(other)
    settle(cs, [held, other, hold])
    expect_status(cs, hold, "REJECTED", "HOLD")
    expect_executed(cs, other, "its genuine pointer after a forged one")


def poison_ahead_in_group(cs: ChaosStack) -> None:
    d = cs.genuine("NVDA")
    cs.send("{poison", group="NVDA", dedup="poison")
    cs.send_genuine(d)  # same FIFO group, behind the poison
    stats = cs.drain()
    cs.note(f"poison ahead of a genuine pointer in group NVDA: {stats.failed} failed receives")
    state, _ = cs.status(d)
    cs.outcomes()
    after, _ = cs.status(d)
    cs.note(f"the genuine decision behind the poison: {state} after the drain, {after} after outcomes")
    settle(cs, [d])


CASES = [
    Case(CLS, "missing_fields", missing_fields),
    Case(CLS, "wrong_types", wrong_types),
    Case(CLS, "not_json", not_json),
    Case(CLS, "invalid_symbol", invalid_symbol),
    Case(CLS, "naive_timestamp", naive_timestamp),
    Case(CLS, "nan_values", nan_values),
    Case(CLS, "deep_json_in_dlq", deep_json_in_dlq),
    Case(CLS, "stale_decision", stale_decision, quick=True),
    Case(CLS, "future_decision", future_decision),
    Case(CLS, "unknown_symbol", unknown_symbol),
    Case(CLS, "outside_universe", outside_universe),
    Case(CLS, "replayed_id", replayed_id, quick=True),
    Case(CLS, "sell_while_flat", sell_while_flat),
    Case(CLS, "extra_fields", extra_fields),
    Case(CLS, "big_body_240kb", big_body),
    Case(CLS, "id_without_record", id_without_record, quick=True),
    Case(CLS, "digest_mismatch", digest_mismatch),
    Case(CLS, "huge_sizing_equity", huge_sizing_equity, quick=True),
    Case(CLS, "no_stop_huge_horizon", no_stop_huge_horizon),
    Case(CLS, "hold_and_forged_close", hold_and_forged_close),
    Case(CLS, "poison_ahead_in_group", poison_ahead_in_group),
]
