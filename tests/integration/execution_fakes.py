"""In-memory stand-ins for the executor's collaborators that are not AWS: a broker the test scripts, fixed
quotes, run-time parameters. The trade log itself is the real one, on the embedded AWS."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from mytrader.adapters.aws.s3_market_data import session_quote
from mytrader.adapters.tradelog import ReserveParams, TradeLog
from mytrader.broker import (
    BROKER_DONE,
    BrokerAccount,
    BrokerError,
    BrokerErrorKind,
    BrokerOrder,
    ExitLegs,
    FeeActivity,
    MarketClock,
)
from mytrader.config import RiskLimits, TradingConfig
from mytrader.errors import DataQualityError, DataUnavailable
from mytrader.market.calendar import nyse
from mytrader.market.series import BarSeries
from mytrader.models import Action, Fill, Mode, Order, OrderSide, Position, StrategySignal, TradeDecision
from mytrader.ports import QueuedMessage
from mytrader.stack_spec import TRADE_LOG
from mytrader.usecases.admission import DecisionMessage, message_for
from mytrader.usecases.execute import ExecDeps

DECIDED = datetime(2014, 6, 2, 19, 55, tzinfo=UTC)
NOW = datetime(2014, 6, 3, 14, 0, tzinfo=UTC)  # the next session, market open
UNIVERSE = frozenset({"ABC", "XYZ", "NVDA", "ORCL", "AAA", "BBB"})


class ScriptedBroker:
    """Accepts orders (unfilled, or filled at once with `fill_on_submit`), or fails them with `refuse`; the
    test then moves each order along as the broker would with `report` (and a bracket's legs with `report_leg`).
    An entry sent with exits becomes a bracket whose stop and target legs rest, as at Alpaca."""

    name = "alpaca"

    def __init__(self, fill_on_submit: float | None = None, refuse: BrokerError | None = None):
        self.orders: dict[str, BrokerOrder] = {}
        self.fill_on_submit, self.refuse = fill_on_submit, refuse
        self.canceled: list[str] = []  # broker order ids, in the order they were cancelled
        self.events: list[tuple[str, str]] = []  # ("submit", client order id) and ("cancel", broker order id)
        self.lookups_fail: dict[str, BrokerError] = {}  # client order id -> the error its lookup raises

    def submit(self, order: Order, quote: float, fill_price: float | None = None,
               exits: ExitLegs | None = None) -> BrokerOrder:
        if self.refuse is not None:
            raise self.refuse
        filled = self.fill_on_submit is not None
        coid = order.client_order_id
        self.events.append(("submit", coid))
        legs = [] if exits is None else [
            BrokerOrder(broker_order_id=f"b-{coid}-{name}", client_order_id=f"{coid}-{name}", symbol=order.symbol,
                        side=OrderSide.SELL if order.side == OrderSide.BUY else OrderSide.BUY, qty=order.qty,
                        status="accepted", leg=name, stop_price=price if name == "stop_loss" else None,
                        limit_price=price if name == "take_profit" else None)
            for name, price in (("stop_loss", exits.stop_loss), ("take_profit", exits.take_profit)) if price]
        self.orders[coid] = BrokerOrder(
            broker_order_id=f"b-{coid}", client_order_id=coid, symbol=order.symbol, side=order.side, qty=order.qty,
            status="filled" if filled else "accepted", filled_qty=order.qty if filled else 0.0,
            filled_avg_price=self.fill_on_submit, filled_at=order.submitted_at if filled else None,
            order_class="bracket" if legs else "simple", legs=legs)
        return self.orders[coid]

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        if client_order_id in self.lookups_fail:
            raise self.lookups_fail[client_order_id]
        return self.orders.get(client_order_id)

    def cancel(self, broker_order_id: str) -> None:
        self.canceled.append(broker_order_id)
        self.events.append(("cancel", broker_order_id))
        for coid, o in self.orders.items():
            legs = [leg.model_copy(update={"status": "canceled"})
                    if leg.broker_order_id == broker_order_id and leg.status not in BROKER_DONE else leg
                    for leg in o.legs]
            self.orders[coid] = o.model_copy(update={"legs": legs})

    def replace_stop(self, broker_order_id: str, stop_price: float) -> BrokerOrder:
        raise BrokerError("not scripted", retryable=False)

    def positions(self) -> dict[str, float]:
        held: dict[str, float] = {}
        for o in self.orders.values():
            for part in (o, *o.legs):
                held[o.symbol] = held.get(o.symbol, 0.0) + part.filled_qty * (1 if part.side.value == "buy" else -1)
        return {sym: q for sym, q in held.items() if q}

    def report(self, coid: str, status: str, filled_qty: float = 0.0, avg: float | None = None,
               fee: float = 0.0, at: datetime | None = None) -> None:
        self.orders[coid] = self.orders[coid].model_copy(update={
            "status": status, "filled_qty": filled_qty, "filled_avg_price": avg, "fee": fee, "filled_at": at})

    def report_leg(self, coid: str, leg: str, status: str, filled_qty: float = 0.0, avg: float | None = None,
                   fee: float = 0.0, at: datetime | None = None) -> None:
        entry = self.orders[coid]
        legs = [x.model_copy(update={"status": status, "filled_qty": filled_qty, "filled_avg_price": avg, "fee": fee,
                                     "filled_at": at}) if x.leg == leg else x for x in entry.legs]
        self.orders[coid] = entry.model_copy(update={"legs": legs})


class AccountBroker(ScriptedBroker):
    """A scripted broker that also reports its account, clock and fee activities (as Alpaca does)."""

    def __init__(self, fill_on_submit: float | None = None, cash: float = 100_000.0) -> None:
        super().__init__(fill_on_submit)
        self.state = BrokerAccount(status="ACTIVE", trading_blocked=False, account_blocked=False,
                                   buying_power=2 * cash, cash=cash, equity=cash)
        self.fees: list[FeeActivity] = []
        self.account_error: BrokerError | None = None
        self.market_clock: MarketClock | None = None

    def account(self) -> BrokerAccount:
        if self.account_error is not None:
            raise self.account_error
        return self.state

    def clock(self) -> MarketClock:
        """`market_clock` when a test sets one (an unscheduled closure); else unreadable, so the calendar decides."""
        if self.market_clock is None:
            raise BrokerError("clock unavailable", retryable=True, kind=BrokerErrorKind.UNAVAILABLE)
        return self.market_clock

    def fee_activities(self, since: datetime) -> list[FeeActivity]:
        return [f for f in self.fees if f.at >= since]


class Quotes:
    """A fixed price; None: no usable quote (bad data); `unavailable`: the source cannot answer now (throttled)."""

    def __init__(self, price: float | None = 100.0, unavailable: bool = False):
        self.price, self.unavailable = price, unavailable
        self.asked = 0

    def quote(self, symbol: str, at: datetime) -> float:
        self.asked += 1
        if self.unavailable:
            raise DataUnavailable(symbol, "HTTP 429 after the bounded retries")
        if self.price is None:
            raise DataQualityError(symbol, "no trade in the last 15 minutes")
        return self.price


class SeriesMarket:
    """Daily bars in memory, served as S3MarketData serves its files: the whole series, the last bar complete at a
    time, and the paper quote (the session's open while it runs, the last close after it)."""

    def __init__(self, *series: BarSeries):
        self.series = {s.symbol: s for s in series}

    def full(self, symbol: str) -> BarSeries:
        return self.series[symbol]

    def bar_at(self, symbol: str, at: datetime) -> int:
        return int(self.series[symbol].ts.searchsorted(int(at.timestamp()), side="right")) - 1

    def quote(self, symbol: str, at: datetime) -> float:
        return session_quote(self.series[symbol], symbol, at)


def daily_bars(symbol: str, bars: dict[date, tuple[float, float, float, float]]) -> BarSeries:
    """Bars (open, high, low, close) stamped at their session's close."""
    days = sorted(bars)
    ohlc = [bars[d] for d in days]
    o, h, lo, c = ([row[k] for row in ohlc] for k in range(4))
    return BarSeries.from_arrays(symbol, [int(nyse().session_close(d).timestamp()) for d in days], o, h, lo, c,
                                 [1e6] * len(days))


class SentQueue:
    """The decisions queue: what the outcomes' re-send sweep sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, decision: TradeDecision) -> None:
        self.sent.append(decision.decision_id)


class EmptyDlq:
    """A DLQ with nothing in it, counting the sweeps that looked."""

    def __init__(self) -> None:
        self.receives = 0

    def receive(self) -> list[QueuedMessage]:
        self.receives += 1
        return []

    def delete(self, messages: list[QueuedMessage]) -> None:
        raise AssertionError("nothing to delete")


def sell(tl: TradeLog, decision_id: str = "d-sell", symbol: str = "ABC", at: datetime = DECIDED) -> TradeDecision:
    """A SELL decision (a signal exit of the position held), recorded PENDING."""
    d = buy(tl, symbol, decision_id, record=False).model_copy(update={
        "action": Action.SELL, "stop_loss": None, "take_profit": None, "position_size_pct": 0.0, "bar_ts": at,
        "decided_at": at})
    tl.put_decision(d)
    return d


def trade_log(stack) -> TradeLog:
    tl = TradeLog(stack.client("dynamodb"), TRADE_LOG.name(stack.prefix))
    tl.ensure_account(100_000.0)
    return tl


def exec_deps(tl: TradeLog, broker: ScriptedBroker, quotes: Quotes | None = None,
              cfg: TradingConfig | None = None) -> ExecDeps:
    return ExecDeps(tradelog=tl, broker=broker, quotes=quotes or Quotes(), cfg=cfg or TradingConfig(),
                    max_age=timedelta(days=2), universe=UNIVERSE)


def pointer(tl: TradeLog, decision: TradeDecision) -> DecisionMessage:
    """The queue message the decision cycle sends for a recorded decision: a pointer with the record's digest."""
    row = tl.get_decision_row(decision.decision_id)
    assert row is not None, f"{decision.decision_id} is not recorded"
    return message_for(decision, str(row["doc"]))


def buy(tl: TradeLog, symbol: str = "ABC", decision_id: str = "d-abc", record: bool = True) -> TradeDecision:
    """A BUY decision for 1 % of equity, recorded PENDING as the decision cycle leaves it (unless `record` is
    False: a test that changes it first records it itself)."""
    decision = TradeDecision(decision_id=decision_id, symbol=symbol, bar_ts=DECIDED, decided_at=DECIDED,
                             config_version="v", mode=Mode.CONSENSUS, action=Action.BUY, confidence=0.8,
                             position_size_pct=1.0, reference_price=100.0, stop_loss=95.0, take_profit=110.0,
                             time_horizon_bars=10, sizing_equity=100_000.0,
                             strategy=StrategySignal(action=Action.BUY, confidence=0.7, reason="r"))
    if record:
        tl.put_decision(decision)
    return decision


def position_of(tl: TradeLog, symbol: str = "ABC") -> Position:
    """The book's position in `symbol`, which must be there."""
    pos = tl.position(symbol)
    assert pos is not None, f"no position in {symbol}"
    return pos


def seed_position(tl: TradeLog, symbol: str, *, qty: float, price: float, fee: float, at: datetime,
                  stop: float | None = None, target: float | None = None) -> Position:
    """A position entered the way the executor enters one — the decision recorded, the slot and the symbol
    reserved, the fill booked — through the trade log's own intents."""
    decision = TradeDecision(decision_id=f"d-{symbol}", symbol=symbol, bar_ts=at, decided_at=at, config_version="v",
                             mode=Mode.CONSENSUS, action=Action.BUY, confidence=0.8, position_size_pct=1.0,
                             reference_price=price, stop_loss=stop, take_profit=target, time_horizon_bars=10,
                             strategy=StrategySignal(action=Action.BUY, confidence=0.7, reason="seed"))
    tl.put_decision(decision)
    tl.begin_day(at.date().isoformat())
    order = Order(client_order_id=decision.decision_id, symbol=symbol, side=OrderSide.BUY, qty=qty, submitted_at=at)
    tl.reserve_entry(decision.decision_id, order, price, ReserveParams(
        expected=tl.account_state(), limits=RiskLimits(max_position_pct=100.0, max_order_notional=1e9), now=at,
        notional=qty * price))
    pos = Position(symbol=symbol, qty=qty, avg_price=price, opened_at=at, decision_id=decision.decision_id,
                   stop_loss=stop, take_profit=target)
    fill = Fill(client_order_id=order.client_order_id, symbol=symbol, side=OrderSide.BUY, qty=qty, price=price, fee=fee,
                filled_at=at)
    assert tl.record_entry_fill(decision, order, fill, pos, price, "filled")
    return pos
