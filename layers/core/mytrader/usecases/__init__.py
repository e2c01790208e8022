"""Use cases: one symbol-cycle (decide), one recorded decision (execute), stops/targets/reconciliation (manage),
export and fine-tuning tasks (learn). They call ports, never an SDK."""

from dataclasses import asdict
from enum import Enum
from typing import Any


def response_of(result: Any, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A use case's result (a dataclass) as the function's JSON: the fields that are set, enums as their values."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(result).items()
            if v is not None and k not in exclude}
