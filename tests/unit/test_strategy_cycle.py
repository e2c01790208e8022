"""The decision cycle runs the configured strategy; its failures are recorded skips with the reason, never a crash."""
from __future__ import annotations

import json
import textwrap

import pytest

from mytrader.adapters.tradelog import TradeLog
from mytrader.advisor.local_model import LocalAdvisorModel
from mytrader.app.settings import PipelineSettings
from mytrader.market.calendar import nyse
from mytrader.market.sources import CsvReplaySource, synthetic_series
from mytrader.usecases.decide import CycleDeps, ScheduleEvent, run_cycle

USER = textwrap.dedent('''
    from mytrader.strategies import Signals, Strategy, crossed_above

    class Picky(Strategy):
        name = "picky"

        def signals(self, data):
            if data.series.symbol == "BAD":
                raise RuntimeError("no rule for BAD")
            return Signals(entry=crossed_above(data.close, data.features["sma_fast"]),
                           exit=crossed_above(data.features["sma_fast"], data.close), confidence=0.7)
''')


class Params:
    def get(self, key: str, fresh: bool = False, strict: bool = False) -> str:
        return {"MODE": "baseline", "ACTIVE_MODEL": "none"}.get(key, "none")


class Queue:
    def __init__(self):
        self.sent = []

    def send(self, decision):
        self.sent.append(decision)


def cycle(strategy: dict):
    series = {s: synthetic_series(s, 400, seed=k) for k, s in enumerate(("BAD", "GOOD"))}
    as_of = series["GOOD"].time(399)  # a completed session's bar (stamped after its close)
    assert nyse().is_session(as_of.date())
    tradelog = TradeLog.in_memory()
    settings = PipelineSettings(trade_log_table="t", trading_json=json.dumps({"strategy": strategy}))
    deps = CycleDeps(tradelog=tradelog, market=CsvReplaySource(series=series), news=None,
                     advisor_client=LocalAdvisorModel(), queue=Queue(), s3=None, bucket="", params=Params(),
                     settings=settings)
    result = run_cycle(ScheduleEvent(scheduled_time=as_of, universe=["BAD", "GOOD"]), deps)
    return {o.symbol: o for o in result.per_symbol or []}, tradelog


def test_an_exception_in_user_code_skips_that_symbol_with_the_reason_and_the_others_decide(tmp_path):
    # Given a user strategy that raises on one symbol only
    path = tmp_path / "picky.py"
    path.write_text(USER)
    # When the cycle runs
    out, tradelog = cycle({"name": str(path)})
    # Then that symbol-cycle is a recorded SKIPPED with the one-line reason, the other one was decided
    bad = out["BAD"]
    assert bad.result.value == "skipped"
    assert bad.reason == "strategy error: strategy picky: signals() raised RuntimeError: no rule for BAD"
    row = tradelog.get_decision_row(bad.decision_id)
    assert row is not None and row["status"] == "SKIPPED" and "no rule for BAD" in json.dumps(row, default=str)
    assert out["GOOD"].result.value in ("hold", "sent")


@pytest.mark.parametrize(("strategy", "reason"), [
    ({"name": "sma_crossover", "params": {"fast": 999}}, "parameter fast=999"),
    ({"name": "/nowhere/mine.py"}, "not found"),
])
def test_a_strategy_that_does_not_load_skips_every_symbol_with_the_reason(strategy, reason):
    out, _ = cycle(strategy)
    assert {o.result.value for o in out.values()} == {"skipped"}
    assert all(o.reason.startswith("strategy unavailable: ") and reason in o.reason for o in out.values())
