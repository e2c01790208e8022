"""The trade log: one DynamoDB table (single-table design). The only module that speaks DynamoDB items.

Access patterns (also in the README):
  decision by id ............. pk=DEC#<id>            sk=DECISION
  decisions of a symbol ...... gsi1pk=SYM#<symbol>    gsi1sk=<bar_ts>
  decisions by status ........ gsi2pk=STATUS#<status> gsi2sk=<bar_ts>#<id>   (PENDING re-send, terminal counts)
  order / fills / outcome .... pk=DEC#<id>            sk=ORDER | FILL#<n> | OUTCOME
  fills over time ............ gsi1pk=FILLS#<acct>    gsi1sk=<filled_at>#<id>
  outcomes over time ......... gsi1pk=OUTCOMES#<acct> gsi1sk=<exit_ts>#<symbol>
  account state, positions ... pk=ACCOUNT#<acct>      sk=STATE | POS#<symbol>
  advisor memo per symbol .... pk=SYMBOL#<symbol>     sk=MEMO
  shadow predictions ......... pk=DEC#<id>            sk=SHADOW#<model_id>
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from mytrader.models import DecisionStatus, Fill, Order, Position, QueryMemo, TradeDecision, TradeOutcome
from mytrader.risk import AccountState

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import DynamoDBClient

Item = dict[str, Any]  # a DynamoDB item ({"attr": {"S": ...}}) or a plain row, a transact item, a request's keywords

_ser, _de = TypeSerializer(), TypeDeserializer()


def to_item(d: dict[str, Any]) -> Item:
    clean = json.loads(json.dumps(d, default=str), parse_float=Decimal)
    return {k: _ser.serialize(v) for k, v in clean.items() if v is not None}


def from_item(item: Item) -> dict[str, Any]:
    out = {k: _de.deserialize(v) for k, v in item.items()}
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in out.items()}


class ConditionFailed(Exception):
    def __init__(self, reasons: list[str]):
        super().__init__(", ".join(reasons))
        self.reasons = reasons


class TradeLog:
    def __init__(self, client: DynamoDBClient, table: str, account: str = "main"):
        self.db, self.table, self.account = client, table, account
        self.acct_pk = f"ACCOUNT#{account}"

    # -- decisions ----------------------------------------------------------------------------
    def decision_item(self, d: TradeDecision) -> Item:
        return {"pk": f"DEC#{d.decision_id}", "sk": "DECISION", "gsi1pk": f"SYM#{d.symbol}",
                "gsi1sk": d.bar_ts.isoformat(), "gsi2pk": f"STATUS#{d.status.value}",
                "gsi2sk": f"{d.bar_ts.isoformat()}#{d.decision_id}", "symbol": d.symbol, "status": d.status.value,
                "status_reason": d.status_reason, "action": d.action.value, "bar_ts": d.bar_ts.isoformat(),
                "decided_at": d.decided_at.isoformat(), "model_id": d.llm.model_id if d.llm else None,
                "prompt_hash": d.llm.prompt_hash if d.llm else None, "cost_usd": d.llm.cost_usd if d.llm else 0.0,
                "doc": d.model_dump_json()}

    def put_decision(self, d: TradeDecision) -> bool:
        """Conditional put; False when a record with this decision_id already exists."""
        try:
            self.db.put_item(TableName=self.table, Item=to_item(self.decision_item(d)),
                             ConditionExpression="attribute_not_exists(pk)")
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def put_skip(self, decision_id: str, symbol: str, bar_ts: str, reason: str, decided_at: str) -> bool:
        """A cycle that produced no decision (bad data, calendar) still leaves one terminal record."""
        item = {"pk": f"DEC#{decision_id}", "sk": "DECISION", "gsi1pk": f"SYM#{symbol}", "gsi1sk": bar_ts,
                "gsi2pk": "STATUS#SKIPPED", "gsi2sk": f"{bar_ts}#{decision_id}", "symbol": symbol, "status": "SKIPPED",
                "status_reason": reason, "action": "HOLD", "bar_ts": bar_ts, "decided_at": decided_at}
        try:
            self.db.put_item(TableName=self.table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)")
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def get_decision_row(self, decision_id: str) -> Item | None:
        resp = self.db.get_item(TableName=self.table, Key=to_item({"pk": f"DEC#{decision_id}", "sk": "DECISION"}),
                                ConsistentRead=True)
        return from_item(resp["Item"]) if "Item" in resp else None

    def get_decision(self, decision_id: str) -> TradeDecision | None:
        row = self.get_decision_row(decision_id)
        if row is None or "doc" not in row:
            return None
        d = TradeDecision.model_validate_json(row["doc"])
        return d.model_copy(update={"status": DecisionStatus(row["status"]),
                                    "status_reason": row.get("status_reason", "")})

    def status_update(self, decision_id: str, status: DecisionStatus, reason: str,
                      from_status: str = "PENDING") -> Item:
        """A transact item moving a decision to `status`, only from `from_status`."""
        return {"Update": {
            "TableName": self.table, "Key": to_item({"pk": f"DEC#{decision_id}", "sk": "DECISION"}),
            "UpdateExpression": "SET #s = :s, gsi2pk = :g, status_reason = :r",
            "ConditionExpression": "#s = :from",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": to_item({":s": status.value, ":g": f"STATUS#{status.value}",
                                                  ":r": reason[:500], ":from": from_status})}}

    def set_status(self, decision_id: str, status: DecisionStatus, reason: str, from_status: str = "PENDING") -> bool:
        u = self.status_update(decision_id, status, reason, from_status)["Update"]
        try:
            self.db.update_item(**u)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def decisions_by_status(self, status: str, before: str | None = None) -> list[Item]:
        condition, values = "gsi2pk = :p", {":p": f"STATUS#{status}"}
        if before:
            condition += " AND gsi2sk < :b"
            values[":b"] = before
        return self._query_all(IndexName="gsi2", KeyConditionExpression=condition,
                               ExpressionAttributeValues=to_item(values))

    def count_by_status(self) -> dict[str, int]:
        return {s.value: len(self.decisions_by_status(s.value)) for s in DecisionStatus}

    def decisions_of(self, symbol: str) -> list[Item]:
        return self._query_all(IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
                               ExpressionAttributeValues=to_item({":p": f"SYM#{symbol}"}))

    # -- account, positions, memo ------------------------------------------------------------
    def ensure_account(self, initial_equity: float) -> None:
        item = {"pk": self.acct_pk, "sk": "STATE", "cash": initial_equity, "book_equity": initial_equity,
                "open_positions": 0, "realized_total": 0.0, "day": "", "day_start_equity": initial_equity,
                "realized_today": 0.0, "orders_minute": "", "orders_this_minute": 0, "consecutive_stopouts": 0,
                "tripped_day": ""}
        try:
            self.db.put_item(TableName=self.table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def account_state(self) -> AccountState:
        resp = self.db.get_item(TableName=self.table, Key=to_item({"pk": self.acct_pk, "sk": "STATE"}),
                                ConsistentRead=True)
        if "Item" not in resp:
            raise LookupError("account not initialised: run the stack set-up")
        row = from_item(resp["Item"])
        return AccountState(cash=row["cash"], book_equity=row["book_equity"], open_positions=int(row["open_positions"]),
                            day=row.get("day", ""), day_start_equity=row.get("day_start_equity", 0.0),
                            realized_today=row.get("realized_today", 0.0), orders_minute=row.get("orders_minute", ""),
                            orders_this_minute=int(row.get("orders_this_minute", 0)),
                            consecutive_stopouts=int(row.get("consecutive_stopouts", 0)),
                            cooldown_until=row.get("cooldown_until") or None, tripped_day=row.get("tripped_day", ""))

    def roll_day(self, day: str) -> None:
        """First event of a new trading day: reset the day's counters (idempotent per day)."""
        try:
            self.db.update_item(
                TableName=self.table, Key=to_item({"pk": self.acct_pk, "sk": "STATE"}),
                UpdateExpression="SET #d = :d, day_start_equity = book_equity, realized_today = :z",
                ConditionExpression="#d < :d", ExpressionAttributeNames={"#d": "day"},
                ExpressionAttributeValues=to_item({":d": day, ":z": 0.0}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def trip_day(self, day: str) -> None:
        self.db.update_item(TableName=self.table, Key=to_item({"pk": self.acct_pk, "sk": "STATE"}),
                            UpdateExpression="SET tripped_day = :d", ExpressionAttributeValues=to_item({":d": day}))

    def _pos_key(self, symbol: str) -> Item:
        return to_item({"pk": self.acct_pk, "sk": f"POS#{symbol}"})

    def position(self, symbol: str) -> Position | None:
        row = self.position_row(symbol)
        return Position.model_validate_json(row["doc"]) if row else None

    def position_rows(self) -> list[Item]:
        """Every open position's item (doc, entry_fee, checked_bar) in one query."""
        return self._query_all(KeyConditionExpression="pk = :p AND begins_with(sk, :s)", ConsistentRead=True,
                               ExpressionAttributeValues=to_item({":p": self.acct_pk, ":s": "POS#"}))

    def positions(self) -> list[Position]:
        return [Position.model_validate_json(r["doc"]) for r in self.position_rows()]

    def memos(self, symbols: list[str]) -> dict[str, QueryMemo]:
        out: dict[str, QueryMemo] = {}
        for start in range(0, len(symbols), 100):
            keys = [to_item({"pk": f"SYMBOL#{s}", "sk": "MEMO"}) for s in symbols[start:start + 100]]
            while keys:
                resp = self.db.batch_get_item(RequestItems={self.table: {"Keys": keys}})
                for item in resp.get("Responses", {}).get(self.table, []):
                    r = from_item(item)
                    out[r["pk"][7:]] = QueryMemo(int(r["bar_index"]), r["rsi"], r["sentiment"], r["regime"])
                keys = resp.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
        return out

    def open_order_rows(self) -> list[Item]:
        """Entry orders the broker has not finished (accepted or partly filled): outcomes reconciles them."""
        return self._query_all(IndexName="gsi2", KeyConditionExpression="gsi2pk = :p",
                               ExpressionAttributeValues=to_item({":p": "ORDERS#OPEN"}))

    def position_row(self, symbol: str) -> Item | None:
        """The position's item: doc, entry_fee, checked_bar, and what earlier close orders filled, if any."""
        resp = self.db.get_item(TableName=self.table, Key=self._pos_key(symbol), ConsistentRead=True)
        return from_item(resp["Item"]) if "Item" in resp else None

    def position_entry_fee(self, symbol: str) -> float:
        row = self.position_row(symbol)
        return float(row.get("entry_fee", 0.0)) if row else 0.0

    def mark_closing(self, symbol: str, base_coid: str, reason: str, owner: str) -> None:
        """Claims the position for one close before its first order goes out: every later close of it (a stop
        seen by outcomes while a SELL decision's order works, a flatten) continues that order instead of sending
        a second one. Raises ConditionFailed if the position is gone or another close claimed it first."""
        self.transact([{"Update": {
            "TableName": self.table, "Key": self._pos_key(symbol),
            "UpdateExpression": "SET closing_base = :b, closing_reason = :r, closing_owner = :o",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(closing_base)",
            "ExpressionAttributeValues": to_item({":b": base_coid, ":r": reason, ":o": owner})}}])

    def close_attempt_ended(self, symbol: str, attempt: int, fill: Fill | None, owner: str) -> None:
        """A close order the broker ended short (canceled, expired, rejected): keep what it filled on the position
        and move to the next attempt, which will send a new order for the rest. Conditioned on the attempt, so a
        concurrent close cannot record the same order twice."""
        qty, notional, fee = (fill.qty, fill.qty * fill.price, fill.fee) if fill else (0.0, 0.0, 0.0)
        items = [{"Update": {
            "TableName": self.table, "Key": self._pos_key(symbol),
            "UpdateExpression": "SET close_attempt = :next ADD closing_qty :q, closing_notional :n, closing_fee :f",
            "ConditionExpression": ("attribute_exists(pk) AND "
                                    "(attribute_not_exists(close_attempt) OR close_attempt = :at)"),
            "ExpressionAttributeValues": to_item({":next": attempt + 1, ":at": attempt, ":q": qty, ":n": notional,
                                                  ":f": fee})}}]
        if fill:
            items.append(self.put(self.fill_item(owner, fill, seq=10 + attempt)))
        self.transact(items)

    def bump_bars_held(self, pos: Position, bar_ts: int) -> None:
        """One more bar held, remembering which bar was checked so a re-run never counts it twice."""
        upd = pos.model_copy(update={"bars_held": pos.bars_held + 1})
        self.db.update_item(TableName=self.table, Key=self._pos_key(pos.symbol),
                            UpdateExpression="SET doc = :d, checked_bar = :b",
                            ConditionExpression="attribute_exists(pk)",
                            ExpressionAttributeValues=to_item({":d": upd.model_dump_json(), ":b": bar_ts}))

    def position_checked(self, symbol: str) -> int | None:
        row = self.position_row(symbol)
        value = row.get("checked_bar") if row else None
        return int(value) if value is not None else None

    def memo(self, symbol: str) -> QueryMemo | None:
        resp = self.db.get_item(TableName=self.table, Key=to_item({"pk": f"SYMBOL#{symbol}", "sk": "MEMO"}))
        if "Item" not in resp:
            return None
        r = from_item(resp["Item"])
        return QueryMemo(int(r["bar_index"]), r["rsi"], r["sentiment"], r["regime"])

    def put_memo(self, symbol: str, memo: QueryMemo) -> None:
        self.db.put_item(TableName=self.table, Item=to_item({"pk": f"SYMBOL#{symbol}", "sk": "MEMO",
                                                             "bar_index": memo.bar_index, "rsi": memo.rsi,
                                                             "sentiment": memo.sentiment, "regime": memo.regime}))

    # -- orders, fills, outcomes --------------------------------------------------------------
    def order(self, decision_id: str) -> Item | None:
        resp = self.db.get_item(TableName=self.table, Key=to_item({"pk": f"DEC#{decision_id}", "sk": "ORDER"}),
                                ConsistentRead=True)
        return from_item(resp["Item"]) if "Item" in resp else None

    def order_item(self, decision_id: str, order: Order, status: str) -> Item:
        return {"pk": f"DEC#{decision_id}", "sk": "ORDER", "status": status, "client_order_id": order.client_order_id,
                "symbol": order.symbol, "doc": order.model_dump_json()}

    def fill_item(self, decision_id: str, fill: Fill, seq: int = 0) -> Item:
        return {"pk": f"DEC#{decision_id}", "sk": f"FILL#{seq}", "gsi1pk": f"FILLS#{self.account}",
                "gsi1sk": f"{fill.filled_at.isoformat()}#{decision_id}#{seq}", "doc": fill.model_dump_json()}

    def outcome_item(self, outcome: TradeOutcome) -> Item:
        return {"pk": f"DEC#{outcome.decision_id}", "sk": "OUTCOME", "gsi1pk": f"OUTCOMES#{self.account}",
                "gsi1sk": f"{outcome.exit_ts.isoformat()}#{outcome.symbol}", "doc": outcome.model_dump_json()}

    def fills(self) -> list[Fill]:
        rows = self._query_all(IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
                               ExpressionAttributeValues=to_item({":p": f"FILLS#{self.account}"}))
        return [Fill.model_validate_json(r["doc"]) for r in rows]

    def outcomes(self) -> list[TradeOutcome]:
        rows = self._query_all(IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
                               ExpressionAttributeValues=to_item({":p": f"OUTCOMES#{self.account}"}))
        return [TradeOutcome.model_validate_json(r["doc"]) for r in rows]

    def put_shadow(self, decision_id: str, model_id: str, payload: dict[str, Any]) -> None:
        self.db.put_item(TableName=self.table, Item=to_item({"pk": f"DEC#{decision_id}", "sk": f"SHADOW#{model_id}",
                                                             "gsi1pk": f"SHADOW#{model_id}", "gsi1sk": decision_id,
                                                             "doc": json.dumps(payload)}))

    def shadow_predictions(self, model_id: str) -> list[Item]:
        rows = self._query_all(IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
                               ExpressionAttributeValues=to_item({":p": f"SHADOW#{model_id}"}))
        return [json.loads(r["doc"]) for r in rows]

    def transact(self, items: list[Item]) -> None:
        """All or nothing; a failed condition raises ConditionFailed with each item's reason code."""
        try:
            self.db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                raise ConditionFailed(reasons) from None
            raise

    def put(self, item: Item, condition: str | None = None) -> Item:
        op: Item = {"TableName": self.table, "Item": to_item(item)}
        if condition:
            op["ConditionExpression"] = condition
        return {"Put": op}

    def delete_position(self, symbol: str) -> Item:
        return {"Delete": {"TableName": self.table, "Key": self._pos_key(symbol),
                           "ConditionExpression": "attribute_exists(pk)"}}

    def position_grows(self, pos: Position, add_fee: float) -> Item:
        """A transact item for more of a held position (a later fill): doc and qty replaced, fee added, and the
        bar already checked by outcomes kept."""
        return {"Update": {"TableName": self.table, "Key": self._pos_key(pos.symbol),
                           "UpdateExpression": "SET doc = :d, qty = :q ADD entry_fee :f",
                           "ConditionExpression": "attribute_exists(pk)",
                           "ExpressionAttributeValues": to_item({":d": pos.model_dump_json(), ":q": pos.qty,
                                                                 ":f": add_fee})}}

    def account_update(self, expr: str, values: dict[str, Any], condition: str | None = None,
                       names: dict[str, str] | None = None) -> Item:
        op: Item = {"TableName": self.table, "Key": to_item({"pk": self.acct_pk, "sk": "STATE"}),
                    "UpdateExpression": expr, "ExpressionAttributeValues": to_item(values)}
        if condition:
            op["ConditionExpression"] = condition
        if names:
            op["ExpressionAttributeNames"] = names
        return {"Update": op}

    def _query_all(self, **kw: Any) -> list[Item]:
        out: list[Item] = []
        start: Item | None = None
        while True:
            if start:
                kw["ExclusiveStartKey"] = start
            resp = self.db.query(TableName=self.table, **kw)
            out.extend(from_item(i) for i in resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if not start:
                return out
