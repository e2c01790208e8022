"""Fills, exits and outcomes as pure functions, shared by the backtester and the pipeline's paper book."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mytrader.market.calendar import NEW_YORK, nyse
from mytrader.models import Action, OrderSide, Position, TradeOutcome


@dataclass(frozen=True)
class Costs:
    fee_bps: float
    slippage_bps: float

    def fill_price(self, quote: float, side: OrderSide) -> float:
        s = self.slippage_bps / 10_000
        return round(quote * (1 + s) if side == OrderSide.BUY else quote * (1 - s), 6)

    def fee(self, price: float, qty: float) -> float:
        return round(price * qty * self.fee_bps / 10_000, 6)


TIME_LIMIT = "time_limit"


def exit_on_bar(pos: Position, o: float, h: float, lo: float, c: float) -> tuple[float, str] | None:
    """Stop-loss, take-profit or time limit on a bar after entry. Stops win ties (conservative); a gap
    through a level exits at the open."""
    if pos.qty > 0:
        if pos.stop_loss is not None and o <= pos.stop_loss:
            return o, "stop_loss"
        if pos.take_profit is not None and o >= pos.take_profit:
            return o, "take_profit"
        if pos.stop_loss is not None and lo <= pos.stop_loss:
            return pos.stop_loss, "stop_loss"
        if pos.take_profit is not None and h >= pos.take_profit:
            return pos.take_profit, "take_profit"
    else:
        if pos.stop_loss is not None and o >= pos.stop_loss:
            return o, "stop_loss"
        if pos.take_profit is not None and o <= pos.take_profit:
            return o, "take_profit"
        if pos.stop_loss is not None and h >= pos.stop_loss:
            return pos.stop_loss, "stop_loss"
        if pos.take_profit is not None and lo <= pos.take_profit:
            return pos.take_profit, "take_profit"
    if pos.bars_held + 1 >= pos.time_limit_bars:
        return c, TIME_LIMIT  # decided on the close; the market order fills at the next open (both drivers)
    return None


def close_outcome(pos: Position, exit_price: float, exit_ts: datetime, exit_fee: float, entry_fee: float,
                  reason: str, holding_bars: int) -> TradeOutcome:
    sign = 1 if pos.qty > 0 else -1
    qty = abs(pos.qty)
    pnl = round(sign * (exit_price - pos.avg_price) * qty - exit_fee - entry_fee, 6)
    ret = pnl / (pos.avg_price * qty)
    side = Action.BUY if sign > 0 else Action.SELL
    llm_right = None
    if pos.llm_action in (Action.BUY, Action.SELL):
        llm_right = (pos.llm_action == side) == (pnl > 0)
    return TradeOutcome(decision_id=pos.decision_id, symbol=pos.symbol, side=side, entry_ts=pos.opened_at,
                        exit_ts=exit_ts, entry_price=pos.avg_price, exit_price=exit_price, qty=qty, pnl=pnl,
                        return_pct=round(ret, 6), holding_bars=holding_bars, exit_reason=reason,
                        llm_action=pos.llm_action, llm_right=llm_right)


def cooldown_end(bar_ts: datetime, bars: int) -> datetime:
    """End of a cooldown of `bars` daily bars after the bar stamped bar_ts: the close of the bars-th NYSE
    session after that bar's, so weekends and holidays do not shorten it; entries resume the session after.
    Outside the session table (synthetic far-future dates) it falls back to calendar days."""
    if bars <= 0:
        return bar_ts
    cal = nyse()
    day = bar_ts.astimezone(NEW_YORK).date()
    if not (cal.covers(day) and cal.covers(day + timedelta(days=2 * bars + 10))):
        return bar_ts + timedelta(days=bars)
    for _ in range(bars):
        day = cal.next_session(day)
    return cal.session_close(day)


def market_open_at(at: datetime) -> bool:
    """The regular session runs at `at` (False outside the session table: nothing may fill on a guess)."""
    cal = nyse()
    return cal.covers(at.astimezone(NEW_YORK).date()) and cal.is_open(at)


def next_open(at: datetime) -> datetime | None:
    """When a market order sent at `at` first executes: `at` itself while the session runs, else the next session's
    open (the rest of the day before today's open, or the next session after a close or a holiday). None outside
    the session table."""
    cal = nyse()
    day = at.astimezone(NEW_YORK).date()
    if not (cal.covers(day) and cal.covers(day + timedelta(days=10))):
        return None
    if cal.is_session(day) and at <= cal.session_close(day):
        return max(at, cal.session_open(day))
    return cal.session_open(cal.next_session(day))
