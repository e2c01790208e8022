"""Item stores behind the trade log: DynamoDB, and an in-memory twin with the same semantics.

The trade log states its writes as data — conditions (`Cond`), updates (`Update`), puts, deletes and checks in
one all-or-nothing `transact` — and a store carries them out. `DynamoStore` translates them into DynamoDB
expressions (the only place in the library that builds one); `MemoryStore` evaluates them on Python dicts under
a lock, so the contract tests can run one suite against both. Semantics kept identical on purpose:
  - a comparison with a missing attribute is false (as in DynamoDB);
  - a transaction is all or nothing and reports, per item, `ConditionalCheckFailed` or `None`;
  - reads are strongly consistent when asked (`consistent=True`), and the memory store is always consistent.
"""
from __future__ import annotations

import json
import operator
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import DynamoDBClient

Row = dict[str, Any]  # a plain item: attribute -> Python value
CONFLICT_ATTEMPTS = 6  # a write cancelled only by a concurrent transaction (nothing applied) is tried this often
Key = tuple[str, str]  # (pk, sk)

_ser, _de = TypeSerializer(), TypeDeserializer()


def to_item(d: dict[str, Any]) -> dict[str, Any]:
    """Plain row -> DynamoDB attribute values (floats as Decimal; None attributes left out)."""
    clean = json.loads(json.dumps(d, default=str), parse_float=Decimal)
    return {k: _ser.serialize(v) for k, v in clean.items() if v is not None}


def from_item(item: dict[str, Any]) -> Row:
    out = {k: _de.deserialize(v) for k, v in item.items()}
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in out.items()}


def _plain(value: Any) -> Any:
    """A value as DynamoDB would give it back (numbers as float, no None)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return from_item(to_item({"v": value})).get("v")


class TransactionCancelled(Exception):
    """The transaction did nothing. `reasons` has one code per item: `ConditionalCheckFailed` where that item's
    condition failed, `TransactionConflict` where a concurrent write collided, `None` elsewhere."""

    def __init__(self, reasons: list[str]):
        super().__init__(", ".join(reasons))
        self.reasons = reasons

    @property
    def conflict(self) -> bool:
        return any(r == "TransactionConflict" for r in self.reasons)


class ConditionFailed(TransactionCancelled):
    """Kept for callers that catch the old name: a transaction cancelled by at least one failed condition."""


# -- conditions --------------------------------------------------------------------------------------------
_OPS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "eq": ("=", operator.eq), "ne": ("<>", operator.ne), "lt": ("<", operator.lt), "le": ("<=", operator.le),
    "gt": (">", operator.gt), "ge": (">=", operator.ge)}


@dataclass(frozen=True)
class Cond:
    """One condition on an item: `exists`, `missing` (attribute_not_exists), a comparison, or `any_of` (OR)."""

    kind: str
    attr: str = ""
    value: Any = None
    parts: tuple[Cond, ...] = ()

    @staticmethod
    def exists(attr: str = "pk") -> Cond:
        return Cond("exists", attr)

    @staticmethod
    def missing(attr: str = "pk") -> Cond:
        return Cond("missing", attr)

    @staticmethod
    def cmp(attr: str, op: str, value: Any) -> Cond:
        if op not in _OPS:
            raise ValueError(f"unknown comparison {op!r}")
        return Cond(op, attr, value)

    @staticmethod
    def any_of(*parts: Cond) -> Cond:
        return Cond("or", parts=tuple(parts))

    def holds(self, row: Row | None) -> bool:
        if self.kind == "or":
            return any(p.holds(row) for p in self.parts)
        present = row is not None and self.attr in row
        if self.kind == "exists":
            return present
        if self.kind == "missing":
            return not present
        if not present or row is None:
            return False  # DynamoDB: a comparison with a missing attribute is false
        try:
            return bool(_OPS[self.kind][1](row[self.attr], _plain(self.value)))
        except TypeError:
            return False  # different types never compare in DynamoDB


@dataclass(frozen=True)
class Update:
    """SET these attributes, ADD to these numbers, REMOVE these attributes."""

    set: dict[str, Any] = field(default_factory=dict)
    add: dict[str, float] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    def apply(self, row: Row) -> Row:
        out = dict(row)
        for k, v in self.set.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _plain(v)
        for k, n in self.add.items():
            out[k] = float(out.get(k, 0.0)) + float(n)
        for k in self.remove:
            out.pop(k, None)
        return out


@dataclass(frozen=True)
class Op:
    """One item of a transaction: `put` (whole row), `update`, `delete` or `check`, each under its conditions."""

    kind: str
    key: Key
    row: Row | None = None
    update: Update | None = None
    conds: tuple[Cond, ...] = ()

    @staticmethod
    def put(row: Row, *conds: Cond) -> Op:
        return Op("put", (row["pk"], row["sk"]), row=row, conds=conds)

    @staticmethod
    def upd(key: Key, update: Update, *conds: Cond) -> Op:
        return Op("update", key, update=update, conds=conds)

    @staticmethod
    def delete(key: Key, *conds: Cond) -> Op:
        return Op("delete", key, conds=conds)

    @staticmethod
    def check(key: Key, *conds: Cond) -> Op:
        return Op("check", key, conds=conds)


class MemoryStore:
    """The in-memory twin of the DynamoDB table: same operations, same condition semantics, one lock."""

    def __init__(self) -> None:
        self._rows: dict[Key, Row] = {}
        self._lock = threading.RLock()

    def get(self, key: Key, consistent: bool = False) -> Row | None:
        with self._lock:
            row = self._rows.get(key)
            return dict(row) if row is not None else None

    def get_many(self, keys: Sequence[Key]) -> list[Row]:
        with self._lock:
            return [dict(self._rows[k]) for k in keys if k in self._rows]

    def query(self, pk: str, sk_prefix: str = "", consistent: bool = False) -> list[Row]:
        with self._lock:
            rows = [dict(r) for (p, s), r in self._rows.items() if p == pk and s.startswith(sk_prefix)]
        return sorted(rows, key=lambda r: r["sk"])

    def query_index(self, index: str, pk: str, sk_below: str | None = None, limit: int | None = None) -> list[Row]:
        pk_attr, sk_attr = f"{index}pk", f"{index}sk"
        with self._lock:
            rows = [dict(r) for r in self._rows.values() if r.get(pk_attr) == pk and sk_attr in r
                    and (sk_below is None or r[sk_attr] < sk_below)]
        rows.sort(key=lambda r: r[sk_attr])
        return rows[:limit] if limit is not None else rows

    def transact(self, ops: Sequence[Op]) -> None:
        with self._lock:
            reasons = ["ConditionalCheckFailed" if not all(c.holds(self._rows.get(op.key)) for c in op.conds)
                       else "None" for op in ops]
            if any(r != "None" for r in reasons):
                raise TransactionCancelled(reasons)
            for op in ops:
                self._apply(op)

    def write(self, op: Op) -> bool:
        """One item, outside a transaction; False when its condition failed."""
        try:
            self.transact([op])
            return True
        except TransactionCancelled:
            return False

    def _apply(self, op: Op) -> None:
        if op.kind == "put" and op.row is not None:
            self._rows[op.key] = _plain(op.row)
        elif op.kind == "update" and op.update is not None:
            base = self._rows.get(op.key) or {"pk": op.key[0], "sk": op.key[1]}
            self._rows[op.key] = op.update.apply(base)
        elif op.kind == "delete":
            self._rows.pop(op.key, None)


class _Expr:
    """Builds one DynamoDB expression with its placeholders (#n0, :v0, ...)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attr: str) -> str:
        for placeholder, known in self.names.items():
            if known == attr:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attr
        return placeholder

    def value(self, v: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = v
        return placeholder

    def cond(self, c: Cond, alone: bool = False) -> str:
        """One condition; an OR is parenthesised unless it stands alone (DynamoDB refuses redundant parentheses)."""
        if c.kind == "or":
            inner = " OR ".join(self.cond(p) for p in c.parts)
            return inner if alone else f"({inner})"
        if c.kind == "exists":
            return f"attribute_exists({self.name(c.attr)})"
        if c.kind == "missing":
            return f"attribute_not_exists({self.name(c.attr)})"
        return f"{self.name(c.attr)} {_OPS[c.kind][0]} {self.value(c.value)}"

    def conds(self, conds: Sequence[Cond]) -> str:
        return " AND ".join(self.cond(c, alone=len(conds) == 1) for c in conds)

    def update(self, u: Update) -> str:
        sets = [f"{self.name(k)} = {self.value(v)}" for k, v in u.set.items() if v is not None]
        removes = [self.name(k) for k, v in u.set.items() if v is None] + [self.name(k) for k in u.remove]
        adds = [f"{self.name(k)} {self.value(n)}" for k, n in u.add.items()]
        parts = ([f"SET {', '.join(sets)}"] if sets else []) + ([f"ADD {', '.join(adds)}"] if adds else [])
        return " ".join(parts + ([f"REMOVE {', '.join(removes)}"] if removes else []))

    def attach(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.names:
            request["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            request["ExpressionAttributeValues"] = to_item(self.values)
        return request


class DynamoStore:
    """The trade-log table in DynamoDB. Transactions are TransactWriteItems; a cancelled one raises
    TransactionCancelled with DynamoDB's per-item reason codes; a single-item conflict with a running
    transaction (TransactionConflictException) is reported the same way, as a conflict."""

    def __init__(self, client: DynamoDBClient, table: str):
        self.db, self.table = client, table

    def _key(self, key: Key) -> dict[str, Any]:
        return to_item({"pk": key[0], "sk": key[1]})

    def get(self, key: Key, consistent: bool = False) -> Row | None:
        resp = self.db.get_item(TableName=self.table, Key=self._key(key), ConsistentRead=consistent)
        return from_item(resp["Item"]) if "Item" in resp else None

    def get_many(self, keys: Sequence[Key]) -> list[Row]:
        out: list[Row] = []
        for start in range(0, len(keys), 100):
            pending = [self._key(k) for k in keys[start:start + 100]]
            while pending:
                resp = self.db.batch_get_item(RequestItems={self.table: {"Keys": pending}})
                out.extend(from_item(i) for i in resp.get("Responses", {}).get(self.table, []))
                pending = resp.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
        return out

    def query(self, pk: str, sk_prefix: str = "", consistent: bool = False) -> list[Row]:
        expr = "pk = :p" + (" AND begins_with(sk, :s)" if sk_prefix else "")
        values = {":p": pk, **({":s": sk_prefix} if sk_prefix else {})}
        return self._all(KeyConditionExpression=expr, ExpressionAttributeValues=to_item(values),
                         ConsistentRead=consistent)

    def query_index(self, index: str, pk: str, sk_below: str | None = None, limit: int | None = None) -> list[Row]:
        expr = f"{index}pk = :p" + (f" AND {index}sk < :b" if sk_below is not None else "")
        values = {":p": pk, **({":b": sk_below} if sk_below is not None else {})}
        return self._all(IndexName=index, KeyConditionExpression=expr, ExpressionAttributeValues=to_item(values),
                         max_rows=limit, **({"Limit": limit} if limit is not None else {}))

    def _all(self, max_rows: int | None = None, **kw: Any) -> list[Row]:
        """Every page of a query (`Limit` is the page size), or the first `max_rows` rows."""
        out: list[Row] = []
        while True:
            resp = self.db.query(TableName=self.table, **kw)
            out.extend(from_item(i) for i in resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if not start or (max_rows is not None and len(out) >= max_rows):
                return out[:max_rows] if max_rows is not None else out
            kw["ExclusiveStartKey"] = start

    def transact(self, ops: Sequence[Op]) -> None:
        """All or nothing. A transaction cancelled only by conflicts (nothing applied) is tried again a few
        times; a failed condition is never retried here (the caller decides)."""
        request = [self._request(op) for op in ops]
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self._transact_once(request, len(ops))
                return
            except TransactionCancelled as exc:
                if not exc.conflict or "ConditionalCheckFailed" in exc.reasons or attempt == CONFLICT_ATTEMPTS - 1:
                    raise

    def _transact_once(self, request: list[dict[str, Any]], n: int) -> None:
        try:
            self.db.transact_write_items(TransactItems=request)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "TransactionCanceledException":
                reasons = [r.get("Code") or "None" for r in exc.response.get("CancellationReasons", [])]
                raise TransactionCancelled(reasons or ["TransactionConflict"]) from None
            if code == "TransactionConflictException":
                raise TransactionCancelled(["TransactionConflict"] * n) from None
            raise

    def write(self, op: Op) -> bool:
        """One item, outside a transaction; False when its condition failed. A conflict with a transaction
        under way (nothing written) is tried again a few times."""
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                return self._write_once(op)
            except TransactionCancelled:
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise
        return False  # unreachable: the last attempt returns or raises

    def _write_once(self, op: Op) -> bool:
        request = self._request(op)
        (kind, body), = request.items()
        call = {"Put": self.db.put_item, "Update": self.db.update_item, "Delete": self.db.delete_item}.get(kind)
        try:
            if call is None:  # a lone check is a transaction of one
                self.transact([op])
            else:
                call(**body)
            return True
        except TransactionCancelled as exc:
            if exc.conflict:
                raise
            return False
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                return False
            if code == "TransactionConflictException":
                raise TransactionCancelled(["TransactionConflict"]) from None
            raise

    def _request(self, op: Op) -> dict[str, Any]:
        expr = _Expr()
        body: dict[str, Any] = {"TableName": self.table}
        if op.kind == "put" and op.row is not None:
            body["Item"] = to_item(op.row)
        else:
            body["Key"] = self._key(op.key)
        if op.kind == "update" and op.update is not None:
            body["UpdateExpression"] = expr.update(op.update)
        if op.conds:
            body["ConditionExpression"] = expr.conds(op.conds)
        kind = {"put": "Put", "update": "Update", "delete": "Delete", "check": "ConditionCheck"}[op.kind]
        return {kind: expr.attach(body)}
