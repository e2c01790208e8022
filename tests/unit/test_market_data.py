"""Market data: parsing in any column/date order, and every kind of bad data detected with a clear message."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mytrader.errors import DataQualityError
from mytrader.market.sources import CsvReplaySource, parse_price_csv, synthetic_series

GOOD = """Date,Open,High,Low,Close,Adj Close,Volume
2010-01-04,10,11,9.5,10.5,10.5,1000
2010-01-05,10.5,11.2,10.1,11,11,1200
2010-01-06,11,11.5,10.8,11.2,11.2,900
"""


def test_yahoo_daily_parses_and_stamps_bars_at_the_session_close():
    s = parse_price_csv(GOOD, "ABC")
    assert len(s) == 3
    assert s.time(0) == datetime(2010, 1, 4, 21, 0, tzinfo=UTC)  # 16:00 New York in winter
    assert s.close.tolist() == [10.5, 11, 11.2]


def test_columns_in_any_order_and_newest_first_give_the_same_series():
    # Given the DJIA-style layout: Volume before Adj Close, newest first
    shuffled = "Date,Open,High,Low,Close,Volume,Adj Close\n" + "\n".join([
        "2010-01-06,11,11.5,10.8,11.2,900,11.2", "2010-01-05,10.5,11.2,10.1,11,1200,11",
        "2010-01-04,10,11,9.5,10.5,1000,10.5"])
    a, b = parse_price_csv(GOOD, "ABC"), parse_price_csv(shuffled, "ABC")
    assert a.ts.tolist() == b.ts.tolist() and a.close.tolist() == b.close.tolist()
    assert a.volume.tolist() == b.volume.tolist()


def test_early_close_day_is_stamped_at_the_early_close():
    s = parse_price_csv("Date,Open,High,Low,Close,Volume\n2013-11-29,10,11,9,10,5\n", "ABC")
    assert s.time(0) == datetime(2013, 11, 29, 18, 0, tzinfo=UTC)  # 13:00 New York, day after Thanksgiving


def test_intraday_bars_parse_with_their_own_timestamps():
    text = ("timestamp,open,high,low,close,volume\n"
            "2024-03-01T14:30:00Z,10,11,9,10,5\n2024-03-01T14:35:00Z,10,11,9,10.5,6\n")
    s = parse_price_csv(text, "ABC")
    assert s.time(1) - s.time(0) == timedelta(minutes=5)


@pytest.mark.parametrize("row,problem", [
    ("2010-01-07,11,12,10,nan,1000", "missing or non-numeric"),
    ("2010-01-07,11,12,10,null,1000", "missing or non-numeric"),
    ("2010-01-07,11,12,10,,1000", "missing or non-numeric"),
    ("2010-01-07,-1,12,10,11,1000", "non-positive"),
    ("2010-01-07,0,12,10,11,1000", "non-positive"),
    ("2010-01-07,11,9,10,9.5,1000", "high < low"),
    ("2010-01-06,11,11.5,10.8,11.2,900", "duplicate timestamp"),
    ("2010-01-07,13,12,10,11,1000", "outside high-low"),
])
def test_bad_rows_are_reported_with_the_offending_bar(row, problem):
    # Given a file with one defective row (columns: Date,Open,High,Low,Close,Volume)
    text = ("Date,Open,High,Low,Close,Volume\n"
            "2010-01-05,10.5,11.2,10.1,11,1200\n2010-01-06,11,11.5,10.8,11.2,900\n") + row
    # When it is parsed, Then a DataQualityError names the problem and the symbol
    with pytest.raises(DataQualityError, match=problem) as err:
        parse_price_csv(text, "ABC")
    assert err.value.symbol == "ABC"


def test_a_short_row_is_reported_not_crashed_on():
    with pytest.raises(DataQualityError, match="line 3 has 3 fields"):
        parse_price_csv("Date,Open,High,Low,Close,Volume\n2010-01-05,1,1,1,1,1\n2010-01-06,1,1\n", "ABC")


def test_missing_columns_are_named():
    with pytest.raises(DataQualityError, match="lacks columns"):
        parse_price_csv("Date,Open,Close\n2010-01-05,1,1\n", "ABC")


def test_unordered_timestamps_are_sorted_and_gaps_detected():
    from mytrader.market.series import BarSeries

    s = BarSeries.from_arrays("ABC", [3, 1, 2], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1])
    assert s.ts.tolist() == [1, 2, 3]
    with pytest.raises(DataQualityError, match="not increasing"):
        BarSeries.from_arrays("ABC", [3, 1, 2], [1] * 3, [1] * 3, [1] * 3, [1] * 3, [1] * 3, sort=False)
    with pytest.raises(DataQualityError, match="gap after"):
        BarSeries.from_arrays("ABC", [0, 86400, 86400 * 30], [1] * 3, [1] * 3, [1] * 3, [1] * 3, [1] * 3,
                              max_gap=timedelta(days=10))


def test_stale_last_bar_is_refused_for_the_cycle():
    # Given a replay whose data stops on 2010-01-06
    src = CsvReplaySource(series={"ABC": parse_price_csv(GOOD, "ABC")}, max_staleness=timedelta(days=5))
    # When a decision asks as of two weeks later, Then the data is stale
    with pytest.raises(DataQualityError, match="stale data"):
        src.history("ABC", datetime(2010, 1, 20, 21, tzinfo=UTC))
    # and as of the last bar it is fine, and sees nothing after as_of
    assert len(src.history("ABC", datetime(2010, 1, 5, 21, tzinfo=UTC))) == 2


def test_unknown_symbol_is_a_data_error():
    with pytest.raises(DataQualityError, match="unknown symbol"):
        CsvReplaySource(series={}).history("XYZ", datetime(2010, 1, 5, tzinfo=UTC))


def test_synthetic_generator_is_seeded_and_valid():
    a, b = synthetic_series("SYN", 500, seed=7), synthetic_series("SYN", 500, seed=7)
    assert a.close.tolist() == b.close.tolist()
    assert synthetic_series("SYN", 500, seed=8).close.tolist() != a.close.tolist()
    assert (a.high >= a.low).all() and (a.close > 0).all()


def test_real_files_load(nvda_series, orcl_series):
    assert len(nvda_series) == 4012 and len(orcl_series) == 5036
    assert nvda_series.time(0).date().isoformat() == "1999-01-22"
