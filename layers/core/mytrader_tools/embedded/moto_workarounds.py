"""Every moto 5.2.5 gap the embedded AWS works around, in one visible place (each has a test):

1. Step Functions only executes definitions with `execute_state_machine` on: set through /moto-api/config.
2. Its engine sends task calls to localhost:$MOTO_PORT: MOTO_PORT is this endpoint's port (endpoint.env()).
3. Its aws-sdk tasks take boto3's parameter casing while AWS needs PascalCase, and timestamps in results
   break describe_execution: the finetune definition uses Lambda tasks only, whose results are JSON-safe.
4. Wait states sleep for real: the workflow takes its poll interval from the input (1 s locally).
5. Comprehend batch sentiment, Bedrock Converse, customization jobs that complete, custom model
   deployments and running Lambda code: served by local services (services.py, bedrock_control.py).
6. get_model_customization_job by ARN fails in moto: the workflow polls by job name (AWS accepts both).
7. moto's DynamoDB Query walks (and sorts) every item of the table, even for a main-table query on one
   partition, so each query slows as the trade log grows (measured: 5 ms empty, 87 ms at 3,000 items).
   `fast_dynamodb_queries` makes a main-table query read only its partition, and skips the redundant sort
   before a GSI query (moto sorts the matches again afterwards). Results are identical (tested).
"""
from __future__ import annotations

import threading
from typing import Any

import requests

_hint = threading.local()


def fast_dynamodb_queries() -> None:
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_mytrader_fast_query", False):
        return
    original_query, original_all_items = Table.query, Table.all_items

    def all_items(self):
        mode = getattr(_hint, "mode", None)
        if mode is None:
            return original_all_items(self)
        if mode == "partition":
            part = self.items.get(_hint.key)
            if part is None:
                return []
            return list(part.values()) if self.range_key_attr else [part]
        out: list[Any] = []  # "unsorted": every item, in storage order
        for hash_set in self.items.values():
            out.extend(hash_set.values() if self.range_key_attr else [hash_set])
        return out

    def query(self, hash_key, *args, **kwargs):
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        _hint.mode, _hint.key = ("unsorted", None) if index_name else ("partition", hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _hint.mode = None

    table: Any = Table  # patched in place: moto's own methods, by assignment
    table.all_items, table.query = _wrapping(all_items, original_all_items), _wrapping(query, original_query)
    table._mytrader_fast_query = True


def _wrapping(patch: Any, original: Any) -> Any:
    """`patch`, remembering the method it replaces (tests compare the two code paths)."""
    patch.__wrapped_original__ = original
    return patch


def apply(embedded) -> None:
    fast_dynamodb_queries()
    resp = requests.post(f"{embedded.url}/moto-api/config",
                         json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    resp.raise_for_status()


def step_functions_executes(embedded) -> bool:
    """moto's GET /moto-api/config does not echo the stepfunctions section: read moto's config in process."""
    from moto.core.config import default_user_config

    return bool(default_user_config.get("stepfunctions", {}).get("execute_state_machine"))
