"""The record of every advisor call, and every cost figure derived from it (one place).

Each Converse request the advisor sends is a FRESH call, billed at the model's on-demand price; an answer
served from the response cache is a CACHED call, billed nothing. REPLAYED (an answer read back from a
recording) and BATCH (Bedrock batch inference, half the on-demand price) are the kinds later drivers record.

Several runs may share one response cache (the backtest's modes do, so Bedrock answers each distinct prompt
once). A run's figures are then what that run would have cost alone: the first time a run is served a cached
answer that another run paid for, it is counted as the fresh calls (and the cost) that obtained the answer;
after that, as a cache hit. `billed_usd()` is what was really spent, for all runs together.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum

from mytrader.advisor.pricing import cost_usd


class CallKind(StrEnum):
    FRESH = "fresh"
    CACHED = "cached"
    REPLAYED = "replayed"
    BATCH = "batch"


PRICE_FACTOR = {CallKind.FRESH: 1.0, CallKind.CACHED: 0.0, CallKind.REPLAYED: 0.0, CallKind.BATCH: 0.5}
BILLED_KINDS = (CallKind.FRESH, CallKind.BATCH)


@dataclass(frozen=True, slots=True)
class CallRecord:
    run: str
    kind: CallKind
    key: str  # the response-cache key: the same model, settings and prompt
    model_id: str
    input_tokens: int
    output_tokens: int
    cost_usd: float  # what this call was billed


@dataclass(frozen=True)
class RunCost:
    """One run's advisor figures, as if it had run alone."""
    fresh_calls: int = 0  # requests sent to the model
    cache_hits: int = 0  # answers served from the response cache
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class CostRecord:
    calls: list[CallRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fresh(self, run: str, key: str, model_id: str, input_tokens: int, output_tokens: int,
              kind: CallKind = CallKind.FRESH) -> float:
        """Record one request sent to the model; returns its cost."""
        cost = cost_usd(model_id, input_tokens, output_tokens) * PRICE_FACTOR[kind]
        self._add(CallRecord(run, kind, key, model_id, input_tokens, output_tokens, cost))
        return cost

    def cached(self, run: str, key: str, model_id: str, kind: CallKind = CallKind.CACHED) -> None:
        """Record one answer served without a request (from the cache, or replayed)."""
        self._add(CallRecord(run, kind, key, model_id, 0, 0, 0.0))

    def _add(self, record: CallRecord) -> None:
        with self._lock:
            self.calls.append(record)

    def billed_usd(self) -> float:
        """What every run together really cost."""
        return sum(c.cost_usd for c in self.calls)

    def run_cost(self, run: str) -> RunCost:
        """`run`'s figures as if it had run alone (see the module docstring)."""
        with self._lock:
            calls = list(self.calls)
        origin = _origins(calls)
        paid_here = {c.key for c in calls if c.run == run and c.kind in BILLED_KINDS}
        fresh = hits = tin = tout = 0
        cost = 0.0
        adopted: set[str] = set()
        for c in calls:
            if c.run != run:
                continue
            if c.kind in BILLED_KINDS:
                fresh, tin, tout, cost = fresh + 1, tin + c.input_tokens, tout + c.output_tokens, cost + c.cost_usd
            elif c.key in paid_here or c.key in adopted or c.key not in origin:
                hits += 1
            else:  # another run paid for this answer: alone, this run would have paid the same, once
                adopted.add(c.key)
                paid = origin[c.key]
                fresh, tin, tout, cost = fresh + paid.fresh_calls, tin + paid.input_tokens, \
                    tout + paid.output_tokens, cost + paid.cost_usd
        return RunCost(fresh, hits, tin, tout, cost)


def _origins(calls: list[CallRecord]) -> dict[str, RunCost]:
    """Per cache key, what its first paying run spent on it until the answer was first served from the cache."""
    payer: dict[str, str] = {}
    spent: dict[str, list[float]] = {}
    served: set[str] = set()
    for c in calls:
        if c.kind not in BILLED_KINDS:
            served.add(c.key)
            continue
        if payer.setdefault(c.key, c.run) != c.run or c.key in served:
            continue
        n = spent.setdefault(c.key, [0, 0, 0, 0.0])
        n[0], n[1], n[2], n[3] = n[0] + 1, n[1] + c.input_tokens, n[2] + c.output_tokens, n[3] + c.cost_usd
    return {k: RunCost(int(v[0]), 0, int(v[1]), int(v[2]), v[3]) for k, v in spent.items()}
