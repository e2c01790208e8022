"""Alpaca order bodies out and order objects in (Trading API v2), as pure functions.

Out: a market order for the whole quantity. Without exits it is a `day` order (sent after the close, Alpaca
queues it — status `accepted` — and it fills at the next open; unfilled at the close, it expires). With exits it
is a `bracket` (stop and target) or `oto` (one of them) whose legs rest at Alpaca as `gtc` orders, so they
outlive the entry's day; their prices are put on the tick (mytrader.market.ticks) before they are sent.

Fractional quantities (TradingConfig.fractional_shares): Alpaca takes a fraction of a share only in a simple `day`
market order, of an asset it marks `fractionable`, and never to open a short. `sendable` applies that: a long entry
in a fractionable asset goes as its fraction without legs (its stop and target then stay with MyTrader's outcomes
run, which checks every position without resting legs against each bar), a close goes as it is (it sells what is
held), and any other entry goes as its whole shares (with its legs), or is refused (INVALID) when less than one.

Client order ids carry the deployment's prefix on the wire (two stacks on one Alpaca account then never
collide); Alpaca takes at most 128 characters. Parsing strips the prefix, so BrokerOrder.client_order_id is
MyTrader's id.

In: statuses new, pending_new and accepted read as "accepted" (working, nothing routed or filled yet); every
other documented status is kept as Alpaca says it (held, partially_filled, filled, canceled, expired, replaced,
done_for_day, rejected, pending_cancel, ...). A leg is named by its type: a stop is the "stop_loss", a limit the
"take_profit". `filled_avg_price` of 0 (Alpaca's value before an after-hours order is processed) is no price.
"""
from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from mytrader.adapters.alpaca.times import parse_optional_time
from mytrader.broker import BrokerError, BrokerErrorKind, BrokerOrder, ExitLegs
from mytrader.ledger import whole_shares
from mytrader.market.ticks import price_text
from mytrader.models import Order, OrderSide

MAX_CLIENT_ORDER_ID = 128  # Alpaca's limit on client_order_id
ACCEPTED = frozenset({"new", "pending_new", "accepted"})
LEG_OF_TYPE = {"stop": "stop_loss", "stop_limit": "stop_loss", "trailing_stop": "stop_loss", "limit": "take_profit"}


def wire_client_order_id(prefix: str, client_order_id: str) -> str:
    """MyTrader's id as sent to Alpaca; an id too long for Alpaca is refused here (INVALID), never cut."""
    wire = f"{prefix}{client_order_id}"
    if len(wire) > MAX_CLIENT_ORDER_ID:
        raise BrokerError(f"client_order_id {wire!r} is {len(wire)} characters; Alpaca takes {MAX_CLIENT_ORDER_ID}",
                          retryable=False, kind=BrokerErrorKind.INVALID)
    return wire


def qty_text(qty: float) -> str:
    """A quantity as decimal text: whole shares as "5", fractions as "0.5"."""
    text = format(Decimal(repr(float(qty))).normalize(), "f")
    return text


def needs_fractionable(order: Order) -> bool:
    """Whether sending `order` depends on the asset being fractionable: a long entry for a fraction of a share."""
    return not whole_shares(order.qty) and not order.reduce_only and order.side == OrderSide.BUY


def sendable(order: Order, exits: ExitLegs | None, fractionable: bool) -> tuple[Order, ExitLegs | None]:
    """The order and legs Alpaca takes for `order` (see the module docstring). `fractionable`: the asset's flag
    (asked only when `needs_fractionable(order)`)."""
    if whole_shares(order.qty):
        return order, exits
    if order.reduce_only or (fractionable and order.side == OrderSide.BUY):
        return order, None  # a fraction goes in a simple day order only: no resting legs
    whole = math.floor(order.qty)
    why = "a short entry" if order.side == OrderSide.SELL else f"{order.symbol} is not fractionable at Alpaca"
    if whole < 1:
        raise BrokerError(f"order {order.client_order_id}: {order.qty:g} {order.symbol} is less than one share and "
                          f"cannot be a fraction ({why})", retryable=False, kind=BrokerErrorKind.INVALID)
    return order.model_copy(update={"qty": float(whole)}), exits


def order_body(order: Order, wire_id: str, exits: ExitLegs | None) -> dict[str, Any]:
    """POST /v2/orders for `order` (a market order), with its resting exits when given."""
    body: dict[str, Any] = {"symbol": order.symbol, "qty": qty_text(order.qty), "side": order.side.value,
                            "type": "market", "time_in_force": "day", "client_order_id": wire_id}
    stop = exits.stop_loss if exits is not None else None
    target = exits.take_profit if exits is not None else None
    if stop is None and target is None:
        return body
    try:
        if target is not None:
            body["take_profit"] = {"limit_price": price_text(target)}
        if stop is not None:
            body["stop_loss"] = {"stop_price": price_text(stop)}
    except ValueError as exc:
        raise BrokerError(f"exit price of {order.client_order_id}: {exc}", retryable=False,
                          kind=BrokerErrorKind.INVALID) from None
    body["order_class"] = "bracket" if stop is not None and target is not None else "oto"
    body["time_in_force"] = "gtc"  # the legs must rest past the entry's day
    return body


def _price(raw: object) -> float | None:
    if raw in (None, ""):
        return None
    value = float(str(raw))
    return value if value > 0 else None


def _status(raw: object) -> str:
    status = str(raw or "new")
    return "accepted" if status in ACCEPTED else status


def parse_order(raw: Any, prefix: str = "", leg: str | None = None) -> BrokerOrder:
    """An Alpaca order object (with its legs when nested) as a BrokerOrder. Raises BrokerError (retryable: ask
    again) for a body that is not an order."""
    try:
        return _parse(raw, prefix, leg)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BrokerError(f"alpaca answered an unreadable order ({type(exc).__name__}: {exc})"[:300],
                          retryable=True, kind=BrokerErrorKind.UNAVAILABLE) from None


def _parse(raw: dict[str, Any], prefix: str, leg: str | None) -> BrokerOrder:
    coid = str(raw["client_order_id"])
    if prefix and coid.startswith(prefix):
        coid = coid[len(prefix):]
    order_class = str(raw.get("order_class") or "simple")
    if leg is None and order_class != "simple":
        leg = LEG_OF_TYPE.get(str(raw.get("type") or raw.get("order_type") or ""))
    legs = [_parse(child, prefix, LEG_OF_TYPE.get(str(child.get("type") or ""), "leg"))
            for child in raw.get("legs") or []]
    return BrokerOrder(broker_order_id=str(raw["id"]), client_order_id=coid, symbol=str(raw["symbol"]),
                       side=OrderSide(raw["side"]), qty=float(raw.get("qty") or 0), status=_status(raw.get("status")),
                       filled_qty=float(raw.get("filled_qty") or 0),
                       filled_avg_price=_price(raw.get("filled_avg_price")),
                       filled_at=parse_optional_time(raw.get("filled_at")),
                       submitted_at=parse_optional_time(raw.get("submitted_at")),
                       order_class=order_class, leg=leg, stop_price=_price(raw.get("stop_price")),
                       limit_price=_price(raw.get("limit_price")), legs=legs,
                       replaced_by=str(raw["replaced_by"]) if raw.get("replaced_by") else None)
