"""The deployed template's IAM against the knowledge base the embedded AWS enforces with (iam/audit.py): every
action exists, every resource fits the action's resource types, actions without resource types get "*", and no
function holds an action its recorded calls never used."""
from __future__ import annotations

import json

import pytest

from mytrader.stack_spec import DEFAULT_PREFIX, FUNCTIONS
from mytrader_tools.embedded.iam import audit
from tests.conftest import IAM_RECORD


@pytest.fixture(scope="module")
def deployed(template):
    return audit.deployed_iam(template)


@pytest.fixture(scope="module")
def keys():
    return {spec.name(DEFAULT_PREFIX): key for key, spec in FUNCTIONS.items()}


def test_every_function_has_a_role_with_policies(deployed, keys):
    """Given the template, then each function of stack_spec runs as a role of its own with policies."""
    assert set(deployed.functions) == set(keys)
    roles = [r.logical_id for r in deployed.functions.values()]
    assert len(set(roles)) == len(roles)
    assert all(r.policies for r in deployed.functions.values())


def test_actions_exist_and_resources_fit_their_resource_types(deployed, keys):
    """Given every Allow of every role, then each action exists, each resource ARN fits one of its resource types,
    and an action that has none is granted on "*"."""
    findings = audit.template_findings(deployed, keys)
    assert not findings, "\n".join(findings)


def test_no_function_holds_an_action_its_calls_never_used(deployed, keys):
    """Given the record of a complete integration run on these inputs (.build/iam-calls/last-run.json), then every
    function grant was used by one of its calls, or is listed in audit.UNREACHED with why."""
    if not IAM_RECORD.exists():
        pytest.skip("no recorded integration run (run tests/integration first)")
    record = json.loads(IAM_RECORD.read_text())
    from mytrader_tools.embedded.iam.recorder import RECORD_FORMAT

    if record.get("record_format") != RECORD_FORMAT:
        pytest.skip("the last recorded run was written in another format (an older checkout)")
    if not record.get("integration_complete"):
        pytest.skip("the last recorded run did not run every integration test")
    from mytrader_tools.embedded.iam.template import inputs_hash

    if record.get("template_inputs") != inputs_hash():
        pytest.skip("the last complete run was recorded with other template inputs (cdk/, lambdas, ...)")
    unused = audit.unused_grants(deployed, keys, record["statements"])
    assert not unused, "grants no recorded call used:\n" + "\n".join(unused)


def test_every_function_statement_is_named(deployed, keys):
    """Given every function statement, then each has a Sid (how the unused-grant check follows a grant between the
    deployed template and the embedded stack's variants), except those CDK adds for grants in audit.UNREACHED."""
    unnamed = audit.unnamed_statements(deployed, keys)
    assert not unnamed, "\n".join(unnamed)
