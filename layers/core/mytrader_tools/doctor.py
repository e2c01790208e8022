"""`mytrader doctor`: read-only checks of a deployed stack before its first schedule fires.

Every check uses the caller's credentials and only read calls (Get*/Describe*/List*; never a model invocation, so
nothing is billed): model access for the active model (GetFoundationModelAvailability, GetInferenceProfile compared
with the pinned destination table of mytrader.stack_spec, or the custom deployment's status), the broker secret set
and not the placeholder, the run-time parameters present, the queues and the fine-tuning state machine reachable,
and the alarm topic with a confirmed subscription. Each check is one line, ✓ or ✗ with what to do; a note (·) does
not fail. An AWS error inside a check is that check's ✗; a missing region, missing credentials or an endpoint that
does not answer are raised to the command, which says in one line what to set.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mytrader.adapters.aws.secrets import SecretNotSet, parse_broker_secret
from mytrader.stack_spec import (
    FINETUNE_BASE_MODEL,
    QUEUES,
    STATE_MACHINE_NAME,
    UnknownInferenceProfile,
    model_route,
    parameter_names,
)

FINETUNE_REGION = "us-east-1"  # where Bedrock fine-tunes Nova (the base model of the workflow)
DEPLOYED_PARAMETERS = ("ACTIVE_MODEL", "PREVIOUS_MODEL", "MODE", "KILL_SWITCH", "SHADOW_MODEL")


@dataclass(frozen=True)
class Check:
    ok: bool | None  # None: a note, never a failure
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "·" if self.ok is None else "✓" if self.ok else "✗"
        text = f"{mark} {self.name}: {self.detail}"
        return text + (f"\n    → {self.fix}" if self.fix and self.ok is False else "")


def failed(checks: list[Check]) -> bool:
    return any(c.ok is False for c in checks)


def _client_error(exc: Exception) -> tuple[str, str] | None:
    """(code, message) of an AWS error answered by the service; None for anything else (no region, no credentials,
    no endpoint: the command reports those once)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Code", "?")), " ".join(str(err.get("Message", "")).split())[:120]
    return None


class Doctor:
    """`clients(name)` gives a boto3 client of the caller's session (region and endpoint already chosen)."""

    def __init__(self, clients: Callable[[str], Any], prefix: str, region: str, model_id: str | None = None):
        self.client, self.prefix, self.region = clients, prefix, region
        self.params = parameter_names(prefix)
        self.model_id = model_id

    def run(self) -> list[Check]:
        checks: list[Check] = []
        for check in (self.identity, self.parameters, self.model_access, self.broker_secret, self.queues,
                      self.state_machine, self.alarm_topic, self.finetune_region):
            try:
                checks.extend(check())
            except Exception as exc:
                refused = _client_error(exc)
                if refused is None:
                    raise
                code, message = refused
                checks.append(Check(False, check.__name__.replace("_", " "), f"AWS refused: {code}: {message}",
                                    "check the credentials' permissions and the --prefix/--region"))
        return checks

    # -- the checks, each yielding its lines --------------------------------------------------------------------
    def identity(self) -> Iterator[Check]:
        who = self.client("sts").get_caller_identity()
        yield Check(True, "credentials", f"account {who['Account']} as {who['Arn']}, region {self.region}")

    def parameters(self) -> Iterator[Check]:
        names = [self.params[k] for k in DEPLOYED_PARAMETERS]
        got = self.client("ssm").get_parameters(Names=names)
        missing = sorted(set(got.get("InvalidParameters", [])))
        if missing:
            yield Check(False, "parameters", f"missing {', '.join(missing)}",
                        f"deploy the stack (cdk deploy) with this prefix, or pass --prefix ({self.prefix} now)")
            return
        values = {p["Name"]: p["Value"] for p in got["Parameters"]}
        active, mode = values[self.params["ACTIVE_MODEL"]], values[self.params["MODE"]]
        kill = values[self.params["KILL_SWITCH"]]
        self.model_id = self.model_id or active
        yield Check(True, "parameters", f"{len(names)} present (mode {mode}, model {active}, kill switch {kill})")

    def model_access(self) -> Iterator[Check]:
        model_id = self.model_id
        if not model_id:
            yield Check(False, "model access", "no active model id to check", "fix the parameters first")
            return
        if model_id.startswith("arn:") and ":custom-model-deployment/" in model_id:
            dep = self.client("bedrock").get_custom_model_deployment(customModelDeploymentIdentifier=model_id)
            ok = dep.get("status") == "Active"
            yield Check(ok, "model access", f"custom model deployment {model_id} is {dep.get('status')}",
                        "promote another model (mytrader model rollback) or wait for the deployment")
            return
        try:
            route = model_route(model_id, self.region)
        except UnknownInferenceProfile as exc:
            yield Check(False, "inference profile", str(exc).split(":")[0] + ": not in the pinned table",
                        "add its destination regions to INFERENCE_PROFILE_DESTINATIONS (mytrader/stack_spec.py) "
                        "and redeploy, or deploy with -c inference_regions=...")
            route = model_route(model_id, self.region, ("?",))
        if route.profile_id is not None:
            yield from self._profile(route.profile_id, route.regions, route.is_global)
        yield from self._availability(route.base_model)

    def _profile(self, profile_id: str, pinned: tuple[str, ...], is_global: bool) -> Iterator[Check]:
        from botocore.exceptions import ClientError

        try:
            profile = self.client("bedrock").get_inference_profile(inferenceProfileIdentifier=profile_id)
        except ClientError as exc:
            code, message = _client_error(exc) or ("?", "")
            yield Check(False, "inference profile", f"{profile_id}: {code}: {message}",
                        f"use a profile offered in {self.region} (aws bedrock list-inference-profiles) "
                        "and deploy with -c model_id=...")
            return
        regions = {arn.split(":")[3] for arn in (m.get("modelArn", "") for m in profile.get("models", []))
                   if arn.count(":") >= 5}
        status = profile.get("status")
        if status != "ACTIVE":
            yield Check(False, "inference profile", f"{profile_id} is {status}", "choose an ACTIVE profile")
            return
        if is_global:
            yield Check(True, "inference profile", f"{profile_id} ACTIVE (global: any commercial region; "
                        "the stack grants the region-less foundation-model ARN)")
            return
        shown = ", ".join(sorted(regions))
        if "?" in pinned or regions != set(pinned):
            yield Check(False, "inference profile",
                        f"{profile_id} routes to {shown}; the stack grants {', '.join(sorted(set(pinned) - {'?'}))}",
                        f"set its row in INFERENCE_PROFILE_DESTINATIONS to ({shown}) for {self.region} and "
                        f"redeploy (or -c inference_regions={','.join(sorted(regions))})")
            return
        yield Check(True, "inference profile", f"{profile_id} ACTIVE, destinations {shown} match the pinned table")

    def _availability(self, model_id: str) -> Iterator[Check]:
        from botocore.exceptions import ClientError

        try:
            got = self.client("bedrock").get_foundation_model_availability(modelId=model_id)
        except ClientError as exc:
            code, message = _client_error(exc) or ("?", "")
            yield Check(False, "model access", f"{model_id}: {code}: {message}",
                        f"is {model_id} offered in {self.region}? see the Bedrock console's model catalog")
            return
        problems = [f"{k} {got.get(k)}" for k, good in (("authorizationStatus", "AUTHORIZED"),
                                                        ("entitlementAvailability", "AVAILABLE"),
                                                        ("regionAvailability", "AVAILABLE"))
                    if got.get(k) != good]
        agreement = (got.get("agreementAvailability") or {}).get("status")
        if agreement not in (None, "AVAILABLE"):
            problems.append(f"agreement {agreement}")
        if problems:
            yield Check(False, "model access", f"{model_id}: {', '.join(problems)}",
                        f"request access to {model_id} in the Bedrock console (Model access) in {self.region}, "
                        "accept its agreement, then run doctor again")
            return
        yield Check(True, "model access", f"{model_id} authorized and available in {self.region}")

    def broker_secret(self) -> Iterator[Check]:
        sm = self.client("secretsmanager")
        found = sm.list_secrets(Filters=[{"Key": "name", "Values": [f"{self.prefix}/broker"]}]).get("SecretList", [])
        if not found:
            yield Check(False, "broker secret", f"no secret named {self.prefix}/broker/...",
                        "deploy the stack, or pass --prefix")
            return
        for secret in found:
            name = secret["Name"]
            raw = sm.get_secret_value(SecretId=secret["ARN"]).get("SecretString")
            try:
                parse_broker_secret(raw, name)
            except SecretNotSet as exc:
                yield Check(False, "broker secret", str(exc),
                            f"aws secretsmanager put-secret-value --secret-id {name} --secret-string "
                            "'{\"key_id\": \"<Alpaca key id>\", \"secret_key\": \"<Alpaca secret>\"}' (until then "
                            "the functions that need it do nothing)")
                continue
            yield Check(True, "broker secret", f"{name} holds keys (not the placeholder)")

    def queues(self) -> Iterator[Check]:
        from botocore.exceptions import ClientError

        sqs = self.client("sqs")
        for spec in QUEUES:
            name = spec.name(self.prefix)
            try:
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            except ClientError as exc:
                code, _ = _client_error(exc) or ("?", "")
                yield Check(False, "queue", f"{name}: {code}", "deploy the stack, or pass --prefix/--region")
                continue
            depth = int(attrs["Attributes"].get("ApproximateNumberOfMessages", 0))
            yield Check(True, "queue", f"{name} reachable ({depth} messages)")

    def state_machine(self) -> Iterator[Check]:
        sfn = self.client("stepfunctions")
        name = f"{self.prefix}-{STATE_MACHINE_NAME}"
        arn = None
        for page in sfn.get_paginator("list_state_machines").paginate():
            arn = next((m["stateMachineArn"] for m in page["stateMachines"] if m["name"] == name), arn)
        if arn is None:
            yield Check(False, "state machine", f"{name} not found", "deploy the stack, or pass --prefix/--region")
            return
        desc = sfn.describe_state_machine(stateMachineArn=arn)
        yield Check(desc.get("status", "ACTIVE") == "ACTIVE", "state machine", f"{name} {desc.get('status', '')}",
                    "redeploy the stack")

    def alarm_topic(self) -> Iterator[Check]:
        sns = self.client("sns")
        name = f"{self.prefix}-alarms"
        arn = None
        for page in sns.get_paginator("list_topics").paginate():
            arn = next((t["TopicArn"] for t in page["Topics"] if t["TopicArn"].rsplit(":", 1)[-1] == name), arn)
        if arn is None:
            yield Check(False, "alarm topic", f"{name} not found", "deploy the stack, or pass --prefix/--region")
            return
        subs = [s for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
                for s in page["Subscriptions"]]
        confirmed = [s for s in subs if str(s.get("SubscriptionArn", "")).startswith("arn:")]
        subscribe = (f"aws sns subscribe --topic-arn {arn} --protocol email --notification-endpoint you@example.com "
                     "(or deploy with -c alarm_email=you@example.com), then confirm the e-mail")
        if confirmed:
            yield Check(True, "alarm topic", f"{name}: {len(confirmed)} confirmed subscription(s)")
        elif subs:
            yield Check(False, "alarm topic", f"{name}: {len(subs)} subscription(s) pending confirmation",
                        "open the confirmation e-mail AWS sent and confirm it")
        else:
            yield Check(False, "alarm topic", f"{name}: no subscription, so no alarm reaches anyone", subscribe)

    def finetune_region(self) -> Iterator[Check]:
        if self.region == FINETUNE_REGION:
            yield Check(True, "fine-tuning", f"{FINETUNE_BASE_MODEL} is fine-tuned in {self.region}")
        else:
            yield Check(None, "fine-tuning", f"Bedrock fine-tunes {FINETUNE_BASE_MODEL} in {FINETUNE_REGION} only; "
                        f"in {self.region} the finetune workflow will fail (trading is unaffected)")


def run_doctor(session: Any, prefix: str, region: str, model_id: str | None = None) -> list[Check]:
    """The checks with a boto3 `session`'s clients (retries on, short timeouts)."""
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15)
    cache: dict[str, Any] = {}

    def client(name: str) -> Any:
        if name not in cache:
            cache[name] = session.client(name, region_name=region, config=config)
        return cache[name]

    return Doctor(client, prefix, region, model_id).run()
