"""Alpaca's account, clock and FEE activities (Trading API v2) as MyTrader's BrokerAccount, MarketClock and
FeeActivity, as pure parsers. A body that is not the documented shape raises BrokerError (retryable: the caller
fails closed for now and asks again on its next run)."""
from __future__ import annotations

import math
from typing import Any

from mytrader.adapters.alpaca.times import parse_day_or_time, parse_time
from mytrader.broker import BrokerAccount, BrokerError, BrokerErrorKind, FeeActivity, MarketClock


def _unreadable(what: str, exc: Exception) -> BrokerError:
    return BrokerError(f"alpaca {what} unreadable ({type(exc).__name__}: {exc})"[:300], retryable=True,
                       kind=BrokerErrorKind.UNAVAILABLE)


def _flag(raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TypeError(f"{key} is {value!r}, not a boolean")
    return value


def _number(raw: dict[str, Any], key: str) -> float:
    value = float(raw[key])
    if not math.isfinite(value):
        raise ValueError(f"{key} is {raw[key]!r}")
    return value


def parse_account(raw: Any) -> BrokerAccount:
    """GET /v2/account. `trade_suspended_by_user` counts as trading blocked."""
    try:
        return BrokerAccount(status=str(raw["status"]),
                             trading_blocked=_flag(raw, "trading_blocked") or _flag(raw, "trade_suspended_by_user"),
                             account_blocked=_flag(raw, "account_blocked"),
                             buying_power=_number(raw, "buying_power"), cash=_number(raw, "cash"),
                             equity=_number(raw, "equity"))
    except (KeyError, TypeError, ValueError) as exc:
        raise _unreadable("account", exc) from None


def parse_clock(raw: Any) -> MarketClock:
    """GET /v2/clock; its New York times (with offsets, nanoseconds) become UTC-aware datetimes."""
    try:
        if not isinstance(raw["is_open"], bool):
            raise TypeError(f"is_open is {raw['is_open']!r}")
        return MarketClock(timestamp=parse_time(raw["timestamp"]), is_open=raw["is_open"],
                           next_open=parse_time(raw["next_open"]), next_close=parse_time(raw["next_close"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _unreadable("clock", exc) from None


def parse_fee(raw: Any) -> FeeActivity:
    """One FEE activity: id, net_amount (a charge is negative), created_at (or the bare `date`), symbol,
    description."""
    try:
        if raw.get("activity_type", "FEE") != "FEE":
            raise ValueError(f"activity_type {raw.get('activity_type')!r}")
        at = raw.get("created_at") or raw.get("transaction_time") or raw["date"]
        return FeeActivity(activity_id=str(raw["id"]), amount=_number(raw, "net_amount"), at=parse_day_or_time(at),
                           symbol=str(raw["symbol"]) if raw.get("symbol") else None,
                           description=str(raw.get("description") or ""))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _unreadable("fee activity", exc) from None
