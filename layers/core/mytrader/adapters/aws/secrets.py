"""The broker's API keys from Secrets Manager (through Powertools, cached).

The stack creates the secret with a placeholder (`{"key_id": "set-me", "secret_key": <generated>}`) and the user puts
the real keys in after deploy. Keys that are still the placeholder, empty, or not JSON with both fields raise
SecretNotSet: a function that needs them then does nothing at all (app/safe_start.py), never trades on them."""
from __future__ import annotations

import json

from mytrader.adapters.aws.clients import Aws
from mytrader.app.settings import PipelineSettings

PLACEHOLDER = "set-me"  # the key_id the stack's generated secret starts with (cdk/mytrader_infra/storage.py)
SECRET_MAX_AGE_S = 300  # a container sees new keys within 5 minutes of `put-secret-value`


class SecretNotSet(RuntimeError):
    """The broker secret still holds the deploy-time placeholder, or no usable keys."""


def parse_broker_secret(raw: object, secret_id: str) -> tuple[str, str]:
    """(key_id, secret_key) from the secret's string; SecretNotSet when it holds no real keys."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        raise SecretNotSet(f"broker secret {secret_id} is not a JSON string")
    try:
        data = json.loads(raw)
    except ValueError:
        raise SecretNotSet(f"broker secret {secret_id} is not JSON") from None
    if not isinstance(data, dict):
        raise SecretNotSet(f"broker secret {secret_id} is not a JSON object")
    key, secret = data.get("key_id"), data.get("secret_key")
    if not isinstance(key, str) or not isinstance(secret, str) or not key.strip() or not secret.strip():
        raise SecretNotSet(f"broker secret {secret_id} has no key_id and secret_key")
    if PLACEHOLDER in (key.strip(), secret.strip()):
        raise SecretNotSet(f"broker secret {secret_id} still holds the placeholder {PLACEHOLDER!r}")
    return key, secret


def broker_credentials(settings: PipelineSettings, aws: Aws) -> tuple[str, str]:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    raw = SecretsProvider(boto3_client=aws.secretsmanager).get(settings.broker_secret_arn, max_age=SECRET_MAX_AGE_S)
    return parse_broker_secret(raw, settings.broker_secret_arn)
