"""bad_market_data and feed_loss: the market-data guard (mytrader.market.guard) and outcomes' quote fallback
(mytrader.usecases.manage) under broken price files and a feed that goes away.

Each case stands on crafted daily files (flat at 100, a 99..101 range, so ATR(14) ~ 2) rewritten per case:
`bad_market_data` breaks one thing in the file the decision cycle (or the executor, or outcomes) reads and
expects the guard's verdict; `feed_loss` holds a position and takes its file (or S3) away, expecting the stop to
be checked on the paper broker's quote (the last file that parsed) or the position counted unchecked — never lost.

S3MarketData keeps a parsed file for 300 s per container; `expire_cache` stands for that time passing (the last
file that parsed stays as the quote's fallback, as in a warm container).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mytrader_tools.chaos.harness import (
    CAL,
    DECIDED_AT,
    DECIDED_DAY,
    EXEC_AT,
    EXEC_DAY,
    NEXT_DAY,
    ChaosStack,
    StackSpec,
)
from mytrader_tools.chaos.runner import Case

BAD, LOSS = "bad_market_data", "feed_loss"
NEXT_AT = CAL.session_open(NEXT_DAY) + timedelta(minutes=5)
Bar = list[Any]  # [day, open, high, low, close, volume]


def bars(start: date = date(2010, 1, 4), end: date = date(2011, 6, 30)) -> list[Bar]:
    out: list[Bar] = []
    day = start
    while day <= end:
        if CAL.is_session(day):
            out.append([day, 100.0, 101.0, 99.0, 100.0, 1_000_000])
        day += timedelta(days=1)
    return out


def csv_of(rows: list[Bar]) -> bytes:
    lines = ["Date,Open,High,Low,Close,Volume"]
    lines += [f"{r[0].isoformat() if isinstance(r[0], date) else r[0]},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]}"
              for r in rows]
    return ("\n".join(lines) + "\n").encode()


def at(rows: list[Bar], day: date) -> int:
    return next(i for i, r in enumerate(rows) if r[0] == day)


def upload(cs: ChaosStack, symbol: str, body: bytes) -> None:
    cs.stack.client("s3").put_object(Bucket=cs.stack.bucket, Key=f"market-data/{symbol}.csv", Body=body)


def delete(cs: ChaosStack, symbol: str) -> None:
    cs.stack.client("s3").delete_object(Bucket=cs.stack.bucket, Key=f"market-data/{symbol}.csv")


def expire_cache(cs: ChaosStack, function: str = "outcomes") -> None:
    fn = cs.stack.embedded.bridge.functions[cs.stack.function_name(function)]
    module: Any = fn.module
    if module is not None:
        module.deps().market._cache.clear()


def cycle(cs: ChaosStack, symbols: list[str]) -> dict[str, dict[str, Any]]:
    cs.stack.set_param("MODE", "baseline")
    out = cs.cycle(DECIDED_AT, symbols)
    per = {r["symbol"]: r for r in out.get("per_symbol", [])}
    cs.note(f"cycle: status {out.get('status')}, " + "; ".join(
        f"{s}: {r.get('result')} {str(r.get('reason', ''))[:90]}" for s, r in per.items()))
    return per


def skipped(cs: ChaosStack, per: dict[str, dict[str, Any]], symbol: str, *words: str) -> None:
    r = per.get(symbol, {})
    state, reason = cs.status(r["decision_id"]) if r.get("decision_id") else ("(none)", str(r.get("reason")))
    cs.expect(state == "SKIPPED" and any(w in reason for w in words),
              f"{symbol}: expected SKIPPED ({' / '.join(words)}), got {state} ({reason[:120]})")


def no_orders(cs: ChaosStack) -> None:
    cs.clock(EXEC_AT)
    cs.drain()
    cs.expect(cs.orders() == [], f"{len(cs.orders())} broker orders on untrusted data")


def hold(cs: ChaosStack, symbol: str) -> None:
    """`symbol` entered at EXEC_DAY's open (100, stop 95) through the executor; outcomes run once there (the
    outcomes container reads the good file)."""
    cs.clock(EXEC_AT)
    d = cs.genuine(symbol, price=100.0)
    cs.send_genuine(d)
    cs.drain()
    cs.expect(cs.tl.position(symbol) is not None, f"setup: {symbol} not held ({cs.status(d)})")
    cs.outcomes()


def outcomes_at_next(cs: ChaosStack) -> dict[str, Any]:
    cs.clock(NEXT_AT)
    out = cs.outcomes()
    cs.note(f"outcomes at {NEXT_AT.isoformat()}: {out}")
    return out


# -- bad_market_data ----------------------------------------------------------------------------------------
def _cycle_on(cs: ChaosStack, mutate: Callable[[list[Bar]], list[Bar]], *words: str) -> None:
    upload(cs, "AAA", csv_of(mutate(bars())))
    per = cycle(cs, ["AAA", "BBB"])
    skipped(cs, per, "AAA", *words)
    cs.expect(not str(per.get("BBB", {}).get("reason", "")).startswith("quarantined"),
              f"a clean symbol was quarantined: {per.get('BBB')}")
    no_orders(cs)


def _bad_print(cs: ChaosStack, ohlc: list[float]) -> None:
    """The decided day's bar printed as `ohlc`: quarantined as a price jump."""
    def m(rows: list[Bar]) -> list[Bar]:
        rows[at(rows, DECIDED_DAY)][1:5] = ohlc
        return rows
    _cycle_on(cs, m, "quarantined: price jump")


def bad_print_1000x(cs: ChaosStack) -> None:
    _bad_print(cs, [100.0, 100000.0, 99.0, 100000.0])


def bad_print_down(cs: ChaosStack) -> None:
    _bad_print(cs, [100.0, 101.0, 0.1, 0.1])


def gap_30_sessions(cs: ChaosStack) -> None:
    def m(rows: list[Bar]) -> list[Bar]:
        i = at(rows, DECIDED_DAY)
        return rows[:i - 30] + rows[i:]
    _cycle_on(cs, m, "quarantined: gap")


def gap_2_sessions(cs: ChaosStack) -> None:
    def m(rows: list[Bar]) -> list[Bar]:
        i = at(rows, DECIDED_DAY)
        return rows[:i - 7] + rows[i - 5:]
    _cycle_on(cs, m, "quarantined: gap")


def missing_one_session(cs: ChaosStack) -> None:
    """One missing session is within max_gap_sessions 1: not quarantined."""
    rows = bars()
    i = at(rows, DECIDED_DAY)
    upload(cs, "AAA", csv_of(rows[:i - 3] + rows[i - 2:]))
    per = cycle(cs, ["AAA"])
    cs.expect(not str(per.get("AAA", {}).get("reason", "")).startswith("quarantined"),
              f"one missing session quarantined: {per.get('AAA')}")
    no_orders(cs)


def stale_bars(cs: ChaosStack) -> None:
    def m(rows: list[Bar]) -> list[Bar]:
        return rows[:at(rows, DECIDED_DAY) - 4]
    _cycle_on(cs, m, "stale")


def duplicated_bar(cs: ChaosStack) -> None:
    def m(rows: list[Bar]) -> list[Bar]:
        i = at(rows, DECIDED_DAY) - 2
        return rows[:i + 1] + [list(rows[i])] + rows[i + 1:]
    _cycle_on(cs, m, "bad market data", "duplicate", "not increasing")


def zero_price(cs: ChaosStack) -> None:
    def m(rows: list[Bar]) -> list[Bar]:
        rows[at(rows, DECIDED_DAY) - 1][4] = 0.0
        return rows
    _cycle_on(cs, m, "bad market data")


def negative_price(cs: ChaosStack) -> None:
    def m(rows: list[Bar]) -> list[Bar]:
        rows[at(rows, DECIDED_DAY)][3] = -5.0
        return rows
    _cycle_on(cs, m, "bad market data")


def nan_in_column(cs: ChaosStack) -> None:
    def m(rows: list[Bar]) -> list[Bar]:
        rows[at(rows, DECIDED_DAY) - 3][2] = "nan"
        return rows
    _cycle_on(cs, m, "bad market data")


def high_below_low(cs: ChaosStack) -> None:
    def m(rows: list[Bar]) -> list[Bar]:
        rows[at(rows, DECIDED_DAY)][2:4] = [98.0, 102.0]
        return rows
    _cycle_on(cs, m, "bad market data")


def garbage_file(cs: ChaosStack) -> None:
    upload(cs, "AAA", b"\x00\xffnot,a,price\nfile")
    per = cycle(cs, ["AAA"])
    r = per.get("AAA", {})
    cs.expect(r.get("result") in ("skipped", "SKIPPED", "error", "ERROR"), f"garbage file: {r}")
    no_orders(cs)


def big_real_move_kept(cs: ChaosStack) -> None:
    """A volatile stock (ATR ~ 20) up 60 % in a day: beyond 50 % but only ~3 ATR — not quarantined."""
    rows = bars()
    for k, r in enumerate(rows):
        r[1:5] = [100.0, 110.0, 90.0, 100.0 + (5.0 if k % 2 else -5.0)]
    i = at(rows, DECIDED_DAY)
    rows[i - 1][4] = 100.0
    rows[i][1:5] = [100.0, 160.0, 100.0, 160.0]
    upload(cs, "AAA", csv_of(rows))
    per = cycle(cs, ["AAA"])
    cs.expect(not str(per.get("AAA", {}).get("reason", "")).startswith("quarantined"),
              f"a real +60 % move under 10 ATR was quarantined: {per.get('AAA')}")
    cs.clock(EXEC_AT)
    cs.drain()


def collar_bad_quote(cs: ChaosStack) -> None:
    """The decision made at 100; the execution session opens on a 1000x print: the collar rejects the entry."""
    rows = bars()
    rows[at(rows, EXEC_DAY)][1:5] = [100000.0, 100000.0, 99.0, 100.0]
    upload(cs, "AAA", csv_of(rows))
    d = cs.genuine("AAA", price=100.0)
    cs.send_genuine(d)
    cs.drain()
    state, reason = cs.status(d)
    cs.expect(state == "REJECTED" and "collar" in reason, f"entry on a 1000x quote: {state} ({reason[:120]})")
    cs.expect(cs.orders() == [], "an order went out at a 1000x quote")


def corrupted_after_entry(cs: ChaosStack) -> None:
    """CRSH held (stop 95); its file replaced by garbage; the open of the next session is 70 in the last file
    that parsed: outcomes checks the stop on that quote and closes."""
    hold(cs, "CRSH")
    upload(cs, "CRSH", b"Date,Open\ngarbage,,\n")
    expire_cache(cs)
    out = outcomes_at_next(cs)
    cs.expect(out.get("checked_on_quote", 0) >= 1, f"not checked on the quote: {out}")
    cs.expect(cs.tl.position("CRSH") is None and out.get("closed", 0) == 1, f"stop not taken on the quote: {out}")


def bad_print_on_held_bar(cs: ChaosStack) -> None:
    """AAA held; EXEC_DAY's bar gets a 0.1 low (a bad print): outcomes must not stop out on it, it checks the
    quote (100, inside the collar) and holds."""
    hold(cs, "AAA")
    rows = bars()
    rows[at(rows, EXEC_DAY)][3] = 0.1
    upload(cs, "AAA", csv_of(rows))
    expire_cache(cs)
    out = outcomes_at_next(cs)
    cs.expect(cs.tl.position("AAA") is not None, f"stopped out on a bad print: {out}")
    cs.expect(out.get("checked_on_quote", 0) == 1, f"quarantined bar not checked on the quote: {out}")


def _bad_case(name: str, fn: Callable[[ChaosStack], None]) -> Case:
    return Case(BAD, name, fn, SPEC)


# -- feed_loss ------------------------------------------------------------------------------------------------
def deleted_stop_hit(cs: ChaosStack) -> None:
    hold(cs, "CRSH")
    delete(cs, "CRSH")
    expire_cache(cs)
    out = outcomes_at_next(cs)
    cs.expect(out.get("checked_on_quote", 0) == 1 and out.get("closed", 0) == 1, f"not closed on quote: {out}")
    cs.expect(cs.tl.position("CRSH") is None, "CRSH still held after its stop was hit on the quote")


def deleted_stop_not_hit(cs: ChaosStack) -> None:
    hold(cs, "AAA")
    delete(cs, "AAA")
    expire_cache(cs)
    out = outcomes_at_next(cs)
    cs.expect(out.get("checked_on_quote", 0) == 1 and out.get("held", 0) == 1, f"not held on quote: {out}")
    cs.expect(cs.tl.position("AAA") is not None, "AAA closed though its stop was not hit")


def deleted_cold_container(cs: ChaosStack) -> None:
    """The file gone before the outcomes container ever read it: no bars, no quote -> unchecked, kept."""
    cs.clock(EXEC_AT)
    d = cs.genuine("CRSH", price=100.0)
    cs.send_genuine(d)
    cs.drain()
    delete(cs, "CRSH")
    out = outcomes_at_next(cs)
    cs.expect(out.get("positions_unchecked", 0) >= 1 and bool(out.get("unchecked_reasons")),
              f"unchecked not reported: {out}")
    cs.expect(cs.tl.position("CRSH") is not None, "position dropped while unchecked")


def corrupt_and_no_quote(cs: ChaosStack) -> None:
    """Market data unreadable and no bar for the quote's session (a Saturday): the position is checked on the last
    trusted quote (Friday's close, which the source kept) or counted unchecked; never dropped."""
    hold(cs, "AAA")
    upload(cs, "AAA", b"garbage")
    expire_cache(cs)
    cs.clock(datetime(2011, 3, 5, 16, 0, tzinfo=UTC))
    out = cs.outcomes()
    cs.note(f"outcomes on Saturday 2011-03-05: {out}")
    cs.expect(out.get("positions_unchecked", 0) + out.get("checked_on_quote", 0) == 1,
              f"neither checked on the last trusted quote nor counted unchecked: {out}")
    cs.expect(cs.tl.position("AAA") is not None, "position dropped while unchecked")


def s3_throttled_warm(cs: ChaosStack) -> None:
    """S3 throttled while the parsed file is still cached: outcomes manages the position on its bars."""
    hold(cs, "DIP")
    cs.stack.embedded.router.faults["s3"] = 1.0
    try:
        out = outcomes_at_next(cs)
    finally:
        cs.stack.embedded.router.faults.pop("s3", None)
    cs.expect(cs.tl.position("DIP") is None and out.get("closed", 0) == 1, f"DIP stop not taken: {out}")


def s3_throttled_expired(cs: ChaosStack) -> None:
    """S3 throttled and the cache expired: the quote (last file that parsed) should still check the stop."""
    hold(cs, "CRSH")
    expire_cache(cs)
    cs.stack.embedded.router.faults["s3"] = 1.0
    try:
        out = outcomes_at_next(cs)
    finally:
        cs.stack.embedded.router.faults.pop("s3", None)
    checked = out.get("checked_on_quote", 0) == 1
    cs.expect(checked or out.get("positions_unchecked", 0) == 1, f"neither checked nor counted unchecked: {out}")
    cs.expect(checked, f"S3 throttled: position not checked on the last trusted quote ({out.get('unchecked_reasons')})")


def feed_restored(cs: ChaosStack) -> None:
    """DIP's file deleted before outcomes ever read it (unchecked), then restored: managed again, stop on bars."""
    cs.clock(EXEC_AT)
    d = cs.genuine("DIP", price=100.0)
    cs.send_genuine(d)
    cs.drain()
    body = cs.stack.client("s3").get_object(Bucket=cs.stack.bucket, Key="market-data/DIP.csv")["Body"].read()
    delete(cs, "DIP")
    out = outcomes_at_next(cs)
    cs.expect(out.get("positions_unchecked", 0) == 1, f"feed down: {out}")
    upload(cs, "DIP", body)
    out = cs.outcomes()
    cs.note(f"after restore: {out}")
    cs.expect(out.get("positions_unchecked", 0) == 0 and out.get("closed", 0) == 1, f"not managed again: {out}")
    cs.expect(cs.tl.position("DIP") is None, "DIP still held after the feed came back")


def cycle_feed_down(cs: ChaosStack) -> None:
    for s in ("AAA", "BBB", "CCC"):
        delete(cs, s)
    per = cycle(cs, ["AAA", "BBB", "CCC"])
    for s in ("AAA", "BBB", "CCC"):
        skipped(cs, per, s, "bad market data", "no market data")
    no_orders(cs)


def cycle_s3_throttled(cs: ChaosStack) -> None:
    cs.stack.embedded.router.faults["s3"] = 1.0
    try:
        per = cycle(cs, ["AAA", "BBB"])
    finally:
        cs.stack.embedded.router.faults.pop("s3", None)
    for s in ("AAA", "BBB"):
        cs.expect(per.get(s, {}).get("result") not in ("buy", "sell", "BUY", "SELL", "sent", "SENT"),
                  f"{s} decided with S3 down: {per.get(s)}")
    no_orders(cs)


def executor_feed_down(cs: ChaosStack) -> None:
    """An entry reaches the executor with its symbol's file gone: no quote, no order."""
    delete(cs, "AAA")
    d = cs.genuine("AAA", price=100.0)
    cs.send_genuine(d)
    stats = cs.drain()
    cs.note(f"executor: {stats.delivered} deliveries, {stats.failed} failed; {cs.status(d)}; DLQ {cs.dlq_depth()}")
    cs.expect(cs.orders() == [], "an order went out without a quote")


def one_of_two_down(cs: ChaosStack) -> None:
    hold(cs, "AAA")
    hold(cs, "DIP")
    delete(cs, "AAA")
    expire_cache(cs)
    out = outcomes_at_next(cs)
    cs.expect(out.get("checked_on_quote", 0) == 1 and out.get("closed", 0) == 1 and out.get("held", 0) == 1,
              f"AAA on the quote and held, DIP stopped on its bar: {out}")
    cs.expect(cs.tl.position("AAA") is not None and cs.tl.position("DIP") is None, "wrong position closed")


def s3_flaky_outcomes(cs: ChaosStack) -> None:
    hold(cs, "CRSH")
    hold(cs, "DIP")
    expire_cache(cs)
    cs.stack.embedded.router.faults["s3"] = 0.5
    try:
        out = outcomes_at_next(cs)
    finally:
        cs.stack.embedded.router.faults.pop("s3", None)
    cs.expect(out.get("closed", 0) + out.get("held", 0) + out.get("positions_unchecked", 0) + out.get("errors", 0)
              >= 2, f"a position neither checked nor counted: {out}")


SYMBOLS = ("AAA", "BBB", "CCC", "CRSH", "DIP")
SPEC = StackSpec(universe=SYMBOLS, symbols=SYMBOLS)
BAD_DATA = [_bad_case(n, f) for n, f in (
    ("bad_print_1000x", bad_print_1000x), ("bad_print_down", bad_print_down), ("gap_30_sessions", gap_30_sessions),
    ("gap_2_sessions", gap_2_sessions), ("missing_one_session", missing_one_session), ("stale_bars", stale_bars),
    ("duplicated_bar", duplicated_bar), ("zero_price", zero_price), ("negative_price", negative_price),
    ("nan_in_column", nan_in_column), ("high_below_low", high_below_low), ("garbage_file", garbage_file),
    ("big_real_move_kept", big_real_move_kept), ("collar_bad_quote", collar_bad_quote),
    ("corrupted_after_entry", corrupted_after_entry), ("bad_print_on_held_bar", bad_print_on_held_bar))]
FEED_LOSS = [Case(LOSS, n, f, SPEC) for n, f in (
    ("deleted_stop_hit", deleted_stop_hit), ("deleted_stop_not_hit", deleted_stop_not_hit),
    ("deleted_cold_container", deleted_cold_container), ("corrupt_and_no_quote", corrupt_and_no_quote),
    ("s3_throttled_warm", s3_throttled_warm), ("s3_throttled_expired", s3_throttled_expired),
    ("feed_restored", feed_restored), ("cycle_feed_down", cycle_feed_down),
    ("cycle_s3_throttled", cycle_s3_throttled), ("executor_feed_down", executor_feed_down),
    ("one_of_two_down", one_of_two_down), ("s3_flaky_outcomes", s3_flaky_outcomes))]
