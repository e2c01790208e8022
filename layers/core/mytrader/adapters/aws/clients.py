"""boto3 clients made once per container (AWS_ENDPOINT_URL points them at the embedded AWS locally).

boto3 ships no types and the project installs no stubs for it: every client the library uses is seen through a
Protocol below, one per service, declaring exactly the operations the library calls (keyword arguments only, as
boto3 takes them; responses are the service's JSON as a dict). Adding a call to a client means adding it here.
The names mirror the published stub packages' (mypy_boto3_<service>), so swapping them in later is mechanical.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from typing import Any, Protocol, cast

import boto3
from botocore.config import Config

BOTO = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)


class DynamoDBClient(Protocol):
    """The trade log, the paper broker's book and the shared caches."""

    def get_item(self, **kwargs: Any) -> dict[str, Any]: ...

    def put_item(self, **kwargs: Any) -> dict[str, Any]: ...

    def update_item(self, **kwargs: Any) -> dict[str, Any]: ...

    def delete_item(self, **kwargs: Any) -> dict[str, Any]: ...

    def query(self, **kwargs: Any) -> dict[str, Any]: ...

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]: ...

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]: ...

    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]: ...


class S3Exceptions(Protocol):
    """The modelled S3 errors the library catches (`client.exceptions.NoSuchKey`)."""

    @property
    def NoSuchKey(self) -> type[Exception]: ...


class S3Client(Protocol):
    """Price files, news files, prompts and the fine-tuning datasets."""

    @property
    def exceptions(self) -> S3Exceptions: ...

    def get_object(self, **kwargs: Any) -> dict[str, Any]: ...

    def put_object(self, **kwargs: Any) -> dict[str, Any]: ...


class SQSClient(Protocol):
    """The decisions queue and its dead-letter queue."""

    def send_message(self, **kwargs: Any) -> dict[str, Any]: ...

    def receive_message(self, **kwargs: Any) -> dict[str, Any]: ...

    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]: ...

    def delete_message(self, **kwargs: Any) -> dict[str, Any]: ...


class SSMClient(Protocol):
    """Run-time parameters (read mostly through Powertools' SSMProvider, which is given this client)."""

    def get_parameter(self, **kwargs: Any) -> dict[str, Any]: ...

    def put_parameter(self, **kwargs: Any) -> dict[str, Any]: ...

    def delete_parameter(self, **kwargs: Any) -> dict[str, Any]: ...


class SecretsManagerClient(Protocol):
    """The broker's API keys; the library hands this client to Powertools' SecretsProvider, which calls it."""

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]: ...


class BedrockRuntimeClient(Protocol):
    """The advisor (Converse API)."""

    def converse(self, **kwargs: Any) -> dict[str, Any]: ...


class BedrockClient(Protocol):
    """The fine-tuning workflow's control plane: customization jobs and custom-model deployments."""

    def create_model_customization_job(self, **kwargs: Any) -> dict[str, Any]: ...

    def get_model_customization_job(self, **kwargs: Any) -> dict[str, Any]: ...

    def create_custom_model_deployment(self, **kwargs: Any) -> dict[str, Any]: ...

    def get_custom_model_deployment(self, **kwargs: Any) -> dict[str, Any]: ...

    def delete_custom_model_deployment(self, **kwargs: Any) -> dict[str, Any]: ...


class ComprehendClient(Protocol):
    """Headline sentiment."""

    def batch_detect_sentiment(self, **kwargs: Any) -> dict[str, Any]: ...


class SNSClient(Protocol):
    """Fine-tuning notifications."""

    def publish(self, **kwargs: Any) -> dict[str, Any]: ...


class SFNClient(Protocol):
    """Step Functions: answering the fine-tuning workflow's approval task."""

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]: ...

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]: ...


class BotoSession(Protocol):
    """What `Aws` needs of a boto3 `Session`: its client factory (credentials of one role, say)."""

    def client(self, service_name: str, **kwargs: Any) -> Any: ...


# The session an `Aws()` made without one takes: unset on Lambda (boto3's default session holds the function's
# role there); the embedded AWS sets it, around each handler's import and invocation, to that function's role.
AMBIENT_SESSION: ContextVar[BotoSession | None] = ContextVar("mytrader_aws_session", default=None)


@contextmanager
def ambient_session(session: BotoSession | None) -> Iterator[None]:
    """Every `Aws()` made inside (in this thread) uses `session`."""
    token = AMBIENT_SESSION.set(session)
    try:
        yield
    finally:
        AMBIENT_SESSION.reset(token)


class Aws:
    """boto3 clients created once per container (AWS_ENDPOINT_URL points them at the embedded AWS locally).

    `session` (a boto3 Session) makes every client from that session's credentials; without it, the ambient
    session when the Aws is made (AMBIENT_SESSION), else boto3's default session."""

    def __init__(self, region: str | None = None, session: BotoSession | None = None):
        self.region = region
        self.session = session if session is not None else AMBIENT_SESSION.get()

    def client(self, name: str, **kw: Any) -> Any:
        """An untyped boto3 client; the library uses the typed properties below, each one a Protocol."""
        factory = self.session.client if self.session is not None else boto3.client
        return factory(name, config=kw.pop("config", BOTO), region_name=self.region, **kw)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return cast(DynamoDBClient, self.client("dynamodb"))

    @cached_property
    def sqs(self) -> SQSClient:
        return cast(SQSClient, self.client("sqs"))

    @cached_property
    def s3(self) -> S3Client:
        return cast(S3Client, self.client("s3"))

    @cached_property
    def ssm(self) -> SSMClient:
        return cast(SSMClient, self.client("ssm"))

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        return cast(SecretsManagerClient, self.client("secretsmanager"))

    @cached_property
    def bedrock_runtime(self) -> BedrockRuntimeClient:
        # No SDK retries: a throttled or timed-out advisor call falls back to the strategy at once (counted),
        # which keeps the cycle inside its deadline; the next cycle asks again.
        return cast(BedrockRuntimeClient, self.client(
            "bedrock-runtime", config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                                             read_timeout=20, connect_timeout=5)))

    @cached_property
    def bedrock_runtime_retrying(self) -> BedrockRuntimeClient:
        """Converse with the SDK's retries on: for the fine-tuning evaluation, where a throttle must be waited out,
        not counted as a HOLD prediction (the decision cycle's client above does not wait)."""
        return cast(BedrockRuntimeClient, self.client(
            "bedrock-runtime", config=Config(retries={"mode": "standard", "max_attempts": 6},
                                             read_timeout=60, connect_timeout=5)))

    @cached_property
    def bedrock(self) -> BedrockClient:
        return cast(BedrockClient, self.client("bedrock"))

    @cached_property
    def comprehend(self) -> ComprehendClient:
        return cast(ComprehendClient, self.client("comprehend"))

    @cached_property
    def sns(self) -> SNSClient:
        return cast(SNSClient, self.client("sns"))

    @cached_property
    def stepfunctions(self) -> SFNClient:
        return cast(SFNClient, self.client("stepfunctions"))
