"""`make bench`: the figures in out/bench.json (one key per figure, units in the name). A benchmark, not a test.

Sections: backtester throughput and the advisor's economy (issue 2), the pipeline on the embedded AWS
(issue 3), the Lambda layer's size and each handler's import time with only the layer on the path (issue 4).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mytrader.market.series import BarSeries

if TYPE_CHECKING:
    from mytrader.backtest import BacktestResult

REPO = Path(__file__).resolve().parents[3]
DATA = Path(__file__).resolve().parent / "embedded" / "data"


def real_bars(target: int = 100_000) -> dict[str, BarSeries]:
    """~100,000 daily bars from the real files: NVDA and ORCL repeated under distinct symbol names."""
    from mytrader.market.sources import parse_price_csv

    base = [parse_price_csv((DATA / "nvda-daily-1999-2014.csv").read_text(), "NVDA"),
            parse_price_csv((DATA / "orcl-daily-1995-2014.csv").read_text(), "ORCL")]
    out: dict[str, BarSeries] = {}
    k = 0
    while sum(len(s) for s in out.values()) < target:
        s = base[k % 2]
        name = f"{s.symbol}{k // 2}" if k >= 2 else s.symbol
        out[name] = BarSeries(name, s.ts, s.open, s.high, s.low, s.close, s.volume)
        k += 1
    return out


def bench_backtests(series: dict[str, BarSeries]) -> dict:
    from mytrader.advisor.llm import LlmAdvisor
    from mytrader.advisor.local_model import LocalAdvisorModel
    from mytrader.backtest import Backtester, prepare
    from mytrader.config import TradingConfig
    from mytrader.engine import DecisionEngine
    from mytrader.models import Mode

    bars = sum(len(s) for s in series.values())
    out: dict = {"backtest_bars": bars}
    t0 = time.perf_counter()
    states = {k: prepare(s) for k, s in series.items()}
    out["features_and_signals_s"] = round(time.perf_counter() - t0, 3)
    runs: dict[str, BacktestResult] = {}
    for label, mode in (("strategy_only", Mode.BASELINE), ("llm_local_consensus", Mode.CONSENSUS)):
        cfg = TradingConfig(mode=mode)
        times, last = [], None
        for _ in range(3):
            advisor = None if mode == Mode.BASELINE else LlmAdvisor(LocalAdvisorModel(), cfg.advisor)  # cold cache
            bt = Backtester(cfg, DecisionEngine(cfg, advisor), keep_decisions=False)
            t0 = time.perf_counter()
            last = bt.run(states)
            times.append(time.perf_counter() - t0)
        assert last is not None  # three runs above
        best = min(times)
        out[f"backtest_{label}_bars_per_s"] = round(bars / best)
        out[f"backtest_{label}_median_s"] = round(statistics.median(times), 3)
        runs[label] = last
    m = runs["llm_local_consensus"].metrics
    symbol_cycles = sum(max(0, len(s) - 1 - TradingConfig().warmup_bars) for s in series.values())
    calls = m["llm_calls"]
    out["advisor_llm_calls_per_symbol_cycle"] = round(calls / symbol_cycles, 4)
    out["advisor_input_tokens_per_call"] = round(m["llm_input_tokens"] / max(1, calls), 1)
    out["advisor_output_tokens_per_call"] = round(m["llm_output_tokens"] / max(1, calls), 1)
    out["advisor_cost_per_call_usd_claude_haiku_4_5"] = round(m["cost_usd"] / max(1, calls), 6)
    out["advisor_token_count_method"] = "characters/4 of system prompt + messages + tool schema, as sent"
    # what dominates the LLM-assisted path
    cfg = TradingConfig(mode=Mode.CONSENSUS)
    bt = Backtester(cfg, DecisionEngine(cfg, LlmAdvisor(LocalAdvisorModel(), cfg.advisor)), keep_decisions=False)
    prof = cProfile.Profile()
    prof.enable()
    bt.run(states)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).sort_stats("tottime")
    table: dict[tuple[str, int, str], tuple[Any, ...]] = cast(Any, stats).stats  # not in typeshed's pstats.Stats
    top = sorted(table.items(), key=lambda kv: -kv[1][2])[:8]
    total = sum(v[2] for v in table.values())
    out["profile_llm_path_top_self_time"] = [
        {"function": f"{Path(k[0]).name}:{k[2]}", "share": round(v[2] / total, 3)} for k, v in top]
    return out


def bench_advisor_real_files() -> dict:
    """The advisor's economy on each real file alone, from a cold cache (per the issue)."""
    from mytrader.backtest import run_modes
    from mytrader.config import TradingConfig
    from mytrader.market.sources import parse_price_csv

    out = {}
    for name in ("nvda-daily-1999-2014.csv", "orcl-daily-1995-2014.csv"):
        sym = name.split("-")[0].upper()
        s = parse_price_csv((DATA / name).read_text(), sym)
        r = run_modes({sym: s}, ["consensus"], TradingConfig())["consensus"].metrics
        cycles = len(s) - 1 - TradingConfig().warmup_bars
        out[f"advisor_{sym.lower()}_llm_calls_per_symbol_cycle"] = round(r["llm_calls"] / cycles, 4)
        out[f"advisor_{sym.lower()}_input_tokens_per_call"] = round(r["llm_input_tokens"] / r["llm_calls"], 1)
        out[f"advisor_{sym.lower()}_output_tokens_per_call"] = round(r["llm_output_tokens"] / r["llm_calls"], 1)
    return out


def bench_pipeline() -> dict:
    from mytrader.market.calendar import nyse
    from mytrader.market.sources import synthetic_series
    from mytrader_tools.embedded.endpoint import EmbeddedAws
    from mytrader_tools.embedded.stack import LocalStack

    out = {}
    with EmbeddedAws() as aws:
        stack = LocalStack(aws).create(extra_env={"CONCURRENCY": "64"})
        s3 = stack.client("s3")
        universe = [f"S{k:03d}" for k in range(500)]
        for k, sym in enumerate(universe):
            ser = synthetic_series(sym, 300, seed=k, start=date(2010, 1, 4))
            rows = ["Date,Open,High,Low,Close,Volume"] + [
                f"{ser.time(i).date()},{ser.open[i]:.4f},{ser.high[i]:.4f},{ser.low[i]:.4f},{ser.close[i]:.4f},"
                f"{int(ser.volume[i])}" for i in range(len(ser))]
            s3.put_object(Bucket=stack.bucket, Key=f"market-data/{sym}.csv", Body="\n".join(rows).encode())
        aws.runtime.configure(latency_s=1.5)
        at = nyse().session_close(date(2011, 2, 1))
        stack.invoke("decision_cycle", {"scheduled_time": at.isoformat(), "universe": universe[:5]})  # warm container
        t0 = time.perf_counter()
        res = stack.invoke("decision_cycle", {"scheduled_time": nyse().session_close(date(2011, 2, 2)).isoformat(),
                                              "universe": universe})
        out["decision_cycle_500_symbols_converse_1_5s_wall_s"] = round(time.perf_counter() - t0, 2)
        out["decision_cycle_500_symbols_llm_calls"] = res["llm_calls"]
        out["decision_cycle_concurrency_threads"] = 64
    with tempfile.TemporaryDirectory() as tmp:
        from mytrader_tools.embedded.demo import run_demo

        t0 = time.perf_counter()
        summary = run_demo(Path(tmp), with_finetune=False)
        wall = time.perf_counter() - t0
        out["pipeline_replay_decisions_per_s"] = round(summary["decisions"] / summary["timings_s"]["replay"], 2)
        out["pipeline_demo_without_finetune_wall_s"] = round(wall, 1)
        out["pipeline_replay_ms_per_tick"] = round(summary["timings_s"]["replay"] / summary["ticks"] * 1000, 1)
    return out


def bench_layer() -> dict:
    sys.path.insert(0, str(REPO / "cdk"))
    import shutil

    from mytrader_infra.bundling import build_layer

    out: dict[str, Any] = {}
    arm = build_layer("arm64") / "python"
    out["layer_unzipped_mb"] = round(sum(p.stat().st_size for p in arm.rglob("*") if p.is_file()) / 1e6, 1)
    # Import times need a layer this machine can execute: the same requirements for its own platform and
    # Python (the Lambda one is arm64/3.13). Each handler is imported the way the Lambda runtime does it:
    # its folder and the layer alone on sys.path (python -S), the environment the template gives the function
    # plus the variables the runtime sets (X-Ray, for one, takes its Lambda code path only under
    # LAMBDA_TASK_ROOT), with the standard modules the runtime's bootstrap (awslambdaric) has already imported
    # when it imports the handler. Median (and best) of 7 fresh interpreters, with byte code as the layer
    # ships it; and, for comparison, of 3 with sources only (what a layer without .pyc costs on Lambda).
    local = _local_layer()
    envs = lambda_environments()
    for key, env in envs.items():
        runs = _import_times(key, env, local, 7)
        out[f"import_{key}_ms"] = round(statistics.median(runs) * 1000, 1)
        out[f"import_{key}_best_ms"] = round(min(runs) * 1000, 1)
    if shutil.which("valgrind"):  # instructions executed: the same on a busy machine as on a quiet one
        for key in ("decision_cycle", "executor", "outcomes"):
            out[f"import_{key}_instructions_m"] = _import_instructions(key, envs[key], local)
    with tempfile.TemporaryDirectory() as tmp:
        sources_only = Path(tmp) / "python"
        shutil.copytree(local, sources_only, ignore=shutil.ignore_patterns("__pycache__"))
        for key in ("decision_cycle", "executor", "outcomes"):
            runs = _import_times(key, envs[key], sources_only, 3, PYTHONDONTWRITEBYTECODE="1")
            out[f"import_{key}_without_bytecode_ms"] = round(statistics.median(runs) * 1000, 1)
    out["import_measured_on"] = (f"{sys.implementation.name} {sys.version.split()[0]} {os.uname().machine}, "
                                 "layer rebuilt for it, Lambda runtime environment")
    return out


def _alone_with_layer(key: str, env: dict[str, str], layer: Path, **extra: str) -> dict[str, str]:
    """The function's environment with its folder and the layer as the only paths, as in Lambda."""
    folder = REPO / "lambdas" / key
    return {**env, "PYTHONPATH": f"{folder}:{layer}", "LAMBDA_TASK_ROOT": str(folder),
            "PATH": os.environ.get("PATH", ""), **extra}


def _import_handler(key: str) -> str:
    """Python that imports the handler module as the runtime does, after the modules its bootstrap loaded."""
    return (f"import {RUNTIME_PRELOADED};import importlib.util as u;"
            f"s=u.spec_from_file_location('handler','{REPO / 'lambdas' / key}/handler.py');m=u.module_from_spec(s);"
            "s.loader.exec_module(m)")


def _import_instructions(key: str, env: dict[str, str], layer: Path) -> float:
    """Millions of instructions the handler's import executes (callgrind), net of the interpreter's start."""
    import re

    env = _alone_with_layer(key, env, layer)

    def count(code: str) -> int:
        res = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-S",
                              "-c", code], env=env, capture_output=True, text=True)
        found = re.search(r"Collected : (\d+)", res.stderr)
        if found is None:
            raise RuntimeError(f"callgrind reported no instruction count: {res.stderr[-2000:]}")
        return int(found.group(1))

    return round((count(_import_handler(key)) - count(f"import {RUNTIME_PRELOADED}")) / 1e6, 1)


def _import_times(key: str, env: dict[str, str], layer: Path, n: int, **extra: str) -> list[float]:
    env = _alone_with_layer(key, env, layer, **extra)
    preload, load = _import_handler(key).split(";", 1)
    code = f"{preload};import time;t=time.perf_counter();{load};print(time.perf_counter()-t)"
    runs = []
    for _ in range(n):
        res = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=True)
        runs.append(float(res.stdout.strip()))
    return runs


RUNTIME_PRELOADED = "decimal, importlib, json, logging, os, sys, time, traceback"  # awslambdaric bootstrap


def lambda_environments() -> dict[str, dict[str, str]]:
    """Each function's environment as the synthesized template sets it (references to other resources become
    placeholder names) plus the variables the Lambda runtime adds (tracing active, JSON logs)."""
    from app import build_app
    from mytrader.stack_spec import FUNCTIONS

    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(context={"aws:cdk:bundling-stacks": []}, outdir=tmp, nag=False)
        template = json.loads(Path(app.synth().stacks[0].template_full_path).read_text())
    by_name = {r["Properties"].get("FunctionName"): r["Properties"] for r in template["Resources"].values()
               if r["Type"] == "AWS::Lambda::Function"}
    envs = {}
    for key, spec in FUNCTIONS.items():
        props = by_name[spec.name("mytrader")]
        variables = props.get("Environment", {}).get("Variables", {})
        envs[key] = {name: value if isinstance(value, str) else f"placeholder-{name.lower()}"
                     for name, value in variables.items()}
        envs[key].update({
            "AWS_LAMBDA_FUNCTION_NAME": props["FunctionName"], "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props["MemorySize"]), "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench"})
    return envs


COLD_START_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import importlib.util as u
spec = u.spec_from_file_location("handler", sys.argv[1]); handler = u.module_from_spec(spec)
spec.loader.exec_module(handler)
t1 = time.perf_counter()

class Context:
    function_name, function_version, memory_limit_in_mb = sys.argv[3], "$LATEST", 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + sys.argv[3]
    aws_request_id, log_group_name, log_stream_name = "cold-start-bench", "/aws/lambda/bench", "bench"
    def get_remaining_time_in_millis(self):
        return 60_000

import os
os.environ["_X_AMZN_TRACE_ID"] = "Root=1-6745a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
result = handler.lambda_handler(json.loads(sys.argv[2]), Context())  # the runtime sets the trace id per invocation
t2 = time.perf_counter()
print(json.dumps({"init_ms": (t1 - t0) * 1000, "first_invoke_ms": (t2 - t1) * 1000, "result": result}, default=str))
"""


def bench_cold_start(reps: int = 3) -> dict:
    """A whole cold start: a fresh interpreter with only the layer imports the handler (init) and serves one
    event (first invocation: its boto3 clients, first validations, first AWS calls) against the embedded AWS.
    The executor gets a real BUY/SELL decision the decision cycle published; a fresh stack for each repetition,
    so no idempotency record or cache from an earlier run helps."""
    sys.path.insert(0, str(REPO / "cdk"))
    from mytrader.market.calendar import nyse
    from mytrader_tools.embedded.endpoint import EmbeddedAws
    from mytrader_tools.embedded.event_source import sqs_event
    from mytrader_tools.embedded.stack import LocalStack

    local, envs, cal = _local_layer(), lambda_environments(), nyse()
    data = REPO / "layers" / "core" / "mytrader_tools" / "embedded" / "data"
    timings: dict[str, list[dict]] = {key: [] for key in ("decision_cycle", "executor", "outcomes")}
    with EmbeddedAws() as aws:
        for rep in range(reps):
            stack = LocalStack(aws, prefix=f"cold{rep}").create()
            stack.upload_prices({"NVDA": data / "nvda-daily-1999-2014.csv", "ORCL": data / "orcl-daily-1995-2014.csv"})
            message, day = _first_trade_message(stack, cal, date(2012, 1, 3) + timedelta(days=30 * rep))
            after = cal.next_session(day)
            probe = _ColdStartProbe(aws, stack, envs, local)
            executor_event = sqs_event([message], stack.queue_arns["decisions"], aws.region)
            cycle_event = {"scheduled_time": cal.session_close(after).isoformat(), "universe": ["NVDA", "ORCL"]}
            timings["executor"].append(probe.run("executor", executor_event, cal.session_open(after)))
            timings["outcomes"].append(probe.run("outcomes", {"source": "schedule"}, cal.session_close(after)))
            timings["decision_cycle"].append(probe.run("decision_cycle", cycle_event, cal.session_close(after)))
    out: dict[str, Any] = {}
    for key, runs in timings.items():
        for part in ("init_ms", "first_invoke_ms"):
            out[f"cold_start_{key}_{part}"] = round(statistics.median(r[part] for r in runs), 1)
        out[f"cold_start_{key}_total_ms"] = round(
            statistics.median(r["init_ms"] + r["first_invoke_ms"] for r in runs), 1)
    out["cold_start_executor_batch_item_failures"] = sum(
        len(r["result"]["batchItemFailures"]) for r in timings["executor"])
    out["cold_start_note"] = ("first_invoke_ms includes the embedded AWS's own response times (moto in this process, "
                              "~25 ms a call here, where DynamoDB answers in single-digit ms)")
    return out


class _ColdStartProbe:
    """Runs one handler's cold start in a fresh interpreter: the Lambda runtime's variables, the embedded AWS's
    endpoint and the stack's settings, with its folder and the layer alone on the path."""

    def __init__(self, aws: Any, stack: Any, envs: dict[str, dict[str, str]], layer: Path) -> None:
        self.aws, self.stack, self.envs, self.layer = aws, stack, envs, layer

    def run(self, key: str, event: dict, clock: Any) -> dict:
        """The probe's figures (init_ms, first_invoke_ms, result) for `event` served at the replay `clock`."""
        from mytrader.stack_spec import FUNCTIONS

        aws, stack = self.aws, self.stack
        stack.set_param("REPLAY_CLOCK", clock.isoformat())
        runtime = {k: v for k, v in self.envs[key].items()
                   if k.startswith(("AWS_LAMBDA", "AWS_EXECUTION", "AWS_XRAY", "POWERTOOLS_"))}
        env = _alone_with_layer(key, {
            **runtime, **{k: v for k, v in aws.env().items() if not k.startswith("POWERTOOLS_")},
            **stack.settings_env, "POWERTOOLS_LOG_LEVEL": "WARNING", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000"},
            self.layer)
        code = f"import {RUNTIME_PRELOADED}\n" + COLD_START_PROBE
        handler = REPO / "lambdas" / key / "handler.py"
        res = subprocess.run([sys.executable, "-S", "-c", code, str(handler), json.dumps(event),
                              FUNCTIONS[key].name(stack.prefix)], env=env, capture_output=True, text=True,
                             timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"{key} cold start failed: {res.stderr[-2000:]}")
        figures: dict = json.loads(res.stdout.strip().splitlines()[-1])
        return figures


def _first_trade_message(stack, cal, start: date):
    """Runs the decision cycle (in process) session by session until it publishes a BUY or SELL; returns it."""
    sqs, url = stack.client("sqs"), stack.queue_urls["decisions"]
    day = start if cal.is_session(start) else cal.next_session(start)
    for _ in range(120):
        close = cal.session_close(day)
        stack.set_param("REPLAY_CLOCK", close.isoformat())
        stack.invoke("decision_cycle", {"scheduled_time": close.isoformat(), "universe": ["NVDA", "ORCL"]})
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                   MessageSystemAttributeNames=["All"], VisibilityTimeout=0).get("Messages", [])
        trades = [m for m in msgs if json.loads(m["Body"]).get("action") in ("BUY", "SELL")]
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if trades:
            return trades[0], day
        day = cal.next_session(day)
    raise RuntimeError("no BUY or SELL decision in 120 sessions")


def _local_layer() -> Path:
    import shutil

    from mytrader_infra.bundling import CACHE, PACKAGE, REQUIREMENTS, _ignored, inputs_hash

    out = CACHE / f"bench-layer-{inputs_hash('x86_64')}"
    target = out / "python"
    if not (out / ".complete").exists():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile",
                        "--target", str(target), "-r", str(REQUIREMENTS)], check=True)
        shutil.copytree(PACKAGE, target / "mytrader", ignore=lambda d, n: [x for x in n if _ignored(Path(d) / x)])
        (out / ".complete").write_text("ok")
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="out/bench.json")
    parser.add_argument("--only", default="backtest,advisor,pipeline,layer,coldstart")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    sections = {"backtest": lambda: bench_backtests(real_bars()), "advisor": bench_advisor_real_files,
                "pipeline": bench_pipeline, "layer": bench_layer, "coldstart": bench_cold_start}
    for name, fn in sections.items():
        if name in wanted:
            t0 = time.perf_counter()
            results.update(fn())
            print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    results["machine"] = f"{os.cpu_count()} cores, {sys.platform}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
