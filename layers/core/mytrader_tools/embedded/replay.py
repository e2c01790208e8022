"""The replay driver: history through the real handlers on the embedded AWS, with a simulated clock.

Per session day D: the executor drains the queue as of D's open (the paper quote is D's open), outcomes
runs as of D's close, then the decision cycle decides as of D's close. That is the backtester's order
of steps, so both drivers of the same decision code produce the same trades.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from mytrader.market.calendar import nyse
from mytrader.market.series import BarSeries
from mytrader_tools.embedded.event_source import DrainStats, drain


@dataclass
class ReplayResult:
    ticks: int
    symbols: list[str]
    expected_decisions: int
    llm_calls: int = 0
    fallbacks: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cycle_results: Counter = field(default_factory=Counter)
    drains: DrainStats = field(default_factory=DrainStats)
    equity: list[tuple[datetime, float]] = field(default_factory=list)
    cycle_errors: int = 0


def session_days(series: dict[str, BarSeries], start: date, end: date) -> list[date]:
    cal = nyse()
    days = {s.time(i).astimezone(UTC).date() for s in series.values() for i in range(len(s))}
    out = []
    for d in sorted(days):
        ny_day = d
        if start <= ny_day <= end and cal.is_session(ny_day):
            out.append(ny_day)
    return out


def replay(stack, series: dict[str, BarSeries], start: date, end: date, progress=None,
           after_tick=None) -> ReplayResult:
    cal = nyse()
    symbols = sorted(series)
    days = session_days(series, start, end)
    if not days:
        raise ValueError(f"no session with data between {start} and {end}")
    final = cal.next_session(days[-1])
    res = ReplayResult(ticks=len(days), symbols=symbols, expected_decisions=len(days) * len(symbols))
    for k, day in enumerate(days + [final]):
        open_t, close_t = cal.session_open(day), cal.session_close(day)
        stack.set_param("REPLAY_CLOCK", open_t.isoformat())
        _add(res.drains, drain(stack))
        stack.set_param("REPLAY_CLOCK", close_t.isoformat())
        stack.invoke("outcomes", {"source": "replay", "time": close_t.isoformat()})
        if day != final:
            out = stack.invoke("decision_cycle", {"scheduled_time": close_t.isoformat(), "universe": symbols})
            res.llm_calls += out.get("llm_calls", 0)
            res.fallbacks += out.get("fallbacks", 0)
            res.cost_usd += out.get("cost_usd", 0.0)
            res.input_tokens += out.get("input_tokens", 0)
            res.output_tokens += out.get("output_tokens", 0)
            res.cycle_results.update(out.get("results", {}))
            if out.get("status") != "ok":
                res.cycle_errors += 1
        if after_tick is not None:
            res.equity.append((close_t, after_tick(close_t)))
        if progress is not None:
            progress(k + 1, len(days) + 1)
    return res


def _add(total: DrainStats, part: DrainStats) -> None:
    for f in total.__dataclass_fields__:
        setattr(total, f, getattr(total, f) + getattr(part, f))
