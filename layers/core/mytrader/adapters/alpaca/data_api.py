"""Reads from Alpaca's data APIs (Market Data v2, News v1beta1): one GET with the bounded retry, and the
`next_page_token` pages of a list.

Two kinds of failure, kept apart for the callers: DataUnavailable (retryable — throttled, 5xx or unreachable
after the retries: try again later, never reject for good) and DataQualityError (Alpaca answered, and the answer
cannot be used: another 4xx such as 403 for keys or a plan that does not cover the request, a body that is not
JSON, a page token that repeats).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mytrader.adapters.alpaca.retry import AlpacaHttp, AlpacaUnavailable
from mytrader.errors import DataQualityError, DataUnavailable


def data_get(api: AlpacaHttp, path: str, params: dict[str, str | int], symbol: str, what: str) -> Any:
    """The JSON body of a 200 answer."""
    try:
        resp = api.request("GET", path, params=params)
    except AlpacaUnavailable as exc:
        raise DataUnavailable(symbol, f"alpaca {what}: {exc}") from None
    if resp.status_code != 200:
        raise DataQualityError(symbol, f"alpaca {what} HTTP {resp.status_code}: {resp.text[:200]}")
    try:
        return resp.json()
    except ValueError:
        raise DataQualityError(symbol, f"alpaca {what}: the answer is not JSON") from None


def data_pages(api: AlpacaHttp, path: str, params: dict[str, str | int], key: str, symbol: str, what: str,
               max_pages: int, truncate: bool = False) -> Iterator[list[Any]]:
    """Each page's list under `key` (None reads as empty), following next_page_token for at most max_pages;
    more pages than that are an error, unless `truncate` (the rest is then left unread)."""
    query = dict(params)
    seen: set[str] = set()
    for _ in range(max_pages):
        body = data_get(api, path, query, symbol, what)
        if not isinstance(body, dict):
            raise DataQualityError(symbol, f"alpaca {what}: the answer is not an object")
        rows = body.get(key) or []
        if not isinstance(rows, list):
            raise DataQualityError(symbol, f"alpaca {what}: {key} is not a list")
        yield rows
        token = body.get("next_page_token")
        if not token:
            return
        if token in seen:
            raise DataQualityError(symbol, f"alpaca {what}: page token {token!r} repeats")
        seen.add(str(token))
        query["page_token"] = str(token)
    if not truncate:
        raise DataQualityError(symbol, f"alpaca {what}: more than {max_pages} pages")
