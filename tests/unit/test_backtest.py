"""The backtester and its CLI: all five runs, the JSON keys, headlines that change decisions."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from mytrader.backtest import run_modes
from mytrader.config import TradingConfig
from mytrader.market.sources import synthetic_series
from mytrader.sentiment.context import NewsContext
from mytrader.sentiment.news import CsvHeadlineSource
from mytrader.sentiment.scoring import LexiconScorer, SentimentAnalyzer
from mytrader_tools.cli import app
from tests.conftest import PACKAGED_DATA, shared_file

KEYS = {"total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor", "trades",
        "llm_accuracy", "llm_calls", "cost_usd"}


def test_cli_backtest_all_modes_writes_the_documented_json_and_report(tmp_path):
    out, rep = tmp_path / "out.json", tmp_path / "r.html"
    res = CliRunner().invoke(app, ["backtest", "--prices", str(PACKAGED_DATA / "nvda-daily-1999-2014.csv"),
                                   "--mode", "all", "--json", str(out), "--report", str(rep)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data["runs"]) == {"baseline", "consensus", "override", "advisory", "buy_and_hold"}
    for run in data["runs"].values():
        assert KEYS <= set(run)
    assert data["runs"]["baseline"]["llm_calls"] == 0 and data["runs"]["consensus"]["llm_calls"] > 0
    assert data["runs"]["override"]["trades"] != data["runs"]["baseline"]["trades"]
    assert "not an LLM" in data["advisor"]
    page = rep.read_text()
    assert page.count("<svg") >= 4 and "<script" not in page and "Sample decisions" in page


def test_advisory_trades_like_the_baseline():
    series = {"SYN": synthetic_series("SYN", 1500, seed=3)}
    res = run_modes(series, ["baseline", "advisory"], TradingConfig())
    assert [t.entry_ts for t in res["baseline"].trades] == [t.entry_ts for t in res["advisory"].trades]


def _djia():
    from mytrader.market.sources import parse_price_csv

    return {"DJIA": parse_price_csv(shared_file("djia-daily-2008-2012.csv").read_text(), "DJIA")}


def _news(text: str) -> NewsContext:
    return NewsContext(CsvHeadlineSource(text=text), SentimentAnalyzer(LexiconScorer()), market_wide=True)


def test_headlines_change_the_decisions():
    # Given the real DJIA prices and the real headlines, against the same headlines with inverted tone
    series = _djia()
    real = shared_file("worldnews-headlines-2008-2012.csv").read_text(encoding="utf-8", errors="replace")
    rows = real.split("\n", 1)[1]
    gloom = "Date,News\n" + "\n".join(f"{d},Markets crash in disaster panic and terrible losses"
                                      for d in sorted({ln[:10] for ln in rows.splitlines() if ln[:4].isdigit()}))
    a = run_modes(series, ["override"], TradingConfig(), news=_news(real))["override"]
    b = run_modes(series, ["override"], TradingConfig(), news=_news(gloom))["override"]
    # Then the sentiment reached the decisions and they differ
    da = {d.bar_ts: d.advice.decision for d in a.decisions if d.advice}
    db = {d.bar_ts: d.advice.decision for d in b.decisions if d.advice}
    assert any(d.sentiment is not None and d.sentiment.n_items > 0 for d in a.decisions)
    common = set(da) & set(db)
    assert sum(da[k] != db[k] for k in common) > 10
    assert [t.entry_ts for t in a.trades] != [t.entry_ts for t in b.trades]
