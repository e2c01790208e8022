"""The embedded AWS: ONE endpoint on 127.0.0.1 that routes each request by its SigV4 service.

  comprehend ............................. LocalComprehend (moto's is fixed/unimplemented)
  bedrock  POST /model/<id>/converse ....... LocalBedrockRuntime (moto has no Converse)
  bedrock  custom-model deployments ........ LocalBedrockControl (moto has none); the rest -> moto
  lambda   POST .../functions/<f>/invocations LambdaBridge (moto needs Docker to run code)
  everything else ......................... moto's WSGI app, in process

boto3 reaches it through AWS_ENDPOINT_URL; moto's Step Functions engine through MOTO_PORT, which is set
to this endpoint's port so its task calls route the same way. No handler knows it is local.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from mytrader_tools.embedded.services import LambdaBridge, LocalBedrockRuntime, LocalComprehend

log = logging.getLogger(__name__)
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/aws4_request")
REGION = "us-east-1"


def sigv4_service(auth: str) -> tuple[str | None, str | None]:
    m = _SERVICE.search(auth or "")
    return (m.group(2), m.group(1)) if m else (None, None)


class KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 keep-alive: boto3 reuses its connections instead of opening one per request."""
    protocol_version = "HTTP/1.1"

    def log_request(self, *args, **kwargs) -> None:
        pass


class Router:
    def __init__(self, moto_app, comprehend: LocalComprehend, runtime: LocalBedrockRuntime, bridge: LambdaBridge,
                 control=None):
        self.moto_app, self.comprehend, self.runtime, self.bridge = moto_app, comprehend, runtime, bridge
        self.control = control
        self.requests_by_service: dict[str, int] = {}
        self._apps: dict[str, Any] = {}  # service -> moto backend's WSGI app
        self.faults: dict[str, float] = {}  # service -> share of requests answered with a throttling error
        self.faults_injected: dict[str, int] = {}
        self._rng = __import__("random").Random(5)

    def __call__(self, environ, start_response):
        service, _ = sigv4_service(environ.get("HTTP_AUTHORIZATION", ""))
        path = environ.get("PATH_INFO", "")
        self.requests_by_service[service or "none"] = self.requests_by_service.get(service or "none", 0) + 1
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
        if local is not None:
            status, headers, body = local
            return Response(body, status=status, headers=headers)(environ, start_response)
        if service and not path.startswith("/moto-api"):
            # moto's dispatcher infers the backend for every request under one global lock; the SigV4 service
            # names it already, so the backend's Flask app is looked up once per service and reused.
            app = self._apps.get(service)
            if app is None:
                app = self._apps[service] = self.moto_app.get_application(environ)
            return app(environ, start_response)
        return self.moto_app(environ, start_response)


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
        self.router = Router(DomainDispatcherApplication(create_backend_app), self.comprehend, self.runtime,
                             self.bridge, self.control)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._saved_env: dict[str, str | None] = {}

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
