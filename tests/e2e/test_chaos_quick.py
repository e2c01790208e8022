"""`make chaos --quick` in the suite: a few cases of every class through the same runner, and proof that its audit
can fail."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from mytrader.adapters.paper_broker import PaperBroker
from mytrader.adapters.tradelog import TradeLog
from mytrader.config import RiskLimits
from mytrader.models import Action, Fill, Mode, Order, OrderSide, Position, StrategySignal, TradeDecision
from mytrader.portfolio import Costs
from mytrader_tools.chaos.audit import AuditContext, audit, take_snapshot
from mytrader_tools.chaos.runner import all_cases, run

AT = datetime(2011, 3, 2, 14, 35, tzinfo=UTC)


def test_the_quick_subset_finds_no_breach_no_loss_no_duplicate(tmp_path):
    # When the quick subset runs (a few cases of each class, one embedded AWS, a stack per case)
    summary = run(tmp_path, quick=True)
    # Then every class ran, and the audit of every case is clean
    ran = summary["classes"]
    assert all(ran[name]["cases"] >= 3 for name in ("hostile_messages", "races", "parameter_faults"))
    bad = [(r["class"], r["name"], r["details"]) for r in summary["cases"]
           if r["breaches"] or r["lost"] or r["duplicates"]]
    assert bad == [] and summary["ok"]
    assert json.loads((tmp_path / "summary.json").read_text())["ok"] is True


def test_every_full_class_has_ten_named_cases():
    for name, cases in all_cases().items():
        assert len(cases) >= 10, name
        assert len({c.name for c in cases}) == len(cases), name


def _decision(decision_id: str, symbol: str) -> TradeDecision:
    return TradeDecision(decision_id=decision_id, symbol=symbol, bar_ts=AT, decided_at=AT, config_version="t",
                         mode=Mode.BASELINE, action=Action.BUY, confidence=0.8, position_size_pct=10.0,
                         reference_price=100.0, stop_loss=95.0, take_profit=110.0, time_horizon_bars=10,
                         strategy=StrategySignal(action=Action.BUY, confidence=0.7, reason="t"))


def _order(coid: str, symbol: str, side: OrderSide = OrderSide.BUY, qty: float = 10) -> Order:
    return Order(client_order_id=coid, symbol=symbol, side=side, qty=qty, submitted_at=AT)


def test_the_audit_counts_a_duplicate_an_unauthorised_order_and_what_the_book_lost():
    # Given a book (the in-memory trade log, the real paper broker on it) where a decision still PENDING was ordered
    # twice, an order names no decision, another opens a symbol outside the universe, and a sale closes nothing
    tl = TradeLog.in_memory()
    tl.ensure_account(100_000.0)
    tl.put_decision(_decision("d-twice", "NVDA"))
    tl.put_decision(_decision("d-outside", "IBM"))
    broker = PaperBroker(tl, Costs(1, 2))
    broker.submit(_order("d-twice", "NVDA"), 100.0)
    broker.submit(_order("d-twice", "NVDA"), 100.0)
    broker.submit(_order("forged-1", "NVDA"), 100.0)
    broker.submit(_order("d-outside", "IBM"), 100.0)
    broker.submit(_order("d-twice-x", "ORCL", OrderSide.SELL), 30.0)
    # When it is audited
    report = audit(take_snapshot(tl), AuditContext(universe=frozenset({"NVDA", "ORCL"}), limits=RiskLimits()))
    # Then each is counted: one duplicate, the unauthorised orders as breaches, the unbooked fills and the
    # PENDING decisions as lost
    assert report.duplicates == ["order d-twice: broker order #2 for one client_order_id"]
    text = "\n".join(report.breaches)
    assert "order forged-1 (NVDA buy 10): no decision record" in text
    assert "entry order d-twice (NVDA): its decision is PENDING, not EXECUTED" in text
    assert "entry order d-outside: IBM is outside the universe" in text
    assert "close d-twice-x (ORCL): its entry d-twice was never filled" in text
    assert {"decision d-twice (NVDA BUY) still PENDING", "decision d-outside (IBM BUY) still PENDING"} <= set(
        report.lost)
    assert any(t.startswith("order d-twice (NVDA buy 10): broker fill not in the trade log") for t in report.lost)


def test_the_audit_sees_a_limit_exceeded_by_filled_orders():
    # Given two entries the records authorise, filled and booked, but together over max_open_positions 1, the
    # second over max_position_pct of the equity
    tl = TradeLog.in_memory()
    tl.ensure_account(100_000.0)
    broker = PaperBroker(tl, Costs(1, 2))
    for k, (symbol, qty) in enumerate((("AAA", 100), ("BBB", 300))):
        d = _decision(f"d-{k}", symbol)
        tl.put_decision(d)
        placed = broker.submit(_order(d.decision_id, symbol, qty=qty), 100.0)
        fill = Fill(client_order_id=d.decision_id, symbol=symbol, side=OrderSide.BUY, qty=qty,
                    price=placed.fill_price(), fee=placed.fee, filled_at=AT)
        pos = Position(symbol=symbol, qty=qty, avg_price=fill.price, opened_at=AT, decision_id=d.decision_id,
                       stop_loss=95.0)
        assert tl.record_entry_fill(d, _order(d.decision_id, symbol, qty=qty), fill, pos, 100.0, "filled")
    report = audit(take_snapshot(tl), AuditContext(universe=frozenset({"AAA", "BBB"}),
                                                   limits=RiskLimits(max_open_positions=1)))
    assert report.duplicates == [] and report.lost == []
    text = "\n".join(report.breaches)
    assert "2 positions open at 2011-03-02T14:35:00+00:00 (max_open_positions 1)" in text
    assert "entry d-1 (BBB): notional 30,006.00 above max_position_pct 20%" in text
