"""The broker's API keys from Secrets Manager (through Powertools, cached)."""
from __future__ import annotations

import json

from mytrader.adapters.aws.clients import Aws
from mytrader.app.settings import PipelineSettings


def broker_credentials(settings: PipelineSettings, aws: Aws) -> tuple[str, str]:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    raw = SecretsProvider(boto3_client=aws.secretsmanager).get(settings.broker_secret_arn, max_age=300)
    if not isinstance(raw, str | bytes):
        raise TypeError(f"broker secret {settings.broker_secret_arn} is not a JSON string")
    data = json.loads(raw)
    return str(data["key_id"]), str(data["secret_key"])
