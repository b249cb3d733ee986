"""Following the journal from another process: what `inspect` reads of a store a core writes.

A follower keeps a `JournalPosition` (the last `events`, `signals` and `log` sequence numbers it
has seen) and asks `changes_since` for what came after it: reads by primary key and sequence
ranges only, so a poll costs what changed, not the size of the store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from executor.models import Fill, Order, SignalRecord
from executor.store.connection import StoreConnection
from executor.store.schema import FILL_ROW, ORDER_ROW, SIGNAL_ROW


@dataclass(frozen=True, slots=True)
class JournalPosition:
    """How far a follower has read: the last `events.seq`, `signals.seq` and `log.seq` seen."""

    event_seq: int = 0
    signal_seq: int = 0
    log_seq: int = 0


@dataclass(slots=True)
class JournalChanges:
    position: JournalPosition
    new_signals: list[SignalRecord] = field(default_factory=list)  # rows added, in seq order
    changed_signals: list[SignalRecord] = field(default_factory=list)  # older rows the journal names
    orders: list[Order] = field(default_factory=list)  # every order the journal names, as it is now
    log: list[dict[str, Any]] = field(default_factory=list)
    flags: dict[str, str | None] = field(default_factory=dict)
    more: bool = False
    fills: dict[str, list[Fill]] = field(default_factory=dict)  # all fills of each of `orders` that has any

    def __bool__(self) -> bool:
        return bool(self.new_signals or self.changed_signals or self.orders or self.log)


class JournalReads(StoreConnection):
    """Where a follower starts, and what was written since."""

    async def journal_position(self) -> JournalPosition:
        """The newest sequence numbers of `events`, `signals` and `log`: where a follower starts."""
        async with self._conn.execute(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events), (SELECT COALESCE(MAX(seq), 0) FROM signals), "
            "(SELECT COALESCE(MAX(seq), 0) FROM log)"
        ) as cur:
            row = await cur.fetchone()
        return JournalPosition(int(row[0]), int(row[1]), int(row[2]))

    async def changes_since(
        self, position: JournalPosition, *, flags: Sequence[str] = (), page: int = 2000
    ) -> JournalChanges:
        """What was written after `position`, read in one read transaction (a consistent view):
        signal rows with a newer seq, the signals and orders named by newer journal entries (each
        read once, as it is now, an order with its fills), newer log lines, and the current value
        of `flags`. Reads only
        what changed (primary-key and seq ranges), whatever the size of the store. At most `page`
        journal entries and new signals are taken; `more` says whether to call again at once."""
        return await self._conn._execute(_read_changes, self._conn._conn, position, tuple(flags), page)


_IN_CHUNK = 500  # ids per `IN (...)`: well under SQLite's variable limit


def _rows_in(conn: sqlite3.Connection, select: str, ids: list[str], then: str = "") -> Iterator[sqlite3.Row]:
    """The rows of `select` (ending in the column to match) whose column is one of `ids`, asked
    `_IN_CHUNK` ids at a time; `then` follows each `IN (...)` (more conditions, an ORDER BY)."""
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        yield from conn.execute(f"{select} IN ({','.join('?' * len(chunk))}) {then}", chunk)


def _read_changes(conn: sqlite3.Connection, pos: JournalPosition, flags: tuple[str, ...], page: int) -> JournalChanges:
    """In SQLite's thread: one deferred read transaction, so every part sees the same commit."""
    conn.execute("BEGIN")
    try:
        new_signals = [
            SignalRecord.model_validate(dict(r))
            for r in conn.execute(
                f"SELECT {SIGNAL_ROW} FROM signals WHERE seq > ? ORDER BY seq LIMIT ?", (pos.signal_seq, page)
            )
        ]
        entries = conn.execute(
            "SELECT seq, entity, entity_id FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (pos.event_seq, page)
        ).fetchall()
        fresh = {r.id for r in new_signals}
        signal_ids = list(dict.fromkeys(e[2] for e in entries if e[1] == "signal" and e[2] and e[2] not in fresh))
        order_ids = list(dict.fromkeys(e[2] for e in entries if e[1] == "order" and e[2]))
        accepted = "AND status NOT IN ('invalid', 'duplicate') ORDER BY seq"
        changed = [
            SignalRecord.model_validate(dict(r))
            for r in _rows_in(conn, f"SELECT {SIGNAL_ROW} FROM signals WHERE id", signal_ids, accepted)
        ]
        orders = [
            Order.model_validate(dict(r))
            for r in _rows_in(conn, f"SELECT {ORDER_ROW} FROM orders WHERE client_order_id", order_ids)
        ]
        orders.sort(key=lambda o: (o.created_at, o.client_order_id))
        fills: dict[str, list[Fill]] = {}
        filled = [o.client_order_id for o in orders if o.filled]
        for r in _rows_in(conn, f"SELECT {FILL_ROW} FROM fills WHERE client_order_id", filled, "ORDER BY ts, fill_id"):
            fills.setdefault(r["client_order_id"], []).append(Fill.model_validate(dict(r)))
        log_rows = [
            dict(r) | {"ts": datetime.fromisoformat(r["ts"])}
            for r in conn.execute(
                "SELECT * FROM (SELECT * FROM log WHERE seq > ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (pos.log_seq, page),
            )
        ]
        values = {k: None for k in flags}
        if flags:
            for key, value in conn.execute(
                f"SELECT key, value FROM kv WHERE key IN ({','.join('?' * len(flags))})", flags
            ):
                values[key] = value
        # The newest log line read is where the next read starts: older ones beyond `page` are skipped.
        log_seq = max([pos.log_seq, *(r["seq"] for r in log_rows)])
    finally:
        conn.execute("COMMIT")
    position = JournalPosition(
        entries[-1][0] if entries else pos.event_seq,
        new_signals[-1].seq if new_signals else pos.signal_seq,
        log_seq,
    )
    return JournalChanges(
        position,
        new_signals,
        changed,
        orders,
        log_rows,
        values,
        more=len(entries) == page or len(new_signals) == page,
        fills=fills,
    )
