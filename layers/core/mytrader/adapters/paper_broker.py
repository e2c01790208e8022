"""The paper broker: fills market orders like a broker does, with slippage and fees; its book lives in the
trade-log table.

An order sent while the session runs fills at once at the quote given. An order sent while the market is closed
is queued (`accepted`, nothing filled) and fills at the next session's open — the open's quote, slippage and fees
applied, `filled_at` the open — the first time anyone asks for it at or after that open; the filled state is
then kept in the book. A close at a stop or target level (`fill_price`) fills at that level at once: the price a
resting stop order would have got during the bar (or at the open when the bar gapped through it), which outcomes
computes from the bar. The paper broker keeps no resting orders itself (no bracket legs).

Any quantity fills as asked, fractions of a share included (TradingConfig.fractional_shares: the executor sizes
them by ledger.entry_verdict, as the backtester does), so the two agree fill by fill.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mytrader.broker import BrokerError, BrokerErrorKind, BrokerOrder
from mytrader.errors import DataQualityError
from mytrader.portfolio import Costs, market_open_at, next_open

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import TradeLog
    from mytrader.broker import ExitLegs
    from mytrader.clock import Clock
    from mytrader.models import Order
    from mytrader.ports import QuoteSource

QUEUED_SESSIONS = 10  # sessions after its submission in which a queued order looks for an open it can be priced at


class PaperBroker:
    """The paper book (through the trade log's own methods) records every submission, duplicates included, so
    duplicates are countable per client_order_id. Without a clock and quotes (a reader of the book only) queued
    orders are reported as they are and never filled."""

    name = "paper"

    def __init__(self, tradelog: TradeLog, costs: Costs, clock: Clock | None = None,
                 quotes: QuoteSource | None = None):
        self.tradelog, self.costs, self.clock, self.quotes = tradelog, costs, clock, quotes

    def submit(self, order: Order, quote: float, fill_price: float | None = None,
               exits: ExitLegs | None = None) -> BrokerOrder:
        at = order.submitted_at
        bo = BrokerOrder(broker_order_id=str(uuid.uuid4()), client_order_id=order.client_order_id, symbol=order.symbol,
                         side=order.side, qty=order.qty, status="accepted", submitted_at=at)
        if fill_price is not None:  # a stop or target level reached during the bar
            bo = self._filled(bo, fill_price, at)
        elif market_open_at(at):
            bo = self._filled(bo, quote, at)
        self._keep(bo)
        return bo

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        doc = self.tradelog.paper_by_client_order_id(client_order_id)
        if doc is None:
            return None
        bo = BrokerOrder.model_validate_json(doc)
        return self._fill_queued(bo) if bo.status == "accepted" else bo

    def cancel(self, broker_order_id: str) -> None:
        doc = self.tradelog.paper_order(broker_order_id)
        if doc is None:
            raise BrokerError(f"paper broker has no order {broker_order_id}", retryable=False,
                              kind=BrokerErrorKind.NOT_FOUND)
        bo = BrokerOrder.model_validate_json(doc)
        if bo.status == "accepted":
            self._keep(bo.model_copy(update={"status": "canceled"}))

    def replace_stop(self, broker_order_id: str, stop_price: float) -> BrokerOrder:
        raise BrokerError("the paper broker keeps no resting stop orders", retryable=False,
                          kind=BrokerErrorKind.INVALID)

    def ledger(self) -> list[BrokerOrder]:
        return [BrokerOrder.model_validate_json(doc) for doc in self.tradelog.paper_orders()]

    # -- internals -----------------------------------------------------------------------------------------------
    def _filled(self, bo: BrokerOrder, price: float, at: datetime) -> BrokerOrder:
        fill = self.costs.fill_price(price, bo.side)
        return bo.model_copy(update={"status": "filled", "filled_qty": bo.qty, "filled_avg_price": fill,
                                     "fee": self.costs.fee(fill, bo.qty), "filled_at": at})

    def _fill_queued(self, bo: BrokerOrder) -> BrokerOrder:
        """A queued order fills at the first session open after its submission that has a quote, once that open
        has passed; the filled state is kept, so every later look sees the same fill."""
        if self.clock is None or self.quotes is None or bo.submitted_at is None:
            return bo
        now = self.clock.now()
        opens = next_open(bo.submitted_at)
        for _ in range(QUEUED_SESSIONS):
            if opens is None or opens > now:
                return bo
            try:
                price = self.quotes.quote(bo.symbol, opens)
            except DataQualityError as exc:
                if getattr(exc, "retryable", False):  # a throttled source: the next look prices this same open
                    return bo
                opens = next_open(opens + timedelta(hours=12))  # no bar for that session: the next open prices it
                continue
            filled = self._filled(bo, price, opens)
            self._keep(filled)
            return filled
        return bo

    def _keep(self, bo: BrokerOrder) -> None:
        at = bo.submitted_at.isoformat() if bo.submitted_at else ""
        self.tradelog.paper_record(bo.broker_order_id, bo.client_order_id, at, bo.model_dump_json())
