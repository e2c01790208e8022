"""The broker's API keys from Secrets Manager (through Powertools, cached)."""
from __future__ import annotations

import json

from mytrader.adapters.aws.clients import Aws
from mytrader.app.settings import PipelineSettings


def broker_credentials(settings: PipelineSettings, aws: Aws) -> tuple[str, str]:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    raw = SecretsProvider(boto3_client=aws.client("secretsmanager")).get(settings.broker_secret_arn, max_age=300)
    data = json.loads(raw)
    return data["key_id"], data["secret_key"]
