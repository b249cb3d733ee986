"""The durable record: SQLite through aiosqlite, WAL, versioned schema with migrations.

Owns five tables: `signals` (every arrival its own row, duplicates included), `orders` (one row
per exchange order, keyed by client order id), `fills` (de-duplicated by fill id), `events` (the
append-only journal of every state change with its source) and `audit` (operator actions with
their actor). `events` and `audit` refuse UPDATE and DELETE by trigger.

Every logical write (a row plus its journal entry) is one transaction: an order's intent is
committed, with its client order id, before the create request leaves the process.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from executor.models import (
    TERMINAL_ORDER_STATES,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    Signal,
    SignalRecord,
    SignalStatus,
)

SCHEMA_VERSION = 3

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE signals (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT,
        status          TEXT NOT NULL,
        reason          TEXT NOT NULL DEFAULT '',
        source          TEXT NOT NULL,
        received_at     TEXT NOT NULL,
        raw             TEXT NOT NULL,
        payload         TEXT,
        symbol          TEXT,
        side            TEXT,
        amount          TEXT,
        reference_price TEXT,
        expires_at      TEXT,
        decided_at      TEXT,
        decided_by      TEXT
    );
    -- one accepted row per id: a repeat is stored too, but as 'duplicate' (or 'invalid')
    CREATE UNIQUE INDEX signals_accepted_id ON signals(id) WHERE status NOT IN ('invalid', 'duplicate');
    CREATE INDEX signals_status ON signals(status);

    CREATE TABLE orders (
        client_order_id   TEXT PRIMARY KEY,
        signal_id         TEXT,
        replacement       INTEGER NOT NULL DEFAULT 0,
        exchange_order_id TEXT,
        symbol            TEXT NOT NULL,
        side              TEXT NOT NULL,
        type              TEXT NOT NULL,
        amount            TEXT NOT NULL,
        price             TEXT,
        status            TEXT NOT NULL,
        filled            TEXT NOT NULL,
        average           TEXT,
        fee               TEXT NOT NULL,
        fee_currency      TEXT,
        attempts          INTEGER NOT NULL DEFAULT 0,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        timeout_at        TEXT,
        last_error        TEXT NOT NULL DEFAULT '',
        origin            TEXT NOT NULL DEFAULT 'executor'
    );
    CREATE INDEX orders_status ON orders(status);
    CREATE INDEX orders_signal ON orders(signal_id);

    CREATE TABLE fills (
        fill_id         TEXT PRIMARY KEY,
        client_order_id TEXT NOT NULL,
        signal_id       TEXT,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL,
        amount          TEXT NOT NULL,
        price           TEXT NOT NULL,
        fee             TEXT NOT NULL,
        fee_currency    TEXT,
        ts              TEXT NOT NULL
    );
    CREATE INDEX fills_order ON fills(client_order_id);

    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        ts         TEXT NOT NULL,
        entity     TEXT NOT NULL,
        entity_id  TEXT,
        from_state TEXT,
        to_state   TEXT,
        source     TEXT NOT NULL,
        detail     TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_entity ON events(entity, entity_id);

    CREATE TABLE audit (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        ts     TEXT NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    );

    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;
    CREATE TRIGGER events_append_only_d BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;
    CREATE TRIGGER audit_append_only_u BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_append_only_d BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    """,
    # v2: the retry/error log, so that `inspect` in another process shows what went wrong and why.
    2: """
    CREATE TABLE log (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        ts              TEXT NOT NULL,
        level           TEXT NOT NULL,
        message         TEXT NOT NULL,
        operation       TEXT,
        attempt         INTEGER,
        max_attempts    INTEGER,
        delay           REAL,
        client_order_id TEXT,
        signal_id       TEXT
    );
    """,
    # v3: every order write is a compare-and-set on `version`, so a stale copy can never overwrite
    # a newer state (reconciliation racing a fill, two paths folding the same report).
    3: """
    ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX orders_symbol_status ON orders(symbol, status);
    """,
}

_ORDER_COLUMNS = (
    "client_order_id, signal_id, replacement, exchange_order_id, symbol, side, type, amount, price, status, "
    "filled, average, fee, fee_currency, attempts, created_at, updated_at, timeout_at, last_error, origin, version"
)
_ORDER_UPDATE = (
    "UPDATE orders SET signal_id=?, replacement=?, exchange_order_id=?, symbol=?, side=?, type=?, amount=?, price=?, "
    "status=?, filled=?, average=?, fee=?, fee_currency=?, attempts=?, created_at=?, updated_at=?, timeout_at=?, "
    "last_error=?, origin=?, version=? WHERE client_order_id=? AND version=?"
)

# A statement, its parameters, and whether it must change exactly one row (a compare-and-set).
Statement = tuple[str, Sequence[Any]] | tuple[str, Sequence[Any], bool]


class StoreError(RuntimeError):
    pass


class ReadOnlyStore(StoreError):
    pass


class StaleWrite(StoreError):
    """A compare-and-set write found the row changed (or gone) since it was read: nothing written."""


def _d(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _json(detail: dict[str, Any] | None) -> str:
    return json.dumps(detail or {}, default=str, separators=(",", ":"))


class Store:
    """One SQLite database. Open with `await Store.open(path)`; always `await store.close()`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, read_only: bool) -> None:
        self._conn = conn
        self.path = path
        self.read_only = read_only
        self._queue: list[tuple[list[Statement], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path, *, read_only: bool = False) -> Store:
        path = Path(path)
        if read_only:
            if not path.exists():
                raise StoreError(f"store {path} does not exist")
            conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        store = cls(conn, path, read_only)
        try:
            await store._prepare()
        except BaseException:
            await conn.close()
            raise
        return store

    async def _prepare(self) -> None:
        await self._conn.execute("PRAGMA busy_timeout = 5000")
        if self.read_only:
            version = await self.schema_version()
            if version > SCHEMA_VERSION:
                raise StoreError(f"store schema {version} is newer than this program ({SCHEMA_VERSION})")
            return
        await self._conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL: a committed transaction survives a process crash (kill -9); only a power
        # loss can take the last few, and reconciliation against the exchange covers that.
        await self._conn.execute("PRAGMA synchronous = NORMAL")
        await self._conn.execute("PRAGMA foreign_keys = ON")
        await self.migrate()

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        await self._conn.close()

    async def schema_version(self) -> int:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> int:
        current = await self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(f"store schema {current} is newer than this program ({SCHEMA_VERSION})")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            # executescript commits first; the version bump is part of the same script.
            await self._conn.executescript(f"BEGIN;\n{MIGRATIONS[version]}\nPRAGMA user_version = {version};\nCOMMIT;")
        return SCHEMA_VERSION

    async def data_version(self) -> int:
        """Changes whenever another connection commits: cheap change detection for `inspect`."""
        async with self._conn.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- writing ------------------------------------------------------------------------------

    async def _write(self, statements: Iterable[Statement]) -> list[int | None]:
        """Run statements as one transaction; returns each statement's lastrowid.

        Group commit: writers that arrive while a commit is in flight are batched into the next
        one, a single trip to SQLite's thread and a single COMMIT for all of them, each group in
        its own savepoint so that one failing group never takes another down. A writer returns
        only after its group is committed.
        """
        if self.read_only:
            raise ReadOnlyStore("the store is open read-only")
        future: asyncio.Future[list[int | None]] = asyncio.get_running_loop().create_future()
        self._queue.append((list(statements), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="store-flush")
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcomes = await self._conn._execute(_run_batch, self._conn._conn, [g for g, _ in batch])
            except BaseException as exc:  # the whole batch failed (disk full, closed): tell everyone
                for _, future in batch:
                    if not future.done():
                        future.set_exception(StoreError(f"write failed: {exc}"))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    @staticmethod
    def _event(
        entity: str, entity_id: str | None, old: str | None, new: str | None, source: str, detail: dict | None, ts: str
    ) -> tuple[str, Sequence[Any]]:
        return (
            "INSERT INTO events (ts, entity, entity_id, from_state, to_state, source, detail) VALUES (?,?,?,?,?,?,?)",
            (ts, entity, entity_id, old, new, source, _json(detail)),
        )

    async def insert_signal(
        self, record: SignalRecord, *, journal: Sequence[tuple[SignalStatus | None, SignalStatus, str, dict]] = ()
    ) -> SignalRecord:
        """Insert one arrival. `journal` overrides the single (none -> status, intake) entry, for
        an arrival decided at once (auto-approval): both steps land in the same transaction."""
        try:
            ids = await self._write(self.signal_insert(record, journal=journal))
        except aiosqlite.IntegrityError:
            return await self.insert_signal(_as_duplicate(record))
        return record.model_copy(update={"seq": ids[0]})

    def signal_insert(
        self, record: SignalRecord, *, journal: Sequence[tuple[SignalStatus | None, SignalStatus, str, dict]] = ()
    ) -> list[Statement]:
        ts = _ts(record.received_at)
        sig = record.signal
        statements = [
            (
                "INSERT INTO signals (id, status, reason, source, received_at, raw, payload, symbol, side, amount, "
                "reference_price, expires_at, decided_at, decided_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.status.value,
                    record.reason,
                    record.source,
                    ts,
                    record.raw,
                    sig.model_dump_json(exclude_none=True) if sig else None,
                    sig.symbol if sig else None,
                    sig.side.value if sig else None,
                    _d(record.amount),
                    _d(record.reference_price),
                    _ts(record.expires_at),
                    _ts(record.decided_at),
                    record.decided_by,
                ),
            ),
        ]
        for old, new, source, detail in journal or [(None, record.status, "intake", {"reason": record.reason})]:
            statements.append(
                self._event("signal", record.id, old.value if old else None, new.value, source, detail, ts or "")
            )
        return statements

    async def transact(self, *groups: Sequence[Statement]) -> list[int | None]:
        """Several logical writes as one transaction: all of them land, or none (StaleWrite).
        Returns each statement's lastrowid, in order."""
        return await self._write([statement for group in groups for statement in group])

    async def update_signal(self, record: SignalRecord, old: SignalStatus, source: str) -> None:
        """Write `record` if the stored row is still `old` (else StaleWrite: an expiry that
        raced an approval can never mark an executed signal expired)."""
        await self._write(self.signal_update(record, old, source))

    def signal_update(self, record: SignalRecord, old: SignalStatus, source: str) -> list[Statement]:
        assert record.seq is not None, "update_signal needs a stored record"
        now = _ts(record.decided_at) or _ts(record.received_at)
        return [
                (
                    "UPDATE signals SET status=?, reason=?, amount=?, reference_price=?, payload=?, decided_at=?, "
                    "decided_by=? WHERE seq=? AND status=?",
                    (
                        record.status.value,
                        record.reason,
                        _d(record.amount),
                        _d(record.reference_price),
                        record.signal.model_dump_json(exclude_none=True) if record.signal else None,
                        _ts(record.decided_at),
                        record.decided_by,
                        record.seq,
                        old.value,
                    ),
                    True,
                ),
                self._event(
                    "signal",
                    record.id,
                    old.value,
                    record.status.value,
                    source,
                    {"reason": record.reason, "by": record.decided_by},
                    now or "",
                ),
            ]

    async def save_order(
        self,
        order: Order,
        *,
        old: OrderStatus | None,
        source: str,
        detail: dict[str, Any] | None = None,
        fills: Sequence[Fill] = (),
    ) -> None:
        """Upsert the order, append its journal entry and any new fills, in one transaction.

        Unchecked: for tests that set a store up as a crash would leave it. The executor writes
        through `order_write` (insert-only intents, compare-and-set updates) instead.
        """
        row = _order_row(order)
        statements: list[Statement] = [
            (f"INSERT OR REPLACE INTO orders ({_ORDER_COLUMNS}) VALUES ({','.join('?' * len(row))})", row)
        ]
        await self._write(statements + self._order_journal(order, old, source, detail, fills))

    def order_write(
        self,
        order: Order,
        *,
        old: OrderStatus | None,
        expect_version: int | None,
        source: str,
        detail: dict[str, Any] | None = None,
        fills: Sequence[Fill] = (),
    ) -> list[Statement]:
        """The statements of one order change. `expect_version` None: a new row (an intent; fails
        if the client order id exists). Else a compare-and-set on the stored version, which
        `order.version` must already be one past."""
        row = _order_row(order)
        if expect_version is None:
            head: Statement = (f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({','.join('?' * len(row))})", row)
        else:
            assert order.version == expect_version + 1, "the new version is one past the expected one"
            head = (_ORDER_UPDATE, (*row[1:], row[0], expect_version), True)
        return [head, *self._order_journal(order, old, source, detail, fills)]

    def _order_journal(
        self,
        order: Order,
        old: OrderStatus | None,
        source: str,
        detail: dict[str, Any] | None,
        fills: Sequence[Fill],
    ) -> list[Statement]:
        statements = self._fill_rows(fills)
        if old != order.status or detail or fills:
            info = dict(detail or {})
            info.setdefault("filled", str(order.filled))
            if order.last_error and order.status in (OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.UNKNOWN):
                info.setdefault("error", order.last_error)
            statements.append(
                self._event(
                    "order",
                    order.client_order_id,
                    old.value if old else None,
                    order.status.value,
                    source,
                    info,
                    _ts(order.updated_at) or "",
                )
            )
        return statements

    @staticmethod
    def _fill_rows(fills: Sequence[Fill]) -> list[Statement]:
        statements: list[Statement] = []
        for fill in fills:
            statements.append(
                (
                    "INSERT OR IGNORE INTO fills (fill_id, client_order_id, signal_id, symbol, side, amount, price, "
                    "fee, fee_currency, ts) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        fill.fill_id,
                        fill.client_order_id,
                        fill.signal_id,
                        fill.symbol,
                        fill.side.value,
                        str(fill.amount),
                        str(fill.price),
                        str(fill.fee),
                        fill.fee_currency,
                        _ts(fill.ts),
                    ),
                )
            )
        return statements

    def fills_replace(self, client_order_id: str, fills: Sequence[Fill]) -> list[Statement]:
        """An order's fill rows replaced by `fills` (the venue's own trades, once all are known)."""
        return [("DELETE FROM fills WHERE client_order_id=?", (client_order_id,)),
                *self._fill_rows(fills)]

    async def record_audit(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any] | None, ts: datetime
    ) -> None:
        await self._write(
            [
                (
                    "INSERT INTO audit (ts, actor, action, target, detail) VALUES (?,?,?,?,?)",
                    (_ts(ts), actor, action, target, _json(detail)),
                )
            ]
        )

    async def append_log(self, entries: Sequence[dict[str, Any]]) -> None:
        """Append retry/error lines (keys: ts, level, message, operation, attempt, max_attempts,
        delay, client_order_id, signal_id)."""
        cols = (
            "ts",
            "level",
            "message",
            "operation",
            "attempt",
            "max_attempts",
            "delay",
            "client_order_id",
            "signal_id",
        )
        await self._write(
            [
                (
                    f"INSERT INTO log ({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                    tuple(_ts(e[c]) if c == "ts" else e.get(c) for c in cols),
                )
                for e in entries
            ]
        )

    async def log_entries(self, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        """Log lines with seq > `after`, the newest `limit` of them, oldest first."""
        async with self._conn.execute(
            "SELECT * FROM (SELECT * FROM log WHERE seq > ? ORDER BY seq DESC LIMIT ?) ORDER BY seq", (after, limit)
        ) as cur:
            rows = await cur.fetchall()
        return [dict(r) | {"ts": datetime.fromisoformat(r["ts"])} for r in rows]

    async def set_flag(self, key: str, value: str) -> None:
        await self._write([("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))])

    async def get_flag(self, key: str) -> str | None:
        async with self._conn.execute("SELECT value FROM kv WHERE key=?", (key,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    # -- reading ------------------------------------------------------------------------------

    async def accepted_signal_ids(self) -> set[str]:
        async with self._conn.execute("SELECT id FROM signals WHERE status NOT IN ('invalid', 'duplicate')") as cur:
            return {row[0] for row in await cur.fetchall()}

    async def get_signal(self, signal_id: str) -> SignalRecord | None:
        async with self._conn.execute(
            "SELECT * FROM signals WHERE id=? AND status NOT IN ('invalid', 'duplicate') LIMIT 1", (signal_id,)
        ) as cur:
            row = await cur.fetchone()
        return _signal_from_row(row) if row else None

    async def signals(
        self, statuses: Iterable[SignalStatus] | None = None, limit: int | None = None
    ) -> list[SignalRecord]:
        sql = "SELECT * FROM signals"
        params: list[Any] = []
        if statuses is not None:
            values = [s.value for s in statuses]
            sql += f" WHERE status IN ({','.join('?' * len(values))})"
            params += values
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT ?)"
            params.append(limit)
        sql += " ORDER BY seq"
        async with self._conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [_signal_from_row(r) for r in rows]

    async def orders(self, *, include_terminal: bool = True, limit: int | None = None) -> list[Order]:
        sql = f"SELECT {_ORDER_COLUMNS} FROM orders"
        params: list[Any] = []
        if not include_terminal:
            terminal = [s.value for s in TERMINAL_ORDER_STATES]
            sql += f" WHERE status NOT IN ({','.join('?' * len(terminal))})"
            params += terminal
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY created_at DESC, client_order_id DESC LIMIT ?)"
            params.append(limit)
        sql += " ORDER BY created_at, client_order_id"
        async with self._conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [_order_from_row(r) for r in rows]

    async def get_order(self, client_order_id: str) -> Order | None:
        async with self._conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id=?", (client_order_id,)
        ) as cur:
            row = await cur.fetchone()
        return _order_from_row(row) if row else None

    async def approved_needing_order(self) -> list[SignalRecord]:
        """Approved signals with no active order whose orders are none at all, or end in one given
        up as certainly absent: a crash came before their (next) intent. Re-driven (SPEC 7)."""
        terminal = ",".join(f"'{s.value}'" for s in TERMINAL_ORDER_STATES)
        async with self._conn.execute(
            "SELECT * FROM signals s WHERE s.status = 'approved' "
            f"AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.signal_id = s.id AND o.status NOT IN ({terminal})) "
            "AND (NOT EXISTS (SELECT 1 FROM orders o WHERE o.signal_id = s.id) OR EXISTS ("
            "  SELECT 1 FROM orders o WHERE o.signal_id = s.id AND o.status = 'failed' "
            "  AND o.last_error LIKE 'certainly absent%' "
            "  AND o.replacement = (SELECT MAX(replacement) FROM orders m WHERE m.signal_id = s.id))) "
            "ORDER BY s.seq"
        ) as cur:
            rows = await cur.fetchall()
        return [_signal_from_row(r) for r in rows]

    async def orders_fee_unknown(self, since: datetime) -> list[Order]:
        """Orders updated since `since` with a fill whose fee the venue has not stated yet (a fill
        row without a fee currency): their fees and fills are learned from the trades."""
        async with self._conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.updated_at >= ? AND EXISTS ("
            "SELECT 1 FROM fills f WHERE f.client_order_id = o.client_order_id AND f.fee_currency IS NULL)",
            (since.isoformat(),),
        ) as cur:
            rows = await cur.fetchall()
        return [_order_from_row(r) for r in rows]

    async def orders_failed_absent(self, since: datetime) -> list[Order]:
        """Orders given up as certainly absent since `since`: watched for a late original."""
        async with self._conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status = 'failed' AND last_error LIKE 'certainly absent%' "
            "AND updated_at >= ?",
            (since.isoformat(),),
        ) as cur:
            rows = await cur.fetchall()
        return [_order_from_row(r) for r in rows]

    async def filled_orders(self) -> list[tuple[str, str, Decimal, Decimal | None, Decimal, str | None]]:
        """(symbol, side, filled, average, fee, fee currency) of every order with a fill."""
        async with self._conn.execute(
            "SELECT symbol, side, filled, average, fee, fee_currency FROM orders WHERE filled NOT IN ('0', '0.0')"
        ) as cur:
            rows = await cur.fetchall()
        out = []
        for r in rows:
            filled = Decimal(r[2])
            if filled:
                out.append((r[0], r[1], filled, _dec(r[3]), Decimal(r[4]), r[5]))
        return out

    async def orders_for_signal(self, signal_id: str) -> list[Order]:
        async with self._conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE signal_id=? ORDER BY replacement", (signal_id,)
        ) as cur:
            rows = await cur.fetchall()
        return [_order_from_row(r) for r in rows]

    async def fills(self, client_order_id: str | None = None) -> list[Fill]:
        sql, params = "SELECT * FROM fills", ()
        if client_order_id is not None:
            sql, params = sql + " WHERE client_order_id=?", (client_order_id,)
        async with self._conn.execute(sql + " ORDER BY ts, fill_id", params) as cur:
            rows = await cur.fetchall()
        return [_fill_from_row(r) for r in rows]

    async def events(self, entity_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM events", []
        if entity_id is not None:
            sql += " WHERE entity_id=?"
            params.append(entity_id)
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT ?)"
            params.append(limit)
        sql += " ORDER BY seq"
        async with self._conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    async def audit(self) -> list[dict[str, Any]]:
        async with self._conn.execute("SELECT * FROM audit ORDER BY seq") as cur:
            rows = await cur.fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    # -- following the journal (inspect) ------------------------------------------------------

    async def journal_position(self) -> JournalPosition:
        """The newest sequence numbers of `events`, `signals` and `log`: where a follower starts."""
        async with self._conn.execute(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events), (SELECT COALESCE(MAX(seq), 0) FROM signals), "
            "(SELECT COALESCE(MAX(seq), 0) FROM log)"
        ) as cur:
            row = await cur.fetchone()
        return JournalPosition(int(row[0]), int(row[1]), int(row[2]))

    async def changes_since(self, position: JournalPosition, *, flags: Sequence[str] = (),
                            page: int = 2000) -> JournalChanges:
        """What was written after `position`, read in one read transaction (a consistent view):
        signal rows with a newer seq, the signals and orders named by newer journal entries (each
        read once, as it is now, an order with its fills), newer log lines, and the current value
        of `flags`. Reads only
        what changed (primary-key and seq ranges), whatever the size of the store. At most `page`
        journal entries and new signals are taken; `more` says whether to call again at once."""
        return await self._conn._execute(_read_changes, self._conn._conn, position, tuple(flags), page)

    async def recent_rejects(self, limit: int = 200) -> list[SignalRecord]:
        """The newest invalid and duplicate arrivals, oldest first (the Log's warnings about them)."""
        async with self._conn.execute(
            "SELECT * FROM (SELECT * FROM signals WHERE status IN ('invalid', 'duplicate') ORDER BY seq DESC "
            "LIMIT ?) ORDER BY seq", (limit,)
        ) as cur:
            rows = await cur.fetchall()
        return [_signal_from_row(r) for r in rows]


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


_IN_CHUNK = 500  # ids per `IN (...)`: well under SQLite's variable limit


def _read_changes(conn: sqlite3.Connection, pos: JournalPosition, flags: tuple[str, ...],
                  page: int) -> JournalChanges:
    """In SQLite's thread: one deferred read transaction, so every part sees the same commit."""
    conn.execute("BEGIN")
    try:
        new_signals = [_signal_from_row(r) for r in conn.execute(
            "SELECT * FROM signals WHERE seq > ? ORDER BY seq LIMIT ?", (pos.signal_seq, page))]
        entries = conn.execute(
            "SELECT seq, entity, entity_id FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (pos.event_seq, page)
        ).fetchall()
        fresh = {r.id for r in new_signals}
        signal_ids = list(dict.fromkeys(e[2] for e in entries if e[1] == "signal" and e[2] and e[2] not in fresh))
        order_ids = list(dict.fromkeys(e[2] for e in entries if e[1] == "order" and e[2]))
        changed: list[SignalRecord] = []
        for i in range(0, len(signal_ids), _IN_CHUNK):
            chunk = signal_ids[i:i + _IN_CHUNK]
            changed += [_signal_from_row(r) for r in conn.execute(
                f"SELECT * FROM signals WHERE id IN ({','.join('?' * len(chunk))}) "
                "AND status NOT IN ('invalid', 'duplicate') ORDER BY seq", chunk)]
        orders: list[Order] = []
        for i in range(0, len(order_ids), _IN_CHUNK):
            chunk = order_ids[i:i + _IN_CHUNK]
            orders += [_order_from_row(r) for r in conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id IN ({','.join('?' * len(chunk))})",
                chunk)]
        orders.sort(key=lambda o: (o.created_at, o.client_order_id))
        fills: dict[str, list[Fill]] = {}
        filled = [o.client_order_id for o in orders if o.filled]
        for i in range(0, len(filled), _IN_CHUNK):
            chunk = filled[i:i + _IN_CHUNK]
            for r in conn.execute(f"SELECT * FROM fills WHERE client_order_id IN ({','.join('?' * len(chunk))}) "
                                  "ORDER BY ts, fill_id", chunk):
                fills.setdefault(r["client_order_id"], []).append(_fill_from_row(r))
        log_rows = [dict(r) | {"ts": datetime.fromisoformat(r["ts"])} for r in conn.execute(
            "SELECT * FROM (SELECT * FROM log WHERE seq > ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (pos.log_seq, page))]
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
    return JournalChanges(position, new_signals, changed, orders, log_rows, values,
                          more=len(entries) == page or len(new_signals) == page, fills=fills)


def _fill_from_row(r: Any) -> Fill:
    return Fill(
        fill_id=r["fill_id"],
        client_order_id=r["client_order_id"],
        signal_id=r["signal_id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        amount=Decimal(r["amount"]),
        price=Decimal(r["price"]),
        fee=Decimal(r["fee"]),
        fee_currency=r["fee_currency"],
        ts=datetime.fromisoformat(r["ts"]),
    )


def _order_row(order: Order) -> tuple[Any, ...]:
    return (
        order.client_order_id,
        order.signal_id,
        order.replacement,
        order.exchange_order_id,
        order.symbol,
        order.side.value,
        order.type.value,
        str(order.amount),
        _d(order.price),
        order.status.value,
        str(order.filled),
        _d(order.average),
        str(order.fee),
        order.fee_currency,
        order.attempts,
        _ts(order.created_at),
        _ts(order.updated_at),
        _ts(order.timeout_at),
        order.last_error,
        order.origin,
        order.version,
    )


def _execute(conn: sqlite3.Connection, statement: Statement) -> int | None:
    cursor = conn.execute(statement[0], statement[1])
    if len(statement) > 2 and statement[2] and cursor.rowcount != 1:
        raise StaleWrite(f"stale write, the row changed since it was read: {statement[0].split(' WHERE ')[0][:40]}")
    return cursor.lastrowid


def _run_batch(conn: sqlite3.Connection, groups: list[list[Statement]]) -> list[Any]:
    """In SQLite's thread: every group in its own savepoint, one COMMIT for all of them."""
    outcomes: list[Any] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statements in groups:
            conn.execute("SAVEPOINT grp")
            try:
                ids = [_execute(conn, statement) for statement in statements]
            except (sqlite3.Error, StaleWrite, ValueError) as exc:  # ValueError: text SQLite cannot take
                conn.execute("ROLLBACK TO grp")
                conn.execute("RELEASE grp")
                outcomes.append(exc)
                continue
            conn.execute("RELEASE grp")
            outcomes.append(ids)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _as_duplicate(record: SignalRecord) -> SignalRecord:
    # A second accepted row with the same id: the caller raced itself; store it as a duplicate.
    return record.model_copy(
        update={
            "status": SignalStatus.DUPLICATE,
            "reason": f"id {record.id} seen before",
            "decided_at": None,
            "decided_by": None,
        }
    )


def _signal_from_row(r: aiosqlite.Row) -> SignalRecord:
    return SignalRecord(
        seq=r["seq"],
        id=r["id"],
        status=SignalStatus(r["status"]),
        reason=r["reason"],
        source=r["source"],
        received_at=datetime.fromisoformat(r["received_at"]),
        raw=r["raw"],
        signal=Signal.model_validate_json(r["payload"]) if r["payload"] else None,
        reference_price=_dec(r["reference_price"]),
        amount=_dec(r["amount"]),
        expires_at=_dt(r["expires_at"]),
        decided_at=_dt(r["decided_at"]),
        decided_by=r["decided_by"],
    )


def _order_from_row(r: aiosqlite.Row) -> Order:
    return Order(
        client_order_id=r["client_order_id"],
        signal_id=r["signal_id"],
        replacement=r["replacement"],
        exchange_order_id=r["exchange_order_id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        type=OrderType(r["type"]),
        amount=Decimal(r["amount"]),
        price=_dec(r["price"]),
        status=OrderStatus(r["status"]),
        filled=Decimal(r["filled"]),
        average=_dec(r["average"]),
        fee=Decimal(r["fee"]),
        fee_currency=r["fee_currency"],
        attempts=r["attempts"],
        created_at=datetime.fromisoformat(r["created_at"]),
        updated_at=datetime.fromisoformat(r["updated_at"]),
        timeout_at=_dt(r["timeout_at"]),
        last_error=r["last_error"],
        origin=r["origin"],
        version=r["version"],
    )
