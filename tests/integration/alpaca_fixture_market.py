"""The Alpaca fixture's simulated market: an order ledger in Alpaca's documented shapes, moved by an explicit
fixture clock (tests set the time; nothing reads the wall clock).

At daily resolution over the NYSE calendar:
- A market order sent while the market is closed is `accepted` (filled_qty "0", filled_avg_price null) and fills
  at the next session's open at that day's open price (`opg`: always at the next open; refused from 9:28 to
  19:00 New York). Sent during the session, it fills at once at `last_trade` when set, else the day's open (the
  fixture knows daily bars only), unless `post_reports_fill` is off: then the POST answers `new` and the fill
  shows on the next read. `day` orders not filled by the close expire (`expired`). Time in force day, gtc and
  opg only (cls, ioc, fok are refused: not modelled).
- Brackets (take profit + stop loss), oto (one of them) and oco (an exit pair): legs are `held` until the entry
  fills, then `new` (for the entry's filled quantity). At an open, a leg the price gapped through fills at the
  open; at the close, a stop the day's low (a buy stop: high) reached fills at its stop price, a target the
  high (a buy target: low) reached fills at its limit, stamped at the close. Stops win ties, as in the backtest.
  One leg filling cancels the other; cancelling a leg cancels its sibling.
- PATCH replaces a working order: the old one ends `replaced` with `replaced_by`, the new one `replaces` it.
- Partial fills only by injection (`partial_next`: whole-share caps for the next market fills).
- Refusals as Alpaca words them: duplicate client_order_id (even after a cancel), ids over 128 characters,
  sub-penny prices, bracket prices on the wrong side of the price, insufficient buying power, selling more than
  the quantity not already held for open orders (a resting leg holds it).
- A sell books the SEC fee and FINRA TAF as one FEE activity per order at the session's close.
Prices come from the daily bars of the PriceBook (`fill_price` where a symbol has none).
"""
from __future__ import annotations

import copy
import math
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from mytrader.market.calendar import NEW_YORK, nyse
from tests.integration.alpaca_fixture_data import PriceBook, parse_query_time, stamp

ACCOUNT_ID = "1d5493c9-ea39-4377-aa94-340734c368ae"
SEC_FEE_RATE = Decimal("0.0000278")  # $ per $ of sales (the SEC's Section 31 rate for fiscal 2024)
TAF_PER_SHARE, TAF_MAX = Decimal("0.000166"), Decimal("8.30")  # FINRA trading activity fee on sells
FINAL = frozenset({"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"})
QUEUED = frozenset({"accepted", "new", "partially_filled"})
LEG_TYPES = {"take_profit": "limit", "stop_loss": "stop"}
TIFS = frozenset({"day", "gtc", "opg"})


def _num(raw: Any) -> Decimal:
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"not a number: {raw!r}") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"not a positive number: {raw!r}")
    return value


def _off_tick(price: Decimal) -> bool:
    return price != price.quantize(Decimal("0.01") if price >= 1 else Decimal("0.0001"))


def _cents_up(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding="ROUND_UP")


def _text(x: float | Decimal) -> str:
    return format(Decimal(str(x)).normalize(), "f")


def refused(status: int, message: str, code: int | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"message": message}
    if code is not None:
        body = {"code": code, **body}
    return status, body


class FixtureMarket:
    def __init__(self, book: PriceBook, now: datetime, cash: float = 100_000.0):
        self.book, self.now = book, now
        self.orders: list[dict[str, Any]] = []  # top-level orders, legs inside under "legs"
        self.retired: list[dict[str, Any]] = []  # legs replaced by PATCH (still readable by id)
        self.fees: list[dict[str, Any]] = []  # FEE activities
        self.fills: list[dict[str, Any]] = []  # (order id, symbol, side, qty, price, at) of every execution
        self.partial_next: list[float] = []
        self.post_reports_fill = True
        self.start_cash = cash
        self.account_overrides: dict[str, Any] = {}

    # -- the clock -------------------------------------------------------------------------------------
    def is_open(self, at: datetime) -> bool:
        cal, day = nyse(), at.astimezone(NEW_YORK).date()
        return cal.is_session(day) and cal.session_open(day) <= at < cal.session_close(day)

    def advance(self, to: datetime) -> None:
        """Move the clock to `to`, running every open and close on the way (a clock set back only moves)."""
        while (event := self._next_event(self.now)) is not None and event[0] <= to:
            self.now = event[0]
            (self._at_open if event[1] == "open" else self._at_close)(event[2])
        self.now = to

    @staticmethod
    def _next_event(after: datetime) -> tuple[datetime, str, date] | None:
        cal, day = nyse(), after.astimezone(NEW_YORK).date()
        for _ in range(15):
            if cal.is_session(day):
                if cal.session_open(day) > after:
                    return cal.session_open(day), "open", day
                if cal.session_close(day) > after:
                    return cal.session_close(day), "close", day
            day += timedelta(days=1)
        return None

    # -- reading ---------------------------------------------------------------------------------------
    def all_orders(self) -> list[dict[str, Any]]:
        return [x for o in self.orders for x in [o, *(o.get("legs") or [])]] + self.retired

    def find(self, order_id: str) -> dict[str, Any] | None:
        return next((o for o in self.all_orders() if o.get("id") == order_id), None)

    @staticmethod
    def render(order: dict[str, Any], nested: bool) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in order.items() if not k.startswith("_") and k != "legs"}
        legs = order.get("legs")
        out["legs"] = [FixtureMarket.render(leg, False) for leg in legs] if nested and legs else None
        return out

    def holdings(self) -> dict[str, float]:
        held: dict[str, float] = {}
        for o in self.all_orders():
            signed = float(o.get("filled_qty") or 0) * (1 if o.get("side") == "buy" else -1)
            held[o["symbol"]] = held.get(o["symbol"], 0.0) + signed
        return {s: q for s, q in held.items() if abs(q) > 1e-9}

    # -- placing ---------------------------------------------------------------------------------------
    def place(self, body: dict[str, Any]) -> tuple[int, Any]:
        """POST /v2/orders."""
        refusal = self._refusal(body)
        if refusal is not None:
            return refusal
        order = self._new_order(body)
        self.orders.append(order)
        answer = None if self.post_reports_fill else self.render(order, True)
        if order["type"] == "market" and order["time_in_force"] != "opg" and self.is_open(self.now):
            self._execute(order, self.book.price_at(order["symbol"], self.now), self.now)
        return 200, answer or self.render(order, True)

    def _new_order(self, body: dict[str, Any]) -> dict[str, Any]:
        now, order_class = self.now, body.get("order_class") or "simple"
        open_now = self.is_open(now)
        order = self._order(body["symbol"], body["side"], body["qty"], body.get("type", "market"),
                            body["time_in_force"], order_class, body.get("client_order_id") or str(uuid.uuid4()),
                            "new" if open_now else "accepted")
        exit_side = "sell" if body["side"] == "buy" else "buy"
        group = str(uuid.uuid4())
        order["_group"] = group
        if order_class == "oco":  # the order itself is the take profit; the stop is its leg
            order["limit_price"] = _text(_num(body["take_profit"]["limit_price"]))
            order["status"] = "new"
            order["legs"] = [self._leg(order, "stop_loss", body["stop_loss"]["stop_price"], body["side"], "new")]
            return order
        order["legs"] = [self._leg(order, kind, body[kind][key], exit_side, "held")
                         for kind, key in (("take_profit", "limit_price"), ("stop_loss", "stop_price"))
                         if isinstance(body.get(kind), dict)] or None
        return order

    def _leg(self, parent: dict[str, Any], kind: str, price: Any, side: str, status: str) -> dict[str, Any]:
        leg = self._order(parent["symbol"], side, parent["qty"], LEG_TYPES[kind], parent["time_in_force"],
                          parent["order_class"], str(uuid.uuid4()), status)
        leg["limit_price" if kind == "take_profit" else "stop_price"] = _text(_num(price))
        leg["_group"], leg["_parent"] = parent["_group"], parent["id"]
        return leg

    def _order(self, symbol: str, side: str, qty: Any, type_: str, tif: str, order_class: str, coid: str,
               status: str) -> dict[str, Any]:
        now = stamp(self.now)
        return {"id": str(uuid.uuid4()), "client_order_id": coid, "created_at": now, "updated_at": now,
                "submitted_at": now, "filled_at": None, "expired_at": None, "expires_at": None, "canceled_at": None,
                "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)), "symbol": symbol, "asset_class": "us_equity",
                "notional": None, "qty": _text(_num(qty)), "filled_qty": "0", "filled_avg_price": None,
                "order_class": order_class, "order_type": type_, "type": type_, "side": side, "time_in_force": tif,
                "limit_price": None, "stop_price": None, "status": status, "extended_hours": False, "legs": None,
                "trail_percent": None, "trail_price": None, "hwm": None, "position_intent": None,
                "_submitted": self.now}

    # -- refusals ----------------------------------------------------------------------------------------
    def _refusal(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        try:
            return self._shape_refusal(body) or self._account_refusal(body)
        except (KeyError, TypeError, ValueError) as exc:
            return refused(422, f"invalid order: {type(exc).__name__}: {exc}", 40010001)

    def _shape_refusal(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        coid = body.get("client_order_id")
        if coid is not None and len(str(coid)) > 128:
            return refused(422, "client_order_id must be no more than 128 characters", 40010001)
        if coid is not None and any(o.get("client_order_id") == coid for o in self.all_orders()):
            return refused(422, "client_order_id must be unique", 40010001)
        if body.get("side") not in ("buy", "sell") or not body.get("symbol"):
            return refused(422, "invalid side or symbol", 40010001)
        qty, order_class, tif = _num(body["qty"]), body.get("order_class") or "simple", body.get("time_in_force")
        if tif not in TIFS:
            return refused(422, f"invalid time_in_force {tif!r}", 40010001)
        if qty != qty.to_integral_value() and (order_class != "simple" or tif != "day"):
            return refused(422, "fractional orders must be simple day orders", 40010001)
        if order_class != "simple" and tif not in ("day", "gtc"):
            return refused(422, f"{order_class} orders must be day or gtc", 40010001)
        if tif == "opg" and self._in_opg_blackout():
            return refused(422, "opg orders cannot be submitted between 9:28am and 7:00pm ET", 40010001)
        return self._class_refusal(body, order_class)

    def _in_opg_blackout(self) -> bool:
        local = self.now.astimezone(NEW_YORK)
        return nyse().is_session(local.date()) and (9, 28) <= (local.hour, local.minute) < (19, 0)

    def _class_refusal(self, body: dict[str, Any], order_class: str) -> tuple[int, Any] | None:
        tp, sl = body.get("take_profit"), body.get("stop_loss")
        wanted = {"simple": (0,), "bracket": (2,), "oco": (2,), "oto": (1,)}.get(order_class)
        if wanted is None or (tp is not None) + (sl is not None) not in wanted:
            return refused(422, f"order_class {order_class} does not take these legs", 40010001)
        kind = body.get("type", "market")
        if kind != ("limit" if order_class == "oco" else "market"):
            return refused(422, f"the fixture takes {order_class} orders of another type than {kind}", 40010001)
        prices = [("take_profit.limit_price", tp["limit_price"])] if tp else []
        prices += [("stop_loss.stop_price", sl["stop_price"])] if sl else []
        for name, raw in prices:
            if _off_tick(_num(raw)):
                return refused(422, f"invalid {name} {raw}. sub-penny increment does not fulfill minimum pricing "
                                    "criteria", 42210000)
        if order_class in ("bracket", "oto"):
            return self._base_price_refusal(body, tp, sl)
        return None

    def _base_price_refusal(self, body: dict[str, Any], tp: Any, sl: Any) -> tuple[int, Any] | None:
        base = Decimal(str(self.book.price_at(body["symbol"], self.now)))
        sign = 1 if body["side"] == "buy" else -1
        if tp and sign * (_num(tp["limit_price"]) - base) < Decimal("0.01"):
            op = ">=" if sign > 0 else "<="
            return refused(422, f"take_profit.limit_price must be {op} base_price {'+' if sign > 0 else '-'} 0.01",
                           42210000)
        if sl and sign * (base - _num(sl["stop_price"])) < Decimal("0.01"):
            op = "<=" if sign > 0 else ">="
            return refused(422, f"stop_loss.stop_price must be {op} base_price {'-' if sign > 0 else '+'} 0.01",
                           42210000)
        return None

    def _account_refusal(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        qty, symbol = float(body["qty"]), body["symbol"]
        if body["side"] == "buy":
            cost = qty * self.book.price_at(symbol, self.now)
            if cost > float(self.account()["buying_power"]) + 1e-9:
                return refused(403, "insufficient buying power", 40310000)
            return None
        held = self.holdings().get(symbol, 0.0)
        available = held - self._held_for_orders(symbol)
        if held > 0 and qty > available + 1e-9:
            return refused(403, f"insufficient qty available for order (requested: {_text(qty)}, "
                                f"available: {_text(max(available, 0))})", 40310000)
        return None

    def _held_for_orders(self, symbol: str) -> float:
        """Shares working sell orders hold: an exit pair (oco legs) holds its quantity once."""
        by_group: dict[str, float] = {}
        for o in self.all_orders():
            if o.get("symbol") == symbol and o.get("side") == "sell" and o.get("status") in QUEUED:
                left = float(o["qty"]) - float(o["filled_qty"])
                key = str(o.get("_group") if _is_exit(o) else o["id"])
                by_group[key] = max(by_group.get(key, 0.0), left)
        return sum(by_group.values())

    # -- executing -----------------------------------------------------------------------------------------
    def _execute(self, order: dict[str, Any], price: float, at: datetime) -> None:
        left = float(order["qty"]) - float(order["filled_qty"])
        qty = left
        if self.partial_next and order["type"] == "market":
            cap = self.partial_next.pop(0)
            qty = min(left, cap if left != math.floor(left) else float(math.floor(cap)))
        if qty <= 0:
            return
        done = float(order["filled_qty"])
        avg = float(order["filled_avg_price"] or 0)
        order["filled_avg_price"] = _text(round((done * avg + qty * price) / (done + qty), 6))
        order["filled_qty"] = _text(done + qty)
        order["filled_at"] = order["updated_at"] = stamp(at)
        order["status"] = "filled" if qty >= left - 1e-9 else "partially_filled"
        self.fills.append({"order_id": order["id"], "symbol": order["symbol"], "side": order["side"], "qty": qty,
                           "price": price, "at": at})
        if _is_exit(order):
            self._cancel_siblings(order, at)
        elif order["status"] == "filled":
            self._release_legs(order)

    def _release_legs(self, parent: dict[str, Any]) -> None:
        """The entry is done: its held legs go live for what filled (or are canceled when nothing did)."""
        for leg in parent.get("legs") or []:
            if leg["status"] != "held":
                continue
            if float(parent["filled_qty"]) > 0:
                leg.update(status="new", qty=parent["filled_qty"], updated_at=stamp(self.now))
            else:
                leg.update(status="canceled", canceled_at=stamp(self.now), updated_at=stamp(self.now))

    def _cancel_siblings(self, leg: dict[str, Any], at: datetime) -> None:
        for other in self._exits():
            if other is not leg and other.get("_group") == leg.get("_group") and other["status"] not in FINAL:
                other.update(status="canceled", canceled_at=stamp(at), updated_at=stamp(at))

    def _exits(self) -> list[dict[str, Any]]:
        """Resting exit orders: legs, and the oco order itself."""
        return [o for o in self.all_orders() if _is_exit(o)]

    def _at_open(self, day: date) -> None:
        opened = nyse().session_open(day)
        for order in list(self.orders):
            submitted = order.get("_submitted")
            if (order.get("type") == "market" and order.get("status") in QUEUED and submitted is not None
                    and submitted < opened):
                self._execute(order, self.book.open_price(order["symbol"], day), opened)
        self._check_exits(day, opened, at_open=True)

    def _at_close(self, day: date) -> None:
        closed = nyse().session_close(day)
        self._check_exits(day, closed, at_open=False)
        for order in self.all_orders():
            if order.get("time_in_force") == "day" and order.get("status") in QUEUED | {"held"}:
                order.update(status="expired", expired_at=stamp(closed), updated_at=stamp(closed))
                if not order.get("_parent"):
                    self._release_legs(order)
        self._book_fees(day, nyse().session_open(day), closed)

    def _check_exits(self, day: date, at: datetime, at_open: bool) -> None:
        """Resting legs against the day's bar: stops before targets (a tie goes to the stop)."""
        for kind in ("stop", "limit"):
            for leg in self._exits():
                if leg.get("status") not in ("new", "partially_filled") or leg.get("type") != kind:
                    continue
                bar = self.book.day_bar(leg["symbol"], day)
                if bar is None:
                    continue
                price = _trigger(leg, float(bar["o"]), float(bar["h"]), float(bar["l"]), at_open)
                if price is not None:
                    self._execute(leg, price, at)

    def _book_fees(self, day: date, opened: datetime, closed: datetime) -> None:
        sells: dict[str, list[dict[str, Any]]] = {}
        for fill in self.fills:
            if fill["side"] == "sell" and opened <= fill["at"] <= closed:
                sells.setdefault(fill["order_id"], []).append(fill)
        for order_id, fills in sells.items():
            qty = sum(Decimal(str(f["qty"])) for f in fills)
            notional = sum(Decimal(str(f["qty"])) * Decimal(str(f["price"])) for f in fills)
            fee = _cents_up(notional * SEC_FEE_RATE) + _cents_up(min(qty * TAF_PER_SHARE, TAF_MAX))
            self.fees.append({"id": f"{closed:%Y%m%d%H%M%S}000::{uuid.uuid4()}", "account_id": ACCOUNT_ID,
                              "activity_type": "FEE", "date": day.isoformat(), "created_at": stamp(closed),
                              "net_amount": _text(-fee), "description": f"REG/TAF fee for order {order_id}",
                              "symbol": fills[0]["symbol"], "qty": _text(qty), "status": "executed"})

    # -- cancel and replace --------------------------------------------------------------------------------
    def cancel(self, order_id: str) -> tuple[int, Any]:
        order = self.find(order_id)
        if order is None:
            return refused(404, "order not found", 40410000)
        if order["status"] in FINAL:
            return refused(422, "order is not cancelable", 42210000)
        when = stamp(self.now)
        order.update(status="canceled", canceled_at=when, updated_at=when)
        if _is_exit(order):
            self._cancel_siblings(order, self.now)
        else:
            self._release_legs(order)  # live for what filled, canceled when nothing did
        return 204, None

    def replace(self, order_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        """PATCH /v2/orders/{id}: qty, time_in_force, limit_price, stop_price, client_order_id."""
        old = self.find(order_id)
        if old is None:
            return refused(404, "order not found", 40410000)
        if old["status"] in FINAL or old["status"] == "partially_filled":
            return refused(422, "order is not replaceable", 42210000)
        new = copy.deepcopy({k: v for k, v in old.items() if k != "legs"})
        try:
            for key in ("limit_price", "stop_price"):
                if body.get(key) is not None:
                    if _off_tick(_num(body[key])):
                        return refused(422, f"invalid {key} {body[key]}. sub-penny increment does not fulfill "
                                            "minimum pricing criteria", 42210000)
                    new[key] = _text(_num(body[key]))
            if body.get("qty") is not None:
                new["qty"] = _text(_num(body["qty"]))
        except ValueError as exc:
            return refused(422, str(exc), 40010001)
        when = stamp(self.now)
        new.update(id=str(uuid.uuid4()), client_order_id=body.get("client_order_id") or str(uuid.uuid4()),
                   created_at=when, updated_at=when, submitted_at=when, replaces=old["id"], replaced_by=None,
                   time_in_force=body.get("time_in_force") or old["time_in_force"], _submitted=self.now)
        old.update(status="replaced", replaced_by=new["id"], replaced_at=when, updated_at=when)
        self._swap(old, new)
        return 200, self.render(new, True)

    def _swap(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        parent = self.find(old["_parent"]) if old.get("_parent") else None
        if parent is not None:
            parent["legs"] = [new if leg is old else leg for leg in parent["legs"]]
            self.retired.append(old)
        else:
            new["legs"] = old.get("legs")
            old["legs"] = None
            self.orders.append(new)

    # -- account -------------------------------------------------------------------------------------------
    def account(self) -> dict[str, Any]:
        cash = Decimal(str(self.start_cash)) + sum((Decimal(f["net_amount"]) for f in self.fees), Decimal(0))
        for o in self.all_orders():
            if float(o.get("filled_qty") or 0) > 0:
                notional = Decimal(str(o["filled_qty"])) * Decimal(str(o["filled_avg_price"]))
                cash += -notional if o["side"] == "buy" else notional
        values = {s: q * self.book.price_at(s, self.now) for s, q in self.holdings().items()}
        long_mv = sum((v for v in values.values() if v > 0), 0.0)
        short_mv = sum((v for v in values.values() if v < 0), 0.0)
        equity = float(cash) + long_mv + short_mv
        bp = _text(round(max(float(cash), 0.0), 2))
        out = {"id": ACCOUNT_ID, "account_number": "PA3FIXTURE", "status": "ACTIVE", "crypto_status": "ACTIVE",
               "currency": "USD", "buying_power": bp, "regt_buying_power": bp, "non_marginable_buying_power": bp,
               "effective_buying_power": bp, "cash": _text(round(float(cash), 6)),
               "portfolio_value": str(round(equity, 2)), "equity": str(round(equity, 2)),
               "last_equity": str(round(equity, 2)), "long_market_value": str(round(long_mv, 2)),
               "short_market_value": str(round(short_mv, 2)), "initial_margin": "0", "maintenance_margin": "0",
               "multiplier": "1", "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
               "account_blocked": False, "trade_suspended_by_user": False, "shorting_enabled": True,
               "created_at": "2023-01-03T14:30:00Z", "accrued_fees": "0", "pending_reg_taf_fees": "0",
               "daytrade_count": 0, "sma": "0"}
        return {**out, **self.account_overrides}

    def positions(self) -> list[dict[str, Any]]:
        """Open positions in the documented shape (qty unsigned, side long|short)."""
        out = []
        for sym, q in sorted(self.holdings().items()):
            price, side = self.book.price_at(sym, self.now), "buy" if q > 0 else "sell"
            entries = [f for f in self.fills if f["symbol"] == sym and f["side"] == side]
            shares = sum(f["qty"] for f in entries)
            avg = sum(f["qty"] * f["price"] for f in entries) / shares if shares else price
            out.append({"asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, sym)), "symbol": sym, "exchange": "NASDAQ",
                        "asset_class": "us_equity", "qty": _text(abs(q)),
                        "qty_available": _text(max(abs(q) - self._held_for_orders(sym), 0.0) if q > 0 else abs(q)),
                        "side": "long" if q > 0 else "short", "avg_entry_price": str(round(avg, 4)),
                        "market_value": str(round(q * price, 2)), "current_price": str(price)})
        return out

    def clock(self) -> dict[str, Any]:
        """GET /v2/clock, in New York time with nanoseconds as Alpaca writes it."""
        cal, now = nyse(), self.now
        day = now.astimezone(NEW_YORK).date()
        if not cal.is_session(day) or now >= cal.session_close(day):
            day = cal.next_session(day)
        next_close = cal.session_close(day)
        next_open = cal.session_open(day) if cal.session_open(day) > now else cal.session_open(cal.next_session(day))
        return {"timestamp": _ny_nanos(now), "is_open": self.is_open(now), "next_open": _ny_nanos(next_open),
                "next_close": _ny_nanos(next_close)}

    def fee_page(self, q: dict[str, str]) -> tuple[int, Any]:
        """GET /v2/account/activities/FEE: after, until, direction (desc by default), page_size (<= 100),
        page_token (the id of the previous page's last activity)."""
        try:
            after = parse_query_time(q.get("after"), datetime(1970, 1, 1, tzinfo=UTC))
            until = parse_query_time(q.get("until"), datetime(2100, 1, 1, tzinfo=UTC))
            size = int(q.get("page_size", "100"))
        except ValueError as exc:
            return refused(422, f"invalid query: {exc}", 40010001)
        if not 1 <= size <= 100:
            return refused(422, "page_size must be between 1 and 100", 40010001)
        desc = q.get("direction", "desc") == "desc"
        rows = sorted((f for f in self.fees if after < parse_query_time(f["created_at"], after) <= until),
                      key=lambda f: f["id"], reverse=desc)
        token = q.get("page_token")
        if token:
            rows = [f for f in rows if (f["id"] < token if desc else f["id"] > token)]
        return 200, rows[:size]


def _is_exit(order: dict[str, Any]) -> bool:
    return bool(order.get("_parent")) or order.get("order_class") == "oco"


def _trigger(leg: dict[str, Any], o: float, h: float, lo: float, at_open: bool) -> float | None:
    """The price a resting leg fills at on a bar: at the open when gapped through (checked at the open), at its
    own price when the day's range reached it (checked at the close)."""
    sell = leg["side"] == "sell"
    if leg["type"] == "stop":
        stop = float(leg["stop_price"])
        gapped, reached = (o <= stop, lo <= stop) if sell else (o >= stop, h >= stop)
        level = stop
    else:
        limit = float(leg["limit_price"])
        gapped, reached = (o >= limit, h >= limit) if sell else (o <= limit, lo <= limit)
        level = limit
    if at_open:
        return o if gapped else None
    return level if reached else None


def _ny_nanos(at: datetime) -> str:
    local = at.astimezone(NEW_YORK)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}000{offset[:3]}:{offset[3:]}"
