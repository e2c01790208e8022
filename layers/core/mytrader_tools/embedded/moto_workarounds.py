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
8. moto's TransactWriteItems deep-copies every table it touches, to put the copy back if the transaction fails:
   measured 25 ms per transaction at 100 items, 200 ms at 1,000, 1.0-1.3 s at 5,000 (a PutItem: 5 ms), and
   every copy stays referenced by moto's instance tracker until the next reset. `per_item_transaction_undo`
   keeps moto's transaction code but lets it "copy" a table by reference, and keeps instead an undo log of the
   items the transaction may write (a copy of each, or its absence) and of the tables' stream records: on any
   failure, only those are put back (6-8 ms per transaction, whatever the table's size). It also undoes what
   moto leaves written when it raises without rolling back (an entry with two operations). A transaction whose
   keys cannot be read falls back to moto's own whole-table copy. Results are moto's (tested).
   The endpoint serialises every DynamoDB request, so no other request runs between a write and its undo.
"""
from __future__ import annotations

import copy
import threading
from typing import Any

import requests

_hint = threading.local()
_share_tables = threading.local()  # set while a transaction runs with the per-item undo log


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


def per_item_transaction_undo() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    if getattr(DynamoDBBackend, "_mytrader_item_undo", False):
        return
    original_transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        undo = _undo_log(self, transact_items)
        if undo is None:  # a key this log cannot read: moto's own whole-table copy
            return original_transact(self, transact_items)
        _share_tables.on = True
        try:
            return original_transact(self, transact_items)
        except BaseException:
            for restore in reversed(undo):  # the first snapshot of an item is its state before the transaction
                restore()
            raise
        finally:
            _share_tables.on = False

    def table_deepcopy(self, memo):
        if getattr(_share_tables, "on", False):
            return self  # moto's "backup" of the table: the undo log restores the touched items instead
        cls: Any = type(self)
        clone = cls.__new__(cls)  # what copy.deepcopy does for a plain object
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    backend: Any = DynamoDBBackend  # patched in place, by assignment
    backend.transact_write_items = _wrapping(transact_write_items, original_transact)
    table: Any = Table
    table.__deepcopy__ = table_deepcopy
    backend._mytrader_item_undo = True


def _undo_log(backend, transact_items) -> list[Any] | None:
    """One restore step per item the transaction may write (and per stream it may append to); None when an
    item's key cannot be read. Operations moto refuses before writing (unknown table, several operations in
    one entry) need none."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    undo: list[Any] = []
    streams: dict[int, Any] = {}
    for entry in transact_items:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        (op_type, op), = entry.items()
        if op_type not in ("Put", "Update", "Delete") or not isinstance(op, dict):
            continue
        try:
            table = backend.get_table(op.get("TableName"))
        except Exception:  # moto answers ResourceNotFound for that item, and writes nothing
            continue
        try:
            key = op["Item"] if op_type == "Put" else op["Key"]
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        except Exception:
            return None
        undo.append(_item_restore(table, hash_key, range_key))
        shard = table.stream_shard
        if shard is not None and id(shard) not in streams:
            streams[id(shard)] = shard
            undo.insert(0, _stream_restore(shard, len(shard.items)))
    return undo


def _item_restore(table, hash_key, range_key):
    items = table.items
    if range_key is None:
        present, saved = hash_key in items, copy.deepcopy(items.get(hash_key))

        def restore_item() -> None:
            if present:
                items[hash_key] = saved
            else:
                items.pop(hash_key, None)
        return restore_item
    part = items.get(hash_key)
    present = part is not None and range_key in part
    saved = copy.deepcopy(part[range_key]) if present else None

    def restore_ranged_item() -> None:
        if present:
            items[hash_key][range_key] = saved
        elif hash_key in items:
            items[hash_key].pop(range_key, None)
    return restore_ranged_item


def _stream_restore(shard, length: int):
    def restore_stream() -> None:
        del shard.items[length:]  # the records the failed transaction appended
    return restore_stream


def apply(embedded) -> None:
    fast_dynamodb_queries()
    per_item_transaction_undo()
    resp = requests.post(f"{embedded.url}/moto-api/config",
                         json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    resp.raise_for_status()


def step_functions_executes(embedded) -> bool:
    """moto's GET /moto-api/config does not echo the stepfunctions section: read moto's config in process."""
    from moto.core.config import default_user_config

    return bool(default_user_config.get("stepfunctions", {}).get("execute_state_machine"))
