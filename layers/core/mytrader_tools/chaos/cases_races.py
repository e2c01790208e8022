"""races: two (or three) executors at once, with DynamoDB conflicts injected into the trade log's writes.

Each case records its genuine decisions first, then turns on `DynamoFaults` (transaction conflicts on >= 10 % of
TransactWriteItems, write conflicts on single writes; seeded per case) and delivers the messages to several
executor "containers" in parallel: a parallel event source over the real FIFO queue (a group in flight is held
back, so concurrent deliveries are of different groups: a case that races one symbol sends its messages in two
groups), or one event to every container at the same instant (a barrier). A sampler watches the broker's book
meanwhile: it must never hold more symbols than max_open_positions. Fault draws are seeded; thread interleavings
are the operating system's, so the cases assert properties that hold for every interleaving.
"""
from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from mytrader.models import Action, TradeDecision
from mytrader_tools.chaos.harness import CAL, DIPS, EXEC_AT, EXEC_DAY, NEXT_DAY, ChaosStack, StackSpec
from mytrader_tools.chaos.runner import Case
from mytrader_tools.ops import Ops

CLS = "races"
CONFLICTS = {"transaction_conflict_rate": 0.15, "write_conflict_rate": 0.10}


def conflicts(cs: ChaosStack, transaction: float = 0.15, write: float = 0.10) -> None:
    faults = cs.stack.embedded.router.dynamodb_faults
    faults.configure(transaction_conflict_rate=transaction, write_conflict_rate=write,
                     seed=zlib.crc32(cs.name.encode()))
    faults.injected.clear()
    faults.seen.clear()


def faults_note(cs: ChaosStack) -> None:
    f = cs.stack.embedded.router.dynamodb_faults
    seen, hit = f.seen.get("TransactWriteItems", 0), f.injected.get("TransactWriteItems", 0)
    singles = sum(f.injected.get(op, 0) for op in ("PutItem", "UpdateItem", "DeleteItem"))
    cs.note(f"DynamoDB faults: {hit} of {seen} transactions cancelled by an injected conflict, {singles} single "
            "writes answered TransactionConflictException")
    f.configure(transaction_conflict_rate=0.0, write_conflict_rate=0.0)


def states(cs: ChaosStack, ds: list[TradeDecision]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in ds:
        state, reason = cs.status(d)
        out.setdefault(state, []).append(f"{d.symbol}:{reason[:60]}")
    return out


def entry_orders(cs: ChaosStack, ds: list[TradeDecision]) -> int:
    ids = {d.decision_id for d in ds}
    return sum(1 for o in cs.orders() if o.client_order_id in ids)


def hold(cs: ChaosStack, *symbols: str, **kw: Any) -> list[TradeDecision]:
    """Positions entered the ordinary way (recorded, sent, drained) before the race starts."""
    ds = [cs.genuine(s, **kw) for s in symbols]
    for d in ds:
        cs.send_genuine(d)
    cs.drain()
    for d in ds:
        cs.expect(cs.status(d)[0] == "EXECUTED", f"setup entry {d.symbol}: {cs.status(d)}")
    return ds


def race(cs: ChaosStack, ds: list[TradeDecision], workers: int = 2, group_suffix: dict[str, str] | None = None,
         between: Any = None) -> None:
    for d in ds:
        suffix = (group_suffix or {}).get(d.decision_id, "")
        if suffix:
            cs.send_genuine(d, group=d.symbol + suffix, dedup=d.decision_id)
        else:
            cs.send_genuine(d)
    with cs.sampler():
        stats = cs.parallel_drain(workers=workers, between=between)
    cs.note(f"{workers} executors: {stats.delivered} deliveries, {stats.failed} failed (redelivered), "
            f"{stats.function_errors} function errors")


# -- the cases ------------------------------------------------------------------------------------------------
def slot_race(cs: ChaosStack) -> None:
    ds = [cs.genuine("AAA"), cs.genuine("BBB")]
    conflicts(cs)
    race(cs, ds)
    faults_note(cs)
    got = states(cs, ds)
    cs.note(f"states: {got}")
    cs.expect(len(got.get("EXECUTED", [])) == 1, "exactly one of two entries should take the one slot")


def slot_race_wide(cs: ChaosStack) -> None:
    ds = [cs.genuine(s) for s in ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH")]
    conflicts(cs)
    race(cs, ds, workers=3)
    faults_note(cs)
    got = states(cs, ds)
    cs.note(f"states: { {k: len(v) for k, v in got.items()} }")
    cs.expect(len(got.get("EXECUTED", [])) == 3, "three slots, eight entries: three should trade")


def same_symbol_race(cs: ChaosStack) -> None:
    ds = [cs.genuine("AAA", tag="a"), cs.genuine("AAA", tag="b"), cs.genuine("AAA", tag="c")]
    conflicts(cs)
    race(cs, ds, workers=3, group_suffix={ds[1].decision_id: "-2", ds[2].decision_id: "-3"})
    faults_note(cs)
    got = states(cs, ds)
    cs.note(f"states: {got}")
    cs.expect(len(got.get("EXECUTED", [])) == 1, "one position per symbol")


def minute_window_race(cs: ChaosStack) -> None:
    first = [cs.genuine(s) for s in ("AAA", "BBB", "CCC", "DDD")]
    conflicts(cs)
    race(cs, first)
    later = [cs.genuine(s) for s in ("EEE", "FFF")]
    cs.clock(EXEC_AT + timedelta(minutes=1))
    race(cs, later)
    faults_note(cs)
    a, b = states(cs, first), states(cs, later)
    cs.note(f"minute 1: {a}; minute 2: {b}")
    cs.expect(len(a.get("EXECUTED", [])) == 1 and len(b.get("EXECUTED", [])) == 1,
              "one entry per minute window")


def daily_loss_race(cs: ChaosStack) -> None:
    # Given CRSH held (20 % of equity at 100), gapping to 70 at NEXT_DAY's open: selling it loses 6 % of equity
    hold(cs, "CRSH", size_pct=20.0)
    sell = cs.genuine("CRSH", Action.SELL)
    entry = cs.genuine("AAA")
    conflicts(cs)
    cs.clock(CAL.session_open(NEXT_DAY) + timedelta(minutes=5))
    # When the losing close and an entry race
    race(cs, [sell, entry])
    # Then later that day every entry is refused by the daily-loss limit
    late = cs.genuine("BBB")
    cs.clock(CAL.session_open(NEXT_DAY) + timedelta(minutes=30))
    race(cs, [late])
    faults_note(cs)
    cs.note(f"close: {cs.status(sell)}; racing entry: {cs.status(entry)}; later entry: {cs.status(late)}")
    cs.expect(cs.status(sell)[0] == "EXECUTED", "the losing close must execute")
    cs.expect(cs.status(late)[0] == "REJECTED" and "daily_loss" in cs.status(late)[1],
              "an entry after the day's loss passed the limit must be refused")


def kill_switch_burst(cs: ChaosStack) -> None:
    held = hold(cs, "NVDA")
    symbols = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH")
    burst = [cs.genuine(s) for s in symbols]
    ops = Ops(cs.stack.prefix)
    seen: dict[str, int] = {}

    def flip(k: int) -> None:
        if k == 2:  # two deliveries done: halt while the rest are in flight
            ops.set_kill_switch(True)
            seen["at_flip"] = entry_orders(cs, burst)

    conflicts(cs)
    race(cs, burst, between=flip)
    after = entry_orders(cs, burst) - seen.get("at_flip", 0)
    cs.note(f"kill switch on after 2 deliveries: {seen.get('at_flip')} entries placed before, {after} after")
    if after > 2:
        cs.breaches.append(f"{after} entries placed after the kill switch was on (at most 2 were in flight)")
    # while halted, at a later time: entries refused naming the switch, the held position still closes
    halted_at = EXEC_AT + timedelta(minutes=2)
    cs.clock(halted_at)
    late = [cs.genuine("ORCL")]
    close = cs.genuine("NVDA", Action.SELL)
    race(cs, [*late, close])
    ops.set_kill_switch(False)
    cs.ctx.kill_windows.append((halted_at, halted_at + timedelta(minutes=1)))
    faults_note(cs)
    cs.expect(cs.status(late[0])[0] == "REJECTED" and "kill_switch" in cs.status(late[0])[1],
              f"entry while halted: {cs.status(late[0])}")
    cs.expect(cs.status(close)[0] == "EXECUTED", f"a close while halted must run: {cs.status(close)}")
    del held


def redelivery_concurrent(cs: ChaosStack) -> None:
    """One decision's pointer delivered to three executor containers at the same instant (and again, twice), for
    four decisions; then twice more through the queue under other deduplication ids: one order per decision."""
    ds = [cs.genuine(s) for s in ("AAA", "BBB", "CCC", "DDD")]
    names = cs.executors(3)
    conflicts(cs)
    for d in ds:
        body = cs.body(d)
        for rnd in range(2):
            records = [{"MessageId": f"{d.symbol}-{rnd}-{k}", "ReceiptHandle": f"{d.symbol}-{rnd}-{k}", "Body": body,
                        "Attributes": {"MessageGroupId": d.symbol, "ApproximateReceiveCount": str(rnd + 1)}}
                       for k in range(len(names))]
            results = cs.concurrently(*[partial(cs.deliver, fn, [r]) for fn, r in zip(names, records, strict=True)])
            failed = sum(1 for r in results if not isinstance(r, dict) or r.get("function_error")
                         or r.get("batchItemFailures"))
            cs.note(f"{d.symbol} round {rnd}: {len(results) - failed} of {len(results)} deliveries succeeded")
        for k in range(2):  # and through the queue, twice under other deduplication ids
            cs.send_genuine(d, group=f"{d.symbol}-{k}", dedup=f"again-{d.symbol}-{k}")
    with cs.sampler():
        cs.parallel_drain(workers=2)
    faults_note(cs)
    for d in ds:
        cs.expect(cs.status(d)[0] == "EXECUTED", f"{d.symbol}: {cs.status(d)}")
        cs.expect(entry_orders(cs, [d]) == 1, f"{d.symbol}: {entry_orders(cs, [d])} broker orders for one decision")


def redelivery_no_idempotency(cs: ChaosStack) -> None:
    """The control experiment's setting (IDEMPOTENCY=false): the trade log's order record alone must keep one
    decision to one order when its message is delivered to three executors at the same instant."""
    redelivery_concurrent(cs)


def outcomes_twice(cs: ChaosStack) -> None:
    """Outcomes running three times at once (the scheduler delivers at least once; an operator invokes it by
    hand) while stops are hit: one close order per position. Three sessions, four stopped-out positions each."""
    day = EXEC_DAY
    for _ in range(3):
        opened = CAL.session_open(day) + timedelta(minutes=5)
        cs.clock(opened)
        hold(cs, *DIPS, decided_at=opened - timedelta(hours=17))
        cs.clock(CAL.session_close(day))
        conflicts(cs)
        results = cs.concurrently(lambda: cs.outcomes(), lambda: cs.outcomes(), lambda: cs.outcomes())
        faults_note(cs)
        cs.note(f"{day}: " + "; ".join(str(r)[:80] for r in results))
        day = CAL.next_session(day)
    cs.expect(len(cs.tl.outcomes()) == 3 * len(DIPS), f"{len(cs.tl.outcomes())} outcomes for {3 * len(DIPS)} "
                                                      "positions")


def claimed_close_twice(cs: ChaosStack) -> None:
    """A close claimed and never sent (the outcomes run died between claiming the position and the broker call:
    a timeout, a crash), then two outcomes runs at once: the close is continued once, not sent twice."""
    entries = hold(cs, *DIPS)
    died_at = CAL.session_open(EXEC_DAY)  # the dead run's lease to send the close is hours old by the close
    for d in entries:  # the state the dead run left: the position claimed for its close, no order at the broker
        cs.tl.mark_closing(d.symbol, f"{d.decision_id}-x", "stop_loss", d.decision_id, died_at)
    cs.clock(CAL.session_close(EXEC_DAY))
    results = cs.concurrently(lambda: cs.outcomes(), lambda: cs.outcomes())
    cs.note("runs: " + "; ".join(str(r)[:100] for r in results))
    closes = [o.client_order_id for o in cs.orders() if o.side.value == "sell"]
    cs.note(f"{len(closes)} close orders for {len(entries)} positions")


def close_race(cs: ChaosStack) -> None:
    # Given DIP held, its EXEC_DAY bar trading through the stop: outcomes closes it at the session's close
    (entry,) = hold(cs, "DIP")
    sell = cs.genuine("DIP", Action.SELL)
    cs.clock(CAL.session_close(EXEC_DAY))
    cs.send_genuine(sell)
    cs.send_genuine(sell, group="DIP-2", dedup="again")
    names = cs.executors(2)
    conflicts(cs)
    sqs = cs.stack.client("sqs")
    msgs = sqs.receive_message(QueueUrl=cs.stack.queue_urls["decisions"], MaxNumberOfMessages=10,
                               AttributeNames=["All"], MessageSystemAttributeNames=["All"]).get("Messages", [])
    # When the SELL (on two executors) and the outcomes' stop race
    results = cs.concurrently(lambda: cs.outcomes(), *[lambda fn=fn, m=m: cs.deliver(fn, [m])
                                                       for fn, m in zip(names, msgs, strict=False)])
    for m in msgs:
        sqs.change_message_visibility(QueueUrl=cs.stack.queue_urls["decisions"], ReceiptHandle=m["ReceiptHandle"],
                                      VisibilityTimeout=0)
    cs.note("raced: " + "; ".join(str(r)[:100] for r in results))
    cs.drain()
    faults_note(cs)
    closes = [o for o in cs.orders() if o.side.value == "sell"]
    cs.note(f"close orders: {[o.client_order_id[-6:] for o in closes]}; outcomes: "
            f"{[(o.exit_reason, o.exit_price) for o in cs.tl.outcomes()]}")
    cs.expect(len(cs.tl.outcomes()) == 1, "one outcome for one position")
    del entry


def flatten_during_entries(cs: ChaosStack) -> None:
    hold(cs, "AAA", "BBB")
    burst = [cs.genuine(s) for s in ("CCC", "DDD", "EEE")]
    ops = Ops(cs.stack.prefix)
    conflicts(cs)
    flattened = ops.flatten(now=EXEC_AT)
    race(cs, burst)
    faults_note(cs)
    cs.note(f"flatten sent {len(flattened)}; entries: {states(cs, burst)}")
    cs.expect(cs.tl.position("AAA") is None and cs.tl.position("BBB") is None, "flatten left a position open")


def conflict_storm(cs: ChaosStack) -> None:
    hold(cs, "AAA", "BBB")
    ds = [cs.genuine(s) for s in ("CCC", "DDD", "EEE", "FFF")]
    ds += [cs.genuine("AAA", Action.SELL), cs.genuine("BBB", Action.SELL)]
    conflicts(cs, transaction=0.5, write=0.3)
    race(cs, ds, workers=3)
    faults_note(cs)
    cs.note(f"states: {states(cs, ds)}")


def outcomes_vs_entries(cs: ChaosStack) -> None:
    # Given one slot, held by DIP whose stop is hit on the EXEC_DAY bar
    hold(cs, "DIP")
    entries = [cs.genuine("AAA"), cs.genuine("BBB")]
    cs.clock(CAL.session_close(EXEC_DAY))
    for d in entries:
        cs.send_genuine(d)
    conflicts(cs)
    # When outcomes frees the slot while two executors try to take it
    with cs.sampler():
        results = cs.concurrently(lambda: cs.outcomes(), lambda: cs.parallel_drain(workers=2))
    faults_note(cs)
    cs.note(f"outcomes: {str(results[0])[:120]}; entries: {states(cs, entries)}")


def buy_sell_same_symbol(cs: ChaosStack) -> None:
    hold(cs, "AAA")
    sell, rebuy = cs.genuine("AAA", Action.SELL), cs.genuine("AAA", tag="re")
    conflicts(cs)
    race(cs, [sell, rebuy], group_suffix={rebuy.decision_id: "-2"})
    faults_note(cs)
    cs.note(f"sell: {cs.status(sell)}; re-entry: {cs.status(rebuy)}")
    cs.expect(cs.status(sell)[0] == "EXECUTED", "the close must execute")


def later(delay_s: float, call: Callable[[], Any]) -> Any:
    time.sleep(delay_s)
    return call()


def dlq_mark_vs_execution(cs: ChaosStack) -> None:
    """A malformed body naming a genuine decision sits in the DLQ; outcomes marks that decision DEAD_LETTERED
    while an executor is executing the genuine pointer. One symbol per round, outcomes started a little later each
    round (0 to 210 ms after the executor), so some round lands the mark inside the execution."""
    name = cs.executors(1)[0]
    ds = []
    for k, symbol in enumerate(("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH")):
        d = cs.genuine(symbol)
        ds.append(d)
        cs.send(json.dumps({**json.loads(cs.body(d)), "x": 1}), group=f"poison-{symbol}")
        cs.drain()  # the poison dead-letters (3 receives)
        record = {"MessageId": f"g{k}", "ReceiptHandle": f"g{k}", "Body": cs.body(d),
                  "Attributes": {"MessageGroupId": symbol, "ApproximateReceiveCount": "1"}}
        cs.concurrently(partial(later, 0.03 * k, cs.outcomes), partial(cs.deliver, name, [record]))
    cs.note("states: " + str(states(cs, ds)))
    cs.note(f"entry orders: {entry_orders(cs, ds)}, entry fills in the trade log: "
            f"{sum(1 for f in cs.tl.fills() if f.client_order_id in {d.decision_id for d in ds})}")


SLOT1: dict[str, Any] = {"max_open_positions": 1}
CASES = [
    Case(CLS, "slot_race", slot_race, StackSpec(risk=SLOT1), quick=True),
    Case(CLS, "slot_race_wide", slot_race_wide, StackSpec(risk={"max_open_positions": 3})),
    Case(CLS, "same_symbol_race", same_symbol_race),
    Case(CLS, "minute_window_race", minute_window_race, StackSpec(risk={"max_orders_per_minute": 1})),
    Case(CLS, "daily_loss_race", daily_loss_race, quick=True),
    Case(CLS, "kill_switch_burst", kill_switch_burst, StackSpec(risk={"max_open_positions": 10})),
    Case(CLS, "redelivery_concurrent", redelivery_concurrent, quick=True),
    Case(CLS, "redelivery_no_idempotency", redelivery_no_idempotency, StackSpec(env={"IDEMPOTENCY": "false"})),
    Case(CLS, "claimed_close_twice", claimed_close_twice),
    Case(CLS, "close_race", close_race),
    Case(CLS, "outcomes_twice", outcomes_twice, StackSpec(risk={"max_consecutive_stopouts": 50, "cooldown_bars": 0})),
    Case(CLS, "flatten_during_entries", flatten_during_entries),
    Case(CLS, "conflict_storm", conflict_storm, StackSpec(risk={"max_open_positions": 4})),
    Case(CLS, "outcomes_vs_entries", outcomes_vs_entries, StackSpec(risk=SLOT1)),
    Case(CLS, "buy_sell_same_symbol", buy_sell_same_symbol),
    Case(CLS, "dlq_mark_vs_execution", dlq_mark_vs_execution, StackSpec(risk={"max_open_positions": 10})),
]
