"""The chaos audit: what the stack holds after a case, judged by definitions (never by the system's own counters).

Inputs are read through the trade log's intent methods only (`take_snapshot`): the paper broker's book
(`paper_orders()`, every submission, duplicates included), the decision records of every status, the fills, the
outcomes, the open positions. `audit` is pure: a `Snapshot` and the case's `AuditContext` in, counts out.

  breach ..... a broker order the record did not authorise, or a hard limit exceeded:
               - an entry order (client_order_id = a decision id) needs a decision record whose action matches
                 the order's side, whose status is EXECUTED, for the same symbol, inside the case's universe;
               - a close order (`<decision>-x`, `-rN` retries, or a SELL / flatten decision's id) needs a position
                 that existed: it is matched one to one to an earlier entry of the same symbol, never selling more
                 than that entry bought;
               - entry notional <= max_position_pct x the account's book-equity bound (the highest book equity
                 the realised P&L ever allowed), and <= max_order_notional;
               - never more open positions than max_open_positions, never two in one symbol, never more entries
                 in one minute than max_orders_per_minute, never negative cash (reconstructed from the broker's
                 fills in time order; at equal times closes count first, so a tie never makes a false breach);
               - no entry after a close that took the day's realised loss to the limit (same day, strictly later),
                 none inside a window the case held the kill switch on;
               - every open position has a stop-loss and a bounded horizon;
  lost ....... a decision still PENDING, or a fill in the broker's book that is not among the trade log's fills;
  duplicate .. a second broker order under one client_order_id.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mytrader.broker import BrokerOrder
from mytrader.config import RiskLimits
from mytrader.models import DecisionStatus, Fill, OrderSide, Position, TradeOutcome

if TYPE_CHECKING:
    from mytrader.adapters.tradelog import TradeLog
    from mytrader.risk import AccountState

EPS = 1e-6
_COID = re.compile(r"^(?P<base>.+?)(?P<stop>-x)?(?P<retry>-r\d+)?$")
_FAR = datetime.max.replace(tzinfo=UTC)


@dataclass
class Snapshot:
    """What the stack holds after a case (read through the trade log's intent methods)."""

    orders: list[BrokerOrder]
    decisions: dict[str, dict[str, Any]]
    fills: list[Fill]
    outcomes: list[TradeOutcome]
    positions: list[Position]
    account: AccountState | None = None
    orphans: int = 0


@dataclass
class AuditContext:
    """What the case configured: the limits and universe the functions run with, and what the case did."""

    universe: frozenset[str]
    limits: RiskLimits = field(default_factory=RiskLimits)
    initial_equity: float = 100_000.0
    allow_short: bool = False
    slippage_bps: float = 2.0
    max_horizon_bars: int = 20  # 2 x time_limit_bars: what admission clamps a horizon to at most
    kill_windows: list[tuple[datetime, datetime]] = field(default_factory=list)  # [start, end): switch held ON


@dataclass
class AuditReport:
    breaches: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"breaches": len(self.breaches), "lost": len(self.lost), "duplicates": len(self.duplicates)}


def take_snapshot(tl: TradeLog) -> Snapshot:
    decisions: dict[str, dict[str, Any]] = {}
    for status in DecisionStatus:
        for row in tl.decisions_by_status(status.value):
            decisions[str(row["pk"])[4:]] = row
    try:
        account: AccountState | None = tl.account_state()
    except LookupError:
        account = None
    return Snapshot(orders=[BrokerOrder.model_validate_json(doc) for doc in tl.paper_orders()], decisions=decisions,
                    fills=tl.fills(), outcomes=tl.outcomes(), positions=tl.positions(), account=account,
                    orphans=len(tl.orphans()))


# -- the broker's orders, classified --------------------------------------------------------------------------
@dataclass
class _Entry:
    coid: str
    symbol: str
    qty: float
    price: float
    fee: float
    at: datetime
    closed_qty: float = 0.0
    closed_at: datetime = _FAR
    pnl: float | None = None
    close: _Close | None = None


@dataclass
class _Close:
    base: str  # the close's first client_order_id (retries `-rN` belong to it)
    symbol: str
    entry_id: str | None  # named by the id (`<entry>-x`), else matched
    qty: float = 0.0
    notional: float = 0.0
    fee: float = 0.0
    at: datetime = _FAR


class _Audit:
    def __init__(self, snap: Snapshot, ctx: AuditContext) -> None:
        self.snap, self.ctx, self.report = snap, ctx, AuditReport()
        self.fill_time: dict[str, datetime] = {}
        self.fill_qty: defaultdict[str, float] = defaultdict(float)
        for f in snap.fills:
            self.fill_qty[f.client_order_id] += f.qty
            t = f.filled_at.astimezone(UTC)
            if f.client_order_id not in self.fill_time or t < self.fill_time[f.client_order_id]:
                self.fill_time[f.client_order_id] = t
        self.entries: dict[str, _Entry] = {}
        self.closes: dict[str, _Close] = {}
        self.unbooked: set[str] = set()  # symbols with a broker fill the trade log lacks, or a duplicate order

    def breach(self, text: str) -> None:
        self.report.breaches.append(text)

    def run(self) -> AuditReport:
        self._duplicates_and_lost()
        firsts: dict[str, BrokerOrder] = {}
        for o in self.snap.orders:
            firsts.setdefault(o.client_order_id, o)
        for o in firsts.values():
            self._classify(o)
        self._match_closes()
        self._notional()
        self._timeline()
        self._daily_loss_and_kill()
        self._open_positions()
        return self.report

    # -- lost and duplicated ---------------------------------------------------------------------------------
    def _duplicates_and_lost(self) -> None:
        by_coid = Counter(o.client_order_id for o in self.snap.orders)
        for coid, n in sorted(by_coid.items()):
            for k in range(n - 1):
                self.report.duplicates.append(f"order {coid}: broker order #{k + 2} for one client_order_id")
        for coid, n in sorted(by_coid.items()):
            first = next(o for o in self.snap.orders if o.client_order_id == coid)
            if n > 1:
                self.unbooked.add(first.symbol)
            if first.filled_qty > EPS and self.fill_qty[coid] < first.filled_qty - EPS:
                self.unbooked.add(first.symbol)
                self.report.lost.append(f"order {coid} ({first.symbol} {first.side.value} {first.filled_qty:g}): "
                                        f"broker fill not in the trade log (book has {self.fill_qty[coid]:g})")
        for coid in sorted(set(self.fill_qty) - set(by_coid)):
            self.breach(f"fill {coid} in the trade log with no broker order")
        for did, row in sorted(self.snap.decisions.items()):
            if row.get("status") == DecisionStatus.PENDING.value:
                self.report.lost.append(f"decision {did} ({row.get('symbol')} {row.get('action')}) still PENDING")

    # -- what authorised each order --------------------------------------------------------------------------
    def _classify(self, o: BrokerOrder) -> None:
        m = _COID.match(o.client_order_id)
        assert m is not None  # the pattern matches any non-empty id
        base, stop_close, retry = m["base"], bool(m["stop"]), bool(m["retry"])
        at = self.fill_time.get(o.client_order_id)
        if stop_close:
            self._add_close(o, f"{base}-x", base, at)
            return
        rec = self.snap.decisions.get(base)
        if rec is None:
            self.breach(f"order {o.client_order_id} ({o.symbol} {o.side.value} {o.qty:g}): no decision record")
            return
        action, symbol = str(rec.get("action")), str(rec.get("symbol"))
        if o.symbol != symbol:
            self.breach(f"order {o.client_order_id}: symbol {o.symbol}, its record says {symbol}")
            return
        closes = (action == "SELL" and not self.ctx.allow_short) or (retry and action in ("BUY", "SELL"))
        if closes:
            want = OrderSide.SELL if action == "SELL" else OrderSide.BUY
            if o.side != want:
                self.breach(f"close order {o.client_order_id}: side {o.side.value}, its record says {action}")
                return
            self._add_close(o, base, None, at)
            return
        self._entry(o, rec, action, at)

    def _entry(self, o: BrokerOrder, rec: dict[str, Any], action: str, at: datetime | None) -> None:
        coid = o.client_order_id
        if action not in ("BUY", "SELL") or o.side.value != action.lower():
            self.breach(f"entry order {coid}: side {o.side.value}, its record says {action}")
            return
        status = rec.get("status")
        if status != DecisionStatus.EXECUTED.value:
            self.breach(f"entry order {coid} ({o.symbol}): its decision is {status}, not EXECUTED "
                        f"({str(rec.get('status_reason', ''))[:80]})")
        if o.symbol not in self.ctx.universe:
            self.breach(f"entry order {coid}: {o.symbol} is outside the universe")
        if at is None:  # no fill in the trade log: counted lost already; no time to place it
            return
        price = o.filled_avg_price if o.filled_avg_price is not None else 0.0
        self.entries[coid] = _Entry(coid, o.symbol, o.filled_qty, price, o.fee, at)

    def _add_close(self, o: BrokerOrder, base: str, entry_id: str | None, at: datetime | None) -> None:
        if o.side == OrderSide.BUY and not self.ctx.allow_short:
            self.breach(f"close order {o.client_order_id}: a buy closes nothing in a long-only book")
            return
        c = self.closes.setdefault(base, _Close(base, o.symbol, entry_id))
        if c.symbol != o.symbol:
            self.breach(f"close order {o.client_order_id}: symbol {o.symbol}, the close began in {c.symbol}")
            return
        c.qty += o.filled_qty
        c.notional += o.filled_qty * (o.filled_avg_price or 0.0)
        c.fee += o.fee
        if at is not None:
            c.at = at if c.at == _FAR else max(c.at, at)

    def _match_closes(self) -> None:
        pnl = {out.decision_id: out for out in self.snap.outcomes}
        for c in sorted(self.closes.values(), key=lambda c: (c.at, c.base)):
            if c.entry_id is not None:
                entry = self.entries.get(c.entry_id)
                if entry is None or entry.symbol != c.symbol:
                    self.breach(f"close {c.base} ({c.symbol}): its entry {c.entry_id} was never filled")
                    continue
            else:
                open_entries = [e for e in self.entries.values() if e.symbol == c.symbol and e.closed_qty <= EPS
                                and e.at <= c.at]
                if not open_entries:
                    self.breach(f"close {c.base} ({c.symbol} sell {c.qty:g}): no position to close")
                    continue
                entry = min(open_entries, key=lambda e: (e.at, e.coid))
            if entry.closed_qty > EPS:
                self.breach(f"close {c.base} ({c.symbol}): the position of {entry.coid} was closed already")
                continue
            if c.qty > entry.qty + EPS:
                self.breach(f"close {c.base} ({c.symbol}): sells {c.qty:g}, the position held {entry.qty:g}")
            entry.closed_qty, entry.closed_at, entry.close = c.qty, c.at, c
            out = pnl.get(entry.coid)
            if out is not None:
                entry.pnl = out.pnl

    # -- limits --------------------------------------------------------------------------------------------
    def _notional(self) -> None:
        lim, ctx = self.ctx.limits, self.ctx
        booked = sorted((e.closed_at, e.pnl) for e in self.entries.values() if e.pnl is not None)
        run, best = 0.0, 0.0
        for _, p in booked:
            run += p or 0.0
            best = max(best, run)
        bound = ctx.initial_equity + best
        slack = 1 + ctx.slippage_bps / 10_000 + 1e-6
        for e in self.entries.values():
            notional = e.qty * e.price
            cap = lim.max_position_pct / 100 * bound
            if notional > cap * slack + EPS:
                self.breach(f"entry {e.coid} ({e.symbol}): notional {notional:,.2f} above max_position_pct "
                            f"{lim.max_position_pct:g}% of the equity bound {bound:,.2f} ({cap:,.2f})")
            if notional > lim.max_order_notional * slack + EPS:
                self.breach(f"entry {e.coid} ({e.symbol}): notional {notional:,.2f} above max_order_notional "
                            f"{lim.max_order_notional:,.2f}")

    def _timeline(self) -> None:
        """Open positions, positions per symbol and cash over time (closes first at equal times)."""
        lim = self.ctx.limits
        events: list[tuple[datetime, int, _Entry]] = []
        for e in self.entries.values():
            events.append((e.at, 1, e))
            if e.closed_qty > EPS:
                events.append((e.closed_at, 0, e))
        events.sort(key=lambda ev: (ev[0], ev[1], ev[2].coid))
        open_now: set[str] = set()
        per_symbol: defaultdict[str, set[str]] = defaultdict(set)
        cash = self.ctx.initial_equity
        seen_open = seen_symbol = seen_cash = False
        closed_first: set[str] = set()  # closed at the very time it opened: never counted open
        for at, kind, e in events:
            if kind == 0:
                if e.coid not in open_now:
                    closed_first.add(e.coid)
                open_now.discard(e.coid)
                per_symbol[e.symbol].discard(e.coid)
                cash += e.close.notional - e.close.fee if e.close is not None else 0.0
                continue
            cash -= e.qty * e.price + e.fee
            if e.coid in closed_first:
                continue
            open_now.add(e.coid)
            per_symbol[e.symbol].add(e.coid)
            if len(open_now) > lim.max_open_positions and not seen_open:
                seen_open = True
                self.breach(f"{len(open_now)} positions open at {at.isoformat()} (max_open_positions "
                            f"{lim.max_open_positions}): {sorted(open_now)}")
            if len(per_symbol[e.symbol]) > 1 and not seen_symbol:
                seen_symbol = True
                self.breach(f"{len(per_symbol[e.symbol])} positions in {e.symbol} at {at.isoformat()}: "
                            f"{sorted(per_symbol[e.symbol])}")
            if cash < -EPS and not seen_cash:
                seen_cash = True
                self.breach(f"cash {cash:,.2f} below zero after entry {e.coid} at {at.isoformat()}")
        per_minute = Counter(e.at.strftime("%Y-%m-%dT%H:%M") for e in self.entries.values())
        for minute, n in sorted(per_minute.items()):
            if n > lim.max_orders_per_minute:
                self.breach(f"{n} entries in the minute {minute} (max_orders_per_minute {lim.max_orders_per_minute})")

    def _daily_loss_and_kill(self) -> None:
        lim, ctx = self.ctx.limits, self.ctx
        closed = sorted((e.closed_at, e.pnl or 0.0) for e in self.entries.values() if e.pnl is not None)
        for e in self.entries.values():
            for start, end in ctx.kill_windows:
                if start <= e.at < end:
                    self.breach(f"entry {e.coid} ({e.symbol}) at {e.at.isoformat()} while the kill switch was on")
            day = e.at.date()
            before_day = sum(p for t, p in closed if t.date() < day)
            today = sum(p for t, p in closed if t.date() == day and t < e.at)
            floor = -lim.daily_loss_limit_pct / 100 * (ctx.initial_equity + before_day)
            if today <= floor + EPS and today < 0:
                self.breach(f"entry {e.coid} ({e.symbol}) at {e.at.isoformat()} after the day's realised loss "
                            f"{today:,.2f} reached the limit {floor:,.2f}")

    def _open_positions(self) -> None:
        for p in self.snap.positions:
            if p.stop_loss is None or not math.isfinite(p.stop_loss) or p.stop_loss <= 0:
                self.breach(f"position {p.symbol} ({p.decision_id}) without a protective stop")
            if not 1 <= p.time_limit_bars <= self.ctx.max_horizon_bars:
                self.breach(f"position {p.symbol}: horizon {p.time_limit_bars} bars outside "
                            f"[1, {self.ctx.max_horizon_bars}]")
        net: defaultdict[str, float] = defaultdict(float)
        for o in self.snap.orders:
            net[o.symbol] += o.filled_qty if o.side == OrderSide.BUY else -o.filled_qty
        book = {p.symbol: p.qty for p in self.snap.positions}
        for sym in sorted(set(net) | set(book)):
            if abs(net[sym] - book.get(sym, 0.0)) > EPS and sym not in self.unbooked:
                self.report.lost.append(f"{sym}: the broker holds {net[sym]:g}, the book {book.get(sym, 0.0):g}")


def audit(snap: Snapshot, ctx: AuditContext) -> AuditReport:
    return _Audit(snap, ctx).run()
