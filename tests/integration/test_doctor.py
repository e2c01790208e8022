"""`mytrader doctor` against the embedded AWS: each ✓ and each ✗ path, read-only, one line each, exit 1 on any ✗;
no traceback when the region or the credentials are missing or the endpoint does not answer."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from mytrader.stack_spec import INFERENCE_PROFILE_DESTINATIONS
from mytrader_tools.cli import app
from mytrader_tools.embedded.stack import ACCOUNT, LocalStack

PROFILE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
BASE = "anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture(scope="module")
def deployed(embedded) -> Iterator[LocalStack]:
    """One stack for the module, as `cdk deploy` leaves it once set up: the advisor on its inference profile, the
    broker keys in, the alarm topic subscribed. Each test changes one thing and puts it back."""
    stack = LocalStack(embedded, prefix="doc").create()
    stack.set_param("ACTIVE_MODEL", PROFILE)
    stack.client("sns").subscribe(TopicArn=stack.topic_arn, Protocol="email", Endpoint="ops@example.com")
    yield stack


def doctor(embedded, *args: str, prefix: str = "doc") -> tuple[int, list[str]]:
    res = CliRunner().invoke(app, ["doctor", "--prefix", prefix, "--endpoint-url", embedded.url, *args])
    assert "Traceback" not in res.output, res.output
    return res.exit_code, res.output.splitlines()


def marked(lines: list[str], mark: str, name: str) -> list[str]:
    return [ln for ln in lines if ln.startswith(f"{mark} {name}")]


def test_a_ready_stack_passes_every_check(embedded, deployed):
    code, lines = doctor(embedded)
    checks = [ln for ln in lines if ln[:1] in "✓✗·"]
    assert code == 0 and checks and all(ln.startswith("✓") for ln in checks), lines
    regions = ", ".join(INFERENCE_PROFILE_DESTINATIONS[PROFILE]["us-east-1"])
    assert marked(lines, "✓", "inference profile") == [
        f"✓ inference profile: {PROFILE} ACTIVE, destinations {regions} match the pinned table"]
    assert marked(lines, "✓", "model access") and marked(lines, "✓", "alarm topic")
    assert len(marked(lines, "✓", "queue")) == 3 and marked(lines, "✓", "state machine")
    assert lines[-1] == "all checks passed"


def test_the_placeholder_secret_fails_with_the_command_that_sets_it(embedded, deployed):
    sm = deployed.client("secretsmanager")
    arn = deployed.settings_env["BROKER_SECRET_ARN"]
    good = sm.get_secret_value(SecretId=arn)["SecretString"]
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"key_id": "set-me", "secret_key": "generated"}))
    try:
        code, lines = doctor(embedded)
    finally:
        sm.put_secret_value(SecretId=arn, SecretString=good)
    (line,) = marked(lines, "✗", "broker secret")
    assert code == 1 and "placeholder" in line
    assert "aws secretsmanager put-secret-value --secret-id doc/broker" in lines[lines.index(line) + 1]


@pytest.mark.parametrize("change,expect", [
    ({"model_access": {BASE: {"authorizationStatus": "NOT_AUTHORIZED"}}}, "authorizationStatus NOT_AUTHORIZED"),
    ({"model_access": {BASE: {"agreementAvailability": {"status": "PENDING"}}}}, "agreement PENDING"),
    ({"unknown_models": {BASE}}, "ResourceNotFoundException"),
    ({"inference_profiles": {PROFILE: ("us-east-1", "us-west-2")}}, "routes to us-east-1, us-west-2"),
    ({"inference_profiles": {}}, f"{PROFILE}: ResourceNotFoundException"),
])
def test_model_access_problems_fail_with_what_to_do(embedded, deployed, change, expect):
    control = embedded.control
    saved = {k: getattr(control, k) for k in change}
    for k, v in change.items():
        setattr(control, k, v)
    try:
        code, lines = doctor(embedded)
    finally:
        for k, v in saved.items():
            setattr(control, k, v)
    failed = [ln for ln in lines if ln.startswith("✗")]
    assert code == 1 and len(failed) == 1 and expect in failed[0], lines
    assert lines[lines.index(failed[0]) + 1].startswith("    → ")


def test_a_global_profile_and_a_promoted_deployment_are_checked_too(embedded, deployed):
    deployment = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model-deployment/abcdefabcdef"
    embedded.control.deployments[deployment] = {
        "customModelDeploymentArn": deployment, "modelDeploymentName": "candidate", "status": "Active", "polls": 0,
        "modelArn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/candidate/abcdefabcdef",
        "createdAt": "2026-01-05T00:00:00Z"}
    try:
        code, lines = doctor(embedded, "--model-id", f"global.{BASE}")
        assert code == 0 and marked(lines, "✓", "inference profile")[0].endswith("region-less foundation-model ARN)")
        code, lines = doctor(embedded, "--model-id", deployment)
        assert code == 0 and marked(lines, "✓", "model access") == [
            f"✓ model access: custom model deployment {deployment} is Active"]
        embedded.control.deployments[deployment].update(status="Creating", polls=-1000)  # stays Creating
        code, lines = doctor(embedded, "--model-id", deployment)
        assert code == 1 and marked(lines, "✗", "model access")
    finally:
        embedded.control.deployments.pop(deployment, None)


def test_an_unconfirmed_or_missing_alarm_subscription_fails(embedded, deployed):
    from moto.sns.models import sns_backends

    backend = sns_backends[ACCOUNT]["us-east-1"]
    (sub,) = [s for s in backend.subscriptions.values() if s.topic.arn == deployed.topic_arn]
    confirmed = sub.arn
    sub.arn = "PendingConfirmation"  # what SNS lists until the e-mail is confirmed (moto confirms at once)
    try:
        code, lines = doctor(embedded)
        assert code == 1 and "pending confirmation" in marked(lines, "✗", "alarm topic")[0]
        backend.subscriptions.pop(confirmed)
        code, lines = doctor(embedded)
        (line,) = marked(lines, "✗", "alarm topic")
        assert code == 1 and "no subscription" in line and "aws sns subscribe" in lines[lines.index(line) + 1]
    finally:
        sub.arn = confirmed
        backend.subscriptions[confirmed] = sub


def test_a_stack_not_deployed_under_this_prefix_fails_every_resource_check(embedded, deployed):
    code, lines = doctor(embedded, prefix="nosuch")
    assert code == 1
    for name in ("parameters", "broker secret", "state machine", "alarm topic"):
        assert marked(lines, "✗", name), (name, lines)
    assert len(marked(lines, "✗", "queue")) == 3 and marked(lines, "✓", "credentials")


@pytest.mark.parametrize("env,says", [
    ({"AWS_REGION": None, "AWS_DEFAULT_REGION": None}, "no AWS region configured: set AWS_REGION"),
    ({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_ENDPOINT_URL": None},
     "no AWS credentials found"),
])
def test_missing_region_or_credentials_is_one_line_saying_what_to_set(embedded, env, says):
    quiet = {"AWS_PROFILE": None, "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
             "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None}
    res = CliRunner().invoke(app, ["doctor"], env={**quiet, **env})
    assert res.exit_code == 2 and "Traceback" not in res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert line.startswith("error: ") and says in line


def test_an_endpoint_that_does_not_answer_is_one_line(embedded):
    res = CliRunner().invoke(app, ["doctor", "--endpoint-url", "http://127.0.0.1:9"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert "cannot reach http://127.0.0.1:9" in line
