"""The replay driver: history through the real handlers on the embedded AWS, with a simulated clock that runs
as the wall clock would under the deployed schedules (stack_spec.OUTCOMES_SCHEDULE, DECISION_SCHEDULE).

Per session day D: outcomes at D's close + 5 minutes (it books what the paper broker filled at D's open, then
checks bar D), the decision cycle at D's close + 10 minutes, and the executor at once on the same clock (entries
sized at D's close, every order queued by the paper broker for the next open). After the last day, one more
outcomes run on the next session books the last orders' fills. That is the backtester's order of steps, so both
drivers of the same decision code produce the same trades.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from mytrader.backtest import DECIDED_AFTER_CLOSE
from mytrader.market.calendar import nyse
from mytrader.market.series import BarSeries
from mytrader_tools.embedded.event_source import DrainStats, drain

# The deployed schedules run at 16:20 and 16:25 New York (stack_spec.OUTCOMES_SCHEDULE, DECISION_SCHEDULE); the
# replay runs sooner after the close, on the backtester's executor clock: the same steps in the same order, between the
# close and the next open (tests/integration/test_alpaca_parity.py runs a day at the scheduled times)
OUTCOMES_AFTER_CLOSE = timedelta(minutes=5)
DECISIONS_AFTER_CLOSE = DECIDED_AFTER_CLOSE


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
        close_t = cal.session_close(day)
        outcomes_t, decide_t = close_t + OUTCOMES_AFTER_CLOSE, close_t + DECISIONS_AFTER_CLOSE
        stack.set_param("REPLAY_CLOCK", outcomes_t.isoformat())
        stack.invoke("outcomes", {"source": "replay", "time": outcomes_t.isoformat()})
        if day != final:
            stack.set_param("REPLAY_CLOCK", decide_t.isoformat())
            out = stack.invoke("decision_cycle", {"scheduled_time": decide_t.isoformat(), "universe": symbols})
            res.llm_calls += out.get("llm_calls", 0)
            res.fallbacks += out.get("fallbacks", 0)
            res.cost_usd += out.get("cost_usd", 0.0)
            res.input_tokens += out.get("input_tokens", 0)
            res.output_tokens += out.get("output_tokens", 0)
            res.cycle_results.update(out.get("results", {}))
            if out.get("status") != "ok":
                res.cycle_errors += 1
            _add(res.drains, drain(stack))  # the executor at once, on the same clock
        if after_tick is not None:
            res.equity.append((close_t, after_tick(close_t)))
        if progress is not None:
            progress(k + 1, len(days) + 1)
    return res


def _add(total: DrainStats, part: DrainStats) -> None:
    for f in total.__dataclass_fields__:
        setattr(total, f, getattr(total, f) + getattr(part, f))
