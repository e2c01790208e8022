"""The unused-grant check follows each grant by the statement that allowed a call (iam/audit.py)."""
from __future__ import annotations

from mytrader_tools.embedded.iam import audit
from mytrader_tools.embedded.iam.policy import Check, Policy, Principal, evaluate
from mytrader_tools.embedded.iam.roles import Role, StackIam

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/"
TRUST = Policy.from_document("trust", {"Statement": []}, True)


def stack(*statements: dict) -> StackIam:
    policy = Policy.from_document("ExecutorPolicy", {"Statement": list(statements)})
    role = Role("ExecutorRole", "arn:aws:iam::123456789012:role/executor", TRUST, (policy,))
    return StackIam(roles={role.arn: role}, functions={"mytrader-executor": role})


def used_by(iam: StackIam, *checks: Check) -> dict[str, dict[str, int]]:
    """What the recorder keeps: "<policy>/<sid> <action> <resource index>" per allowed check."""
    (role,) = iam.roles.values()
    out: dict[str, int] = {}
    for check in checks:
        verdict = evaluate(check, Principal("123456789012", frozenset({role.arn})), role.policies)
        assert verdict.allowed
        key = f"{verdict.statement} {check.action} {verdict.resource_index}"
        out[key] = out.get(key, 0) + 1
    return {role.logical_id: out}


KEYS = {"mytrader-executor": "executor"}


def test_an_action_used_on_one_table_does_not_excuse_its_grant_on_another():
    """Given GetItem granted on two tables in two named statements, when calls used it on the first only, then the
    second statement's GetItem is reported."""
    iam = stack({"Sid": "TradeLog", "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": TABLE + "log"},
                {"Sid": "Cache", "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": TABLE + "cache"})
    used = used_by(iam, Check("dynamodb:GetItem", TABLE + "log"))
    assert audit.unused_grants(iam, KEYS, used) == [
        f"executor ExecutorPolicy/Cache: dynamodb:GetItem on {TABLE}cache"]


def test_a_statement_repeating_another_grant_is_reported():
    """Given the same grant twice, when calls used it, then the second statement (never the one that allowed) is
    reported: it grants nothing the first does not."""
    grant = {"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": TABLE + "log"}
    iam = stack({"Sid": "First", **grant}, {"Sid": "Again", **grant})
    used = used_by(iam, Check("dynamodb:Query", TABLE + "log"))
    assert audit.unused_grants(iam, KEYS, used) == [f"executor ExecutorPolicy/Again: dynamodb:Query on {TABLE}log"]


def test_unreached_grants_are_excused_and_unnamed_statements_are_listed():
    """Given an unnamed X-Ray statement (in UNREACHED) and an unnamed table grant, when nothing was called, then
    only the table grant is reported, and it is also listed as a statement without a Sid."""
    iam = stack({"Effect": "Allow", "Action": ["xray:PutTraceSegments"], "Resource": "*"},
                {"Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": TABLE + "log"})
    assert audit.unused_grants(iam, KEYS, {}) == [f"executor ExecutorPolicy/#1: dynamodb:PutItem on {TABLE}log"]
    assert audit.unnamed_statements(iam, KEYS) == [
        "executor ExecutorPolicy/#1: dynamodb:PutItem has no Sid (give the statement one)"]


def test_a_resource_of_a_statement_no_call_touched_is_reported():
    """Given Query granted on a table and its indexes in one statement, when calls queried the indexes only, then
    the table's grant is reported (the statement is used, that resource is not)."""
    iam = stack({"Sid": "TradeLog", "Effect": "Allow", "Action": ["dynamodb:Query"],
                 "Resource": [TABLE + "log", TABLE + "log/index/*"]})
    used = used_by(iam, Check("dynamodb:Query", TABLE + "log/index/gsi1"))
    assert audit.unused_grants(iam, KEYS, used) == [f"executor ExecutorPolicy/TradeLog: dynamodb:Query on {TABLE}log"]
