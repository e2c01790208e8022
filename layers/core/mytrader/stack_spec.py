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
SECRET_NOT_SET_METRIC = "BrokerSecretNotSet"  # counted by a function idle on the placeholder secret (alarmed)
EXECUTOR_MAX_CONCURRENCY = 5  # SQS event source: enough for 5 message groups in parallel, gentle on the broker

# Once a day after the close (New York time; usecases/execute.py states the timing): outcomes books what filled at
# today's open and checks the day's completed bar, then the decision cycle decides on it; the executor acts at once
# and the broker queues the orders for the next open. On an exchange holiday the decision cycle decides nothing.
OUTCOMES_SCHEDULE = "cron(20 16 ? * MON-FRI *)"  # before the decisions: fills at the open, then stops on the bar
DECISION_SCHEDULE = "cron(25 16 ? * MON-FRI *)"  # after the close and the SIP feed's 15-minute delay (bars complete)
SCHEDULE_TIMEZONE = "America/New_York"
STATE_MACHINE_NAME = "finetune"
FINETUNE_BASE_MODEL = "amazon.nova-micro-v1:0:128k"  # fine-tunable on Bedrock (us-east-1), bedrock-conversation-2024

# -- Bedrock model access: the pinned inference-profile table ------------------------------------------------------
# A system-defined (cross-Region) inference profile routes each request to one of its destination regions, which
# depend on the profile and on the source region (the stack's). The stack grants InvokeModel on the foundation model
# in exactly these regions, so synth stays offline and the template tested is the template deployed;
# `mytrader doctor` compares this table with what GetInferenceProfile answers in the account. A `global.` profile
# routes to any commercial region: its foundation-model ARN is region-less and needs no row here. A profile missing
# from the table is refused at synth (add its row, or pass -c inference_regions=...).
GEOGRAPHIC_PROFILE_PREFIXES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca")
GLOBAL_PROFILE_PREFIX = "global"
_US_HAIKU_45 = ("us-east-1", "us-east-2", "us-west-2")
INFERENCE_PROFILE_DESTINATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "us.anthropic.claude-haiku-4-5-20251001-v1:0": {"us-east-1": _US_HAIKU_45, "us-east-2": _US_HAIKU_45,
                                                    "us-west-2": _US_HAIKU_45},
}


class UnknownInferenceProfile(ValueError):
    """A geographic inference profile whose destination regions the pinned table does not know."""


@dataclass(frozen=True)
class ModelRoute:
    """Where a model id's requests go: the inference profile (if it is one), the foundation model it runs, and the
    regions of that foundation model the caller must be allowed to invoke ("" stands for the region-less ARN of a
    `global.` profile)."""
    model_id: str
    profile_id: str | None
    base_model: str
    regions: tuple[str, ...]

    @property
    def is_global(self) -> bool:
        return self.profile_id is not None and self.profile_id.startswith(GLOBAL_PROFILE_PREFIX + ".")


def model_route(model_id: str, source_region: str, regions: tuple[str, ...] | None = None) -> ModelRoute:
    """The route of `model_id` called from `source_region`; `regions` overrides the pinned table (geographic
    profiles only). A plain foundation model id runs in the source region."""
    geography, _, rest = model_id.partition(".")
    if geography == GLOBAL_PROFILE_PREFIX:
        return ModelRoute(model_id, model_id, rest, (source_region, ""))
    if geography not in GEOGRAPHIC_PROFILE_PREFIXES:
        return ModelRoute(model_id, None, model_id, (source_region,))
    pinned = regions or INFERENCE_PROFILE_DESTINATIONS.get(model_id, {}).get(source_region)
    if not pinned:
        raise UnknownInferenceProfile(
            f"inference profile {model_id} called from {source_region}: its destination regions are not pinned; add "
            "them to INFERENCE_PROFILE_DESTINATIONS in mytrader/stack_spec.py (GetInferenceProfile lists them) or "
            "pass -c inference_regions=<region,region,...>")
    return ModelRoute(model_id, model_id, rest, tuple(dict.fromkeys((source_region, *pinned))))
