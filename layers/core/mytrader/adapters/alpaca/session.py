"""One authenticated HTTP session for every Alpaca API MyTrader calls (market data, news, trading).

Alpaca authenticates each request with two headers; the session carries them, keeps connections alive and is
shared by the broker, the market-data source and the news source of one container (see app/wiring.py).
`base_url`s are the test seam: an HTTP fixture in tests, never the network.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

TRADING_URL = "https://paper-api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"


def alpaca_session(key_id: str, secret_key: str, session: requests.Session | None = None) -> requests.Session:
    """`session` with Alpaca's auth headers set (a new one when None); requests is imported only when needed."""
    if session is None:
        import requests

        session = requests.Session()
    session.headers.update({"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key})
    return session
