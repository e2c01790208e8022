"""Alpaca's error answers as BrokerError kinds, from the documented body `{"code": 40310000, "message": "..."}`.

  401, or code 40110000 -> AUTH     wrong or rotated keys: alarm, stop entries (not retryable)
  403                   -> REFUSED  the account may not do this now: buying power, 40310000 potential wash trade,
                                    40310100 pattern day trader, insufficient qty held for orders (terminal)
  404                   -> NOT_FOUND
  400, 422              -> INVALID  the request itself (sub-penny price, bad qty, a duplicate client_order_id)
  429 / 5xx             -> THROTTLED / UNAVAILABLE (retryable; only after the bounded retries of retry.py)
The message carries Alpaca's code and message, so a rejection's reason says which refusal it was.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from mytrader.broker import BrokerError, BrokerErrorKind

if TYPE_CHECKING:
    import requests

    from mytrader.adapters.alpaca.retry import AlpacaUnavailable

AUTH_CODE = "40110000"
DUPLICATE_CLIENT_ORDER_ID = "client_order_id must be unique"


def alpaca_reason(resp: requests.Response) -> tuple[str | None, str]:
    """(Alpaca's code as text, its message) from an error body; the raw text when the body is not that shape."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("code")
        return (str(code) if code is not None else None), str(body.get("message", ""))[:300]
    return None, resp.text[:300]


def broker_error(resp: requests.Response, doing: str) -> BrokerError:
    """The BrokerError for an error answer to `doing` (e.g. "order d1")."""
    code, message = alpaca_reason(resp)
    status = resp.status_code
    said = f"alpaca HTTP {status}" + (f" code {code}" if code else "") + f" on {doing}: {message}"
    if status == 401 or code == AUTH_CODE:
        return BrokerError(said, retryable=False, kind=BrokerErrorKind.AUTH, code=code)
    if status == 403:
        return BrokerError(said, retryable=False, kind=BrokerErrorKind.REFUSED, code=code)
    if status == 404:
        return BrokerError(said, retryable=False, kind=BrokerErrorKind.NOT_FOUND, code=code)
    if status == 429:
        return BrokerError(said, retryable=True, kind=BrokerErrorKind.THROTTLED, code=code)
    if status >= 500:
        return BrokerError(said, retryable=True, kind=BrokerErrorKind.UNAVAILABLE, code=code)
    return BrokerError(said, retryable=False, kind=BrokerErrorKind.INVALID, code=code)


def unavailable_error(exc: AlpacaUnavailable) -> BrokerError:
    kind = BrokerErrorKind.THROTTLED if exc.throttled else BrokerErrorKind.UNAVAILABLE
    return BrokerError(str(exc), retryable=True, kind=kind)
