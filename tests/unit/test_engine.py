"""TradeAdvisor modes, thresholds, sizing and levels; the LLM can never exceed a risk limit."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mytrader.advisor.llm import LlmAdvisor
from mytrader.config import RiskLimits, TradingConfig
from mytrader.engine import DecisionContext, DecisionEngine, should_query
from mytrader.features import compute_features
from mytrader.models import Action, Mode, Position, QueryMemo, SentimentScore
from mytrader.strategy import strategy_arrays
from tests.unit.fakes import ScriptedConverse, good_advice, tool_response

NOW = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def nvda_ctx(nvda_series):
    frame = compute_features(nvda_series)
    arrays = strategy_arrays(frame)
    buy = next(i for i in range(100, len(frame)) if arrays.action[i] == 1)
    hold = next(i for i in range(100, len(frame)) if arrays.action[i] == 0)
    return frame, arrays, buy, hold


def decide(nvda_ctx, mode, answer, which="buy", position=None, **cfg_over):
    frame, arrays, buy, hold = nvda_ctx
    i = buy if which == "buy" else hold
    cfg = TradingConfig(mode=mode, **cfg_over)
    price = float(frame.series.close[i])
    client = ScriptedConverse(tool_response(answer(price)) if callable(answer) else answer)
    engine = DecisionEngine(cfg, LlmAdvisor(client, cfg.advisor))
    ctx = DecisionContext(frame, arrays, i, SentimentScore(score=0.0, n_items=0), [], position, 100_000.0)
    return engine.decide(ctx, NOW)[0], client


def llm(decision, conf=0.8, **kw):
    def make(price):
        levels = {"stop_loss": price * 0.9, "take_profit": price * 1.2} if decision == "BUY" else {}
        return good_advice(decision=decision, confidence=conf, **{**levels, **kw})
    return make


def test_consensus_enters_only_when_both_agree(nvda_ctx):
    assert decide(nvda_ctx, Mode.CONSENSUS, llm("BUY"))[0].action == Action.BUY
    d, _ = decide(nvda_ctx, Mode.CONSENSUS, llm("HOLD"))
    assert d.action == Action.HOLD and "no consensus" in d.reason


def test_low_confidence_advice_counts_as_hold(nvda_ctx):
    assert decide(nvda_ctx, Mode.CONSENSUS, llm("BUY", conf=0.3))[0].action == Action.HOLD


def test_override_follows_the_llm_and_advisory_only_logs_it(nvda_ctx):
    assert decide(nvda_ctx, Mode.OVERRIDE, llm("HOLD"))[0].action == Action.HOLD
    d, _ = decide(nvda_ctx, Mode.ADVISORY, llm("HOLD"))
    assert d.action == Action.BUY and d.advice.decision == Action.HOLD


def test_override_falls_back_to_the_strategy_when_the_llm_fails(nvda_ctx):
    d, _ = decide(nvda_ctx, Mode.OVERRIDE, tool_response({"garbage": True}))
    assert d.action == Action.BUY and d.llm.fallback_reason.startswith("invalid_output")


def test_consensus_exit_needs_only_one_side(nvda_ctx):
    pos = Position(symbol="NVDA", qty=10, avg_price=5.0, opened_at=NOW, decision_id="x")
    d, _ = decide(nvda_ctx, Mode.CONSENSUS, llm("SELL"), which="hold", position=pos)
    assert d.action == Action.SELL


def test_long_only_turns_sell_when_flat_into_hold_and_shorting_opens_a_short(nvda_ctx):
    sell = lambda p: good_advice(decision="SELL", confidence=0.9, stop_loss=p * 1.1, take_profit=p * 0.8)  # noqa: E731
    assert decide(nvda_ctx, Mode.OVERRIDE, sell)[0].action == Action.HOLD
    d, _ = decide(nvda_ctx, Mode.OVERRIDE, sell, allow_short=True)
    assert d.action == Action.SELL and d.stop_loss > d.reference_price > d.take_profit


def test_the_llm_cannot_exceed_size_or_level_limits(nvda_ctx):
    # Given an LLM asking for 100 % of equity and a stop 50 % away
    greedy = lambda p: good_advice(position_size_pct=100.0, confidence=0.99, stop_loss=p * 0.5, take_profit=p * 5)  # noqa: E731
    d, _ = decide(nvda_ctx, Mode.OVERRIDE, greedy, risk=RiskLimits(max_position_pct=10.0))
    frame, _, buy, _ = nvda_ctx
    atr = float(frame.cols["atr"][buy])
    # Then size and levels are clamped to the configured limits and ATR bounds
    assert 0 < d.position_size_pct <= 10.0
    assert d.reference_price - d.stop_loss <= 4.0 * atr + 1e-6
    assert d.take_profit - d.reference_price <= 8.0 * atr + 1e-6


def test_conditional_querying_skips_unchanged_holds():
    cfg = TradingConfig()
    memo = QueryMemo(bar_index=100, rsi=50.0, sentiment=0.0, regime="range")
    assert not should_query(cfg, 0, False, 103, 52.0, 0.05, "range", memo)
    assert should_query(cfg, 1, False, 103, 52.0, 0.05, "range", memo)  # the strategy has a signal
    assert should_query(cfg, 0, False, 103, 70.0, 0.05, "range", memo)  # material change
    assert should_query(cfg, 0, False, 103 + 20, 50.0, 0.0, "range", memo)  # too long since
    assert not should_query(TradingConfig(mode=Mode.BASELINE), 1, False, 103, 50, 0, "range", memo)


def test_decision_id_is_deterministic(nvda_ctx):
    a, _ = decide(nvda_ctx, Mode.CONSENSUS, llm("BUY"))
    b, _ = decide(nvda_ctx, Mode.CONSENSUS, llm("BUY"))
    c, _ = decide(nvda_ctx, Mode.OVERRIDE, llm("BUY"))
    assert a.decision_id == b.decision_id != c.decision_id  # the config version is part of it
