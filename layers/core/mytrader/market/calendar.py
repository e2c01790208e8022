"""Exchange sessions, holidays and early closes.

The source of truth is the maintained `exchange_calendars` library. Lambda ships without pandas, so
the session table is precomputed from it (`python -m mytrader.market.calendar build`) into
data/xnys_sessions.json; a unit test checks that the shipped table equals the library's answer.
"""
from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from typing import TypedDict
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
TABLE_START, TABLE_END = "1990-01-02", "2035-12-31"


class SessionTable(TypedDict):
    """data/xnys_sessions.json: every session's date, and the early ones' close time (HH:MM, New York)."""
    source: str
    sessions: list[str]
    early_closes: dict[str, str]


class SessionCalendar:
    """NYSE sessions. `sessions` maps each trading date to its close time in New York (early closes)."""

    def __init__(self, closes: dict[date, time]):
        self._closes = closes
        self._first, self._last = min(closes), max(closes)

    def covers(self, day: date) -> bool:
        return self._first <= day <= self._last

    def is_session(self, day: date) -> bool:
        if not self.covers(day):
            raise ValueError(f"{day} is outside the session table {self._first}..{self._last}")
        return day in self._closes

    def session_open(self, day: date) -> datetime:
        return datetime.combine(day, REGULAR_OPEN, NEW_YORK).astimezone(UTC)

    def session_close(self, day: date) -> datetime:
        return datetime.combine(day, self._closes[day], NEW_YORK).astimezone(UTC)

    def is_open(self, at: datetime) -> bool:
        """True while the regular session runs (open inclusive, close inclusive for the closing cycle)."""
        day = at.astimezone(NEW_YORK).date()
        return self.is_session(day) and self.session_open(day) <= at <= self.session_close(day)

    def next_session(self, day: date) -> date:
        d = day + timedelta(days=1)
        while not self.is_session(d):
            d += timedelta(days=1)
        return d

    def is_early_close(self, day: date) -> bool:
        return self._closes.get(day, REGULAR_CLOSE) != REGULAR_CLOSE


def session_open_for(bar_close: datetime) -> datetime:
    """When the session of a daily bar stamped at its close opened: where executions at 'the open' happen."""
    cal = nyse()
    day = bar_close.astimezone(NEW_YORK).date()
    if cal.covers(day) and cal.is_session(day):
        return cal.session_open(day)
    return bar_close - timedelta(hours=6, minutes=30)


@lru_cache(maxsize=1)
def nyse() -> SessionCalendar:
    raw: SessionTable = json.loads(resources.files("mytrader").joinpath("data/xnys_sessions.json").read_text())
    closes: dict[date, time] = {}
    early = {d: time.fromisoformat(t) for d, t in raw["early_closes"].items()}
    for d in raw["sessions"]:
        closes[date.fromisoformat(d)] = early.get(d, REGULAR_CLOSE)
    return SessionCalendar(closes)


def build_table() -> SessionTable:
    import exchange_calendars as xcals  # build-time only

    cal = xcals.get_calendar("XNYS", start=TABLE_START, end=TABLE_END)
    sessions: list[str] = []
    early: dict[str, str] = {}
    for session, close in zip(cal.sessions, cal.closes, strict=True):
        d = session.date().isoformat()
        sessions.append(d)
        local_close = close.tz_convert("America/New_York").time()
        if local_close != REGULAR_CLOSE:
            early[d] = local_close.isoformat(timespec="minutes")
    return {"source": f"exchange_calendars {xcals.__version__} XNYS", "sessions": sessions, "early_closes": early}


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        out = resources.files("mytrader").joinpath("data/xnys_sessions.json")
        with open(str(out), "w") as fh:
            json.dump(build_table(), fh, separators=(",", ":"))
        print(f"wrote {out}")
