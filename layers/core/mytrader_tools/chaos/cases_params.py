"""parameter_faults: the gates the functions read at run time (SSM parameters, the account's kill switch, env
UNIVERSE and RISK_JSON) unreadable, missing or wrong.

Every case stands on the same day: a session D (picked once from the price files, winter time so that daily bars
close at the cycle's time) on which the strategy says BUY for one symbol and SELL for another. The SELL symbol is
held (entered at D's open through the executor), so the decision cycle at D's close produces one entry and one
exit; the executor runs them at the next session's open. What fails closed must refuse the entry (and say so)
while the exit still runs, unless the whole function cannot start — then nothing trades, which the notes say.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from mytrader.stack_spec import FUNCTIONS
from mytrader_tools.chaos.harness import CAL, ChaosStack, StackSpec, open_price, price_file
from mytrader_tools.chaos.runner import Case
from mytrader_tools.embedded.iam.recorder import RECORDER
from mytrader_tools.embedded.stack import FunctionFailed
from mytrader_tools.ops import Ops

CLS = "parameter_faults"
CANDIDATES = ("NVDA", "ORCL", "SYN0", "SYN1", "SYN2", "SYN3", "SYN4", "SYN5")


@dataclass(frozen=True)
class Day:
    day: date
    buy: str
    sell: str

    @property
    def close(self) -> datetime:
        return CAL.session_close(self.day)

    @property
    def seeded_at(self) -> datetime:  # the held symbol's entry: decided the session before, filled at D's open
        return CAL.session_open(self.day) + timedelta(minutes=5)

    @property
    def prior_close(self) -> datetime:
        d = self.day - timedelta(days=1)
        while not CAL.is_session(d):
            d -= timedelta(days=1)
        return CAL.session_close(d)

    @property
    def next_open(self) -> datetime:
        return CAL.session_open(CAL.next_session(self.day)) + timedelta(minutes=5)


@cache
def signal_day() -> Day:
    """The first winter session with a strategy BUY for one symbol and a SELL for another, every symbol having a
    bar on that day and the next session (the quotes)."""
    from mytrader.features import compute_features
    from mytrader.market.sources import parse_price_csv
    from mytrader.strategy import strategy_arrays

    found: dict[date, dict[int, list[str]]] = {}
    days: dict[str, set[date]] = {}
    for symbol in CANDIDATES:
        s = parse_price_csv(price_file(symbol).decode(), symbol)
        arrays = strategy_arrays(compute_features(s))
        days[symbol] = {s.time(i).date() for i in range(len(s))}
        for i in range(len(s)):
            d = s.time(i).date()
            if arrays.action[i] != 0 and date(2010, 11, 8) <= d <= date(2011, 3, 10):
                found.setdefault(d, {}).setdefault(int(arrays.action[i]), []).append(symbol)
    for d in sorted(found):
        nxt = CAL.next_session(d) if CAL.is_session(d) else None
        if nxt is None or CAL.session_close(d).hour != 21:
            continue
        ok = [s for s in CANDIDATES if d in days[s] and nxt in days[s]]
        buys = [s for s in found[d].get(1, []) if s in ok]
        sells = [s for s in found[d].get(-1, []) if s in ok]
        if buys and sells:
            return Day(d, buys[0], sells[0])
    raise LookupError("no session with both a BUY and a SELL in the price files")


def setup(cs: ChaosStack) -> Day:
    """The SELL symbol held (entered at D's open), the mode baseline: the strategy alone decides, so the case is
    about the gate and not about the advisor's opinion."""
    day = signal_day()
    cs.stack.set_param("MODE", "baseline")
    cs.clock(day.seeded_at)
    held = cs.genuine(day.sell, decided_at=day.prior_close, price=open_price(day.sell, day.day))
    cs.send_genuine(held)
    cs.drain()
    cs.expect(cs.tl.position(day.sell) is not None, f"setup: {day.sell} not held ({cs.status(held)})")
    cs.note(f"session {day.day}: strategy BUY {day.buy}, SELL {day.sell} (held)")
    return day


def cycle(cs: ChaosStack, day: Day) -> dict[str, Any]:
    out = cs.cycle(day.close, [day.buy, day.sell])
    per = {r["symbol"]: r for r in out.get("per_symbol", [])}
    cs.note(f"cycle: status {out.get('status')}, results {out.get('results')}, entries_failed_closed "
            f"{out.get('entries_failed_closed')}, reason {str(out.get('failed_closed_reason'))[:100]}")
    out["by_symbol"] = per
    return out


def execute_next_open(cs: ChaosStack, day: Day) -> None:
    cs.clock(day.next_open)
    cs.drain()
    cs.outcomes()


def decision_of(cs: ChaosStack, out: dict[str, Any], symbol: str) -> tuple[str, str]:
    r = out["by_symbol"].get(symbol)
    return cs.status(r["decision_id"]) if r and r.get("decision_id") else ("(none)", "")


def expect_failed_closed(cs: ChaosStack, day: Day, out: dict[str, Any]) -> None:
    """The entry refused at the cycle and counted, the exit sent and executed."""
    cs.expect(out.get("entries_failed_closed", 0) >= 1 and bool(out.get("failed_closed_reason")),
              f"entries not refused and counted: {out.get('entries_failed_closed')}")
    state, reason = decision_of(cs, out, day.buy)
    cs.expect(state == "SKIPPED" and "fail closed" in reason, f"entry {day.buy}: {state} ({reason[:100]})")
    exit_state, exit_reason = decision_of(cs, out, day.sell)
    cs.expect(exit_state == "EXECUTED" and cs.tl.position(day.sell) is None,
              f"exit {day.sell} should still run: {exit_state} ({exit_reason[:100]})")
    cs.expect(len(cs.orders()) == 2, f"{len(cs.orders())} broker orders: only the seed entry and the exit")


# -- the cases ------------------------------------------------------------------------------------------------
def ssm_throttled(cs: ChaosStack) -> None:
    day = setup(cs)
    router = cs.stack.embedded.router
    router.faults["ssm"] = 1.0
    try:
        out = cycle(cs, day)
    finally:
        router.faults.pop("ssm", None)
    execute_next_open(cs, day)
    expect_failed_closed(cs, day, out)


def ssm_flaky(cs: ChaosStack) -> None:
    day = setup(cs)
    router = cs.stack.embedded.router
    router.faults["ssm"] = 0.5
    try:
        out = cycle(cs, day)
    finally:
        router.faults.pop("ssm", None)
    execute_next_open(cs, day)
    state, reason = decision_of(cs, out, day.buy)
    if out.get("failed_closed_reason"):
        cs.expect(state == "SKIPPED", f"fail-closed cycle, yet the entry ended {state} ({reason[:80]})")
    cs.note(f"entry {day.buy}: {state} {reason[:80]}")
    cs.expect(cs.tl.position(day.sell) is None, "the exit should run")


def mode_deleted(cs: ChaosStack) -> None:
    day = setup(cs)
    cs.stack.client("ssm").delete_parameter(Name=cs.stack.params["MODE"])
    out = cycle(cs, day)
    execute_next_open(cs, day)
    expect_failed_closed(cs, day, out)


def mode_garbage(cs: ChaosStack) -> None:
    day = setup(cs)
    cs.stack.set_param("MODE", "yolo; all-in")
    out = cycle(cs, day)
    execute_next_open(cs, day)
    expect_failed_closed(cs, day, out)


def active_model_deleted(cs: ChaosStack) -> None:
    day = setup(cs)
    cs.stack.client("ssm").delete_parameter(Name=cs.stack.params["ACTIVE_MODEL"])
    out = cycle(cs, day)
    execute_next_open(cs, day)
    expect_failed_closed(cs, day, out)


def active_model_unknown(cs: ChaosStack) -> None:
    """A model id Bedrock does not know, in consensus mode: the advisor falls back, the cycle goes on."""
    day = setup(cs)
    cs.stack.set_param("MODE", "consensus")
    cs.stack.set_param("ACTIVE_MODEL", "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/nope")
    with RECORDER.expecting():  # no such deployment carries the stack's tag: AccessDenied, as on AWS
        out = cycle(cs, day)
    execute_next_open(cs, day)
    cs.expect(out.get("status") == "ok", f"cycle status {out.get('status')}")
    cs.note(f"fallbacks {out.get('fallbacks')}: {out.get('fallback_reasons')}; entry {decision_of(cs, out, day.buy)}")


def kill_switch_on(cs: ChaosStack) -> None:
    day = setup(cs)
    Ops(cs.stack.prefix).set_kill_switch(True)
    out = cycle(cs, day)
    execute_next_open(cs, day)
    cs.ctx.kill_windows.append((day.close, day.next_open + timedelta(hours=1)))
    state, reason = decision_of(cs, out, day.buy)
    cs.expect(state == "REJECTED" and "kill_switch" in reason, f"entry {day.buy}: {state} ({reason[:100]})")
    cs.expect(cs.tl.position(day.sell) is None, f"exit {day.sell} should run while halted: "
                                                f"{decision_of(cs, out, day.sell)}")


def kill_switch_mirror_only(cs: ChaosStack) -> None:
    """The SSM kill-switch parameter is a mirror for operators: setting it alone halts nothing (by design, the
    switch lives on the account; `ops halt` sets both)."""
    day = setup(cs)
    cs.stack.set_param("KILL_SWITCH", "on")
    out = cycle(cs, day)
    execute_next_open(cs, day)
    state, reason = decision_of(cs, out, day.buy)
    cs.note(f"with only the SSM mirror on, entry {day.buy}: {state} {reason[:80]} (the mirror is never read)")


def universe_unset(cs: ChaosStack) -> None:
    day = setup(cs)
    cs.stack.register_functions(overrides={"executor": {"UNIVERSE": ""}, "outcomes": {"UNIVERSE": ""}})
    out = cycle(cs, day)
    execute_next_open(cs, day)
    state, reason = decision_of(cs, out, day.buy)
    cs.expect(state == "REJECTED" and "universe" in reason, f"entry {day.buy}: {state} ({reason[:100]})")
    cs.expect(cs.tl.position(day.sell) is None, "the exit should run without a universe")


def universe_garbage(cs: ChaosStack) -> None:
    day = setup(cs)
    cs.stack.register_functions(overrides={"executor": {"UNIVERSE": "[not json"}})
    out = cycle(cs, day)
    execute_next_open(cs, day)
    state, reason = decision_of(cs, out, day.buy)
    cs.expect(state == "REJECTED" and "universe" in reason, f"entry {day.buy}: {state} ({reason[:100]})")
    cs.expect(cs.tl.position(day.sell) is None, "the exit should run with an unreadable universe")


def _broken_risk(cs: ChaosStack, value: str, functions: tuple[str, ...]) -> None:
    day = setup(cs)
    cs.stack.register_functions(overrides={f: {"RISK_JSON": value} for f in functions})
    try:
        out = cycle(cs, day)
    except FunctionFailed as exc:
        cs.note(f"decision cycle failed: {str(exc)[:160]} -- nothing decided, nothing traded")
        out = {"by_symbol": {}}
    cs.clock(day.next_open)
    stats = cs.drain()
    try:
        outcomes = cs.outcomes()
        cs.note(f"outcomes: {outcomes}")
    except FunctionFailed as exc:
        cs.note(f"outcomes failed: {str(exc)[:160]}")
    cs.note(f"executor: {stats.delivered} deliveries, {stats.function_errors} function errors, DLQ {cs.dlq_depth()}")
    for symbol in (day.buy, day.sell):
        cs.note(f"{symbol}: {decision_of(cs, out, symbol)}; held: {cs.tl.position(symbol) is not None}")
    cs.expect(len(cs.orders()) == 1, f"{len(cs.orders())} broker orders with RISK_JSON {value!r}: only the seed")
    if cs.tl.position(day.sell) is not None:
        cs.note(f"the exit of {day.sell} did not run either: the function cannot start without its limits")


def risk_json_invalid(cs: ChaosStack) -> None:
    _broken_risk(cs, "{not json", tuple(FUNCTIONS))


def risk_json_invalid_executor(cs: ChaosStack) -> None:
    _broken_risk(cs, "{not json", ("executor",))


def risk_json_out_of_range(cs: ChaosStack) -> None:
    _broken_risk(cs, json.dumps({"max_position_pct": 1000, "max_open_positions": 0}), tuple(FUNCTIONS))


def risk_json_misspelt(cs: ChaosStack) -> None:
    """A limit under a misspelt name (`max_open_position`): is it refused, or silently replaced by the default?"""
    cs.stack.register_functions(overrides={"executor": {"RISK_JSON": json.dumps({"max_open_position": 1})}})
    ds = [cs.genuine(s) for s in ("AAA", "BBB", "CCC")]
    for d in ds:
        cs.send_genuine(d)
    cs.drain()
    executed = [d.symbol for d in ds if cs.status(d)[0] == "EXECUTED"]
    cs.expect(len(executed) <= 1, f"RISK_JSON {{\"max_open_position\": 1}} accepted silently: {len(executed)} "
                                  "positions opened under the default max_open_positions 5 (an unknown limit name "
                                  "is ignored, not refused)")


def shadow_model_unknown(cs: ChaosStack) -> None:
    day = setup(cs)
    cs.stack.set_param("SHADOW_MODEL", "no-such-model")
    out = cycle(cs, day)
    execute_next_open(cs, day)
    cs.expect(out.get("status") == "ok", f"cycle status {out.get('status')}")
    state, _ = decision_of(cs, out, day.buy)
    cs.expect(state == "EXECUTED", f"a broken shadow model must not stop the active one: entry {state}")


def replay_clock_garbage(cs: ChaosStack) -> None:
    """The executor's clock unreadable (embedded stacks read it from SSM): messages fail and are retried, never
    executed at an unknown time."""
    d = cs.genuine("AAA")
    cs.send_genuine(d)
    cs.stack.set_param("REPLAY_CLOCK", "not a time")
    stats = cs.drain()
    cs.note(f"clock unreadable: {stats.failed} failed receives, {stats.function_errors} function errors; "
            f"{d.symbol}: {cs.status(d)}")
    cs.expect(cs.orders() == [], "an order went out at an unknown time")
    cs.clock(CAL.session_open(date(2011, 3, 2)) + timedelta(minutes=5))
    cs.note("clock restored before the final drain and outcomes run")


SPEC = StackSpec(symbols=("NVDA", "ORCL", "AAA", "BBB", "CCC", "SYN0", "SYN1", "SYN2", "SYN3", "SYN4", "SYN5"),
                 universe=("NVDA", "ORCL", "AAA", "BBB", "CCC", "SYN0", "SYN1", "SYN2", "SYN3", "SYN4", "SYN5"))
CASES = [
    Case(CLS, "ssm_throttled", ssm_throttled, SPEC, quick=True),
    Case(CLS, "ssm_flaky", ssm_flaky, SPEC),
    Case(CLS, "mode_deleted", mode_deleted, SPEC),
    Case(CLS, "mode_garbage", mode_garbage, SPEC, quick=True),
    Case(CLS, "active_model_deleted", active_model_deleted, SPEC),
    Case(CLS, "active_model_unknown", active_model_unknown, SPEC),
    Case(CLS, "kill_switch_on", kill_switch_on, SPEC, quick=True),
    Case(CLS, "kill_switch_mirror_only", kill_switch_mirror_only, SPEC),
    Case(CLS, "universe_unset", universe_unset, SPEC),
    Case(CLS, "universe_garbage", universe_garbage, SPEC),
    Case(CLS, "risk_json_invalid", risk_json_invalid, SPEC),
    Case(CLS, "risk_json_invalid_executor", risk_json_invalid_executor, SPEC),
    Case(CLS, "risk_json_out_of_range", risk_json_out_of_range, SPEC),
    Case(CLS, "risk_json_misspelt", risk_json_misspelt, SPEC),
    Case(CLS, "shadow_model_unknown", shadow_model_unknown, SPEC),
    Case(CLS, "replay_clock_garbage", replay_clock_garbage, SPEC),
]
