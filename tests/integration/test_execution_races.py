"""Concurrent closes against the trade log on the embedded AWS: the account's stop-out streak is never lost."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mytrader.adapters.tradelog import TradeLog
from mytrader.broker import BrokerOrder, ExitLegs
from mytrader.config import RiskLimits, TradingConfig
from mytrader.models import Order, OrderSide, Position
from mytrader.stack_spec import TRADE_LOG
from mytrader.usecases.execute import ExecDeps, ExecutionOutcome, close_position
from tests.integration.execution_fakes import Quotes, seed_position

NOW = datetime(2014, 6, 2, 20, 5, tzinfo=UTC)


class FilledBroker:
    """Every close order is already filled at 90 (a stop-out below the entry at 100)."""

    name = "paper"

    def submit(self, order: Order, quote: float, fill_price: float | None = None,
               exits: ExitLegs | None = None) -> BrokerOrder:
        raise AssertionError(f"{order.client_order_id}: the close order is filled already, nothing is submitted")

    def cancel(self, broker_order_id: str) -> None:
        raise AssertionError("nothing rests at this broker")

    def replace_stop(self, broker_order_id: str, stop_price: float) -> BrokerOrder:
        raise AssertionError("nothing rests at this broker")

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder:
        symbol = client_order_id.split("-")[1]
        return BrokerOrder(broker_order_id=f"b-{client_order_id}", client_order_id=client_order_id, symbol=symbol,
                           side=OrderSide.SELL, qty=10, status="filled", filled_qty=10, filled_avg_price=90.0)


class StaleReadTradeLog(TradeLog):
    """Runs `meanwhile` (another close) right after its first account read: the read it returns is stale."""

    def __init__(self, client, table: str, meanwhile):
        super().__init__(client, table)
        self.meanwhile, self.reads = meanwhile, 0

    def account_state(self):
        state = super().account_state()
        self.reads += 1
        if self.meanwhile:
            run, self.meanwhile = self.meanwhile, None
            run()
        return state


def open_position(tl: TradeLog, symbol: str) -> Position:
    """10 shares at 100 (fee 0.1), entered the way the executor enters: recorded, reserved, filled."""
    return seed_position(tl, symbol, qty=10, price=100.0, fee=0.1, at=NOW - timedelta(days=3), stop=90.0,
                         target=120.0)


def test_two_stop_outs_racing_both_count_towards_the_streak(stack):
    # Given an account one stop-out into a streak of three, holding two positions
    ddb, table = stack.client("dynamodb"), TRADE_LOG.name(stack.prefix)
    plain = TradeLog(ddb, table)
    plain.ensure_account(100_000.0)
    first, second = open_position(plain, "AAA"), open_position(plain, "BBB")
    third = open_position(plain, "CCC")
    close_position(third, "close-CCC-1", NOW, "stop_loss", ExecDeps(  # the first stop-out of the streak
        tradelog=plain, broker=FilledBroker(), quotes=Quotes(), max_age=timedelta(hours=1),
        cfg=TradingConfig(risk=RiskLimits(max_consecutive_stopouts=3, cooldown_bars=5))))
    assert plain.account_state().consecutive_stopouts == 1
    cfg = TradingConfig(risk=RiskLimits(max_consecutive_stopouts=3, cooldown_bars=5))

    def deps(tl: TradeLog) -> ExecDeps:
        return ExecDeps(tradelog=tl, broker=FilledBroker(), quotes=Quotes(), cfg=cfg, max_age=timedelta(hours=1))

    # When both stop out at once: the second close commits between the first close's read and its write
    racing = StaleReadTradeLog(ddb, table, meanwhile=lambda: close_position(
        second, "close-BBB-1", NOW, "stop_loss", deps(plain)))
    result = close_position(first, "close-AAA-1", NOW, "stop_loss", deps(racing))

    # Then the first close re-read the account, the streak reached three, and the cooldown started
    account = plain.account_state()
    assert result.result is ExecutionOutcome.EXECUTED and racing.reads == 2
    assert account.consecutive_stopouts == 0 and account.cooldown_until is not None
    assert account.open_positions == 0 and plain.positions() == []
    assert round(account.cash, 2) == round(100_000.0 - 3 * 1000.1 + 3 * (900.0 - 0.0), 2)  # CCC began the streak
