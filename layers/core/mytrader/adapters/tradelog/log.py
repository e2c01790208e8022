"""The trade log: one table (single-table design), reached only through intent methods.

Access patterns (also in the README):
  decision by id ............. pk=DEC#<id>            sk=DECISION
  decisions of a symbol ...... gsi1pk=SYM#<symbol>    gsi1sk=<bar_ts>
  decisions by status ........ gsi2pk=STATUS#<status> gsi2sk=<bar_ts>#<id>   (PENDING re-send, terminal counts)
  order / fills / outcome .... pk=DEC#<id>            sk=ORDER | FILL#<n> | OUTCOME
  open orders ................ gsi2pk=ORDERS#OPEN     gsi2sk=<id>
  fills over time ............ gsi1pk=FILLS#<acct>    gsi1sk=<filled_at>#<id>
  outcomes over time ......... gsi1pk=OUTCOMES#<acct> gsi1sk=<exit_ts>#<symbol>
  account state .............. pk=ACCOUNT#<acct>      sk=STATE   (ledger fields, kill switch, version)
  positions, symbol claims ... pk=ACCOUNT#<acct>      sk=POS#<symbol> | CLAIM#<symbol>
  advisor memo per symbol .... pk=SYMBOL#<symbol>     sk=MEMO
  shadow predictions ......... pk=DEC#<id>            sk=SHADOW#<model_id>
  orphan messages ............ pk=ORPHAN#<id>         sk=<message id>
  paper broker's book ........ pk=BROKER#paper        sk=ORDER#<broker id>, gsi1pk=COID#<client order id>
  broker fee activities ...... pk=ACCOUNT#<acct>      sk=FEE#<activity id>   (each booked to cash once)
  advisor token budget ....... pk=BUDGET#tokens       sk=DAY#<day>

Every write of the account state is the ledger's function applied to the state as read, written under the
condition that its `version` is still the one read (optimistic concurrency); a lost race re-reads and retries.
An entry's reservation additionally restates each hard limit as a condition on the stored state
(`RESERVE_CONDITIONS`) and claims the symbol, so a limit holds even against a caller whose own check was wrong.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mytrader import ledger
from mytrader.adapters.tradelog.store import Cond, DynamoStore, MemoryStore, Op, Row, TransactionCancelled, Update
from mytrader.config import RiskLimits
from mytrader.models import DecisionStatus, Fill, Order, Position, QueryMemo, TradeDecision, TradeOutcome
from mytrader.risk import AccountState

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import DynamoDBClient
    from mytrader.broker import FeeActivity

DEAD_LETTER_BODY_MAX = 60_000  # characters of a dead letter archived (an item holds 400 KB; a body, up to 1 MiB)
STATE_ATTEMPTS = 8  # optimistic writes of the account state lost to concurrent writers before giving up


class StateConflict(Exception):
    """The account state changed between read and write more often than STATE_ATTEMPTS: retry later."""


class AlreadyReserved(Exception):
    """This decision's order record exists: another delivery of it is (or was) executing."""


class SymbolBusy(Exception):
    """The symbol is claimed by a position or a working order."""


class NotPending(Exception):
    """The decision is no longer PENDING (another run finished it)."""


@dataclass(frozen=True)
class ReserveParams:
    """What the reservation's conditions compare the stored account state with."""

    expected: AccountState  # the state the verdict was computed from
    limits: RiskLimits
    now: datetime
    notional: float  # qty x quote of the order

    @property
    def day(self) -> str:
        return ledger.day_of(self.now)


# The reservation's conditions on the stored account state, each one a hard limit (or the optimistic version).
# Removing any one of them lets some interleaving break an invariant: tests/unit/test_tradelog_contract.py
# proves it for each.
RESERVE_CONDITIONS: dict[str, Callable[[ReserveParams], Cond]] = {
    "version": lambda p: Cond.cmp("version", "eq", p.expected.version),
    "kill_switch_off": lambda p: Cond.cmp("kill_switch", "eq", False),
    "broker_clear": lambda p: Cond.any_of(Cond.missing("broker_block"), Cond.cmp("broker_block", "eq", "")),
    "day_not_tripped": lambda p: Cond.cmp("tripped_day", "ne", p.day),
    "daily_loss": lambda p: Cond.cmp("realized_today", "gt", ledger.daily_loss_floor(p.limits, p.expected)),
    "open_slots": lambda p: Cond.cmp("open_positions", "lt", p.limits.max_open_positions),
    "minute_window": lambda p: Cond.any_of(Cond.cmp("orders_minute", "ne", ledger.minute_of(p.now)),
                                           Cond.cmp("orders_this_minute", "lt", p.limits.max_orders_per_minute)),
    "no_cooldown": lambda p: Cond.any_of(Cond.cmp("cooldown_until", "eq", ""),
                                         Cond.cmp("cooldown_until", "le", p.now.isoformat())),
    "sizing_equity": lambda p: Cond.cmp("book_equity", "ge",
                                        p.notional * 100 / p.limits.max_position_pct - 1e-6),
    "cash": lambda p: Cond.cmp("cash", "ge", p.notional),
}


def state_row(state: AccountState) -> dict[str, Any]:
    """The ledger fields of the account state item, as stored."""
    return {"cash": state.cash, "book_equity": state.book_equity, "open_positions": state.open_positions,
            "realized_total": state.realized_total, "day": state.day, "day_start_equity": state.day_start_equity,
            "realized_today": state.realized_today, "orders_minute": state.orders_minute,
            "orders_this_minute": state.orders_this_minute, "consecutive_stopouts": state.consecutive_stopouts,
            "cooldown_until": state.cooldown_until.isoformat() if state.cooldown_until else "",
            "tripped_day": state.tripped_day, "kill_switch": state.kill_switch, "broker_block": state.broker_block,
            "buying_power": state.buying_power}


def parse_state(row: Row) -> AccountState:
    """The stored state. A kill switch that is missing or not a boolean reads as ON, a broker block that is not
    text reads as blocked: both fail closed."""
    kill = row.get("kill_switch")
    block = row.get("broker_block", "")
    power = row.get("buying_power")
    return AccountState(cash=row["cash"], book_equity=row["book_equity"], open_positions=int(row["open_positions"]),
                        day=row.get("day", ""), day_start_equity=row.get("day_start_equity", 0.0),
                        realized_today=row.get("realized_today", 0.0), realized_total=row.get("realized_total", 0.0),
                        orders_minute=row.get("orders_minute", ""),
                        orders_this_minute=int(row.get("orders_this_minute", 0)),
                        consecutive_stopouts=int(row.get("consecutive_stopouts", 0)),
                        cooldown_until=row.get("cooldown_until") or None, tripped_day=row.get("tripped_day", ""),
                        kill_switch=kill is not False, version=int(row.get("version", 0)),
                        broker_block=block if isinstance(block, str) else "broker block unreadable",
                        buying_power=float(power) if isinstance(power, int | float) else None)


class TradeLog:
    """`TradeLog(store)`, or `TradeLog(dynamodb_client, table_name)` for the DynamoDB table."""

    def __init__(self, store: DynamoStore | MemoryStore | DynamoDBClient, table: str | None = None,
                 account: str = "main"):
        if isinstance(store, DynamoStore | MemoryStore):
            self.store: DynamoStore | MemoryStore = store
        elif table is None:
            raise TypeError("TradeLog(client, table): a DynamoDB client needs its table name")
        else:
            self.store = DynamoStore(store, table)
        self.account = account
        self.acct_pk = f"ACCOUNT#{account}"

    @classmethod
    def in_memory(cls, account: str = "main") -> TradeLog:
        """The in-memory twin with the same contract (unit tests, property tests)."""
        return cls(MemoryStore(), account)

    # -- keys ----------------------------------------------------------------------------------------
    @property
    def _state_key(self) -> tuple[str, str]:
        return (self.acct_pk, "STATE")

    def _pos_key(self, symbol: str) -> tuple[str, str]:
        return (self.acct_pk, f"POS#{symbol}")

    def _claim_key(self, symbol: str) -> tuple[str, str]:
        return (self.acct_pk, f"CLAIM#{symbol}")

    @staticmethod
    def _dec_key(decision_id: str) -> tuple[str, str]:
        return (f"DEC#{decision_id}", "DECISION")

    # -- decisions -----------------------------------------------------------------------------------
    @staticmethod
    def decision_row(d: TradeDecision) -> Row:
        return {"pk": f"DEC#{d.decision_id}", "sk": "DECISION", "gsi1pk": f"SYM#{d.symbol}",
                "gsi1sk": d.bar_ts.isoformat(), "gsi2pk": f"STATUS#{d.status.value}",
                "gsi2sk": f"{d.bar_ts.isoformat()}#{d.decision_id}", "symbol": d.symbol, "status": d.status.value,
                "status_reason": d.status_reason, "action": d.action.value, "bar_ts": d.bar_ts.isoformat(),
                "decided_at": d.decided_at.isoformat(), "model_id": d.llm.model_id if d.llm else None,
                "prompt_hash": d.llm.prompt_hash if d.llm else None, "cost_usd": d.llm.cost_usd if d.llm else 0.0,
                "doc": d.model_dump_json()}

    def put_decision(self, d: TradeDecision) -> bool:
        """Conditional put; False when a record with this decision_id already exists."""
        return self.store.write(Op.put(self.decision_row(d), Cond.missing()))

    def put_skip(self, decision_id: str, symbol: str, bar_ts: str, reason: str, decided_at: str) -> bool:
        """A cycle that produced no decision (bad data, calendar) still leaves one terminal record."""
        row = {"pk": f"DEC#{decision_id}", "sk": "DECISION", "gsi1pk": f"SYM#{symbol}", "gsi1sk": bar_ts,
               "gsi2pk": "STATUS#SKIPPED", "gsi2sk": f"{bar_ts}#{decision_id}", "symbol": symbol, "status": "SKIPPED",
               "status_reason": reason, "action": "HOLD", "bar_ts": bar_ts, "decided_at": decided_at}
        return self.store.write(Op.put(row, Cond.missing()))

    def get_decision_row(self, decision_id: str) -> Row | None:
        return self.store.get(self._dec_key(decision_id), consistent=True)

    def get_decision(self, decision_id: str) -> TradeDecision | None:
        row = self.get_decision_row(decision_id)
        if row is None or "doc" not in row:
            return None
        d = TradeDecision.model_validate_json(row["doc"])
        return d.model_copy(update={"status": DecisionStatus(row["status"]),
                                    "status_reason": row.get("status_reason", "")})

    def _status_op(self, decision_id: str, status: DecisionStatus, reason: str,
                   from_status: str | tuple[str, ...] | None = "PENDING") -> Op:
        """Moves a decision to `status` from `from_status` (one state, any of several, or None: whatever it was —
        for facts such as a fill the broker reports, which stand whatever a concurrent run recorded)."""
        update = Update(set={"status": status.value, "gsi2pk": f"STATUS#{status.value}", "status_reason": reason[:500]})
        if from_status is None:
            return Op.upd(self._dec_key(decision_id), update, Cond.exists())
        froms = (from_status,) if isinstance(from_status, str) else from_status
        cond = Cond.any_of(*(Cond.cmp("status", "eq", f) for f in froms)) if len(froms) > 1 \
            else Cond.cmp("status", "eq", froms[0])
        return Op.upd(self._dec_key(decision_id), update, cond)

    def mark_terminal(self, decision_id: str, status: DecisionStatus, reason: str,
                      from_status: str = "PENDING") -> bool:
        """Moves a decision to `status`, only from `from_status`; False if it was not there."""
        return self.store.write(self._status_op(decision_id, status, reason, from_status))

    set_status = mark_terminal  # the name the use cases grew up with

    def decisions_by_status(self, status: str, before: str | None = None) -> list[Row]:
        return self.store.query_index("gsi2", f"STATUS#{status}", sk_below=before)

    def count_by_status(self) -> dict[str, int]:
        return {s.value: len(self.decisions_by_status(s.value)) for s in DecisionStatus}

    def decisions_of(self, symbol: str) -> list[Row]:
        return self.store.query_index("gsi1", f"SYM#{symbol}")

    def put_orphan(self, decision_id: str, message_id: str, reason: str, at: datetime, body: str | None = None) -> None:
        """A message whose decision the decision cycle never wrote: kept for inspection, never executed. `body`: the
        message itself, archived (a dead letter the DLQ sweep deleted), cut at DEAD_LETTER_BODY_MAX characters."""
        row: Row = {"pk": f"ORPHAN#{decision_id or '-'}", "sk": message_id or "-", "reason": reason[:500],
                    "gsi1pk": f"ORPHANS#{self.account}", "gsi1sk": at.isoformat()}
        if body is not None:
            row.update(body=body[:DEAD_LETTER_BODY_MAX], body_chars=len(body))
        self.store.write(Op.put(row))

    def mark_dead_lettered(self, decision_id: str, message_id: str, body: str, at: datetime) -> bool:
        """PENDING -> DEAD_LETTERED, the dead letter's body archived on the record (what `ops redrive-dlq` re-sends
        once it has set the decision back to PENDING). False when the decision was not PENDING."""
        op = self._status_op(decision_id, DecisionStatus.DEAD_LETTERED,
                             "message reached the DLQ after the configured receives")
        assert op.update is not None
        archive = Update(set={**op.update.set, "dead_letter_body": body[:DEAD_LETTER_BODY_MAX],
                              "dead_letter_message_id": message_id, "dead_lettered_at": at.isoformat()})
        return self.store.write(Op.upd(op.key, archive, *op.conds))

    def orphans(self) -> list[Row]:
        return self.store.query_index("gsi1", f"ORPHANS#{self.account}")

    # -- the account ---------------------------------------------------------------------------------
    def ensure_account(self, initial_equity: float) -> None:
        state = ledger.new_account(initial_equity)
        self.store.write(Op.put({"pk": self.acct_pk, "sk": "STATE", **state_row(state), "version": 0},
                                Cond.missing()))

    def account_state(self) -> AccountState:
        row = self.store.get(self._state_key, consistent=True)
        if row is None:
            raise LookupError("account not initialised: run the stack set-up")
        return parse_state(row)

    def _write_state(self, old: AccountState, new: AccountState) -> Op:
        return Op.upd(self._state_key, Update(set={**state_row(new), "version": old.version + 1}),
                      Cond.cmp("version", "eq", old.version))

    def _with_state(self, change: Callable[[AccountState], tuple[AccountState, list[Op]] | None]) -> AccountState:
        """Read the state, let `change` compute the new state and the other items of the transaction, write all
        under the version read; a lost race re-reads. `change` returning None means nothing to write."""
        for _ in range(STATE_ATTEMPTS):
            old = self.account_state()
            planned = change(old)
            if planned is None:
                return old
            new, ops = planned
            try:
                self.store.transact([self._write_state(old, new), *ops])
                return new.model_copy(update={"version": old.version + 1})
            except TransactionCancelled as exc:
                if any(r == "ConditionalCheckFailed" for r in exc.reasons[1:]):
                    raise  # another item's own condition: the caller's business (a duplicate, a position gone)
                if exc.reasons[0] == "ConditionalCheckFailed" or exc.conflict:
                    continue  # the state moved (or a concurrent transaction held an item): re-read and retry
                raise
        raise StateConflict(f"account state changed {STATE_ATTEMPTS} times while writing")

    def _with_state_once(self, change: Callable[[AccountState], tuple[AccountState, list[Op]] | None],
                         what: str) -> bool:
        """_with_state for a change whose own items are conditioned (a duplicate, a record moved on): False when one
        of those conditions failed (nothing was written); StateConflict when conflicts kept cancelling it."""
        try:
            self._with_state(change)
            return True
        except TransactionCancelled as exc:
            if exc.conflict:
                raise StateConflict(f"{what} kept meeting conflicts") from None
            return False

    def begin_day(self, day: str) -> AccountState:
        """The first event of a later day restarts the day's realised P&L (idempotent per day)."""
        return self._with_state(lambda s: (ledger.roll_day(s, day), []) if s.day < day else None)

    def set_kill_switch(self, on: bool) -> AccountState:
        """`ops halt` / `ops resume`: entries stop (or resume) at the next reservation; exits always run."""
        return self._with_state(lambda s: (s.model_copy(update={"kill_switch": on}), [])
                                if s.kill_switch != on else None)

    def set_broker_account(self, block: str | None, buying_power: float | None) -> AccountState:
        """What outcomes read from the broker's account: why it takes no entries now (None: it may trade; a
        block stops every entry's reservation until a later read clears it) and its buying power (sizing)."""
        new_block = block or ""
        return self._with_state(lambda s: (s.model_copy(update={"broker_block": new_block,
                                                                "buying_power": buying_power}), [])
                                if (s.broker_block, s.buying_power) != (new_block, buying_power) else None)

    def block_entries(self, reason: str) -> AccountState:
        """The broker cannot be used for entries (its keys are refused): blocked until outcomes reads the
        account again."""
        return self._with_state(lambda s: (s.model_copy(update={"broker_block": reason}), [])
                                if s.broker_block != reason else None)

    def trip_daily_loss(self, day: str) -> AccountState:
        return self._with_state(lambda s: (ledger.trip_daily_loss(s), [])
                                if s.day == day and s.tripped_day != day else None)

    # -- entries -------------------------------------------------------------------------------------
    def symbol_claimed(self, symbol: str) -> bool:
        return self.symbol_claim_owner(symbol) is not None

    def symbol_claim_owner(self, symbol: str) -> str | None:
        """The decision holding the symbol (its entry reserved it), or None when the symbol is free."""
        row = self.store.get(self._claim_key(symbol), consistent=True)
        return str(row.get("owner", "")) if row is not None else None

    def reserve_entry(self, decision_id: str, order: Order, quote: float, params: ReserveParams) -> AccountState:
        """Takes a position slot and the symbol for this decision's order, in one transaction with the order
        record, conditioned on every hard limit (RESERVE_CONDITIONS) and on the decision still being PENDING.
        Raises AlreadyReserved, SymbolBusy, NotPending, or StateConflict (re-read, re-check, retry)."""
        new = ledger.reserve(params.expected, params.now)
        order_row = {"pk": f"DEC#{decision_id}", "sk": "ORDER", "status": "submitting",
                     "client_order_id": order.client_order_id, "symbol": order.symbol, "doc": order.model_dump_json(),
                     "qty": order.qty, "quote": quote}
        state = Op.upd(self._state_key, Update(set={**state_row(new), "version": params.expected.version + 1}),
                       *(make(params) for make in RESERVE_CONDITIONS.values()))
        ops = [Op.put(order_row, Cond.missing()),
               Op.put({"pk": self.acct_pk, "sk": f"CLAIM#{order.symbol}", "owner": decision_id}, Cond.missing()),
               state, Op.check(self._dec_key(decision_id), Cond.cmp("status", "eq", "PENDING"))]
        try:
            self.store.transact(ops)
        except TransactionCancelled as exc:
            failed = [i for i, r in enumerate(exc.reasons) if r == "ConditionalCheckFailed"]
            if 0 in failed:
                raise AlreadyReserved(decision_id) from None
            if 3 in failed:
                raise NotPending(decision_id) from None
            if 1 in failed:
                raise SymbolBusy(order.symbol) from None
            raise StateConflict("account state changed since it was read") from None
        return new.model_copy(update={"version": params.expected.version + 1})

    def release_entry(self, decision_id: str, symbol: str, order_status: str, reason: str) -> None:
        """An entry that will never fill (the broker refused it): its slot and the symbol are given back, the
        order record ends with the broker's status and the decision is REJECTED with the reason."""
        def change(s: AccountState) -> tuple[AccountState, list[Op]]:
            return ledger.release(s), [
                Op.delete(self._claim_key(symbol)),
                Op.upd((f"DEC#{decision_id}", "ORDER"),
                       Update(set={"status": order_status}, remove=("gsi2pk", "gsi2sk")), Cond.exists()),
                self._status_op(decision_id, DecisionStatus.REJECTED, reason)]
        self._with_state(change)

    def withdraw_entry(self, decision_id: str, symbol: str, block: str) -> bool:
        """An entry the broker never saw (its keys were refused): the slot, the symbol and the order record are given
        back, the decision stays PENDING for its redelivery, and entries are blocked with `block` in the same
        transaction. False (only the block is set) when the order record has moved past `submitting`."""
        def change(s: AccountState) -> tuple[AccountState, list[Op]]:
            return ledger.release(s).model_copy(update={"broker_block": block}), [
                Op.delete(self._claim_key(symbol)),
                Op.delete((f"DEC#{decision_id}", "ORDER"), Cond.cmp("status", "eq", "submitting"))]
        if self._with_state_once(change, f"withdrawing {decision_id}"):
            return True
        self.block_entries(block)
        return False

    def order(self, decision_id: str) -> Row | None:
        return self.store.get((f"DEC#{decision_id}", "ORDER"), consistent=True)

    def record_entry_accepted(self, decision: TradeDecision, order: Order, quote: float) -> None:
        """The broker accepted the order and nothing has filled yet: it is working, outcomes reconciles it."""
        row = {"pk": f"DEC#{decision.decision_id}", "sk": "ORDER", "status": "accepted",
               "client_order_id": order.client_order_id, "symbol": order.symbol, "doc": order.model_dump_json(),
               "qty": order.qty, "quote": quote, "gsi2pk": "ORDERS#OPEN", "gsi2sk": decision.decision_id,
               "filled_qty": 0.0, "filled_notional": 0.0, "filled_fee": 0.0}
        self.store.transact([Op.put(row), self._status_op(decision.decision_id, DecisionStatus.EXECUTED,
                                                          "order accepted, awaiting fill",
                                                          from_status=("PENDING", "DEAD_LETTERED"))])

    def record_entry_fill(self, decision: TradeDecision, order: Order, fill: Fill, position: Position,
                          quote: float, order_status: str) -> bool:
        """The entry's fill: the position, the cash (ledger), the fill and the order's progress, and the decision
        EXECUTED, in one transaction. False if this fill was recorded already (a redelivery)."""
        working = order_status != "filled"
        order_row = {"pk": f"DEC#{decision.decision_id}", "sk": "ORDER", "status": order_status,
                     "client_order_id": order.client_order_id, "symbol": order.symbol, "doc": order.model_dump_json(),
                     "qty": order.qty, "quote": quote, "filled_qty": fill.qty, "filled_notional": fill.qty * fill.price,
                     "filled_fee": fill.fee,
                     **({"gsi2pk": "ORDERS#OPEN", "gsi2sk": decision.decision_id} if working else {})}

        def change(s: AccountState) -> tuple[AccountState, list[Op]]:
            return ledger.book_entry_fill(s, fill.side, fill.qty, fill.price, fill.fee), [
                Op.put(self._fill_row(decision.decision_id, fill), Cond.missing()),
                Op.put({"pk": self.acct_pk, "sk": f"POS#{order.symbol}", "doc": position.model_dump_json(),
                        "entry_fee": fill.fee, "qty": position.qty}, Cond.missing()),
                Op.put(order_row),
                # the broker filled it: EXECUTED whatever a concurrent run marked meanwhile (a DLQ sweep, a refusal)
                self._status_op(decision.decision_id, DecisionStatus.EXECUTED, f"filled {fill.qty} @ {fill.price}",
                                from_status=None)]
        # False: the fill (or the position) is recorded already, a redelivery
        return self._with_state_once(change, f"entry fill of {decision.decision_id}")

    # -- positions -----------------------------------------------------------------------------------
    def position_row(self, symbol: str) -> Row | None:
        """The position's item: doc, entry_fee, checked_bar, and what earlier close orders filled, if any."""
        return self.store.get(self._pos_key(symbol), consistent=True)

    def position(self, symbol: str) -> Position | None:
        row = self.position_row(symbol)
        return Position.model_validate_json(row["doc"]) if row else None

    def position_rows(self) -> list[Row]:
        """Every open position's item (doc, entry_fee, checked_bar) in one query."""
        return self.store.query(self.acct_pk, "POS#", consistent=True)

    def positions(self) -> list[Position]:
        return [Position.model_validate_json(r["doc"]) for r in self.position_rows()]

    def position_entry_fee(self, symbol: str) -> float:
        row = self.position_row(symbol)
        return float(row.get("entry_fee", 0.0)) if row else 0.0

    def position_checked(self, symbol: str) -> int | None:
        row = self.position_row(symbol)
        value = row.get("checked_bar") if row else None
        return int(value) if value is not None else None

    def bump_bars_held(self, pos: Position, bar_ts: int) -> None:
        """One more bar held, remembering which bar was checked so a re-run never counts it twice."""
        upd = pos.model_copy(update={"bars_held": pos.bars_held + 1})
        self.store.write(Op.upd(self._pos_key(pos.symbol), Update(set={"doc": upd.model_dump_json(),
                                                                       "checked_bar": bar_ts}), Cond.exists()))

    def open_order_rows(self) -> list[Row]:
        """Entry orders the broker has not finished (accepted or partly filled): outcomes reconciles them."""
        return self.store.query_index("gsi2", "ORDERS#OPEN")

    # -- closes --------------------------------------------------------------------------------------
    def mark_closing(self, symbol: str, base_coid: str, reason: str, owner: str, now: datetime) -> bool:
        """Claims the position for one close before its first order goes out: every later close of it (a stop
        seen by outcomes while a SELL decision's order works, a flatten) continues that order instead of sending
        a second one. The claim holds the lease to submit that first order. False if the position is gone or
        another close claimed it first."""
        return self.store.write(Op.upd(self._pos_key(symbol),
                                       Update(set={"closing_base": base_coid, "closing_reason": reason,
                                                   "closing_owner": owner, "submit_coid": base_coid,
                                                   "submit_at": now.isoformat()}),
                                       Cond.exists(), Cond.missing("closing_base")))

    def take_close_lease(self, symbol: str, coid: str, now: datetime, stale_before: datetime) -> bool:
        """The lease to submit close order `coid` of a position already claimed for a close: one run at a time
        sends it. Granted when nobody holds it for this order, or when the holder's lease is older than
        `stale_before` (that run died before the broker saw the order; the broker is asked first, by id)."""
        return self.store.write(Op.upd(
            self._pos_key(symbol), Update(set={"submit_coid": coid, "submit_at": now.isoformat()}), Cond.exists(),
            Cond.any_of(Cond.missing("submit_coid"), Cond.cmp("submit_coid", "ne", coid),
                        Cond.cmp("submit_at", "lt", stale_before.isoformat()))))

    def close_attempt_ended(self, symbol: str, attempt: int, fill: Fill | None, owner: str) -> bool:
        """A close order the broker ended short (canceled, expired, rejected): keep what it filled on the position
        and move to the next attempt, which will send a new order for the rest. Conditioned on the attempt, so a
        concurrent close cannot record the same order twice (False then)."""
        qty, notional, fee = (fill.qty, fill.qty * fill.price, fill.fee) if fill else (0.0, 0.0, 0.0)
        ops = [Op.upd(self._pos_key(symbol), Update(set={"close_attempt": attempt + 1},
                                                    add={"closing_qty": qty, "closing_notional": notional,
                                                         "closing_fee": fee}),
                      Cond.exists(),
                      Cond.any_of(Cond.missing("close_attempt"), Cond.cmp("close_attempt", "eq", attempt)))]
        if fill:
            ops.append(Op.put(self._fill_row(owner, fill, seq=10 + attempt)))
        try:
            self.store.transact(ops)
            return True
        except TransactionCancelled as exc:
            if exc.conflict:
                raise
            return False

    def record_close_working(self, symbol: str, coid: str, status: str, decision_id: str | None) -> bool:
        """The close order `coid` is at the broker and not (fully) filled: it is working, recorded on the position
        (outcomes reconciles it) and the closing decision, if any, is EXECUTED now. False if the position is
        gone."""
        kept = self.store.write(Op.upd(self._pos_key(symbol), Update(set={"closing_status": status,
                                                                          "closing_coid": coid}), Cond.exists()))
        if decision_id is not None:
            self.store.write(self._status_op(decision_id, DecisionStatus.EXECUTED,
                                             f"close order {coid} {status}, awaiting fill",
                                             from_status=("PENDING", "DEAD_LETTERED")))
        return kept

    def abandon_close(self, symbol: str, base_coid: str) -> bool:
        """The broker refused close order `base_coid` for good with nothing of the close filled: the position is
        free for the next close, whose order gets a new id. False if another close moved on meanwhile."""
        return self.store.write(Op.upd(
            self._pos_key(symbol),
            Update(set={"closing_base": None, "closing_reason": None, "closing_owner": None, "submit_coid": None,
                        "submit_at": None, "closing_status": None, "closing_coid": None}, add={"close_attempt": 1}),
            Cond.exists(), Cond.cmp("closing_base", "eq", base_coid),
            Cond.any_of(Cond.missing("closing_qty"), Cond.cmp("closing_qty", "eq", 0))))

    def record_close(self, pos: Position, fill: Fill, *, exit_price: float, exit_fee: float, entry_fee: float,
                     reason: str, at: datetime, owner: str, limits: RiskLimits, fill_seq: int,
                     decision_id: str | None = None) -> ledger.Close | None:
        """The whole position closed: the position and the symbol's claim removed, the fill and the outcome kept,
        the account booked by the ledger (cash, equity, realised P&L, slot, stop-out streak, cooldown) and the
        closing decision EXECUTED, in one transaction. None if the position was already gone (a duplicate)."""
        result: list[ledger.Close] = []

        def change(s: AccountState) -> tuple[AccountState, list[Op]]:
            done = ledger.book_close(limits, s, pos, exit_price=exit_price, exit_fee=exit_fee, entry_fee=entry_fee,
                                     reason=reason, at=at)
            result[:] = [done]
            ops = [Op.delete(self._pos_key(pos.symbol), Cond.exists()), Op.delete(self._claim_key(pos.symbol)),
                   Op.put(self._fill_row(owner, fill, seq=fill_seq)), Op.put(self._outcome_row(done.outcome))]
            if decision_id is not None:
                ops.append(self._status_op(decision_id, DecisionStatus.EXECUTED, f"closed: {reason}"))
            return done.account, ops
        try:
            self._with_state(change)
        except TransactionCancelled as exc:
            if exc.reasons[1] == "ConditionalCheckFailed":  # the position is already gone: a duplicate close
                return None
            raise
        return result[0]

    # -- reconciliation of working entry orders ------------------------------------------------------
    def record_late_fill(self, decision_id: str, order_row: Row, fill: Fill | None, position: Position | None,
                         *, opens: bool, take_slot: bool, done: bool, nothing_filled: bool, status: str) -> None:
        """What the broker filled of a working entry order since the last look, and whether it is done: the fill
        (its own quantity, price and fee), the position grown or opened, the cash (ledger), the order's progress;
        an order done with nothing filled gives its slot and symbol back and its decision ends REJECTED."""
        def change(s: AccountState) -> tuple[AccountState, list[Op]]:
            new, ops = s, []
            if fill is not None and position is not None:
                new = ledger.book_entry_fill(new, fill.side, fill.qty, fill.price, fill.fee)
                seq = int(float(order_row.get("filled_qty", 0.0)) * 1000) + 2
                ops.append(Op.put(self._fill_row(decision_id, fill, seq=seq)))
                pos_doc = {"doc": position.model_dump_json(), "qty": position.qty}
                if opens:
                    ops += [Op.put({"pk": self.acct_pk, "sk": f"POS#{position.symbol}", **pos_doc,
                                    "entry_fee": fill.fee}, Cond.missing()),
                            Op.put({"pk": self.acct_pk, "sk": f"CLAIM#{position.symbol}", "owner": decision_id})]
                else:
                    ops.append(Op.upd(self._pos_key(position.symbol), Update(set=pos_doc, add={"entry_fee": fill.fee}),
                                      Cond.exists()))
                if take_slot:
                    new = new.model_copy(update={"open_positions": new.open_positions + 1})
            row = {k: v for k, v in order_row.items() if not (done and k in ("gsi2pk", "gsi2sk"))}
            ops.append(Op.put({**row, "status": status}))
            if done and nothing_filled:
                new = ledger.release(new)
                ops += [Op.delete(self._claim_key(str(order_row["symbol"]))),
                        self._status_op(decision_id, DecisionStatus.REJECTED,
                                        f"broker: order {status}, nothing filled", from_status="EXECUTED")]
            return new, ops
        self._with_state(change)

    # -- fills, outcomes, memos, shadows -------------------------------------------------------------
    def _fill_row(self, decision_id: str, fill: Fill, seq: int = 0) -> Row:
        return {"pk": f"DEC#{decision_id}", "sk": f"FILL#{seq}", "gsi1pk": f"FILLS#{self.account}",
                "gsi1sk": f"{fill.filled_at.isoformat()}#{decision_id}#{seq}", "doc": fill.model_dump_json()}

    def _outcome_row(self, outcome: TradeOutcome) -> Row:
        return {"pk": f"DEC#{outcome.decision_id}", "sk": "OUTCOME", "gsi1pk": f"OUTCOMES#{self.account}",
                "gsi1sk": f"{outcome.exit_ts.isoformat()}#{outcome.symbol}", "doc": outcome.model_dump_json()}

    def fills(self) -> list[Fill]:
        return [Fill.model_validate_json(r["doc"]) for r in self.store.query_index("gsi1", f"FILLS#{self.account}")]

    def outcomes(self) -> list[TradeOutcome]:
        rows = self.store.query_index("gsi1", f"OUTCOMES#{self.account}")
        return [TradeOutcome.model_validate_json(r["doc"]) for r in rows]

    def memo(self, symbol: str) -> QueryMemo | None:
        r = self.store.get((f"SYMBOL#{symbol}", "MEMO"))
        return QueryMemo(int(r["bar_index"]), r["rsi"], r["sentiment"], r["regime"]) if r else None

    def memos(self, symbols: list[str]) -> dict[str, QueryMemo]:
        rows = self.store.get_many([(f"SYMBOL#{s}", "MEMO") for s in symbols])
        return {r["pk"][7:]: QueryMemo(int(r["bar_index"]), r["rsi"], r["sentiment"], r["regime"]) for r in rows}

    def put_memo(self, symbol: str, memo: QueryMemo) -> None:
        self.store.write(Op.put({"pk": f"SYMBOL#{symbol}", "sk": "MEMO", "bar_index": memo.bar_index,
                                 "rsi": memo.rsi, "sentiment": memo.sentiment, "regime": memo.regime}))

    def put_shadow(self, decision_id: str, model_id: str, payload: dict[str, Any]) -> None:
        self.store.write(Op.put({"pk": f"DEC#{decision_id}", "sk": f"SHADOW#{model_id}", "gsi1pk": f"SHADOW#{model_id}",
                                 "gsi1sk": decision_id, "doc": json.dumps(payload)}))

    def shadow_predictions(self, model_id: str) -> list[Row]:
        return [json.loads(r["doc"]) for r in self.store.query_index("gsi1", f"SHADOW#{model_id}")]

    # -- broker fee activities -------------------------------------------------------------------------
    def book_fee(self, activity: FeeActivity) -> bool:
        """A FEE activity paid from cash (the ledger's book_fee), once per activity id. False when it was booked
        already."""
        row = {"pk": self.acct_pk, "sk": f"FEE#{activity.activity_id}", "amount": activity.amount,
               "at": activity.at.isoformat(), "symbol": activity.symbol, "description": activity.description[:200]}
        return self._with_state_once(lambda s: (ledger.book_fee(s, activity.amount), [Op.put(row, Cond.missing())]),
                                     f"fee {activity.activity_id}")

    def fees_booked(self) -> list[Row]:
        return self.store.query(self.acct_pk, "FEE#", consistent=True)

    # -- the paper broker's book and the advisor's token budget ---------------------------------------
    def paper_record(self, broker_order_id: str, client_order_id: str, submitted_at: str, doc: str) -> None:
        self.store.write(Op.put({"pk": "BROKER#paper", "sk": f"ORDER#{broker_order_id}",
                                 "gsi1pk": f"COID#{client_order_id}", "gsi1sk": submitted_at, "doc": doc}))

    def paper_by_client_order_id(self, client_order_id: str) -> str | None:
        rows = self.store.query_index("gsi1", f"COID#{client_order_id}", limit=1)
        return str(rows[0]["doc"]) if rows else None

    def paper_order(self, broker_order_id: str) -> str | None:
        row = self.store.get(("BROKER#paper", f"ORDER#{broker_order_id}"), consistent=True)
        return str(row["doc"]) if row else None

    def paper_orders(self) -> list[str]:
        return [str(r["doc"]) for r in self.store.query("BROKER#paper", "ORDER#")]

    def tokens_used(self, day: str) -> int:
        row = self.store.get(("BUDGET#tokens", f"DAY#{day}"))
        return int(row.get("tokens", 0)) if row else 0

    def add_tokens(self, day: str, tokens: int) -> None:
        self.store.write(Op.upd(("BUDGET#tokens", f"DAY#{day}"), Update(add={"tokens": tokens})))
