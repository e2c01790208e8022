"""Advisor costs from one record of every call (mytrader.advisor.costs): each run's cost is what it would cost
alone, whatever ran before it on the same response cache; fresh calls and cache hits are counted apart."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mytrader.advisor.costs import CallKind, CostRecord
from mytrader.advisor.pricing import cost_usd
from mytrader_tools.cli import app
from tests.unit.cli_support import prices

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def test_a_run_served_from_another_runs_answers_costs_what_it_would_alone():
    record = CostRecord()
    # Given run A asking K (repaired once: two requests) and L, then run B served K and L from the cache, twice K
    record.fresh("A", "K", MODEL, 1000, 100)
    record.fresh("A", "K", MODEL, 1200, 100)
    record.cached("A", "K", MODEL)
    record.fresh("A", "L", MODEL, 500, 50)
    for key in ("K", "L", "K"):
        record.cached("B", key, MODEL)
    # Then B alone would have sent the same three requests once, and hit its own cache once
    a, b = record.run_cost("A"), record.run_cost("B")
    assert (b.fresh_calls, b.cache_hits, b.input_tokens, b.output_tokens) == (3, 1, 2700, 250)
    assert b.cost_usd == pytest.approx(cost_usd(MODEL, 2700, 250)) == pytest.approx(a.cost_usd)
    assert (a.fresh_calls, a.cache_hits) == (3, 1)
    # while what was really billed is A's requests only
    assert record.billed_usd() == pytest.approx(a.cost_usd)


def test_batch_calls_are_billed_at_half_price_and_replayed_ones_not_at_all():
    record = CostRecord()
    record.fresh("R", "K", MODEL, 1000, 100, kind=CallKind.BATCH)
    record.cached("R", "M", MODEL, kind=CallKind.REPLAYED)
    cost = record.run_cost("R")
    assert cost.cost_usd == pytest.approx(cost_usd(MODEL, 1000, 100) / 2) and cost.fresh_calls == 1


def test_each_mode_costs_what_it_costs_alone_in_the_table_and_the_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = prices(tmp_path, "abc.csv", n=500)
    # Given override run alone, and override run after the other modes on one response cache
    alone = CliRunner().invoke(app, ["backtest", "--prices", name, "--mode", "override", "--json", "alone.json"])
    together = CliRunner().invoke(app, ["backtest", "--prices", name, "--mode", "all", "--json", "all.json"])
    assert alone.exit_code == together.exit_code == 0, together.output
    one, every = (json.loads((tmp_path / f).read_text()) for f in ("alone.json", "all.json"))
    # Then its calls, hits and cost are the same in both
    keys = ("llm_calls", "llm_cache_hits", "cost_usd", "llm_input_tokens", "llm_output_tokens")
    assert {k: one["runs"]["override"][k] for k in keys} == {k: every["runs"]["override"][k] for k in keys}
    assert every["runs"]["override"]["cost_usd"] > 0
    # and the run as a whole was billed less than the sum of the modes (the cache was shared)
    modes = ("consensus", "override", "advisory")
    assert every["billed_usd"] < sum(every["runs"][m]["cost_usd"] for m in modes)
    # The table has fresh calls and cache hits in their own columns
    assert "fresh calls" in together.stdout and "cache hits" in together.stdout
