"""In-memory stand-ins for the executor's collaborators that are not AWS: a broker the test scripts, fixed
quotes, run-time parameters. The trade log itself is the real one, on the embedded AWS."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mytrader.adapters.tradelog import ReserveParams, TradeLog
from mytrader.broker import BrokerError, BrokerOrder
from mytrader.config import RiskLimits, TradingConfig
from mytrader.errors import DataQualityError
from mytrader.models import Action, Fill, Mode, Order, OrderSide, Position, StrategySignal, TradeDecision
from mytrader.stack_spec import TRADE_LOG
from mytrader.usecases.admission import DecisionMessage, message_for
from mytrader.usecases.execute import ExecDeps

DECIDED = datetime(2014, 6, 2, 19, 55, tzinfo=UTC)
NOW = datetime(2014, 6, 3, 14, 0, tzinfo=UTC)  # the next session, market open
UNIVERSE = frozenset({"ABC", "XYZ", "NVDA", "ORCL", "AAA", "BBB"})


class ScriptedBroker:
    """Accepts orders (unfilled, or filled at once with `fill_on_submit`), or fails them with `refuse`; the
    test then moves each order along as the broker would with `report`."""

    name = "alpaca"

    def __init__(self, fill_on_submit: float | None = None, refuse: BrokerError | None = None):
        self.orders: dict[str, BrokerOrder] = {}
        self.fill_on_submit, self.refuse = fill_on_submit, refuse

    def submit(self, order: Order, quote: float, fill_price: float | None = None) -> BrokerOrder:
        if self.refuse is not None:
            raise self.refuse
        filled = self.fill_on_submit is not None
        self.orders[order.client_order_id] = BrokerOrder(
            broker_order_id=f"b-{order.client_order_id}", client_order_id=order.client_order_id, symbol=order.symbol,
            side=order.side, qty=order.qty, status="filled" if filled else "accepted",
            filled_qty=order.qty if filled else 0.0, filled_avg_price=self.fill_on_submit)
        return self.orders[order.client_order_id]

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        return self.orders.get(client_order_id)

    def positions(self) -> dict[str, float]:
        held: dict[str, float] = {}
        for o in self.orders.values():
            held[o.symbol] = held.get(o.symbol, 0.0) + o.filled_qty * (1 if o.side.value == "buy" else -1)
        return {sym: q for sym, q in held.items() if q}

    def report(self, coid: str, status: str, filled_qty: float = 0.0, avg: float | None = None,
               fee: float = 0.0) -> None:
        self.orders[coid] = self.orders[coid].model_copy(update={
            "status": status, "filled_qty": filled_qty, "filled_avg_price": avg, "fee": fee})


class Quotes:
    def __init__(self, price: float | None = 100.0):
        self.price = price

    def quote(self, symbol: str, at: datetime) -> float:
        if self.price is None:
            raise DataQualityError(symbol, "no trade in the last 15 minutes")
        return self.price


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
