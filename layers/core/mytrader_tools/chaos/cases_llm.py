"""llm_answers: the advisor model answering in shapes no decision may come from.

Every case stands on the parameter_faults day D (a session on which the strategy says BUY for one symbol and SELL
for another) in override mode -- the LLM leads, so an answer that slipped through would be what trades. The local
Converse emulator answers every call in one bad shape (several tool blocks, another tool, fields outside the schema,
schema violations, a stop on the wrong side, garbage, truncated or doubled JSON, refusals, nothing at all). The
decision cycle runs at D's close, the executor at the next open, then outcomes. Expected: every symbol asked was
asked twice (the answer, one repair), fell back to the strategy with an `invalid_output` reason, and no decision
carries the model's advice; a decision built from a bad answer is a breach. The audit then finds 0 breaches, 0 lost.
`repaired_answer_used` is the control: bad first answers, good repair answers, which are used.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mytrader.advisor.local_model import LocalModelWeights
from mytrader_tools.chaos.cases_params import SPEC, Day, signal_day
from mytrader_tools.chaos.harness import ChaosStack
from mytrader_tools.chaos.runner import Case
from mytrader_tools.embedded.stack import FunctionFailed

CLS = "llm_answers"
JSON_MODEL = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/chaos-llm-answers"


def universe(day: Day) -> list[str]:
    return list(dict.fromkeys([day.buy, day.sell, "AAA", "SYN0", "SYN1", "SYN2"]))


def run_cycle(cs: ChaosStack, mode: str, json_mode: bool, bad_on_repair: bool = True) -> dict[str, Any]:
    """One cycle at D's close with the emulator in `mode`, executed at the next open, outcomes run; the emulator
    restored whatever happens (the runtime is shared by every case)."""
    day = signal_day()
    runtime = cs.stack.embedded.runtime
    cs.stack.set_param("MODE", "override")
    if json_mode:
        runtime.weights_by_model[JSON_MODEL] = LocalModelWeights()
        if cs.stack.embedded.gate is not None:  # a promoted deployment carries the stack's tag (its create did)
            cs.stack.embedded.gate.tag_resource(JSON_MODEL, {"mytrader:stack": cs.stack.prefix})
        cs.stack.set_param("ACTIVE_MODEL", JSON_MODEL)
    calls, bad = runtime.calls, runtime.bad_answers
    runtime.configure(answer_mode=mode, answer_bad_on_repair=bad_on_repair)
    try:
        cs.clock(day.close)
        out = cs.cycle(day.close, universe(day))
    finally:
        runtime.configure(answer_mode="normal", answer_bad_on_repair=True)
        runtime.weights_by_model.pop(JSON_MODEL, None)
    out["converse_calls"], out["bad_answers"] = runtime.calls - calls, runtime.bad_answers - bad
    cs.note(f"{mode} ({'json' if json_mode else 'tool'} mode): status {out.get('status')}, results "
            f"{out.get('results')}, llm_calls {out.get('llm_calls')}, fallbacks {out.get('fallbacks')} "
            f"{out.get('fallback_reasons')}; {out['bad_answers']} bad answers of {out['converse_calls']} calls")
    cs.clock(day.next_open)
    cs.drain()
    try:
        cs.outcomes()
    except FunctionFailed as exc:
        cs.expect(False, f"the outcomes function failed: {str(exc)[:160]}")
    return out


def asked(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in out.get("per_symbol", []) if r.get("llm")]


def check_decisions(cs: ChaosStack, out: dict[str, Any], fell_back: bool) -> None:
    """Each asked symbol's stored decision: from the strategy (fell_back) or from the repaired answer. A decision
    carrying advice while the emulator never answered well is a breach: a trade from a bad answer."""
    kinds: set[str] = set()
    for r in asked(out):
        d = cs.tl.get_decision(r["decision_id"]) if r.get("decision_id") else None
        if d is None:
            cs.expect(False, f"{r['symbol']}: no decision record")
            continue
        reason = d.llm.fallback_reason if d.llm is not None else None
        kinds.add(str(reason))
        if fell_back:
            if d.advice is not None:
                cs.breaches.append(f"{d.symbol}: decision {d.action.value} carries the model's bad answer "
                                   f"({d.advice.decision.value}, size {d.advice.position_size_pct})")
            cs.expect(bool(reason and reason.startswith("invalid_output:")),
                      f"{d.symbol}: fallback reason {reason!r}, expected invalid_output:<shape>")
            cs.expect(d.reason.startswith("strategy:") and d.action == d.strategy.action
                      or d.reason.endswith(("(already positioned)", "(long-only: nothing to sell)")),
                      f"{d.symbol}: {d.action.value} ({d.reason[:80]}) is not the strategy's {d.strategy.action.value}")
            if d.llm is not None:
                cs.expect(d.llm.attempts == 2, f"{d.symbol}: {d.llm.attempts} attempts, expected answer + repair")
        else:
            cs.expect(d.advice is not None and reason is None and d.llm is not None and d.llm.attempts == 2,
                      f"{d.symbol}: the repaired answer was not used ({reason!r})")
    cs.note(f"fallback reasons: {', '.join(sorted(kinds))}")


def expect_fell_back(cs: ChaosStack, out: dict[str, Any]) -> None:
    n = len(asked(out))
    cs.expect(out.get("status") == "ok", f"cycle status {out.get('status')}")
    cs.expect(n > 0, "no symbol asked the advisor: the case proved nothing")
    cs.expect(all(r.get("fallback") for r in asked(out)), "a symbol asked did not fall back")
    cs.expect(out.get("fallbacks") == n and out.get("fallback_reasons") == {"invalid_output": n},
              f"fallbacks {out.get('fallbacks')} {out.get('fallback_reasons')} for {n} symbols asked")
    cs.expect(out.get("llm_calls") == 2 * n and out["bad_answers"] == 2 * n,
              f"{out.get('llm_calls')} calls, {out['bad_answers']} bad answers for {n} symbols (one repair each)")
    check_decisions(cs, out, fell_back=True)
    cs.note(f"{len(cs.orders())} broker orders (the strategy's own)")


def bad_answers(mode: str, json_mode: bool = False) -> Callable[[ChaosStack], None]:
    def case(cs: ChaosStack) -> None:
        expect_fell_back(cs, run_cycle(cs, mode, json_mode))
    case.__doc__ = f"every Converse answer in the shape {mode!r} ({'JSON' if json_mode else 'tool'} mode)"
    return case


def repaired_answer_used(cs: ChaosStack) -> None:
    out = run_cycle(cs, "two_tool_blocks", json_mode=False, bad_on_repair=False)
    n = len(asked(out))
    cs.expect(n > 0 and out.get("fallbacks") == 0, f"fallbacks {out.get('fallbacks')} of {n} with good repairs")
    cs.expect(out["bad_answers"] == n and out.get("llm_calls") == 2 * n,
              f"{out['bad_answers']} bad answers, {out.get('llm_calls')} calls for {n} symbols")
    check_decisions(cs, out, fell_back=False)


TOOL_MODES = ("two_tool_blocks", "tool_and_other_tool", "wrong_tool", "schema_violation", "missing_fields",
              "extra_fields", "tool_input_not_object", "wrong_side_stop", "garbage_json", "truncated_json",
              "refusal", "guardrail", "text_refusal", "empty", "empty_text")
JSON_MODES = ("two_json_objects", "trailing_text", "duplicate_keys", "nan_json", "truncated_json", "garbage_json",
              "two_tool_blocks", "wrong_side_stop", "text_refusal", "empty")
QUICK = {"two_tool_blocks", "refusal", "json_two_json_objects"}

CASES = [
    *(Case(CLS, m, bad_answers(m), SPEC, quick=m in QUICK, doc=f"tool mode, {m}") for m in TOOL_MODES),
    *(Case(CLS, f"json_{m}", bad_answers(m, json_mode=True), SPEC, quick=f"json_{m}" in QUICK,
           doc=f"JSON mode, {m}") for m in JSON_MODES),
    Case(CLS, "repaired_answer_used", repaired_answer_used, SPEC, doc="bad answers, good repairs: repairs used"),
]
