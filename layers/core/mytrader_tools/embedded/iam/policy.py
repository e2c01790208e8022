"""IAM policy evaluation for one account, as AWS decides a request (identity and resource-based policies):

  1. a Deny statement that matches (action, resource, principal, conditions) denies: explicit Deny wins;
  2. else an Allow statement that matches allows (identity policies; resource policies naming the principal);
  3. else the request is denied (implicit deny).

Action/NotAction match case-insensitively with `*` and `?`; Resource/NotResource match the ARN's first five
segments one by one (a wildcard never spans a `:` there) and the resource part as a whole. An action that has no
resource types is requested on `*`, which only `"Resource": "*"` matches, as on AWS.

Conditions: the operators String*, Arn*, Bool and Null, with `...IfExists` and `ForAnyValue:` / `ForAllValues:`.
Only the condition keys in EVALUATED_KEYS are evaluated (the ones the stack's policies use, and that the embedded
AWS can supply truthfully); a statement that would apply to a request and names any other key denies it, as does
an unknown operator: a condition the embedded AWS cannot judge never grants anything (docs/contributing-iam.md).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Condition keys evaluated (lower case; a trailing "/" is a prefix): where their values come from is in gate.py.
EVALUATED_KEYS = ("aws:resourcetag/", "aws:sourcearn", "aws:sourceaccount", "bedrock:inferenceprofilearn",
                  "aws:securetransport", "iam:passedtoservice")


def evaluated(key: str) -> bool:
    k = key.lower()
    return any(k.startswith(e) if e.endswith("/") else k == e for e in EVALUATED_KEYS)


@dataclass(frozen=True)
class Check:
    """One authorisation a request needs: an action on a resource, with the condition keys it carries (lower-case
    names; aws:ResourceTag/<key> included when the resource has that tag)."""
    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    """Who asks: the role's ARN and its session's ARN (resource policies name either), or a service principal."""
    account: str
    arns: frozenset[str] = frozenset()
    service: str | None = None


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    principal: Any = None  # resource policies only
    sid: str = ""


@dataclass
class Policy:
    name: str
    statements: tuple[Statement, ...]
    resource_policy: bool = False
    _by_action: dict[str, tuple[Statement, ...]] = field(default_factory=dict, repr=False, compare=False)

    def statements_for(self, action: str) -> tuple[Statement, ...]:
        """The statements whose Action/NotAction cover the action (computed once per action)."""
        found = self._by_action.get(action)
        if found is None:
            found = self._by_action[action] = tuple(st for st in self.statements if _covers(st, action))
        return found

    @classmethod
    def from_document(cls, name: str, doc: Mapping[str, Any], resource_policy: bool = False) -> Policy:
        raw = doc.get("Statement", [])
        items = raw if isinstance(raw, list) else [raw]
        return cls(name, tuple(_statement(s, i) for i, s in enumerate(items)), resource_policy)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    for v in items:
        if not isinstance(v, str):
            raise ValueError(f"a policy value is not a string after resolution: {v!r}")
    return tuple(items)


def _statement(s: Mapping[str, Any], index: int) -> Statement:
    if s.get("Effect") not in ("Allow", "Deny"):
        raise ValueError(f"statement {index}: Effect must be Allow or Deny, not {s.get('Effect')!r}")
    if ("Action" in s) == ("NotAction" in s) or ("Resource" in s and "NotResource" in s):
        raise ValueError(f"statement {index}: exactly one of Action/NotAction, at most one of Resource/NotResource")
    if any(key in s and not _strings(s[key]) for key in ("Action", "NotAction", "Resource", "NotResource")):
        raise ValueError(f"statement {index}: an empty Action, NotAction, Resource or NotResource (IAM refuses it)")
    return Statement(effect=s["Effect"], actions=_strings(s.get("Action")), not_actions=_strings(s.get("NotAction")),
                     resources=_strings(s.get("Resource")), not_resources=_strings(s.get("NotResource")),
                     conditions=s.get("Condition") or {}, principal=s.get("Principal"), sid=s.get("Sid", f"#{index}"))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "allowed by <policy>/<sid>", "explicit deny in ...", "no statement allows ...", "unsupported ..."
    # allowed: "<policy>/<sid>" of the first statement that allows it, and the index of the statement's Resource
    # entry that matched (-1: NotResource or no Resource), so the unused-grant check can follow each resource
    statement: str = ""
    resource_index: int = -1


def evaluate(check: Check, principal: Principal, identity: Iterable[Policy], resource: Iterable[Policy] = ()
             ) -> Decision:
    allow: str | None = None
    allow_index = -1
    for policy in (*identity, *resource):
        for st in policy.statements_for(check.action):
            if not _applies(st, policy, check, principal):
                continue
            verdict = _conditions(st.conditions, check.context)
            if isinstance(verdict, str):  # an operator or key the embedded AWS does not evaluate
                return Decision(False, f"{policy.name}/{st.sid}: {verdict}")
            if not verdict:
                continue
            if st.effect == "Deny":
                return Decision(False, f"explicit deny in {policy.name}/{st.sid}")
            if allow is None and (not policy.resource_policy or _grants_to(st.principal, principal)):
                allow = f"{policy.name}/{st.sid}"
                allow_index = next((k for k, p in enumerate(st.resources) if resource_matches(p, check.resource)), -1)
    if allow is not None:
        return Decision(True, f"allowed by {allow}", allow, allow_index)
    return Decision(False, f"no statement allows {check.action} on {check.resource}")


def _covers(st: Statement, action: str) -> bool:
    if st.actions and not any(action_matches(p, action) for p in st.actions):
        return False
    return not (st.not_actions and any(action_matches(p, action) for p in st.not_actions))


def _applies(st: Statement, policy: Policy, check: Check, principal: Principal) -> bool:
    """Resource and principal (the action is covered: statements_for)."""
    if st.resources and not any(resource_matches(p, check.resource) for p in st.resources):
        return False
    if st.not_resources and any(resource_matches(p, check.resource) for p in st.not_resources):
        return False
    return not policy.resource_policy or _names(st.principal, principal)


def _names(spec: Any, who: Principal) -> bool:
    """Whether a resource-policy statement's Principal covers `who` (a Deny on the account covers its roles)."""
    return _principal_in(spec, who, account_covers=True)


def _grants_to(spec: Any, who: Principal) -> bool:
    """An Allow in a resource policy grants by itself only to a principal it names (not to the whole account,
    which delegates to the account's own IAM policies)."""
    return _principal_in(spec, who, account_covers=False)


def _principal_in(spec: Any, who: Principal, account_covers: bool) -> bool:
    if spec == "*":
        return True
    if not isinstance(spec, Mapping):
        return False
    if who.service is not None:
        return who.service in _strings(spec.get("Service"))
    account = (who.account, f"arn:aws:iam::{who.account}:root") if account_covers else ()
    return any(p == "*" or p in who.arns or p in account for p in _strings(spec.get("AWS")))


def action_matches(pattern: str, action: str) -> bool:
    return _regex(pattern.lower()).fullmatch(action.lower()) is not None


def resource_matches(pattern: str, resource: str) -> bool:
    if pattern == "*":
        return True
    if resource == "*":
        return False
    p_parts, r_parts = pattern.split(":", 5), resource.split(":", 5)
    if len(p_parts) != 6 or len(r_parts) != 6:
        return _regex(pattern).fullmatch(resource) is not None
    return all(_regex(p).fullmatch(r) is not None for p, r in zip(p_parts, r_parts, strict=True))


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


_STRING_OPS = {"stringequals", "stringnotequals", "stringequalsignorecase", "stringnotequalsignorecase",
               "stringlike", "stringnotlike", "arnequals", "arnlike", "arnnotequals", "arnnotlike", "bool", "null"}


def _conditions(block: Mapping[str, Mapping[str, Any]], context: Mapping[str, str | Sequence[str]]) -> bool | str:
    """True when every operator's every key holds; a str names what the embedded AWS cannot evaluate."""
    for raw_op, entries in block.items():
        qualifier, _, op = raw_op.rpartition(":")
        op_l = op.lower()
        if_exists = op_l.endswith("ifexists") and op_l != "null"
        base = op_l[:-len("ifexists")] if if_exists else op_l
        if base not in _STRING_OPS or qualifier.lower() not in ("", "foranyvalue", "forallvalues"):
            return f"condition operator {raw_op} is not evaluated by the embedded AWS"
        for key, expected in entries.items():
            if not evaluated(key):
                return f"condition key {key} is not evaluated by the embedded AWS"
            if not _holds(base, qualifier.lower(), if_exists, _strings(expected), context.get(key.lower())):
                return False
    return True


def _holds(op: str, qualifier: str, if_exists: bool, expected: tuple[str, ...],
           actual: str | Sequence[str] | None) -> bool:
    if op == "null":
        return (actual is None) == (expected[0].lower() == "true")
    negated = "not" in op
    if actual is None:
        return if_exists or negated
    values = [actual] if isinstance(actual, str) else list(actual)
    if qualifier == "forallvalues":
        return all(_one(op, v, expected) != negated for v in values)
    return any(_one(op, v, expected) for v in values) != negated


def _one(op: str, value: str, expected: tuple[str, ...]) -> bool:
    """The positive form of the operator: the value equals / is like one of the expected ones."""
    if op == "bool":
        return value.lower() in (e.lower() for e in expected)
    if "ignorecase" in op:
        return value.lower() in (e.lower() for e in expected)
    if "like" in op:
        return any((resource_matches(e, value) if op.startswith("arn") else _regex(e).fullmatch(value) is not None)
                   for e in expected)
    return value in expected
