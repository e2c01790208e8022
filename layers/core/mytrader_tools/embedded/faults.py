"""Fault injection for the embedded AWS: wrappers around the real adapters of the in-process handlers.

The library has no fault knobs. A stack created with a `FaultPlan` registers its functions as `FaultyFunction`s:
when the bridge loads a handler, its cached `deps()` is replaced by one that returns the same dependencies
with the plan's wrappers around the real adapters:

  broker_error_rate ... the broker (executor and outcomes) answers a share of submissions with a retryable
                        BrokerError, deterministically per client_order_id and fault count, before the order
                        reaches the real broker;
  crash_after_broker .. the process "dies" right after the real broker accepted an order: at most once per
                        client_order_id (per container), for a deterministic share of orders;
  crash_before_send ... the decision cycle "dies" between writing a decision and sending it, at most once per
                        decision (per container), for a deterministic share of decisions.

A crash after the broker surfaces as the executor failing that message (SQS redelivers it). A crash before the
send is a `ProcessCrash` (a BaseException, like a real process death no `except Exception` may absorb) that
ends the whole invocation; the handler wrapper reports it as the function error Lambda would.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, replace
from functools import cache, wraps
from typing import TYPE_CHECKING, Any

from mytrader.app.wiring import ExecutorDeps, OutcomesDeps
from mytrader.broker import BrokerError
from mytrader_tools.embedded.services import LocalFunction

if TYPE_CHECKING:
    from collections.abc import Callable

    from mytrader.broker import BrokerOrder, ExitLegs
    from mytrader.models import Order, TradeDecision
    from mytrader.ports import Broker, DecisionQueue

ENV_KEYS = {"FAULT_CRASH_AFTER_BROKER": "crash_after_broker", "FAULT_CRASH_BEFORE_SEND": "crash_before_send",
            "FAULT_BROKER_ERROR_RATE": "broker_error_rate"}


class CrashInjected(RuntimeError):
    """An injected crash, as the caller of the crashed code sees it (a failed message, a failed invocation)."""


class ProcessCrash(BaseException):
    """The process dies here: nothing in the library may catch it (it is no Exception)."""


@dataclass(frozen=True)
class FaultPlan:
    crash_after_broker: float = 0.0
    crash_before_send: float = 0.0
    broker_error_rate: float = 0.0

    @classmethod
    def pop_from_env(cls, env: dict[str, str]) -> FaultPlan:
        """The FAULT_* keys of a stack's environment, taken out of it (the functions never see them)."""
        return cls(**{name: float(env.pop(key)) for key, name in ENV_KEYS.items() if key in env})

    def __bool__(self) -> bool:
        return bool(self.crash_after_broker or self.crash_before_send or self.broker_error_rate)

    def wrap(self, deps: object) -> object:
        """The same dependencies with this plan's wrappers around the adapters it injects faults into."""
        if isinstance(deps, ExecutorDeps | OutcomesDeps):
            if not (self.crash_after_broker or self.broker_error_rate):
                return deps
            broker = FaultyBroker(deps.execution.broker, self.broker_error_rate, self.crash_after_broker)
            return replace(deps, execution=replace(deps.execution, broker=broker))
        if self.crash_before_send:
            from mytrader.usecases.decide import CycleDeps  # numpy, TA-Lib: loaded already where it matches

            if isinstance(deps, CycleDeps):
                return replace(deps, queue=CrashingQueue(deps.queue, self.crash_before_send))
        return deps

    def install(self, module: Any) -> None:
        """Into a freshly loaded handler module: its deps() wrapped, its crashes reported as function errors."""
        built = module.deps
        module.deps = cache(lambda: self.wrap(built()))
        module.lambda_handler = crash_as_function_error(module.lambda_handler)


class FaultyBroker:
    """A real broker behind injected faults (see the module docstring); everything else passes through."""

    def __init__(self, inner: Broker, error_rate: float = 0.0, crash_rate: float = 0.0) -> None:
        self.inner, self.error_rate, self.crash_rate = inner, error_rate, crash_rate
        self.faults: list[str] = []  # client_order_ids answered with an injected error, in order
        self.crashed: set[str] = set()

    @property
    def name(self) -> str:
        return self.inner.name

    def submit(self, order: Order, quote: float, fill_price: float | None = None,
               exits: ExitLegs | None = None) -> BrokerOrder:
        key = order.client_order_id
        if self.error_rate and random.Random(f"{key}:{len(self.faults)}").random() < self.error_rate:
            self.faults.append(key)
            raise BrokerError("injected broker fault (HTTP 503)", retryable=True)
        placed = self.inner.submit(order, quote, fill_price, exits)
        if self._crashes(key):
            raise CrashInjected(f"injected crash after the broker accepted {key}")
        return placed

    def _crashes(self, key: str) -> bool:
        if self.crash_rate <= 0 or key in self.crashed or random.Random(key).random() >= self.crash_rate:
            return False
        self.crashed.add(key)
        return True

    def get_by_client_order_id(self, client_order_id: str) -> BrokerOrder | None:
        return self.inner.get_by_client_order_id(client_order_id)

    def cancel(self, broker_order_id: str) -> None:
        self.inner.cancel(broker_order_id)

    def replace_stop(self, broker_order_id: str, stop_price: float) -> BrokerOrder:
        return self.inner.replace_stop(broker_order_id, stop_price)

    def __getattr__(self, name: str) -> Any:  # positions(), ledger(), ... of the real broker
        return getattr(self.inner, name)


class CrashingQueue:
    """The decisions queue of a cycle that dies between the write and the send (see the module docstring)."""

    def __init__(self, inner: DecisionQueue, rate: float) -> None:
        self.inner, self.rate = inner, rate
        self.crashed: set[str] = set()
        self._lock = threading.Lock()  # the cycle decides symbols in parallel

    def send(self, decision: TradeDecision) -> None:
        key = decision.decision_id
        if random.Random(key).random() < self.rate:
            with self._lock:
                crash = key not in self.crashed
                self.crashed.add(key)
            if crash:
                raise ProcessCrash(f"injected crash between the decision write and the send ({decision.symbol})")
        self.inner.send(decision)


def crash_as_function_error(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A ProcessCrash ends the invocation as Lambda reports a dead process: a function error."""

    @wraps(handler)
    def run(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        except ProcessCrash as crash:
            raise CrashInjected(str(crash)) from None

    return run


@dataclass
class FaultyFunction(LocalFunction):
    """A function whose handler gets the plan's wrappers whenever the bridge loads it (first invoke, or after a
    reset)."""
    plan: FaultPlan = field(default_factory=FaultPlan)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "module" and value is not None:
            self.plan.install(value)
        super().__setattr__(name, value)
