"""The bounded retry every Alpaca call goes through (mytrader.adapters.alpaca.retry), against an in-memory
session that answers scripted responses: no sockets, no real sleeping."""
from __future__ import annotations

import json

import pytest
import requests

from mytrader.adapters.alpaca.retry import AlpacaHttp, AlpacaUnavailable, RetryPolicy

T0 = 1_704_207_600.0  # the fake clock, epoch seconds


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body if body is not None else {}).encode()
    resp.headers.update(headers or {})
    return resp


class ScriptedSession:
    """Answers request() with the scripted items in order (an exception instance is raised)."""

    def __init__(self, *items: object):
        self.items = list(items)
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, url: str, **_: object) -> requests.Response:
        self.calls.append((method, url))
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, requests.Response)
        return item


def http(session: ScriptedSession, slept: list[float], tries: int = 3) -> AlpacaHttp:
    return AlpacaHttp(session, "https://alpaca.test/", 1.0,  # type: ignore[arg-type]
                      RetryPolicy(tries=tries, sleep=slept.append, clock=lambda: T0))


def test_a_429_waits_until_the_rate_limit_window_resets_then_succeeds():
    # Given Alpaca throttles once and says the window resets in 3 s
    slept: list[float] = []
    reset = {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": str(int(T0) + 3)}
    session = ScriptedSession(answer(429, headers=reset), answer(200, {"ok": True}))
    # When a call is made
    resp = http(session, slept).request("GET", "/v2/account")
    # Then it waited exactly until the reset, and the second answer is the call's answer
    assert resp.status_code == 200 and slept == [3.0] and len(session.calls) == 2


def test_a_far_reset_is_capped_and_a_past_one_does_not_wait():
    policy = RetryPolicy(max_wait_s=5.0, clock=lambda: T0)
    assert policy.wait_s(0, {"X-Ratelimit-Reset": str(int(T0) + 600)}) == 5.0
    assert policy.wait_s(0, {"X-Ratelimit-Reset": str(int(T0) - 10)}) == 0.0
    assert policy.wait_s(1, {"X-Ratelimit-Reset": "soon"}) == 2.0  # unreadable: exponential backoff
    assert policy.wait_s(2, None) == 4.0


def test_throttled_on_every_try_gives_up_after_the_bound_saying_it_was_throttled():
    slept: list[float] = []
    session = ScriptedSession(*(answer(429) for _ in range(3)))
    with pytest.raises(AlpacaUnavailable) as err:
        http(session, slept).request("POST", "/v2/orders", json={"qty": "1"})
    assert err.value.throttled and err.value.status == 429
    assert len(session.calls) == 3 and slept == [1.0, 2.0]


def test_server_errors_and_dropped_connections_are_retried_with_backoff():
    slept: list[float] = []
    session = ScriptedSession(answer(503), requests.ConnectionError("reset by peer"), answer(200, []))
    assert http(session, slept).request("GET", "/v2/positions").status_code == 200
    assert slept == [1.0, 2.0]
    session = ScriptedSession(answer(502), requests.ConnectTimeout("slow"))
    with pytest.raises(AlpacaUnavailable) as err:
        http(session, [], tries=2).request("GET", "/v2/positions")
    assert not err.value.throttled and err.value.status is None and "unreachable" in str(err.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_answers_that_a_retry_cannot_change_are_returned_at_once(status):
    slept: list[float] = []
    session = ScriptedSession(answer(status, {"code": 40010001, "message": "no"}))
    assert http(session, slept).request("GET", "/v2/account").status_code == status
    assert slept == [] and len(session.calls) == 1


def test_no_retry_starts_past_the_deadline():
    # Given a connection that takes 15 s to time out, on a clock the session itself advances
    now = [T0]
    slept: list[float] = []

    class SlowSession(ScriptedSession):
        def request(self, method: str, url: str, **kw: object) -> requests.Response:
            now[0] += 15
            return super().request(method, url, **kw)

    session = SlowSession(requests.ReadTimeout("slow"), requests.ReadTimeout("slow"), answer(200))
    api = AlpacaHttp(session, "https://alpaca.test", 15.0,  # type: ignore[arg-type]
                     RetryPolicy(tries=3, sleep=slept.append, clock=lambda: now[0], deadline_s=20.0))
    # When the first try times out, Then one retry fits the deadline (15 s + 1 s wait), a third would not
    with pytest.raises(AlpacaUnavailable, match="after 2 tries"):
        api.request("POST", "/v2/orders")
    assert slept == [1.0] and len(session.calls) == 2
