"""The trade log (log.py: intent methods, the only code that writes the account) over an item store (store.py:
DynamoDB, or the in-memory twin with the same contract)."""
from mytrader.adapters.tradelog.log import (
    RESERVE_CONDITIONS,
    AlreadyReserved,
    NotPending,
    ReserveParams,
    StateConflict,
    SymbolBusy,
    TradeLog,
    parse_state,
)
from mytrader.adapters.tradelog.store import (
    Cond,
    ConditionFailed,
    DynamoStore,
    MemoryStore,
    Op,
    Row,
    TransactionCancelled,
    Update,
    from_item,
    to_item,
)

Item = Row  # the name earlier callers used for a row

__all__ = ["RESERVE_CONDITIONS", "AlreadyReserved", "Cond", "ConditionFailed", "DynamoStore", "Item", "MemoryStore",
           "NotPending", "Op", "ReserveParams", "Row", "StateConflict", "SymbolBusy", "TradeLog",
           "TransactionCancelled", "Update", "from_item", "parse_state", "to_item"]
