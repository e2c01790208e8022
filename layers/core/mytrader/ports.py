"""The ports: every outside system the use cases call, as a Protocol declaring exactly what they call.

Adapters (adapters/aws, adapters/alpaca, the paper broker, the trade log) implement these structurally; the
composition root (app/wiring.py) picks them; tests pass fakes. Nothing here imports an SDK or numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from mytrader.clock import Clock

if TYPE_CHECKING:
    from mytrader.broker import BrokerAccount, BrokerOrder, ExitLegs, FeeActivity, MarketClock
    from mytrader.market.series import BarSeries
    from mytrader.models import Order, SentimentScore, TradeDecision

__all__ = [
    "BarSource", "Broker", "BrokerAccountReporter", "Clock", "ConverseClient", "DeadLetterQueue", "DecisionQueue",
    "MarketData", "News", "Parameters", "PositionReporter", "PriceHistory", "QueuedMessage", "QuoteSource",
    "SentimentCache", "TokenBudget", "reports_account", "reports_positions",
]


# -- market data -------------------------------------------------------------------------------------
class PriceHistory(Protocol):
    """What the decision cycle reads: the bars a decision as of a time may see."""

    def history(self, symbol: str, as_of: datetime) -> BarSeries:
        """All bars of `symbol` stamped <= as_of. Raises DataQualityError for data that must not be used."""
        ...


class QuoteSource(Protocol):
    """What the executor reads: the price an order is sized and risk-checked at."""

    def quote(self, symbol: str, at: datetime) -> float:
        """Raises DataQualityError when there is no usable quote."""
        ...


class BarSource(Protocol):
    """What outcomes and the dataset export read: the whole series, and the last bar complete at a time."""

    def full(self, symbol: str) -> BarSeries: ...

    def bar_at(self, symbol: str, at: datetime) -> int:
        """Index of the last bar stamped <= at (-1 when there is none)."""
        ...


class MarketData(PriceHistory, QuoteSource, BarSource, Protocol):
    """A market-data adapter serves all of the above (S3 price files, Alpaca's data API)."""


# -- news ----------------------------------------------------------------------------------------------
class News(Protocol):
    """The news context of a decision: sentiment score and the headlines the prompt shows, as of a time."""

    def at(self, symbol: str, as_of: datetime) -> tuple[SentimentScore, list[str]]: ...


class SentimentCache(Protocol):
    """Headline scores shared between containers (keyed by scorer + headline hash)."""

    def get_many(self, keys: list[str]) -> dict[str, float]: ...

    def put_many(self, scores: dict[str, float]) -> None: ...


# -- the advisor ---------------------------------------------------------------------------------------
class ConverseClient(Protocol):
    """Bedrock Runtime's Converse API (boto3's client, or the local advisor model in process)."""

    def converse(self, **kwargs: Any) -> dict[str, Any]: ...


class TokenBudget(Protocol):
    """The advisor's daily token budget; once spent, the advisor falls back to the strategy."""

    def exhausted(self, day: str) -> bool: ...

    def add(self, day: str, tokens: int) -> None: ...


# -- the broker ----------------------------------------------------------------------------------------
class Broker(Protocol):
    """client_order_id is always the decision id (or a close's id), so an order can be asked for again.

    An order sent while the market is closed is queued (status `accepted`, nothing filled) and fills at the next
    open; `exits` makes an entry a bracket whose stop and target rest at the broker (its legs)."""

    @property
    def name(self) -> str: ...

    def submit(self, order: Order, quote: float, fill_price: float | None = None,
               exits: ExitLegs | None = None) -> BrokerOrder: ...

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        """The order with its legs, as the broker now reports it (None: the broker has no such order)."""
        ...

    def cancel(self, broker_order_id: str) -> None:
        """Cancel a working order (a bracket's leg before a signal or time-limit close). An order already final
        is not an error."""
        ...

    def replace_stop(self, broker_order_id: str, stop_price: float) -> BrokerOrder:
        """Move a resting stop leg (PATCH); the old order ends `replaced`, the new one is returned."""
        ...


class BrokerAccountReporter(Protocol):
    """A real broker's account: its state, its clock and its fee activities (the paper broker has none)."""

    def account(self) -> BrokerAccount: ...

    def clock(self) -> MarketClock: ...

    def fee_activities(self, since: datetime) -> list[FeeActivity]: ...


def reports_account(broker: object) -> TypeGuard[BrokerAccountReporter]:
    return hasattr(broker, "account") and hasattr(broker, "fee_activities")


class PositionReporter(Protocol):
    """A broker that reports its holdings (a real one; the paper broker's book is the trade log itself)."""

    def positions(self) -> dict[str, float]: ...


def reports_positions(broker: object) -> TypeGuard[PositionReporter]:
    return hasattr(broker, "positions")


# -- run-time parameters -------------------------------------------------------------------------------
class Parameters(Protocol):
    """Run-time parameters (SSM): MODE, ACTIVE_MODEL, SHADOW_MODEL, ... (the kill switch lives on the account in
    the trade log; its SSM parameter is an operators' mirror, never read for a decision)."""

    def get(self, key: str, fresh: bool = False, strict: bool = False) -> str:
        """The value; unreadable -> the documented default, or with `strict` (a gate) the error is raised."""
        ...


# -- the decisions queue -------------------------------------------------------------------------------
class DecisionQueue(Protocol):
    """The decisions queue: the message is a pointer to the recorded decision, grouped by symbol and
    deduplicated by decision id."""

    def send(self, decision: TradeDecision) -> None: ...


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    receipt_handle: str
    body: str


class DeadLetterQueue(Protocol):
    """The decisions queue's DLQ, emptied by the sweep once each message is archived in the trade log (which is
    what `ops redrive-dlq` re-sends from)."""

    def receive(self) -> list[QueuedMessage]:
        """Up to 10 messages, hidden while the sweep archives them."""
        ...

    def delete(self, messages: list[QueuedMessage]) -> None:
        """Remove archived messages from the DLQ."""
        ...
