"""Runs classes of named chaos cases on one embedded AWS, one fresh stack per case, audits each, writes the summary.

summary.json = {"classes": {NAME: {"cases", "breaches", "lost", "duplicates", "unexpected", "seconds"}},
                "cases": [{"class", "name", "breaches", "lost", "duplicates", "notes", "unexpected", "details",
                           "seconds"}], "total_seconds", "ok"}
A case's `notes` say what it did and saw; `unexpected` lists where the system behaved other than the case
expected without breaching anything (reported, not counted as a failure); `details` the audit's findings.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mytrader_tools.chaos.harness import ChaosStack, Harness, StackSpec


@dataclass(frozen=True)
class Case:
    cls: str
    name: str
    run: Callable[[ChaosStack], None]
    spec: StackSpec = field(default_factory=StackSpec)
    quick: bool = False  # part of the --quick subset
    doc: str = ""


def all_cases() -> dict[str, list[Case]]:
    from mytrader_tools.chaos import cases_data, cases_hostile, cases_llm, cases_params, cases_races

    return {"hostile_messages": cases_hostile.CASES, "races": cases_races.CASES,
            "parameter_faults": cases_params.CASES, "llm_answers": cases_llm.CASES,
            "bad_market_data": cases_data.BAD_DATA, "feed_loss": cases_data.FEED_LOSS}


@dataclass
class CaseResult:
    cls: str
    name: str
    breaches: list[str]
    lost: list[str]
    duplicates: list[str]
    notes: list[str]
    unexpected: list[str]
    seconds: float

    def row(self) -> dict[str, Any]:
        return {"class": self.cls, "name": self.name, "breaches": len(self.breaches), "lost": len(self.lost),
                "duplicates": len(self.duplicates), "notes": self.notes, "unexpected": self.unexpected,
                "details": {"breaches": self.breaches, "lost": self.lost, "duplicates": self.duplicates},
                "seconds": round(self.seconds, 2)}


def run_case(h: Harness, case: Case) -> CaseResult:
    started = time.perf_counter()
    cs = h.new_stack(f"{case.cls}/{case.name}", case.spec)
    try:
        case.run(cs)
    except Exception as exc:  # the case's own code failed: reported as unexpected, the audit still runs
        cs.unexpected.append(f"case raised {type(exc).__name__}: {str(exc)[:300]}")
        cs.note("".join(traceback.format_exception(exc)[-3:])[:600])
    h.finish(cs)
    report = cs.audit()
    return CaseResult(case.cls, case.name, cs.breaches + report.breaches, report.lost, report.duplicates, cs.notes,
                      cs.unexpected, time.perf_counter() - started)


def select(classes: list[str] | None, quick: bool, names: list[str] | None = None) -> list[Case]:
    registry = all_cases()
    unknown = set(classes or []) - set(registry)
    if unknown:
        raise SystemExit(f"unknown classes {sorted(unknown)}; known: {sorted(registry)}")
    chosen = [c for name, cases in registry.items() if not classes or name in classes for c in cases]
    if quick:
        chosen = [c for c in chosen if c.quick]
    if names:
        chosen = [c for c in chosen if c.name in names]
    return chosen


def summarise(results: list[CaseResult], seconds: float) -> dict[str, Any]:
    classes: dict[str, dict[str, Any]] = {}
    for r in results:
        c = classes.setdefault(r.cls, {"cases": 0, "breaches": 0, "lost": 0, "duplicates": 0, "unexpected": 0,
                                       "seconds": 0.0})
        c["cases"] += 1
        c["breaches"] += len(r.breaches)
        c["lost"] += len(r.lost)
        c["duplicates"] += len(r.duplicates)
        c["unexpected"] += len(r.unexpected)
        c["seconds"] = round(c["seconds"] + r.seconds, 2)
    ok = all(not (r.breaches or r.lost or r.duplicates) for r in results)
    return {"classes": classes, "cases": [r.row() for r in results], "total_seconds": round(seconds, 1), "ok": ok}


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'class':<18} {'cases':>5} {'breaches':>8} {'lost':>5} {'dups':>5} {'unexp':>5} {'secs':>6}"]
    for name, c in summary["classes"].items():
        lines.append(f"{name:<18} {c['cases']:>5} {c['breaches']:>8} {c['lost']:>5} {c['duplicates']:>5} "
                     f"{c['unexpected']:>5} {c['seconds']:>6.1f}")
    bad = [r for r in summary["cases"] if r["breaches"] or r["lost"] or r["duplicates"] or r["unexpected"]]
    for r in bad:
        lines.append(f"  {r['class']}/{r['name']}: breaches {r['breaches']}, lost {r['lost']}, "
                     f"duplicates {r['duplicates']}, unexpected {len(r['unexpected'])}")
        for text in (r["details"]["breaches"] + r["details"]["lost"] + r["details"]["duplicates"])[:4]:
            lines.append(f"    - {text[:150]}")
        for text in r["unexpected"][:3]:
            lines.append(f"    ? {text[:150]}")
    iam = summary.get("iam")
    if iam is not None:
        lines.append(f"embedded AWS: {iam['calls']:,} calls, {iam['denied']} denied ({iam['expected_denied']} "
                     f"expected by their case), {iam['invalid']} invalid")
        lines += [f"    ! {text[:150]}" for text in iam["details"][:6]]
    lines.append(f"total {summary['total_seconds']}s: " + ("OK (0 breaches, 0 lost, 0 duplicates, 0 denied, "
                                                           "0 invalid)" if summary["ok"] else "FAILED"))
    return "\n".join(lines)


def iam_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the embedded AWS's recorder saw during the run: calls, denials (a case that provokes one on purpose
    says so with RECORDER.expecting()) and invalid requests or answers, with the first of each."""
    def total(key: str, snap: dict[str, Any]) -> int:
        return sum(snap[key].values())

    details = [f"DENIED {d['function']} {d['operation']}: {d['action']} on {d['resource']}"
               for d in after["denials"] if d not in before["denials"]]
    details += [f"INVALID {d['function']} {d['operation']}: {d['errors']}"
                for d in after["invalid_details"] if d not in before["invalid_details"]]
    return {key: total(key, after) - total(key, before) for key in ("calls", "denied", "expected_denied", "invalid")
            } | {"details": details}


def run(out: Path | None = None, quick: bool = False, classes: list[str] | None = None,
        names: list[str] | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every selected case on one embedded AWS. The functions' own output (Powertools' cold-start metric lines,
    logs) is kept off the terminal."""
    from mytrader_tools.embedded.endpoint import EmbeddedAws
    from mytrader_tools.embedded.iam.recorder import RECORDER

    cases = select(classes, quick, names)
    before = RECORDER.snapshot()
    logging.getLogger("mytrader").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", category=UserWarning, module="aws_lambda_powertools")
    started = time.perf_counter()
    results: list[CaseResult] = []
    sink = io.StringIO()
    saved = os.environ.get("MYTRADER_LOG_LEVEL")
    os.environ["MYTRADER_LOG_LEVEL"] = saved or "CRITICAL"  # the functions' logs stay off the terminal
    with EmbeddedAws() as embedded:
        h = Harness(embedded)
        for case in cases:
            with contextlib.redirect_stdout(sink):
                result = run_case(h, case)
            sink.seek(0)
            sink.truncate()
            results.append(result)
            if progress is not None:
                flag = "ok" if not (result.breaches or result.lost or result.duplicates) else "FAIL"
                progress(f"{case.cls}/{case.name}: {flag} ({result.seconds:.1f}s)")
    if saved is None:
        os.environ.pop("MYTRADER_LOG_LEVEL", None)
    summary = summarise(results, time.perf_counter() - started)
    summary["iam"] = iam_delta(before, RECORDER.snapshot())
    summary["ok"] = summary["ok"] and not summary["iam"]["denied"] and not summary["iam"]["invalid"]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
