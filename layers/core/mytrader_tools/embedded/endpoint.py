"""The embedded AWS: ONE endpoint on 127.0.0.1 that routes each request by its SigV4 service.

  comprehend ............................. LocalComprehend (moto's is fixed/unimplemented)
  bedrock  POST /model/<id>/converse ....... LocalBedrockRuntime (moto has no Converse)
  bedrock  custom-model deployments ........ LocalBedrockControl (moto has none); the rest -> moto
  lambda   POST .../functions/<f>/invocations LambdaBridge (moto needs Docker to run code)
  dynamodb ................................ moto's WSGI app, one request at a time, with injectable conflicts
  everything else ......................... moto's WSGI app, in process

boto3 reaches it through AWS_ENDPOINT_URL; moto's Step Functions engine through MOTO_PORT, which is set
to this endpoint's port so its task calls route the same way. No handler knows it is local.

Every signed request first passes the IAM gate (iam/gate.py): read back into its operation, validated against
botocore's model, authorised for its caller (each function's role, from the synthesized template) and recorded;
a denial is answered here in the service's AccessDenied shape, and a local service's answer is walked against the
operation's output shape. Unsigned requests (moto's own /moto-api) pass untouched.

DynamoDB is linearizable per item; moto's backend is not thread-safe (a failed TransactWriteItems even put back
a copy of whole tables taken before it ran, erasing the writes other threads made meanwhile). The endpoint
serialises every DynamoDB request under one lock, a fair local stand-in; no other service takes it.
`Router.dynamodb_faults` (a `DynamoFaults`) answers a share of writes with the conflicts DynamoDB reports under
contention, so the callers' retry paths run: conditions are always moto's real ones, only conflicts are injected.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import threading
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from mytrader_tools.embedded.iam.gate import Gate
from mytrader_tools.embedded.services import LambdaBridge, LocalBedrockRuntime, LocalComprehend

log = logging.getLogger(__name__)
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/aws4_request")
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def sigv4_service(auth: str) -> tuple[str | None, str | None]:
    m = _SERVICE.search(auth or "")
    return (m.group(2), m.group(1)) if m else (None, None)


class KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 keep-alive: boto3 reuses its connections instead of opening one per request."""
    protocol_version = "HTTP/1.1"

    def log_request(self, *args, **kwargs) -> None:
        pass


_DDB_ERROR = "com.amazonaws.dynamodb.v20120810#"
_CONFLICT = "Transaction is ongoing for the item"
_SINGLE_WRITES = ("PutItem", "UpdateItem", "DeleteItem")


@dataclass
class DynamoFaults:
    """Conflicts injected into the embedded DynamoDB, as DynamoDB reports them when writes contend:

      transaction_conflict_rate .. share of TransactWriteItems cancelled (TransactionCanceledException, nothing
                                   applied) with CancellationReasons `TransactionConflict` for one item, chosen
                                   at random, and `None` for the others;
      write_conflict_rate ........ share of PutItem / UpdateItem / DeleteItem answered TransactionConflictException
                                   (the item is in a transaction under way), nothing written.

    Seeded: the same sequence of requests meets the same faults. Rates may be changed while requests run
    (`configure`, or the attributes). `seen[op]` counts the requests of each operation considered (only while its
    rate is above 0), `injected[op]` those answered with a fault. Draws and counters are updated under the
    endpoint's DynamoDB lock. The router always has one (`Router.dynamodb_faults`, rates 0: nothing injected)."""

    transaction_conflict_rate: float = 0.0
    write_conflict_rate: float = 0.0
    seed: int = 0
    seen: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def configure(self, transaction_conflict_rate: float | None = None, write_conflict_rate: float | None = None,
                  seed: int | None = None) -> DynamoFaults:
        """Change the given rates; a seed restarts the random sequence. Counters are kept."""
        if transaction_conflict_rate is not None:
            self.transaction_conflict_rate = transaction_conflict_rate
        if write_conflict_rate is not None:
            self.write_conflict_rate = write_conflict_rate
        if seed is not None:
            self.seed, self._rng = seed, random.Random(seed)
        return self

    def injected_total(self) -> int:
        return sum(self.injected.values())

    def answer(self, operation: str, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes] | None:
        """The fault response for this request, or None to let moto serve it."""
        if operation == "TransactWriteItems" and self.transaction_conflict_rate > 0:
            self.seen[operation] += 1
            if self._rng.random() >= self.transaction_conflict_rate:
                return None
            items = _transact_items(environ)
            if not 0 < items <= 100:  # malformed: DynamoDB refuses it before any conflict, so does moto
                return None
            reasons: list[dict[str, str]] = [{"Code": "None"}] * items
            reasons[self._rng.randrange(items)] = {"Code": "TransactionConflict", "Message": _CONFLICT}
            self.injected[operation] += 1
            codes = ", ".join(r["Code"] for r in reasons)
            return _ddb_error("TransactionCanceledException", {
                "CancellationReasons": reasons,
                "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"})
        if operation in _SINGLE_WRITES and self.write_conflict_rate > 0:
            self.seen[operation] += 1
            if self._rng.random() >= self.write_conflict_rate:
                return None
            self.injected[operation] += 1
            return _ddb_error("TransactionConflictException", {"message": _CONFLICT})
        return None


def _transact_items(environ: dict[str, Any]) -> int:
    """How many items the request's transaction has (the body is read: the request is answered here)."""
    try:
        body = json.loads(Request(environ).get_data() or b"{}")
        items = body.get("TransactItems")
        return len(items) if isinstance(items, list) else 0
    except ValueError:
        return 0


def _ddb_error(code: str, fields: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """A DynamoDB error as the service sends it: JSON 1.0 body with the fully qualified `__type` and the error
    shape's members (botocore's service model: TransactionCanceledException has `Message` and
    `CancellationReasons`, TransactionConflictException `message`), and the headers moto sends too."""
    body = json.dumps({"__type": _DDB_ERROR + code, **fields}).encode()
    return 400, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code,
                 "x-amzn-RequestId": uuid.uuid4().hex.upper(), "x-amz-crc32": str(zlib.crc32(body))}, body


class Router:
    def __init__(self, moto_app, comprehend: LocalComprehend, runtime: LocalBedrockRuntime, bridge: LambdaBridge,
                 control=None, gate: Gate | None = None):
        self.moto_app, self.comprehend, self.runtime, self.bridge = moto_app, comprehend, runtime, bridge
        self.control = control
        self.gate = gate  # IAM: every signed request authorised for its caller, validated and recorded (iam/)
        self.requests_by_service: dict[str, int] = {}
        self._apps: dict[str, Any] = {}  # service -> moto backend's WSGI app
        self.faults: dict[str, float] = {}  # service -> share of requests answered with a throttling error
        self.faults_injected: dict[str, int] = {}
        self._rng = random.Random(5)
        self.dynamodb_faults = DynamoFaults()  # conflicts injected into DynamoDB writes (none until configured)
        self._dynamodb_lock = threading.Lock()  # every request to moto's DynamoDB, one at a time

    def __call__(self, environ, start_response):
        service, _ = sigv4_service(environ.get("HTTP_AUTHORIZATION", ""))
        path = environ.get("PATH_INFO", "")
        self.requests_by_service[service or "none"] = self.requests_by_service.get(service or "none", 0) + 1
        gate = self.gate
        seen = gate.before(environ) if gate is not None and not path.startswith("/moto-api") else None
        denied = gate.denial(seen) if gate is not None and seen is not None else None
        local = denied if denied is not None else self._local(service, path, environ)
        object_read = gate is not None and local is None and gate.reads_object(seen)
        if gate is not None and not object_read:
            gate.after(seen, local if denied is None else None)
        if local is not None:
            status, headers, body = local
            return Response(body, status=status, headers=headers)(environ, start_response)
        if service and not path.startswith("/moto-api"):
            # moto's dispatcher infers the backend for every request under one global lock; the SigV4 service
            # names it already, so the backend's Flask app is looked up once per service and reused.
            app = self._apps.get(service)
            if app is None:
                app = self._apps[service] = self.moto_app.get_application(environ)
            if service == "dynamodb":
                return self._dynamodb(app, environ, start_response)
            if object_read:
                return self._object_read(app, environ, start_response, seen)
            return app(environ, start_response)
        return self.moto_app(environ, start_response)

    def _object_read(self, app, environ, start_response, seen):
        """moto's answer to an S3 object read, except that a missing key is AccessDenied to a caller without
        s3:ListBucket on the bucket (Gate.missing_key); the call is recorded once it is decided."""
        answered: dict[str, Any] = {}

        def capture(status, headers, exc_info=None):
            answered["status"], answered["headers"] = status, headers
            return lambda data: None

        chunks = app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        gate = self.gate
        assert gate is not None  # an object read is only told apart with a gate
        denied = gate.missing_key(seen) if answered["status"].startswith("404") else None
        gate.after(seen, None)
        if denied is not None:
            status, headers, deny_body = denied
            return Response(deny_body, status=status, headers=headers)(environ, start_response)
        start_response(answered["status"], answered["headers"])
        return [body]

    def _local(self, service: str | None, path: str, environ):
        """The answer of a local service (or an injected fault), or None for moto."""
        local = None
        rate = self.faults.get(service or "")
        if rate and service and self._rng.random() < rate:
            self.faults_injected[service] = self.faults_injected.get(service, 0) + 1
            local = _throttle(service)
        elif service == "comprehend":
            req = Request(environ)
            local = self.comprehend.handle(req.headers.get("X-Amz-Target", ""), json.loads(req.get_data() or b"{}"))
        elif service == "bedrock" and path.startswith("/model/") and path.endswith("/converse"):
            req = Request(environ)
            local = self.runtime.handle(path, json.loads(req.get_data() or b"{}"))
        elif (service == "bedrock" and self.control is not None
              and self.control.handles(environ.get("REQUEST_METHOD"), path)):
            req = Request(environ)
            local = self.control.handle(req.method, path, req.get_data(), dict(req.args))
        elif service == "lambda" and "/functions/" in path and path.endswith("/invocations"):
            req = Request(environ)
            local = self.bridge.handle(path, req.get_data(), {k.lower(): v for k, v in req.headers.items()})
        return local

    def _dynamodb(self, app, environ, start_response):
        """One DynamoDB request at a time, its response body produced under the lock too; or an injected fault."""
        with self._dynamodb_lock:
            faults = self.dynamodb_faults
            if faults is not None:
                operation = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
                fault = faults.answer(operation, environ)
                if fault is not None:
                    status, headers, body = fault
                    return Response(body, status=status, headers=headers)(environ, start_response)
            chunks = app(environ, start_response)
            try:
                return [b"".join(chunks)]
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()


def _throttle(service: str):
    from mytrader_tools.embedded.services import aws_error

    if service == "dynamodb":
        return aws_error(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput (injected)", True)
    if service == "sqs":
        return aws_error(400, "RequestThrottled", "Request is throttled (injected)", True)
    return aws_error(429, "ThrottlingException", "Rate exceeded (injected)", True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedAws:
    """Start/stop the endpoint; `env()` gives what a process needs to reach it."""

    def __init__(self, region: str = REGION):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from mytrader_tools.embedded.bedrock_control import LocalBedrockControl

        self.region = region
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.comprehend = LocalComprehend()
        self.runtime = LocalBedrockRuntime()
        self.bridge = LambdaBridge(region)
        self.control = LocalBedrockControl(self.runtime, region)
        # IAM: callers are registered by each LocalStack (a role per function). MYTRADER_IAM=off runs without it:
        # only to measure what the checks cost (every function then has every right, as before issue 14).
        self.gate: Gate | None = Gate(region, ACCOUNT) if os.environ.get("MYTRADER_IAM") != "off" else None
        if self.gate is not None:
            self.gate.control = self.control
            self.control.assume_role = self._bedrock_job_session
        self.router = Router(DomainDispatcherApplication(create_backend_app), self.comprehend, self.runtime,
                             self.bridge, self.control, self.gate)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._saved_env: dict[str, str | None] = {}

    def _bedrock_job_session(self, role_arn: str, job_arn: str):
        """Bedrock assumes the role a customization job was given (its trust policy decides)."""
        import boto3

        sts = boto3.client("sts", region_name=self.region)
        assert self.gate is not None
        return self.gate.service_role_session(sts, role_arn, "bedrock.amazonaws.com", job_arn)

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.url, "MOTO_PORT": str(self.port), "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_SERVICE_NAME": "mytrader",
                "POWERTOOLS_METRICS_NAMESPACE": "MyTrader",
                "POWERTOOLS_LOG_LEVEL": os.environ.get("MYTRADER_LOG_LEVEL", "WARNING")}

    def start(self) -> EmbeddedAws:
        from mytrader_tools.embedded.moto_workarounds import apply as apply_workarounds

        for k, v in self.env().items():
            self._saved_env[k] = os.environ.get(k)
            os.environ[k] = v
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server("127.0.0.1", self.port, self.router, threaded=True,
                                   request_handler=KeepAliveHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="embedded-aws", daemon=True)
        self._thread.start()
        apply_workarounds(self)
        self.reset()  # moto's state is per process: each embedded AWS starts empty
        log.info("embedded AWS (local emulation) on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()

    def reset(self) -> None:
        """Forget every resource (moto's reset API), then switch Step Functions execution back on."""
        import requests

        from mytrader_tools.embedded.moto_workarounds import apply as apply_workarounds_config

        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        apply_workarounds_config(self)

    def __enter__(self) -> EmbeddedAws:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
