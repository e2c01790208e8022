"""One source of truth for resource names, key schemas and sizes, read by the CDK app and by the
embedded AWS, so the stack deployed and the stack emulated cannot drift apart (a drift test checks it)."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PREFIX = "mytrader"
ACCOUNT_ID = "main"  # the trading account's key in the trade log

EXECUTOR_TIMEOUT_S = 30
DECISION_TIMEOUT_S = 300
OUTCOMES_TIMEOUT_S = 120
QUEUE_VISIBILITY_S = 6 * EXECUTOR_TIMEOUT_S  # >= 6 x executor timeout, as AWS advises for event sources
QUEUE_RETENTION_S = 4 * 24 * 3600
MAX_RECEIVE_COUNT = 3
DLQ_RETENTION_S = 14 * 24 * 3600
# Idempotency records outlive the queue retention plus a redrive window, so a redriven message is recognised.
IDEMPOTENCY_EXPIRY_S = QUEUE_RETENTION_S + 3 * 24 * 3600
SENTIMENT_TTL_S = 30 * 24 * 3600
DECISION_MAX_AGE_S = 4 * 24 * 3600  # the executor rejects older decisions (backlog, DLQ redrive); covers a long weekend


@dataclass(frozen=True)
class TableSpec:
    key: str  # logical key, used in env var names
    suffix: str
    pk: str
    sk: str | None = None
    ttl: str | None = None
    gsis: tuple[tuple[str, str, str], ...] = ()  # (index name, pk attr, sk attr)

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.suffix}"


TRADE_LOG = TableSpec("TRADE_LOG", "trade-log", "pk", "sk", ttl="expires_at",
                      gsis=(("gsi1", "gsi1pk", "gsi1sk"), ("gsi2", "gsi2pk", "gsi2sk")))
IDEMPOTENCY = TableSpec("IDEMPOTENCY", "idempotency", "id", None, ttl="expiration")
SENTIMENT_CACHE = TableSpec("SENTIMENT_CACHE", "sentiment-cache", "key", None, ttl="expires_at")
TABLES = (TRADE_LOG, IDEMPOTENCY, SENTIMENT_CACHE)


@dataclass(frozen=True)
class QueueSpec:
    suffix: str
    fifo: bool
    visibility_s: int
    retention_s: int
    dlq: str | None = None
    max_receive: int | None = None

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.suffix}" + (".fifo" if self.fifo else "")


DECISIONS_DLQ = QueueSpec("decisions-dlq", True, 60, DLQ_RETENTION_S)
DECISIONS_QUEUE = QueueSpec("decisions", True, QUEUE_VISIBILITY_S, QUEUE_RETENTION_S, dlq="decisions-dlq",
                            max_receive=MAX_RECEIVE_COUNT)
SCHEDULE_DLQ = QueueSpec("schedule-dlq", False, 60, DLQ_RETENTION_S)  # Scheduler does not take FIFO DLQs
QUEUES = (DECISIONS_DLQ, DECISIONS_QUEUE, SCHEDULE_DLQ)


def parameter_names(prefix: str) -> dict[str, str]:
    return {
        "ACTIVE_MODEL": f"/{prefix}/active-model-id",
        "PREVIOUS_MODEL": f"/{prefix}/previous-model-id",
        "MODE": f"/{prefix}/mode",
        "KILL_SWITCH": f"/{prefix}/kill-switch",
        "SHADOW_MODEL": f"/{prefix}/shadow-model-id",  # a candidate answering beside the active model, logged only
        "REPLAY_CLOCK": f"/{prefix}/replay-clock",  # embedded AWS only: the replay's simulated time
    }


PARAMETER_DEFAULTS = {"MODE": "consensus", "KILL_SWITCH": "off", "PREVIOUS_MODEL": "none", "SHADOW_MODEL": "none"}


@dataclass(frozen=True)
class FunctionSpec:
    name_suffix: str
    folder: str  # lambdas/<folder>/handler.py
    memory_mb: int
    timeout_s: int
    needs_numpy: bool
    why: str
    env_keys: tuple[str, ...] = field(default_factory=tuple)

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.name_suffix}"


COMMON_ENV = ("TRADE_LOG_TABLE", "PARAM_PREFIX", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
              "POWERTOOLS_LOG_LEVEL", "CLOCK_SOURCE", "BROKER", "MARKET_DATA", "DATA_BUCKET")
FUNCTIONS = {
    "decision_cycle": FunctionSpec("decision-cycle", "decision_cycle", 1024, DECISION_TIMEOUT_S, True,
                                   "TA-Lib/numpy over a universe, LLM calls in parallel threads: CPU and memory bound"),
    "executor": FunctionSpec("executor", "executor", 512, EXECUTOR_TIMEOUT_S, False,
                             "one batch of 10 orders: a few DynamoDB and broker calls each"),
    "outcomes": FunctionSpec("outcomes", "outcomes", 512, OUTCOMES_TIMEOUT_S, False,
                             "marks positions to market and reconciles orders; I/O bound"),
    "dataset_export": FunctionSpec("dataset-export", "dataset_export", 1024, 300, False,
                                   "reads the trade log and writes JSONL to S3"),
    "finetune_tasks": FunctionSpec("finetune-tasks", "finetune_tasks", 1024, 300, True,
                                   "Step Functions tasks: Bedrock control plane calls and the evaluation replay"),
}
EXECUTOR_MAX_CONCURRENCY = 5  # SQS event source: enough for 5 message groups in parallel, gentle on the broker

DECISION_SCHEDULE = "cron(0/15 9-16 ? * MON-FRI *)"  # every 15 minutes; the handler checks the real session
OUTCOMES_SCHEDULE = "cron(5/15 9-17 ? * MON-FRI *)"
SCHEDULE_TIMEZONE = "America/New_York"
STATE_MACHINE_NAME = "finetune"
FINETUNE_BASE_MODEL = "amazon.nova-micro-v1:0:128k"  # fine-tunable on Bedrock (us-east-1), bedrock-conversation-2024
