"""Exchange sessions from the shipped table, which must equal the maintained exchange_calendars library."""
from __future__ import annotations

from datetime import UTC, date, datetime

from mytrader.market.calendar import build_table, nyse


def test_holidays_weekends_and_early_closes():
    cal = nyse()
    assert not cal.is_session(date(2024, 7, 4))  # Independence Day
    assert not cal.is_session(date(2024, 7, 6))  # Saturday
    assert not cal.is_session(date(2001, 9, 11))  # markets closed after 9/11
    assert cal.is_early_close(date(2024, 11, 29))
    assert cal.session_close(date(2024, 11, 29)) == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)
    assert cal.next_session(date(2024, 7, 3)) == date(2024, 7, 5)


def test_is_open_respects_the_session_times():
    cal = nyse()
    assert cal.is_open(datetime(2024, 3, 1, 15, 0, tzinfo=UTC))  # 10:00 New York
    assert not cal.is_open(datetime(2024, 3, 1, 14, 0, tzinfo=UTC))  # 09:00, before the open
    assert not cal.is_open(datetime(2024, 11, 29, 19, 0, tzinfo=UTC))  # 14:00 on an early-close day


def test_shipped_table_equals_exchange_calendars():
    # Given the library's answer now, When compared with the precomputed table, Then they agree exactly
    import json
    from importlib import resources

    shipped = json.loads(resources.files("mytrader").joinpath("data/xnys_sessions.json").read_text())
    fresh = build_table()
    assert shipped["sessions"] == fresh["sessions"]
    assert shipped["early_closes"] == fresh["early_closes"]
