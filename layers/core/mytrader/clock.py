"""Time is an input: every decision is made as of a Clock, never the wall."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class FixedClock:
    """A clock that says what it is told; the replay driver and the backtester move it."""

    def __init__(self, at: datetime):
        self.set(at)

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("clock times must be timezone-aware")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at


class SystemClock:
    """Only for the real schedule when an event carries no time; never used in tests or replays."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def parse_utc(value: str | datetime) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"time {value!r} has no timezone")
    return at.astimezone(UTC)
