"""`mytrader demo` end to end (what `make demo` runs): the done-criteria of the pipeline and learning issues."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from mytrader_tools.cli import app


def test_demo_end_to_end(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    # every symbol-cycle decided once, every decision terminal, nothing ordered twice
    assert s["decisions"] == s["expected_decisions"] == s["ticks"] * 2 and s["ticks"] >= 500
    assert sum(s["terminal_states"].values()) == s["decisions"] and s["terminal_states"]["PENDING"] == 0
    assert s["duplicate_orders"] == 0 and s["fills"] == s["orders"] > 0
    assert s["parity"]["equal"], s["parity"]["first_difference"]
    assert {"total_return", "sharpe", "max_drawdown", "win_rate", "llm_accuracy", "cost_usd"} <= set(s["metrics"])
    # the fine-tuning workflow ran on the exported record
    ft = s["finetune"]
    assert ft["execution_status"] == "SUCCEEDED" and ft["train_records"] >= 300
    assert ft["active_model_id"] == (ft["candidate_model_id"] if ft["promoted"] else "local.advisor-model-v1")
    assert (tmp_path / "datasets" / ft["dataset_version"] / "train.jsonl").exists()
    page = (tmp_path / "report.html").read_text()
    assert "not an LLM" in page and page.count("<svg") >= 4
