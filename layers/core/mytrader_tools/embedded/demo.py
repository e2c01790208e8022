"""`mytrader demo`: the whole serverless system on the embedded AWS, two symbols of real daily data over
two years (or the window asked for), then the same data through the backtester for a trade-by-trade parity check.
The config's strategy decides in both: the pipeline's functions load it from their environment (TRADING_JSON)."""
from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mytrader.adapters.tradelog import TradeLog
from mytrader.backtest import Backtester, BacktestResult, prepare
from mytrader.config import LOCAL_MODEL_ID, TradingConfig
from mytrader.engine import DecisionEngine
from mytrader.ledger import whole_shares
from mytrader.market.calendar import nyse
from mytrader.market.sources import parse_price_csv
from mytrader.metrics import performance
from mytrader.models import DecisionStatus, Mode, TradeDecision

if TYPE_CHECKING:
    from mytrader.app.project_config import ProjectConfig

DATA = Path(__file__).resolve().parent / "data"
DEMO_FILES = {"NVDA": DATA / "nvda-daily-1999-2014.csv", "ORCL": DATA / "orcl-daily-1995-2014.csv"}
DEMO_START, DEMO_END = date(2011, 1, 3), date(2012, 12, 31)
WINDOW_FIRST, WINDOW_LAST = date(1999, 7, 1), date(2014, 12, 30)  # a window of the demo's data with a warm-up before
# it and a next session after it (the last orders fill there)
LABEL = "local advisor model (deterministic, not an LLM) on an embedded AWS (moto + local services)"


def load_series(files: dict[str, Path] = DEMO_FILES):
    return {sym: parse_price_csv(Path(p).read_text(), sym) for sym, p in files.items()}


def equity_probe(tl: TradeLog, series):
    def probe(at: datetime) -> float:
        acct = tl.account_state()
        marks = 0.0
        for pos in tl.positions():
            s = series[pos.symbol].upto(at)
            marks += pos.qty * float(s.close[-1])
        return acct.cash + marks
    return probe


def summarise(stack, res, series, cfg: TradingConfig, start: date = DEMO_START,
              end: date = DEMO_END) -> tuple[dict, BacktestResult]:
    from mytrader.adapters.paper_broker import PaperBroker
    from mytrader.portfolio import Costs

    tl = TradeLog(stack.client("dynamodb"), stack.settings_env["TRADE_LOG_TABLE"])
    states = tl.count_by_status()
    decisions = sum(states.values())
    rejected = tl.decisions_by_status("REJECTED")
    ledger = PaperBroker(tl, Costs(cfg.fee_bps, cfg.slippage_bps)).ledger()
    per_coid = Counter(o.client_order_id for o in ledger)
    outcomes = sorted(tl.outcomes(), key=lambda o: (o.exit_ts, o.symbol))
    fills = tl.fills()
    llm_decisions, versions = _recorded_decisions(tl, res.symbols)
    engine = DecisionEngine(cfg, None)
    scored = _scored(llm_decisions, series)  # the backtester's definition: advice vs the hindsight label
    metrics = performance([e for _, e in res.equity], outcomes, cfg.initial_equity, exposure=0.0, llm_scored=scored,
                          llm_calls=res.llm_calls, cost_usd=res.cost_usd)
    metrics["exposure"] = None  # not tracked per bar by the pipeline driver
    summary = {
        "emulation": LABEL, "symbols": res.symbols, "start": start.isoformat(), "end": end.isoformat(),
        "strategy": engine.strategy.label, "strategy_fingerprint": engine.strategy.fingerprint(),
        "config_version": engine.version, "decision_config_versions": versions,
        "ticks": res.ticks, "decisions": decisions, "expected_decisions": res.expected_decisions,
        "llm_calls": res.llm_calls, "fallbacks": res.fallbacks, "input_tokens": res.input_tokens,
        "output_tokens": res.output_tokens, "orders": len(ledger), "fills": len(fills),
        "rejected_by_risk": sum(1 for r in rejected if r.get("status_reason", "").startswith("risk:")),
        "skipped": states.get("SKIPPED", 0), "skipped_hold": sum(
            1 for r in tl.decisions_by_status("SKIPPED") if str(r.get("status_reason", "")).startswith("hold:")),
        "dead_lettered": states.get("DEAD_LETTERED", 0),
        "duplicate_orders": sum(n - 1 for n in per_coid.values() if n > 1),
        "open_positions": len(tl.positions()), "closed_trades": len(outcomes), "metrics": metrics,
        "cost_usd": round(res.cost_usd, 6), "terminal_states": states,
        "non_terminal": states.get("PENDING", 0), "executor_batches": res.drains.batches,
        "executor_failures": res.drains.failed, "cycle_errors": res.cycle_errors,
    }
    demo_result = BacktestResult("demo", metrics, outcomes, res.equity, llm_decisions, llm_scored=scored)
    return summary, demo_result


def _scored(decisions: list[TradeDecision], series) -> list[tuple[float, bool]]:
    from mytrader.labels import forward_return, label_for_return

    out = []
    for d in decisions:
        if d.advice is None or (d.llm and d.llm.fallback_reason):
            continue
        s, i = series[d.symbol], series[d.symbol].index_of(d.bar_ts)
        fr = forward_return(s.open, s.close, i, d.time_horizon_bars) if i >= 0 else None
        if fr is not None:
            out.append((d.advice.confidence, d.advice.decision == label_for_return(fr)))
    return out


def _recorded_decisions(tl: TradeLog, symbols) -> tuple[list[TradeDecision], list[str]]:
    """The decisions that asked the advisor, and the config versions of every recorded decision (the engine's:
    the config's hash with the strategy's fingerprint)."""
    out, versions = [], set()
    for sym in symbols:
        for row in tl.decisions_of(sym):
            if "doc" not in row:
                continue
            versions.add(json.loads(row["doc"]).get("config_version"))
            if row.get("model_id"):
                out.append(TradeDecision.model_validate_json(row["doc"]).model_copy(
                    update={"status": DecisionStatus(row["status"])}))
    return sorted(out, key=lambda d: d.bar_ts), sorted(v for v in versions if v)


def fills_of_trades(trades) -> list[tuple]:
    out = []
    for t in trades:
        buy, sell = ("buy", "sell") if t.side.value == "BUY" else ("sell", "buy")
        out.append((t.entry_ts.astimezone(UTC).date().isoformat(), t.symbol, buy, t.qty, round(t.entry_price, 4)))
        if t.exit_reason != "end_of_data":
            out.append((t.exit_ts.astimezone(UTC).date().isoformat(), t.symbol, sell, t.qty, round(t.exit_price, 4)))
    return sorted(out)


def parity(stack, series, cfg: TradingConfig, final_day: date,
           first_day: date = DEMO_START) -> tuple[dict, BacktestResult]:
    """The backtester on the same data and settings (the same strategy); its fills must equal the trade log's, one
    by one."""
    from mytrader.advisor.llm import LlmAdvisor
    from mytrader.advisor.local_model import LocalAdvisorModel

    cal = nyse()
    cut = cal.session_close(final_day)
    engine = DecisionEngine(cfg, LlmAdvisor(LocalAdvisorModel(), cfg.advisor))
    states = {sym: prepare(s.upto(cut), engine.strategy) for sym, s in series.items()}
    # the curve and figures cover the demo's window only (features computed from 1995 on)
    result = Backtester(cfg, engine, trade_from=cal.session_close(first_day)).run(states)
    tl = TradeLog(stack.client("dynamodb"), stack.settings_env["TRADE_LOG_TABLE"])
    pipeline = sorted((f.filled_at.astimezone(UTC).date().isoformat(), f.symbol, f.side.value, f.qty, round(f.price, 4))
                      for f in tl.fills())
    backtest = fills_of_trades(result.trades)
    pairs = zip(pipeline, backtest, strict=False)
    first_diff = next(({"pipeline": list(a), "backtest": list(b)} for a, b in pairs if a != b), None)
    fractions = sum(1 for f in pipeline if not whole_shares(f[3]))
    return {"equal": pipeline == backtest, "pipeline_fills": len(pipeline), "backtest_fills": len(backtest),
            "fractional_fills": fractions, "first_difference": first_diff}, result


def demo_config(mode: str = "consensus", env: dict[str, str] | None = None) -> TradingConfig:
    """The settings the pipeline's functions build from `env` (the stack's environment) and the MODE parameter,
    so the parity backtest decides exactly as they do."""
    from mytrader.app.settings import PipelineSettings

    return PipelineSettings.from_env({"TRADE_LOG_TABLE": "demo", **(env or {})}).trading_config(mode, LOCAL_MODEL_ID)


def run_demo(out_dir: Path, progress=None, with_finetune: bool = True, stage=None,
             config: ProjectConfig | None = None, serve=None, start: date = DEMO_START, end: date = DEMO_END) -> dict:
    """`stage(name)` is called as each phase starts: replay, parity, fine-tuning. `config`: the project's config
    file (mode, llm.enabled, strategy, risk, capital, fees, advisor settings); the data and the local model stay
    the demo's. `start`..`end`: the sessions replayed (inside WINDOW_FIRST..WINDOW_LAST).
    `serve(url, summary)`, when given, runs before the embedded AWS stops (`mytrader demo --serve`)."""
    from mytrader_tools.embedded.endpoint import EmbeddedAws
    from mytrader_tools.embedded.replay import replay
    from mytrader_tools.embedded.stack import LocalStack
    from mytrader_tools.report import render_report

    out_dir.mkdir(parents=True, exist_ok=True)
    series = load_series()
    env = config.pipeline_env() if config is not None else {}
    mode = config.effective_mode.value if config is not None else Mode.CONSENSUS.value
    cfg = demo_config(mode, env)
    marks = [("start", time.perf_counter())]
    with EmbeddedAws() as aws:
        stack = LocalStack(aws).create(extra_env=env)
        stack.set_param("MODE", mode)
        stack.upload_prices(DEMO_FILES)
        marks.append(("stack", time.perf_counter()))
        tl = TradeLog(stack.client("dynamodb"), stack.settings_env["TRADE_LOG_TABLE"])
        _stage(stage, "replay")
        res = replay(stack, series, start, end, progress=progress, after_tick=equity_probe(tl, series))
        marks.append(("replay", time.perf_counter()))
        _stage(stage, "parity")
        summary, demo_result = summarise(stack, res, series, cfg, start, end)
        summary["parity"], bt_result = parity(stack, series, cfg, _last_day(series, start, end), start)
        summary["quarantined"] = dict(bt_result.quarantined)  # the data guard's refused bars, per symbol
        marks.append(("summary_and_parity", time.perf_counter()))
        if with_finetune:
            from mytrader_tools.embedded.learning import run_finetune_demo

            _stage(stage, "fine-tuning")
            summary["finetune"] = run_finetune_demo(stack, out_dir)
            marks.append(("finetune", time.perf_counter()))
        summary["timings_s"] = {name: round(t - prev, 2)
                                for (_, prev), (name, t) in zip(marks, marks[1:], strict=False)}
        # written before serving: `--serve` runs until Ctrl-C, and the files are there meanwhile
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        (out_dir / "report.html").write_text(render_report(
            {"demo": demo_result, "backtest (same code)": bt_result},
            "MyTrader demo: the serverless pipeline on an embedded AWS",
            LABEL, notes=[f"Replay {start} to {end}, {', '.join(summary['symbols'])}, mode {cfg.mode.value}, "
                          f"strategy {summary['strategy']}.",
                          f"Parity with the backtester: {summary['parity']['equal']} "
                          f"({summary['parity']['pipeline_fills']} fills)."]))
        if serve is not None:
            serve(aws.url, summary)
    return summary


def _stage(stage, name: str) -> None:
    if stage is not None:
        stage(name)


def _last_day(series, start: date = DEMO_START, end: date = DEMO_END) -> date:
    from mytrader_tools.embedded.replay import session_days

    days = session_days(series, start, end)
    return nyse().next_session(days[-1])
