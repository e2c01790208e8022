"""Authorisation at the embedded AWS's one endpoint: every signed request is read back into its operation
(wire.py), validated against botocore's model, turned into the authorisations AWS would need (actions.py) and
decided (policy.py) for the caller its access key names; a denial answers as the service does.

Callers, by the access key of the request's SigV4 credential:
  a function ....... STS credentials of its role (`assume`), issued by the embedded AWS's STS for the role's
                     trust policy; its role's policies and the resources' policies decide;
  a service role ... the role Bedrock assumes for a customization job (trust policy with aws:SourceArn and
                     aws:SourceAccount), when the local Bedrock control runs a job;
  "ak" ............. moto's Step Functions engine (it signs its task calls with that key): the state machines'
                     roles decide;
  any other key .... the operator, the tests and the tools (the local administrator): recorded and validated,
                     never denied.

Condition keys supplied: aws:SecureTransport (true: SDKs reach AWS over TLS, the local endpoint is loopback HTTP),
aws:ResourceTag/* (Bedrock custom models and deployments: the tags their create requests carried, kept here),
bedrock:InferenceProfileArn (a model invoked through an inference profile), iam:PassedToService (iam:PassRole),
aws:SourceArn / aws:SourceAccount (trust policies of service roles).
"""
from __future__ import annotations

import io
import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import boto3

from mytrader_tools.embedded.iam import actions, wire
from mytrader_tools.embedded.iam.policy import Check, Decision, Policy, Principal, evaluate
from mytrader_tools.embedded.iam.recorder import RECORDER, Recorder
from mytrader_tools.embedded.iam.roles import Role, StackIam

_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")
STEP_FUNCTIONS_KEY = "ak"  # moto's Step Functions engine signs every task call with this access key


class RoleSession:
    """A role's boto3 session: clients of the default boto3 Session with the role's STS credentials. It shares the
    default session's loaded models and handlers (a new boto3.Session per role would set them up again: about
    60 ms per role, 0.3 s per stack). What `Aws(session=...)` needs of a Session: `client()`."""

    def __init__(self, creds: Mapping[str, str], region: str):
        self.credentials, self.region_name = dict(creds), region

    def client(self, service_name: str, **kwargs: Any) -> Any:
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        kwargs.setdefault("region_name", self.region_name)
        if kwargs.get("region_name") is None:
            kwargs["region_name"] = self.region_name
        return boto3.DEFAULT_SESSION.client(service_name, **kwargs, **self.credentials)


class RoleNotAssumable(PermissionError):
    """The role's trust policy does not let this principal assume it."""


@dataclass(frozen=True)
class Caller:
    label: str  # the function key, "stepfunctions", a service role's description, or "admin"
    role_id: str = ""  # the role's logical id in the template
    policies: tuple[Policy, ...] = ()
    principal: Principal | None = None  # None: the local administrator
    session_arn: str = ""
    # (action, resource, condition context) -> the decision: most calls repeat (the trade log's GetItem, ...)
    decisions: dict[tuple[Any, ...], Decision] = field(default_factory=dict, compare=False, repr=False)

    @property
    def admin(self) -> bool:
        return self.principal is None


@dataclass
class Seen:
    """One request as the gate saw it."""
    caller: Caller
    call: wire.Call | None
    checks: list[Check] = field(default_factory=list)
    decision: Decision | None = None
    invalid: list[str] = field(default_factory=list)
    # per allowed check: (action, "<policy>/<sid>", index of the Resource entry that matched)
    allowed_by: list[tuple[str, str, int]] = field(default_factory=list)


class Gate:
    def __init__(self, region: str, account: str, recorder: Recorder = RECORDER):
        self.region, self.account, self.recorder = region, account, recorder
        self.callers: dict[str, Caller] = {}
        self.stacks: list[StackIam] = []
        self.control: Any = None  # the local Bedrock control (names and ARNs of its jobs, models, deployments)
        self.model_aliases: dict[str, str] = {}  # the local advisor model id -> the model id the stack deploys
        self._tags: dict[str, dict[str, str]] = {}
        self._model_tags: dict[str, dict[str, str]] = {}  # custom model name -> tags its job asked for
        self._resource_policies: dict[str, list[tuple[str, Policy]]] = {}
        self._lock = threading.Lock()
        self._admin = Caller("admin")

    # ---- principals -------------------------------------------------------------------------------------------
    def add_stack(self, stack: StackIam) -> None:
        with self._lock:
            self.stacks.append(stack)
            for arn, policy in stack.resource_policies:  # indexed by the ARN up to its first "/" (a bucket)
                self._resource_policies.setdefault(arn.split("/", 1)[0], []).append((arn, policy))
            roles = [r for s in self.stacks for r in s.state_machines.values()]
            sessions = {f"arn:aws:sts::{self.account}:assumed-role/{r.arn.rsplit('/', 1)[1]}/stepfunctions"
                        for r in roles}
            self.callers[STEP_FUNCTIONS_KEY] = Caller(
                "stepfunctions", ",".join(sorted({r.logical_id for r in roles})),
                tuple(p for r in roles for p in r.policies),
                Principal(self.account, frozenset(r.arn for r in roles) | sessions), sorted(sessions)[-1])

    def assume(self, sts: Any, role: Role, label: str, service: str, source_arn: str | None = None) -> dict[str, str]:
        """STS credentials of `role` for a service principal (its trust policy decides), registered as `label`."""
        context = {"aws:sourceaccount": self.account, **({"aws:sourcearn": source_arn} if source_arn else {})}
        verdict = evaluate(Check("sts:AssumeRole", role.arn, context), Principal(self.account, service=service),
                           [role.trust], [])
        if not verdict.allowed:
            raise RoleNotAssumable(f"{service} may not assume {role.arn}: {verdict.reason}")
        session = re.sub(r"[^\w+=,.@-]", "-", label)[:64]
        creds = sts.assume_role(RoleArn=role.arn, RoleSessionName=session)["Credentials"]
        role_name = role.arn.rsplit("/", 1)[1]
        session_arn = f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session}"
        with self._lock:
            self.callers[creds["AccessKeyId"]] = Caller(label, role.logical_id, role.policies,
                                                        Principal(self.account, frozenset({role.arn, session_arn})),
                                                        session_arn)
        return {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"]}

    def role(self, arn: str) -> Role | None:
        return next((s.roles[arn] for s in self.stacks if arn in s.roles), None)

    def service_role_session(self, sts: Any, role_arn: str, service: str, source_arn: str) -> RoleSession:
        """The session a service (Bedrock running a customization job) works in when it assumes a role the caller
        passed: the role must be one of a stack's, and its trust policy must let the service assume it for this
        source (aws:SourceArn, aws:SourceAccount)."""
        role = self.role(role_arn)
        if role is None:
            raise RoleNotAssumable(f"{role_arn} is no role of the embedded stacks")
        label = f"{service.split('.')[0]}:{role.logical_id}"
        return RoleSession(self.assume(sts, role, label, service, source_arn), self.region)

    # ---- the check --------------------------------------------------------------------------------------------
    def before(self, environ: dict[str, Any]) -> Seen | None:
        """The request's verdict (None for unsigned requests such as moto's own API). Reads the body and puts it
        back for whoever serves the request."""
        m = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if m is None:
            return None
        key, signing = m.group(1), m.group(3)
        caller = self.callers.get(key, self._admin)
        request = _http_request(environ)
        try:
            call = wire.read(signing, request)
        except Exception as exc:  # no operation of the model, or a body that does not parse: recorded as invalid
            return Seen(caller, None, invalid=[f"{signing} {request.method} {request.path}: {exc}"])
        seen = Seen(caller, call, invalid=list(call.errors))
        if not caller.admin:
            self._decide(seen)
        elif call.service == "bedrock" and call.operation.name == "TagResource":
            self._remember_tags(call)
        return seen

    def _decide(self, seen: Seen) -> None:
        assert seen.call is not None and seen.caller.principal is not None
        call = seen.call
        try:
            seen.checks = actions.needs(call.service, call.operation.name, call.params, self)
        except Exception as exc:  # Underivable, or a request too malformed to name its resource: fail closed
            seen.decision = Decision(False, f"the embedded AWS cannot derive the resource: {exc}")
            return
        for check in seen.checks:
            verdict = self._verdict(seen.caller, check)
            if not verdict.allowed:
                seen.decision = verdict
                seen.checks = [check]
                seen.allowed_by = []
                return
            seen.allowed_by.append((check.action, verdict.statement, verdict.resource_index))
        seen.decision = Decision(True, "every check allowed")
        if call.service == "bedrock" and call.operation.name == "TagResource":
            self._remember_tags(call)

    @staticmethod
    def reads_object(seen: Seen | None) -> bool:
        """An S3 object read a role was allowed: whether the key exists decides what S3 may tell it (missing_key)."""
        return (seen is not None and seen.call is not None and not seen.caller.admin and seen.call.service == "s3"
                and seen.call.operation.name in ("GetObject", "HeadObject")
                and seen.decision is not None and seen.decision.allowed)

    def missing_key(self, seen: Seen) -> tuple[int, dict[str, str], bytes] | None:
        """S3 answers a read of a missing key with 404 NoSuchKey only to a caller allowed s3:ListBucket on the
        bucket; to any other, 403 AccessDenied (so a grant of s3:GetObject alone turns "no such file" into a denial,
        as on AWS). None: the 404 stands (and the ListBucket grant is recorded as used)."""
        assert seen.call is not None
        (check,) = actions.needs("s3", "ListObjectsV2", {"Bucket": seen.call.params["Bucket"]}, self)
        verdict = self._verdict(seen.caller, check)
        if verdict.allowed:
            seen.checks.append(check)
            seen.allowed_by.append((check.action, verdict.statement, verdict.resource_index))
            return None
        seen.decision, seen.checks, seen.allowed_by = verdict, [check], []
        return self.denial(seen)

    def _verdict(self, caller: Caller, check: Check) -> Decision:
        key = (check.action, check.resource, tuple(sorted((k, v if isinstance(v, str) else tuple(v))
                                                          for k, v in check.context.items())))
        verdict = caller.decisions.get(key)
        if verdict is None:
            assert caller.principal is not None
            indexed = self._resource_policies.get(check.resource.split("/", 1)[0], [])
            resource_policies = [p for res, p in indexed
                                 if check.resource == res or check.resource.startswith(res + "/")]
            verdict = evaluate(check, caller.principal, caller.policies, resource_policies)
            if len(caller.decisions) < 4096:
                caller.decisions[key] = verdict
        return verdict

    def denial(self, seen: Seen) -> tuple[int, dict[str, str], bytes] | None:
        """AWS's AccessDenied answer for a denied request, in the service's protocol; None when allowed."""
        if seen.decision is None or seen.decision.allowed or seen.call is None:
            return None
        check = seen.checks[0] if seen.checks else Check("?", "?")
        message = (f"User: {seen.caller.session_arn} is not authorized to perform: {check.action} on resource: "
                   f"{check.resource} ({seen.decision.reason})")
        return access_denied(seen.call, message)

    def after(self, seen: Seen | None, local: tuple[int, Mapping[str, str], bytes] | None) -> None:
        """Record the call; a local service's answer is walked against the operation's output shape."""
        if seen is None:
            return
        if local is not None and seen.call is not None and (seen.decision is None or seen.decision.allowed):
            status, headers, body = local
            try:
                seen.invalid.extend(f"answer: {e}" for e in wire.response_errors(seen.call, status, headers, body))
            except Exception as exc:  # an answer too broken to walk
                seen.invalid.append(f"answer: cannot be read against the model: {exc}")
            if status < 300:
                self._remember_created(seen.call, body)
        self.recorder.record(seen)

    # ---- what the endpoint knows (actions.Lookups) ------------------------------------------------------------
    def secret_arn(self, secret_id: str) -> str:
        from moto.secretsmanager.models import secretsmanager_backends

        try:
            return str(secretsmanager_backends[self.account][self.region].secrets[secret_id].arn)
        except KeyError:
            return secret_id if secret_id.startswith("arn:") else \
                f"arn:aws:secretsmanager:{self.region}:{self.account}:secret:{secret_id}"

    def bedrock_arn(self, kind: str, identifier: str) -> str:
        if identifier.startswith("arn:"):
            return identifier
        tables = {"model-customization-job": ("jobs", "jobName"), "custom-model": ("models", "modelName"),
                  "custom-model-deployment": ("deployments", "modelDeploymentName")}
        table, name_key = tables[kind]
        entries = getattr(self.control, table, {}) if self.control is not None else {}
        found = next((arn for arn, v in list(entries.items()) if v.get(name_key) == identifier), None)
        return found or f"arn:aws:bedrock:{self.region}:{self.account}:{kind}/{identifier}"

    def tags(self, arn: str) -> Mapping[str, str] | None:
        with self._lock:
            if arn in self._tags:
                return dict(self._tags[arn])
        models = getattr(self.control, "models", {}) if self.control is not None else {}
        model = models.get(arn)
        if model is not None:
            return self._model_tags.get(model.get("modelName", ""))
        return None

    def tag_resource(self, arn: str, tags: Mapping[str, str]) -> None:
        """Tags of a resource the tools put in place without a create call (a chaos case's stand-in deployment)."""
        with self._lock:
            self._tags.setdefault(arn, {}).update(tags)

    def model_id(self, model_id: str) -> str:
        return self.model_aliases.get(model_id, model_id)

    def _remember_created(self, call: wire.Call, body: bytes) -> None:
        if call.service != "bedrock":
            return
        op, p = call.operation.name, call.params
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            return
        with self._lock:
            if op == "CreateModelCustomizationJob":
                self._tags[answer.get("jobArn", "")] = _tag_map(p.get("jobTags"))
                self._model_tags[p.get("customModelName", "")] = _tag_map(p.get("customModelTags"))
            elif op == "CreateCustomModelDeployment":
                self._tags[answer.get("customModelDeploymentArn", "")] = _tag_map(p.get("tags"))

    def _remember_tags(self, call: wire.Call) -> None:
        with self._lock:
            self._tags.setdefault(call.params.get("resourceARN", ""), {}).update(_tag_map(call.params.get("tags")))


def _tag_map(tags: Any) -> dict[str, str]:
    return {t["key"]: t["value"] for t in tags or [] if isinstance(t, dict) and "key" in t}


def _http_request(environ: dict[str, Any]) -> wire.HttpRequest:
    stream = environ.get("wsgi.input")
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        body = stream.read(int(length)) if stream is not None else b""
    elif environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = stream.read() if stream is not None else b""
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    path, _, query = raw.partition("?")
    query = query or environ.get("QUERY_STRING", "")
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return wire.HttpRequest(environ.get("REQUEST_METHOD", "GET"), path,
                            tuple(parse_qsl(query, keep_blank_values=True)), headers, body)


_QUERY_DENIED_CODE = {"sns": "AuthorizationError"}


def access_denied(call: wire.Call, message: str) -> tuple[int, dict[str, str], bytes]:
    """AccessDenied as the service answers it: JSON `__type` for JSON protocols, XML for query and S3."""
    rid = str(uuid.uuid4())
    protocol, model = call.protocol, call.operation.service_model
    if protocol == "json":
        headers = {"Content-Type": f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}",
                   "x-amzn-RequestId": rid, "x-amzn-ErrorType": "AccessDeniedException"}
        if model.metadata.get("awsQueryCompatible") is not None:
            headers["x-amzn-query-error"] = "AccessDenied;Sender"
        body = {"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}
        return 400, headers, json.dumps(body).encode()
    if protocol == "rest-json":
        return 403, {"Content-Type": "application/json", "x-amzn-RequestId": rid,
                     "x-amzn-ErrorType": "AccessDeniedException"}, json.dumps({"message": message}).encode()
    if protocol == "rest-xml":
        xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
               f"<Message>{escape(message)}</Message><RequestId>{rid}</RequestId></Error>")
        return 403, {"Content-Type": "application/xml", "x-amz-request-id": rid}, xml.encode()
    code = _QUERY_DENIED_CODE.get(call.service, "AccessDenied")
    xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
           f"</Error><RequestId>{rid}</RequestId></ErrorResponse>")
    return 403, {"Content-Type": "text/xml", "x-amzn-RequestId": rid}, xml.encode()
