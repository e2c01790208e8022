"""Every call the embedded AWS served, per caller: how many, how many denied, how many invalid (a request that is
no valid operation of the model, or a local service's answer that departs from the output shape), and which IAM
actions each role used. One recorder per process (RECORDER); snapshots are plain JSON, merged across processes
(xdist workers) by `merge`.

Denials are failures unless a test expects them (`expecting()`): those are counted apart.
"""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mytrader_tools.embedded.iam.gate import Seen

MAX_DETAILS = 100
RECORD_FORMAT = 2  # bump when a snapshot's keys change: a saved record of another format is not read


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expecting = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls: Counter[str] = Counter()
            self.denied: Counter[str] = Counter()
            self.expected_denied: Counter[str] = Counter()
            self.invalid: Counter[str] = Counter()
            self.roles: dict[str, str] = {}  # label -> role logical id
            self.actions: dict[str, Counter[str]] = {}  # role logical id -> action -> allowed checks
            # role logical id -> "<policy>/<sid> <action> <resource index>" -> checks that statement allowed through
            # that Resource entry (the unused-grant check)
            self.statements: dict[str, Counter[str]] = {}
            self.denials: list[dict[str, str]] = []
            self.invalid_details: list[dict[str, str]] = []

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Denials recorded inside are expected (a test that proves a denial); they fail nothing."""
        with self._lock:
            self._expecting += 1
        try:
            yield
        finally:
            with self._lock:
                self._expecting -= 1

    def record(self, seen: Seen) -> None:
        label = seen.caller.label
        op = f"{seen.call.service}:{seen.call.operation.name}" if seen.call is not None else "?"
        with self._lock:
            self.calls[label] += 1
            if seen.caller.role_id:
                self.roles[label] = seen.caller.role_id
            if seen.decision is not None and not seen.decision.allowed:
                if self._expecting:
                    self.expected_denied[label] += 1
                else:
                    self.denied[label] += 1
                    check = seen.checks[0] if seen.checks else None
                    self._detail(self.denials, {"function": label, "operation": op,
                                                "action": check.action if check else "?",
                                                "resource": check.resource if check else "?",
                                                "reason": seen.decision.reason})
            elif seen.decision is not None:
                used = self.actions.setdefault(seen.caller.role_id, Counter())
                for check in seen.checks:
                    used[check.action] += 1
                by = self.statements.setdefault(seen.caller.role_id, Counter())
                for action, statement, index in seen.allowed_by:
                    by[f"{statement} {action} {index}"] += 1
            if seen.invalid:
                self.invalid[label] += 1
                self._detail(self.invalid_details, {"function": label, "operation": op,
                                                    "errors": "; ".join(seen.invalid)[:600]})

    @staticmethod
    def _detail(into: list[dict[str, str]], item: dict[str, str]) -> None:
        if len(into) < MAX_DETAILS and item not in into:
            into.append(item)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"record_format": RECORD_FORMAT, "calls": dict(self.calls), "denied": dict(self.denied),
                    "expected_denied": dict(self.expected_denied), "invalid": dict(self.invalid),
                    "roles": dict(self.roles), "actions": {r: dict(c) for r, c in self.actions.items()},
                    "statements": {r: dict(c) for r, c in self.statements.items()},
                    "denials": list(self.denials), "invalid_details": list(self.invalid_details)}


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"record_format": RECORD_FORMAT,
                           "calls": Counter(), "denied": Counter(), "expected_denied": Counter(), "invalid": Counter(),
                           "roles": {}, "actions": {}, "statements": {}, "denials": [], "invalid_details": []}
    for snap in snapshots:
        for key in ("calls", "denied", "expected_denied", "invalid"):
            out[key].update(snap.get(key, {}))
        out["roles"].update(snap.get("roles", {}))
        for key in ("actions", "statements"):
            for role, used in snap.get(key, {}).items():
                out[key].setdefault(role, Counter()).update(used)
        for key in ("denials", "invalid_details"):
            for item in snap.get(key, []):
                if item not in out[key] and len(out[key]) < MAX_DETAILS:
                    out[key].append(item)
    for key in ("calls", "denied", "expected_denied", "invalid"):
        out[key] = dict(out[key])
    for key in ("actions", "statements"):
        out[key] = {r: dict(c) for r, c in out[key].items()}
    return out


def table(snap: dict[str, Any]) -> str:
    """Calls recorded, denied (and expected denials), invalid, per caller."""
    rows = [("caller", "calls", "denied", "expected denials", "invalid")]
    for label in sorted(snap["calls"], key=lambda k: (-snap["calls"][k], k)):
        rows.append((label, str(snap["calls"][label]), str(snap["denied"].get(label, 0)),
                     str(snap["expected_denied"].get(label, 0)), str(snap["invalid"].get(label, 0))))
    rows.append(("total", str(sum(snap["calls"].values())), str(sum(snap["denied"].values())),
                 str(sum(snap["expected_denied"].values())), str(sum(snap["invalid"].values()))))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    details = [f"  DENIED {d['function']} {d['operation']}: {d['action']} on {d['resource']} ({d['reason']})"
               for d in snap["denials"]]
    details += [f"  INVALID {d['function']} {d['operation']}: {d['errors']}" for d in snap["invalid_details"]]
    return "\n".join(lines + details)


RECORDER = Recorder()
