"""The market-data guard: what both drivers (backtester and decision cycle) refuse to trust, by one set of rules.

Pure functions over a BarSeries and the `DataGuard` settings (mytrader.config):
  * gaps and staleness are counted in exchange SESSIONS (the NYSE calendar), never in calendar days;
  * a jump (a bar further from the previous close than BOTH `jump_atr` x ATR and `jump_pct` %), a bar dated on a
    day the exchange was closed (a weekend or holiday row), or a gap of more than `max_gap_sessions` missing
    sessions inside the last `gap_window_bars` bars quarantines the symbol on that bar: no decision is made on it
    (and the prices of the first two are not trusted);
  * the collar: an entry whose fill reference (the quote) is more than `collar_pct` % from the last trusted close
    is refused.
The filter and the collar gate entries only; closes always execute. `bar_flags` is the one implementation: the
decision cycle asks it about the last bar of a short tail (`check_cycle`), the backtester about every bar, so
both drivers quarantine exactly the same bars.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from mytrader.market.calendar import NEW_YORK, TABLE_END, TABLE_START, nyse

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mytrader.config import DataGuard
    from mytrader.market.series import BarSeries


@dataclass(frozen=True)
class BarFlags:
    """Per bar of a series: why it is quarantined (None: trusted). `jump` marks bars whose prices are not trusted
    (exits then look at the broker's quote); `gap` marks bars whose history has a hole (no decision on them)."""
    jump: list[str | None]
    gap: list[str | None]

    def reason(self, i: int) -> str | None:
        return self.jump[i] or self.gap[i]

    def first_reason(self, first: int = 0) -> str | None:
        """Why the first quarantined bar from bar `first` on is, or None."""
        return next((r for k in range(first, len(self.jump)) if (r := self.reason(k))), None)

    def count(self, first: int = 0) -> int:
        """Quarantined bars from bar `first` on."""
        return sum(1 for j, g in zip(self.jump[first:], self.gap[first:], strict=True) if j or g)


@lru_cache(maxsize=1)
def session_ordinals() -> npt.NDArray[np.int64]:
    """Every NYSE session of the table, as day ordinals, sorted."""
    import numpy as np

    cal = nyse()
    d, end = date.fromisoformat(TABLE_START), date.fromisoformat(TABLE_END)
    out: list[int] = []
    while d <= end:
        if cal.is_session(d):
            out.append(d.toordinal())
        d += timedelta(days=1)
    return np.asarray(out, dtype=np.int64)


def trading_days(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The New York trading date of each bar stamp, as a day ordinal."""
    import numpy as np

    return np.asarray([datetime.fromtimestamp(int(t), UTC).astimezone(NEW_YORK).date().toordinal() for t in ts],
                      dtype=np.int64)


def off_session(days: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The indexes of bars dated on a day the exchange was closed (inside the calendar's table)."""
    import numpy as np

    s = session_ordinals()
    return np.flatnonzero(~np.isin(days, s) & (days >= s[0]) & (days <= s[-1]))


def missing_sessions(days: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For each bar after the first: the sessions strictly between its date and the previous bar's date."""
    import numpy as np

    s = session_ordinals()
    return np.asarray(np.searchsorted(s, days[1:], side="left") - np.searchsorted(s, days[:-1], side="right"),
                      dtype=np.int64).clip(min=0)


def sessions_behind(last_bar: datetime, as_of: datetime) -> int:
    """Sessions that closed after the last bar and by as_of: how many complete sessions the feed has missed."""
    import numpy as np  # numpy loads only when bars are judged: the executor's collar needs none

    cal = nyse()
    first, today = last_bar.astimezone(NEW_YORK).date(), as_of.astimezone(NEW_YORK).date()
    if today <= first:
        return 0
    s = session_ordinals()
    n = int(np.searchsorted(s, today.toordinal(), side="right") - np.searchsorted(s, first.toordinal(), side="right"))
    if cal.covers(today) and cal.is_session(today) and as_of < cal.session_close(today):
        n -= 1  # today's session is still running: its bar is not due yet
    return max(n, 0)


def bar_flags(series: BarSeries, cfg: DataGuard) -> BarFlags:
    """The jump filter and the gap check on every bar of `series` (each bar judged by the bars before it only)."""
    import numpy as np

    n = len(series)
    jump: list[str | None] = [None] * n
    gap: list[str | None] = [None] * n
    if n < 2:
        return BarFlags(jump, gap)
    pc = series.close[:-1]
    h, lo = series.high[1:], series.low[1:]
    dev = np.maximum(h - pc, pc - lo)  # the bar's furthest price from the previous close
    tr = np.maximum(h, pc) - np.minimum(lo, pc)  # true range of bars 1..n-1
    k = cfg.atr_bars
    atr = np.full(n - 1, np.nan)  # atr[j]: mean true range of the k bars before bar j+1
    if n - 1 > k:
        csum = np.concatenate([[0.0], np.cumsum(tr)])
        atr[k:] = (csum[k:-1] - csum[:-k - 1]) / k
    pct = dev / pc * 100.0
    with np.errstate(invalid="ignore"):
        hits = (pct > cfg.jump_pct) & (dev > cfg.jump_atr * atr)
    for j in np.flatnonzero(hits).tolist():
        jump[j + 1] = (f"price jump at {series.time(j + 1).isoformat()}: {_px(float(dev[j]))} from the previous "
                       f"close {_px(float(pc[j]))} ({pct[j]:.1f} % > {cfg.jump_pct:g} %, {dev[j] / atr[j]:.1f} ATR > "
                       f"{cfg.jump_atr:g} ATR; bar high {_px(float(h[j]))} low {_px(float(lo[j]))})")
    days = trading_days(series.ts)
    for j in off_session(days).tolist():  # a weekend or holiday row: a feed or file error, its prices untrusted
        day = date.fromordinal(int(days[j]))
        jump[j] = jump[j] or f"not a session: {day.isoformat()} ({day.strftime('%A')}) is no NYSE trading day"
    miss = missing_sessions(days)
    for j in np.flatnonzero(miss > cfg.max_gap_sessions).tolist():
        why = (f"gap: {int(miss[j])} sessions missing between {series.time(j).date().isoformat()} and "
               f"{series.time(j + 1).date().isoformat()} (> {cfg.max_gap_sessions})")
        for b in range(j + 1, min(n, j + 1 + cfg.gap_window_bars)):
            gap[b] = gap[b] or why
    return BarFlags(jump, gap)


def last_trusted_close(series: BarSeries, flags: BarFlags, i: int) -> float:
    """The close of the last bar before `i` that the jump filter trusts (the previous close when none is)."""
    for k in range(i - 1, -1, -1):
        if flags.jump[k] is None:
            return float(series.close[k])
    return float(series.close[max(i - 1, 0)])


def tail_flags(series: BarSeries, cfg: DataGuard) -> BarFlags:
    """`bar_flags` of the last bar, from the shortest tail that decides it (the same answer as on the full series)."""
    need = max(cfg.atr_bars + 2, cfg.gap_window_bars + 1)
    n = len(series)
    return bar_flags(series.slice(max(0, n - need), n), cfg)


def check_cycle(series: BarSeries, as_of: datetime, cfg: DataGuard) -> str | None:
    """Why a decision as of `as_of` on `series` (the bars up to as_of) must not be made, or None."""
    stale = stale_reason(series, as_of, cfg.max_stale_sessions)
    if stale:
        return stale
    return tail_flags(series, cfg).reason(-1)


def stale_reason(series: BarSeries, as_of: datetime, max_sessions: int) -> str | None:
    last = series.time(len(series) - 1)
    behind = sessions_behind(last, as_of)
    if behind > max_sessions:
        return (f"stale data: last bar {last.isoformat()} is {behind} sessions behind {as_of.isoformat()} "
                f"(> {max_sessions})")
    return None


def collar(quote: float, reference: float, collar_pct: float) -> str | None:
    """Why a fill reference `quote` is not trusted against the last trusted close `reference`, or None."""
    if reference <= 0 or quote <= 0:
        return f"collar: quote {_px(quote)} or last trusted close {_px(reference)} is not a price"
    off = abs(quote / reference - 1.0) * 100.0
    if off > collar_pct:
        return (f"collar: quote {_px(quote)} is {off:.1f} % from the last trusted close {_px(reference)} "
                f"(> {collar_pct:g} %)")
    return None


def _px(x: float) -> str:
    return f"{x:.6g}" if abs(x) < 1e6 else f"{x:.4e}"
