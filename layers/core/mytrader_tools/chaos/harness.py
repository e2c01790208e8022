"""What every chaos case stands on: one stack per case on the shared embedded AWS, genuine decisions recorded as the
decision cycle records them, messages sent to the decisions queue as SQS carries them, deliveries to several
executor "containers" at once (`SiblingContainer`), and a sampler that watches the broker's book while a case runs.

Market data: NVDA and ORCL (the packaged daily files) and a few crafted symbols whose prices the cases rely on —
AAA..HHH flat at 100 (a 99..101 daily range, so a stop at 95 never triggers), CRSH at 100 that gaps to 70 at the
open of NEXT_DAY, DIP (and DIPB..DIPD) opening at 100 and trading down to 90 every session from EXEC_DAY on (a
position entered at the open with a stop at 95 is stopped out on that session's bar).
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from mytrader.adapters.aws.queue import send_decision
from mytrader.adapters.tradelog import TradeLog
from mytrader.broker import BrokerOrder
from mytrader.config import RiskLimits
from mytrader.market.calendar import nyse
from mytrader.models import Action, FeatureVector, Mode, OrderSide, StrategySignal, TradeDecision, make_decision_id
from mytrader.stack_spec import FUNCTIONS, TRADE_LOG
from mytrader.usecases.admission import message_for
from mytrader_tools.chaos.audit import AuditContext, AuditReport, audit, take_snapshot
from mytrader_tools.embedded.endpoint import EmbeddedAws
from mytrader_tools.embedded.event_source import DrainStats, drain, sqs_event
from mytrader_tools.embedded.services import LocalFunction
from mytrader_tools.embedded.stack import LAMBDAS, FunctionFailed, LocalStack

CAL = nyse()
DECIDED_DAY = date(2011, 3, 1)  # decisions are made at this session's close ...
EXEC_DAY = date(2011, 3, 2)  # ... and executed at the next open
NEXT_DAY = date(2011, 3, 3)
DECIDED_AT = CAL.session_close(DECIDED_DAY)
EXEC_AT = CAL.session_open(EXEC_DAY) + timedelta(minutes=5)
PACKAGED = LAMBDAS.parent / "layers" / "core" / "mytrader_tools" / "embedded" / "data"
REAL_FILES = {"NVDA": "nvda-daily-1999-2014.csv", "ORCL": "orcl-daily-1995-2014.csv"}
FLAT = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH")
DIPS = ("DIP", "DIPB", "DIPC", "DIPD")
CRAFTED = (*FLAT, "CRSH", *DIPS)
CHAOS_UNIVERSE = ("NVDA", "ORCL", "AAPL", *CRAFTED)  # AAPL: in the universe, no market data
INITIAL_EQUITY = 100_000.0


def crafted_csv(symbol: str, start: date = date(2010, 1, 4), end: date = date(2011, 6, 30)) -> str:
    rows = ["Date,Open,High,Low,Close,Volume"]
    day = start
    while day <= end:
        if CAL.is_session(day):
            o, h, lo, c = 100.0, 101.0, 99.0, 100.0
            if symbol == "CRSH" and day >= NEXT_DAY:
                o, h, lo, c = 70.0, 71.0, 69.0, 70.0
            if symbol in DIPS and day >= EXEC_DAY:
                o, h, lo, c = 100.0, 100.5, 90.0, 92.0
            rows.append(f"{day.isoformat()},{o},{h},{lo},{c},1000000")
        day += timedelta(days=1)
    return "\n".join(rows) + "\n"


def synthetic_csv(symbol: str) -> str:
    """SYN<k>: the library's seeded regime-switching series (seed k), 320 business days from 2010-01-04."""
    from mytrader.market.sources import synthetic_series

    s = synthetic_series(symbol, 320, seed=int(symbol[3:]), start=date(2010, 1, 4))
    rows = ["Date,Open,High,Low,Close,Volume"]
    for i in range(len(s)):
        rows.append(f"{s.time(i).date().isoformat()},{s.open[i]:.4f},{s.high[i]:.4f},{s.low[i]:.4f},"
                    f"{s.close[i]:.4f},{int(s.volume[i])}")
    return "\n".join(rows) + "\n"


_CSV_CACHE: dict[str, bytes] = {}


def price_file(symbol: str) -> bytes:
    """The price file a case's stack serves for `symbol` (packaged, synthetic SYN<k>, or crafted)."""
    if symbol not in _CSV_CACHE:
        if symbol in REAL_FILES:
            _CSV_CACHE[symbol] = (PACKAGED / REAL_FILES[symbol]).read_bytes()
        elif symbol.startswith("SYN"):
            _CSV_CACHE[symbol] = synthetic_csv(symbol).encode()
        else:
            _CSV_CACHE[symbol] = crafted_csv(symbol).encode()
    return _CSV_CACHE[symbol]


_QUOTES: dict[tuple[str, date], float] = {}


def open_price(symbol: str, day: date) -> float:
    """The session's open in the files above (what the paper broker fills an order of that session at)."""
    key = (symbol, day)
    if key not in _QUOTES:
        from mytrader.market.sources import parse_price_csv

        s = parse_price_csv(price_file(symbol).decode(), symbol)
        for i in range(len(s)):
            if s.time(i).date() == day:
                _QUOTES[key] = float(s.open[i])
                break
        else:
            _QUOTES[key] = 100.0
    return _QUOTES[key]


def features(symbol: str, price: float, atr: float) -> FeatureVector:
    return FeatureVector(symbol=symbol, ts=DECIDED_AT, close=price, sma_fast=price, sma_slow=price, ema_fast=price,
                         rsi=50.0, macd=0.0, macd_signal=0.0, macd_hist=0.1, atr=atr, atr_pct=atr / price * 100,
                         bb_pct_b=0.5, volatility=0.3, volume_z=0.0, ret_5=0.0, ret_20=0.0, regime_trend="trend_up",
                         regime_vol="low_vol")


@dataclass
class ChaosStack:
    """One case's stack and what the case observed on it."""

    name: str
    stack: LocalStack
    tl: TradeLog
    ctx: AuditContext
    notes: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)  # what the case itself saw (the sampler, a burst's count)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the clock, the functions ------------------------------------------------------------------------------
    def clock(self, at: datetime) -> None:
        self.stack.set_param("REPLAY_CLOCK", at.isoformat())

    def drain(self) -> DrainStats:
        return drain(self.stack)

    def outcomes(self) -> dict[str, Any]:
        return self.stack.invoke("outcomes", {})

    def cycle(self, at: datetime, universe: list[str]) -> dict[str, Any]:
        return self.stack.invoke("decision_cycle", {"scheduled_time": at.isoformat(), "universe": universe})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def expect(self, ok: bool, text: str) -> bool:
        """A case's expectation of the system's behaviour (not a safety property: a miss is reported, not a
        breach)."""
        if not ok:
            self.unexpected.append(text)
        return ok

    # -- decisions, recorded as the decision cycle records them ------------------------------------------------
    def next_id(self, symbol: str, tag: str = "") -> str:
        with self._lock:
            n = next(self._ids)
        return make_decision_id(symbol, DECIDED_AT, f"chaos-{self.stack.prefix}-{tag}{n}")

    def decision(self, symbol: str, action: Action = Action.BUY, *, size_pct: float = 10.0,
                 decided_at: datetime = DECIDED_AT, price: float | None = None, stop: float | None = -1.0,
                 target: float | None = -1.0, horizon: int = 10, sizing_equity: float | None = INITIAL_EQUITY,
                 decision_id: str | None = None, tag: str = "", construct: bool = False,
                 **extra: Any) -> TradeDecision:
        """A PENDING decision as the cycle builds one: an entry with a stop 5 % and a target 10 % away (`stop` /
        `target` None for none), a SELL with no levels and no size. `construct`: built without validation (a
        record no validating writer would make)."""
        ref = price if price is not None else open_price(symbol, EXEC_DAY)
        entry = action == Action.BUY
        fields: dict[str, Any] = dict(
            decision_id=decision_id or self.next_id(symbol, tag), symbol=symbol, bar_ts=DECIDED_AT,
            decided_at=decided_at, config_version="chaos", mode=Mode.BASELINE, action=action, confidence=0.8,
            position_size_pct=size_pct if entry else 0.0, reference_price=ref,
            stop_loss=(round(ref * 0.95, 4) if stop == -1.0 else stop) if entry else None,
            take_profit=(round(ref * 1.10, 4) if target == -1.0 else target) if entry else None,
            time_horizon_bars=horizon, sizing_equity=sizing_equity,
            strategy=StrategySignal(action=action, confidence=0.7, reason="chaos case"), reason="chaos case")
        fields.update(extra)
        return TradeDecision.model_construct(**fields) if construct else TradeDecision.model_validate(fields)

    def record(self, d: TradeDecision) -> TradeDecision:
        if not self.tl.put_decision(d):
            raise RuntimeError(f"decision {d.decision_id} was recorded already")
        return d

    def genuine(self, symbol: str, action: Action = Action.BUY, **kw: Any) -> TradeDecision:
        return self.record(self.decision(symbol, action, **kw))

    def body(self, d: TradeDecision) -> str:
        """The genuine pointer: the record's id, symbol, action and the digest of its stored document."""
        row = self.tl.get_decision_row(d.decision_id)
        if row is None:
            raise LookupError(d.decision_id)
        return message_for(d, str(row["doc"])).model_dump_json()

    def send(self, body: str, group: str = "chaos", dedup: str | None = None) -> None:
        with self._lock:
            n = next(self._ids)
        self.stack.client("sqs").send_message(QueueUrl=self.stack.queue_urls["decisions"], MessageBody=body,
                                              MessageGroupId=group, MessageDeduplicationId=dedup or f"m{n}")

    def send_genuine(self, d: TradeDecision, group: str | None = None, dedup: str | None = None) -> None:
        """What the decision cycle sends (the pointer, grouped by symbol); `dedup`: a deliberate re-send."""
        if group is None and dedup is None:
            send_decision(self.stack.client("sqs"), self.stack.queue_urls["decisions"], d)
        else:
            self.send(self.body(d), group or d.symbol, dedup)

    def status(self, d: TradeDecision | str) -> tuple[str, str]:
        row = self.tl.get_decision_row(d if isinstance(d, str) else d.decision_id)
        return (str(row["status"]), str(row.get("status_reason", ""))) if row else ("(none)", "")

    def orders(self) -> list[BrokerOrder]:
        return [BrokerOrder.model_validate_json(doc) for doc in self.tl.paper_orders()]

    def dlq_depth(self) -> int:
        attrs = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.queue_urls["decisions-dlq"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    # -- two executors at once ---------------------------------------------------------------------------------
    def executors(self, n: int = 2) -> list[str]:
        """`n` executor "containers": the stack's executor and n-1 more registered from the same handler and
        env. In process each function's handler module is its own (its batch processor, its clients), as two
        Lambda containers are."""
        base = self.stack.function_name("executor")
        bridge = self.stack.embedded.bridge
        names = [base]
        for k in range(1, n):
            name = f"{base}-c{k}"
            if name not in bridge.functions:
                spec = FUNCTIONS["executor"]
                bridge.register(SiblingContainer(name, LAMBDAS / spec.folder / "handler.py",
                                                 dict(bridge.functions[base].env), spec.memory_mb, spec.timeout_s,
                                                 same_as=base))
            names.append(name)
        return names

    def deliver(self, function: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """One SQS event (messages as ReceiveMessage gives them) to one executor; its response."""
        event = sqs_event(records, self.stack.queue_arns["decisions"], self.stack.embedded.region)
        out = self.stack.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
        body = json.loads(out["Payload"].read() or b"null")
        if out.get("FunctionError"):
            return {"function_error": body}
        return body or {}

    def parallel_drain(self, workers: int = 2, batch: int = 1, max_rounds: int = 400,
                       between: Callable[[int], None] | None = None) -> DrainStats:
        """The event source with `workers` executors polling at once (FIFO: a group in flight is held back, so
        they take different groups). `between(k)` runs in the main thread after the k-th delivery."""
        names = self.executors(workers)
        sqs = self.stack.client("sqs")
        url = self.stack.queue_urls["decisions"]
        stats = DrainStats()
        lock = threading.Lock()
        in_flight = [0]
        done = threading.Event()
        delivered = [0]
        progress = threading.Condition()

        def work(function: str) -> None:
            idle = 0
            for _ in range(max_rounds):
                if done.is_set():
                    return
                with lock:
                    resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=batch, VisibilityTimeout=30,
                                               AttributeNames=["All"], MessageSystemAttributeNames=["All"])
                    msgs = resp.get("Messages", [])
                    in_flight[0] += len(msgs)
                if not msgs:
                    with lock:
                        busy = in_flight[0]
                    idle = idle + 1 if busy == 0 else 0
                    if idle >= 3:
                        return
                    time.sleep(0.02)
                    continue
                idle = 0
                out = self.deliver(function, msgs)
                failed = ({m["MessageId"] for m in msgs} if "function_error" in out
                          else {f["itemIdentifier"] for f in out.get("batchItemFailures", [])})
                with lock:
                    stats.batches += 1
                    stats.delivered += len(msgs)
                    stats.function_errors += int("function_error" in out)
                    for m in msgs:
                        if m["MessageId"] in failed:
                            stats.failed += 1
                            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                                          VisibilityTimeout=0)
                        else:
                            stats.succeeded += 1
                            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                    in_flight[0] -= len(msgs)
                with progress:
                    delivered[0] += 1
                    progress.notify_all()

        threads = [threading.Thread(target=work, args=(fn,), name=f"chaos-{fn}") for fn in names]
        for t in threads:
            t.start()
        if between is not None:
            seen = 0
            while any(t.is_alive() for t in threads):
                with progress:
                    progress.wait(timeout=0.05)
                    now = delivered[0]
                while seen < now:
                    seen += 1
                    between(seen)
        for t in threads:
            t.join(timeout=120)
        done.set()
        return stats

    def concurrently(self, *calls: Callable[[], Any]) -> list[Any]:
        """Run the calls at the same moment (a barrier), one thread each; their results (or exceptions)."""
        barrier = threading.Barrier(len(calls))
        results: list[Any] = [None] * len(calls)

        def run(k: int, call: Callable[[], Any]) -> None:
            barrier.wait()
            try:
                results[k] = call()
            except Exception as exc:  # the case inspects it
                results[k] = exc

        threads = [threading.Thread(target=run, args=(k, c)) for k, c in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return results

    def sampler(self) -> Sampler:
        return Sampler(self)

    def audit(self) -> AuditReport:
        return audit(take_snapshot(self.tl), self.ctx)


@dataclass
class SiblingContainer(LocalFunction):
    """Another container of the function `same_as`: the same handler and env, its own module (batch processor,
    clients, caches). Powertools keys idempotency records on the decorated function's module and name; in Lambda
    every container loads the handler under one module name, so this one's `_execute` is given the name the bridge
    loads `same_as` under, and both share their idempotency records as two containers of one function do."""

    same_as: str = ""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "module" and value is not None and hasattr(value, "_execute"):
            value._execute.__module__ = f"lambda_{self.same_as.replace('-', '_')}_handler"  # LambdaBridge's naming
        super().__setattr__(name, value)


class Sampler:
    """Watches the broker's book while a case runs (its own DynamoDB client): how many symbols the broker holds at
    once, and how many entry orders it has. `with cs.sampler() as s: ...`; afterwards `s.max_held`."""

    def __init__(self, cs: ChaosStack, every_s: float = 0.015) -> None:
        import boto3

        from mytrader_tools.embedded.stack import DRIVER_CONFIG

        self.cs, self.every_s = cs, every_s
        client = boto3.client("dynamodb", region_name=cs.stack.embedded.region, config=DRIVER_CONFIG)
        self.tl = TradeLog(client, TRADE_LOG.name(cs.stack.prefix))
        self.max_held = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-sampler", daemon=True)

    def held(self) -> dict[str, float]:
        net: dict[str, float] = {}
        for doc in self.tl.paper_orders():
            o = BrokerOrder.model_validate_json(doc)
            net[o.symbol] = net.get(o.symbol, 0.0) + (o.filled_qty if o.side == OrderSide.BUY else -o.filled_qty)
        return {s: q for s, q in net.items() if abs(q) > 1e-9}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.max_held = max(self.max_held, len(self.held()))
                self.samples += 1
            except Exception:  # a sample lost to an injected fault is just skipped
                pass
            self._stop.wait(self.every_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.max_held = max(self.max_held, len(self.held()))
        limit = self.cs.ctx.limits.max_open_positions
        self.cs.note(f"sampler: {self.samples} looks at the broker's book, at most {self.max_held} symbols held")
        if self.max_held > limit:
            self.cs.breaches.append(f"sampler: the broker held {self.max_held} symbols at once "
                                    f"(max_open_positions {limit})")


@dataclass(frozen=True)
class StackSpec:
    """How a case's stack is made: its universe (env UNIVERSE), risk limits (env RISK_JSON), other env."""

    universe: tuple[str, ...] = CHAOS_UNIVERSE
    risk: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    symbols: tuple[str, ...] = ("NVDA", "ORCL", *CRAFTED)  # price files uploaded


class Harness:
    """One embedded AWS for every case; a fresh stack (own prefix) per case."""

    def __init__(self, embedded: EmbeddedAws) -> None:
        self.embedded = embedded
        self._n = itertools.count()

    def reset_faults(self) -> None:
        e = self.embedded
        e.runtime.configure(latency_s=0.0, throttle_rate=0.0, timeout_rate=0.0, malformed_rate=0.0, error_rate=0.0,
                            answer_mode="normal", answer_bad_on_repair=True)
        e.router.faults.clear()
        e.router.dynamodb_faults.configure(transaction_conflict_rate=0.0, write_conflict_rate=0.0)
        e.comprehend.fail_rate = 0.0

    def new_stack(self, name: str, spec: StackSpec) -> ChaosStack:
        self.reset_faults()
        env = {"UNIVERSE": json.dumps(list(spec.universe)), **spec.env}
        if spec.risk and "RISK_JSON" not in env:
            env["RISK_JSON"] = json.dumps(spec.risk)
        stack = LocalStack(self.embedded, prefix=f"x{next(self._n)}").create(extra_env=env)
        s3 = stack.client("s3")
        for symbol in spec.symbols:
            s3.put_object(Bucket=stack.bucket, Key=f"market-data/{symbol}.csv", Body=price_file(symbol))
        tl = TradeLog(stack.client("dynamodb"), TRADE_LOG.name(stack.prefix))
        tl.ensure_account(INITIAL_EQUITY)
        limits = RiskLimits.model_validate(spec.risk) if spec.risk else RiskLimits()
        ctx = AuditContext(universe=frozenset(s for s in spec.universe if s), limits=limits,
                           initial_equity=INITIAL_EQUITY)
        cs = ChaosStack(name=name, stack=stack, tl=tl, ctx=ctx)
        cs.clock(EXEC_AT)
        return cs

    def finish(self, cs: ChaosStack) -> None:
        """Faults off; the queue drained and outcomes run twice (its re-send of anything PENDING, delivered, then
        the dead letters marked)."""
        self.reset_faults()
        for _ in range(2):
            cs.drain()
            try:
                cs.outcomes()
            except FunctionFailed as exc:
                cs.note(f"final outcomes run failed: {str(exc)[:160]}")
        cs.drain()

