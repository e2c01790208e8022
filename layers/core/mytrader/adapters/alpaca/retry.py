"""Every Alpaca call goes through one bounded retry: HTTP 429 (waiting until `X-Ratelimit-Reset`, capped), 5xx
and connection errors are tried again with exponential backoff; anything else is answered at once.

Alpaca allows about 200 requests a minute per account and says when the window resets in `X-Ratelimit-Reset`
(epoch seconds). The bound keeps a call inside its Lambda's time (the executor has 30 s): by default 3 tries,
at most 5 s per wait, and no retry that would start more than 20 s after the first try (a black-holed
connection spends its 10 s timeout on each try). After the last try `AlpacaUnavailable` says
whether Alpaca was throttling (429) or failing; each adapter turns it into its own retryable error
(BrokerError THROTTLED/UNAVAILABLE, DataUnavailable). A POST is retried too: an order carries its
client_order_id, so a retry of an order Alpaca did take is answered "client_order_id must be unique" and the
broker adapter adopts it after checking it is the same order.

`sleep` and `clock` are injectable, so tests never wait for real.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def reset_at(headers: Mapping[str, str]) -> float | None:
    """`X-Ratelimit-Reset` (epoch seconds) when present and a number."""
    raw = headers.get("X-Ratelimit-Reset")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    tries: int = 3  # attempts in all, the first included
    backoff_s: float = 1.0  # the first wait; doubled after each try
    max_wait_s: float = 5.0  # the longest single wait (a later X-Ratelimit-Reset is capped to this)
    deadline_s: float = 20.0  # no retry starts later than this after the first try
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.time, compare=False)  # epoch seconds, for X-Ratelimit-Reset

    def wait_s(self, retry: int, throttled_headers: Mapping[str, str] | None) -> float:
        """How long to wait before retry number `retry` (0-based): until the rate-limit window resets when a 429
        said when, else exponential backoff; never more than max_wait_s."""
        reset = reset_at(throttled_headers) if throttled_headers is not None else None
        wait = max(reset - self.clock(), 0.0) if reset is not None else self.backoff_s * 2 ** retry
        return min(wait, self.max_wait_s)


class AlpacaUnavailable(Exception):
    """Alpaca still answered 429 or 5xx, or could not be reached, after the bounded retries."""

    def __init__(self, message: str, throttled: bool, status: int | None):
        super().__init__(message)
        self.throttled = throttled
        self.status = status


class AlpacaHttp:
    """One Alpaca API (trading or data) at `base_url` over the shared authenticated session."""

    def __init__(self, session: requests.Session, base_url: str, timeout: float, retry: RetryPolicy | None = None):
        self.session, self.base_url, self.timeout = session, base_url.rstrip("/"), timeout
        self.retry = retry or RetryPolicy()

    def request(self, method: str, path: str, *, params: Mapping[str, str | int] | None = None,
                json: Mapping[str, Any] | None = None) -> requests.Response:
        """The first answer that is not transient; AlpacaUnavailable once the tries are spent."""
        import requests

        problem, status, headers = "", None, None
        started, tries = self.retry.clock(), 0
        for attempt in range(max(self.retry.tries, 1)):
            if attempt:
                wait = self.retry.wait_s(attempt - 1, headers)
                if self.retry.clock() + wait - started > self.retry.deadline_s:
                    break
                self.retry.sleep(wait)
            tries += 1
            try:
                resp = self.session.request(method, self.base_url + path, params=params, json=json,
                                            timeout=self.timeout)
            except requests.RequestException as exc:
                problem, status, headers = f"unreachable ({type(exc).__name__})", None, None
                continue
            if not _transient(resp.status_code):
                return resp
            status = resp.status_code
            headers = resp.headers if status == 429 else None
            problem = f"HTTP {status}: {resp.text[:200]}"
        raise AlpacaUnavailable(f"alpaca {method} {path}: {problem} after {tries} tries",
                                throttled=status == 429, status=status)
