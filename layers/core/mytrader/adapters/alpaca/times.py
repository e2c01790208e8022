"""Times on Alpaca's wire: RFC 3339 out (always converted to UTC first, then written with `Z`), any RFC 3339
in (Alpaca writes UTC `Z` for data and orders, New York offsets with nanoseconds for the clock)."""
from __future__ import annotations

from datetime import UTC, date, datetime, time

from mytrader.market.calendar import NEW_YORK


def rfc3339(at: datetime) -> str:
    """`at` as UTC RFC 3339 with `Z`. A naive datetime is taken as UTC (MyTrader's clocks are UTC-aware; a naive
    one is never read as the machine's local time)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(raw: object) -> datetime:
    """An RFC 3339 timestamp from Alpaca as a UTC-aware datetime (fractions beyond microseconds are dropped by
    Python itself). Raises ValueError (or TypeError) for anything else."""
    if not isinstance(raw, str):
        raise TypeError(f"not a timestamp: {raw!r}")
    at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"timestamp without an offset: {raw!r}")
    return at.astimezone(UTC)


def parse_optional_time(raw: object) -> datetime | None:
    return None if raw in (None, "") else parse_time(raw)


def parse_day_or_time(raw: object) -> datetime:
    """A timestamp, or a bare date (an account activity's `date`) taken as 16:00 New York that day — the end of
    its regular session, when end-of-day activities such as fees accrue."""
    if isinstance(raw, str) and len(raw) == 10:
        return datetime.combine(date.fromisoformat(raw), time(16, 0), NEW_YORK).astimezone(UTC)
    return parse_time(raw)
