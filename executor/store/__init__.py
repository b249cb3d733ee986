"""The durable record: one SQLite database (aiosqlite, WAL), versioned, with migrations.

Five tables hold the record: `signals` (every arrival its own row, duplicates included), `orders`
(one row per exchange order, keyed by client order id), `fills` (de-duplicated by fill id),
`events` (the append-only journal of every state change with its source) and `audit` (operator
actions with their actor); `events` and `audit` refuse UPDATE and DELETE by trigger. Beside them,
`log` keeps retries and errors and `kv` flags and saved state, for `inspect` in another process.

Every logical write (a row plus its journal entry) is one transaction: an order's intent is
committed, with its client order id, before the create request leaves the process.

`Store` is made of this package's parts, one job each:

- `schema`: the tables and their migrations, and how a model maps onto its row;
- `connection`: opening a store, and the write path (group commit, compare-and-set);
- `writes`: the statements of each logical write, with its journal entry;
- `reads`: the queries;
- `journal`: following the journal from another process (`inspect`);
- `state`: the `kv` table, flags and saved state.
"""

from __future__ import annotations

from executor.store.connection import ReadOnlyStore, StaleWrite, Statement, StoreError
from executor.store.journal import JournalChanges, JournalPosition, JournalReads
from executor.store.reads import StoreReads
from executor.store.schema import MIGRATIONS, SCHEMA_VERSION
from executor.store.state import SavedState
from executor.store.writes import StoreWrites

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "JournalChanges",
    "JournalPosition",
    "ReadOnlyStore",
    "StaleWrite",
    "Statement",
    "Store",
    "StoreError",
]


class Store(StoreWrites, StoreReads, JournalReads, SavedState):
    """One SQLite database. Open with `await Store.open(path)`; always `await store.close()`."""
