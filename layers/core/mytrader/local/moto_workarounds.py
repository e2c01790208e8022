"""Every moto 5.2.5 gap the embedded AWS works around, in one visible place (each has a test):

1. Step Functions only executes definitions with `execute_state_machine` on: set through /moto-api/config.
2. Its engine sends task calls to localhost:$MOTO_PORT: MOTO_PORT is this endpoint's port (endpoint.env()).
3. Its aws-sdk tasks take boto3's parameter casing while AWS needs PascalCase, and timestamps in results
   break describe_execution: the finetune definition uses Lambda tasks only, whose results are JSON-safe.
4. Wait states sleep for real: the workflow takes its poll interval from the input (1 s locally).
5. Comprehend batch sentiment, Bedrock Converse, customization jobs that complete, custom model
   deployments and running Lambda code: served by local services (services.py, bedrock_control.py).
6. get_model_customization_job by ARN fails in moto: the workflow polls by job name (AWS accepts both).
"""
from __future__ import annotations

import requests


def apply(embedded) -> None:
    resp = requests.post(f"{embedded.url}/moto-api/config",
                         json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    resp.raise_for_status()


def step_functions_executes(embedded) -> bool:
    """moto's GET /moto-api/config does not echo the stepfunctions section: read moto's config in process."""
    from moto.core.config import default_user_config

    return bool(default_user_config.get("stepfunctions", {}).get("execute_state_machine"))
