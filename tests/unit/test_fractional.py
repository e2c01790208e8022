"""Fractional shares as a setting: the ledger's sizing, the config hash and file, the book-to-broker comparison, and
the issue's probe (DJIA, priced near 12,000 a share, could not size most entries in whole shares)."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mytrader.adapters.tradelog import TradeLog
from mytrader.adapters.tradelog.store import MemoryStore
from mytrader.app.project_config import ProjectConfig
from mytrader.app.settings import PipelineSettings
from mytrader.backtest import run_modes
from mytrader.config import RiskLimits, TradingConfig
from mytrader.ledger import FRACTION, MIN_FRACTIONAL_NOTIONAL, Limit, entry_verdict, order_qty, sizes_fractional
from mytrader.market.sources import parse_price_csv
from mytrader.models import OrderSide
from mytrader.risk import AccountState
from mytrader.usecases.execute import ExecDeps, ExecutionOutcome, execute_decision
from mytrader.usecases.manage import PositionMismatch, position_mismatches
from tests.conftest import shared_file
from tests.integration.execution_fakes import NOW as EXEC_NOW
from tests.integration.execution_fakes import UNIVERSE, Quotes, ScriptedBroker, buy, pointer, seed_position

NOW = datetime(2020, 3, 2, 21, 10, tzinfo=UTC)
STEP = float(FRACTION)


def verdict(price: float, *, fractional: bool, pct: float = 10.0, cash: float = 100_000.0):
    acct = AccountState(cash=cash, book_equity=100_000.0, day="2020-03-02", day_start_equity=100_000.0)
    return entry_verdict(RiskLimits(), acct, size_pct=pct, price=price, now=NOW, opens_in_time=True,
                         kill_switch=False, fractional=fractional)


def test_an_index_priced_entry_is_refused_in_whole_shares_and_sized_in_fractions_with_the_setting():
    # Given 10% of 100,000 to spend on a 12,345.67 share
    whole, fraction = verdict(12_345.67, fractional=False), verdict(12_345.67, fractional=True)
    # Then whole shares cannot size it, and fractions buy 10,000 / 12,345.67 rounded down to a millionth
    assert not whole.approved and whole.limit == Limit.SIZE and whole.reason.startswith("size below one share")
    assert fraction.approved and fraction.qty == 0.810000
    # and whole-share sizing is what it was when the setting is off
    assert verdict(100.0, fractional=False).qty == 100.0 and verdict(101.0, fractional=False).qty == 99.0


def test_only_long_entries_are_sized_in_fractions():
    # no broker lends a fraction of a share to sell short (Alpaca: fractional orders are long only)
    assert sizes_fractional(True, OrderSide.BUY) and not sizes_fractional(True, OrderSide.SELL)
    assert not sizes_fractional(False, OrderSide.BUY)


def test_a_fraction_below_the_smallest_order_is_refused_naming_the_size_limit():
    v = verdict(12_345.67, fractional=True, cash=MIN_FRACTIONAL_NOTIONAL / 2)
    assert not v.approved and v.limit == Limit.SIZE and "smallest fractional order" in v.reason


@given(notional=st.floats(1.0, 1e7), price=st.floats(0.01, 1e6))
def test_a_fractional_quantity_never_spends_more_than_its_notional_and_wastes_less_than_one_step(notional, price):
    qty = order_qty(notional, price, fractional=True)
    assert qty * price <= notional * (1 + 1e-12)
    assert notional - qty * price < STEP * price + notional * 1e-12
    assert Decimal(repr(qty)) == Decimal(repr(qty)).quantize(FRACTION)  # on the millionth, as the broker is sent it


def test_a_decimal_ratio_is_not_rounded_down_by_its_binary_float():
    assert order_qty(30.0, 100.0, fractional=True) == 0.3 and order_qty(10.0, 0.0, fractional=True) == 0.0


def test_the_setting_is_in_the_config_hash_the_file_and_the_pipelines_settings():
    # Given the file's setting on
    cfg = ProjectConfig.model_validate({"fractional_shares": True})
    trading = cfg.trading_config()
    # Then the decision settings carry it, their version (in every decision id) changes with it, and the deployed
    # functions build the same settings from their environment
    assert trading.fractional_shares and trading.version != TradingConfig().version
    assert json.loads(cfg.trading_json())["fractional_shares"] is True
    pipeline = PipelineSettings.from_env({"TRADE_LOG_TABLE": "t", **cfg.pipeline_env()})
    assert pipeline.trading_config(trading.mode.value, trading.advisor.model_id).version == trading.version


class _Broker:
    def __init__(self, held: dict[str, float]):
        self.held = held

    def positions(self) -> dict[str, float]:
        return self.held


def _book() -> TradeLog:
    tl = TradeLog(MemoryStore())
    tl.ensure_account(100_000.0)
    return tl


def test_the_book_to_broker_comparison_allows_for_the_brokers_rounding_of_fractions():
    # Given fractional positions in the book, and the broker's report of one rounded at its 9th decimal
    tl = _book()
    seed_position(tl, "ABC", qty=1.234567, price=100.0, fee=0.0, at=NOW)
    seed_position(tl, "XYZ", qty=2.5, price=100.0, fee=0.0, at=NOW)
    # Then the rounding is no mismatch; a tenth of a share is
    mismatches = position_mismatches(tl, _Broker({"ABC": 1.2345670004, "XYZ": 2.4}))
    assert mismatches == [PositionMismatch(symbol="XYZ", book=2.5, broker=2.4)]


@pytest.mark.parametrize(("fractional", "result", "qty"), [(False, ExecutionOutcome.REJECTED, None),
                                                            (True, ExecutionOutcome.EXECUTED, 0.083333)])
def test_the_executor_sizes_as_the_backtester_does(fractional, result, qty):
    # Given a BUY of 1 % of 100,000 in a 12,000 share, executed with the setting off or on
    tl = _book()
    decision = buy(tl, record=False).model_copy(update={"reference_price": 12_000.0, "stop_loss": 11_400.0,
                                                        "take_profit": 13_200.0})
    tl.put_decision(decision)
    deps = ExecDeps(tradelog=tl, broker=ScriptedBroker(fill_on_submit=12_000.0), quotes=Quotes(12_000.0),
                    cfg=TradingConfig(fractional_shares=fractional), max_age=timedelta(days=2), universe=UNIVERSE)
    out = execute_decision(pointer(tl, decision), EXEC_NOW, deps)
    # Then whole shares refuse it as below one share, and fractions buy 1,000 / 12,000 to the millionth
    assert out.result == result and out.qty == qty
    assert out.limit == (None if fractional else Limit.SIZE)


def test_on_djia_the_entries_refused_as_below_one_share_are_placed_with_fractions():
    # Given the DJIA index as a price series (about 8,000 to 13,500 per "share"), the default strategy alone
    djia = {"DJIA": parse_price_csv(shared_file("djia-daily-2008-2012.csv").read_text(), "DJIA")}
    whole = run_modes(djia, ["baseline"], TradingConfig())["baseline"]
    fraction = run_modes(djia, ["baseline"], TradingConfig(fractional_shares=True))["baseline"]
    # Then whole shares refuse many entries as below one share, and fractional sizing places every one of them
    assert whole.rejections["size"] >= 20
    assert fraction.rejections["size"] == 0
    # (all but a few: a signal that comes while a position whole shares never opened is still held opens nothing)
    assert len(fraction.trades) >= 0.9 * (len(whole.trades) + whole.rejections["size"])
    assert all(0 < t.qty < 2 and t.qty != int(t.qty) for t in fraction.trades)
