"""The store's connection: opening it (WAL, migrations, read-only), and the write path.

Every write goes through `StoreConnection._write`, by group commit: the statements of one logical
write (a group) land together or not at all, and writers arriving while a commit is in flight
share the next one. A statement is SQL with its parameters (positional, or named as a model's row
is), and, for a compare-and-set, `True`: it must change exactly one row, or its group is rolled
back with `StaleWrite`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import aiosqlite

from executor.store.schema import MIGRATIONS, SCHEMA_VERSION

# A statement, its parameters, and whether it must change exactly one row (a compare-and-set).
Params = Sequence[Any] | Mapping[str, Any]
Statement = tuple[str, Params] | tuple[str, Params, bool]


class StoreError(RuntimeError):
    pass


class ReadOnlyStore(StoreError):
    pass


class StaleWrite(StoreError):
    """A compare-and-set write found the row changed (or gone) since it was read: nothing written."""


class StoreConnection:
    """One open SQLite database, and its write path. The store's parts build on it."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, read_only: bool) -> None:
        self._conn = conn
        self.path = path
        self.read_only = read_only
        self._queue: list[tuple[list[Statement], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path, *, read_only: bool = False) -> Self:
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

    async def transact(self, *groups: Sequence[Statement]) -> list[int | None]:
        """Several logical writes as one transaction: all of them land, or none (StaleWrite).
        Returns each statement's lastrowid, in order."""
        return await self._write([statement for group in groups for statement in group])

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


def _execute(cursor: sqlite3.Cursor, statement: Statement) -> int | None:
    cursor.execute(statement[0], statement[1])
    if len(statement) > 2 and statement[2] and cursor.rowcount != 1:
        raise StaleWrite(f"stale write, the row changed since it was read: {statement[0].split(' WHERE ')[0][:40]}")
    return cursor.lastrowid


_GROUP_FAILED = (sqlite3.Error, StaleWrite, ValueError)  # ValueError: text SQLite cannot take


def _run_batch(conn: sqlite3.Connection, groups: list[list[Statement]]) -> list[Any]:
    """In SQLite's thread: every group in its own savepoint, one COMMIT for all of them.

    Nearly every batch has no failing group, so it is first run without the savepoints (two
    statements fewer per group); should a group fail, that run is rolled back as a whole and
    the batch runs again with them, so that only the failing groups are left out."""
    cursor = conn.cursor()
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            outcomes: list[Any] = [[_execute(cursor, statement) for statement in statements] for statements in groups]
        except _GROUP_FAILED:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [_run_group(conn, cursor, statements) for statements in groups]
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _run_group(conn: sqlite3.Connection, cursor: sqlite3.Cursor, statements: list[Statement]) -> Any:
    """One group in its own savepoint: its statements' rowids, or the error that undid it."""
    conn.execute("SAVEPOINT grp")
    try:
        ids = [_execute(cursor, statement) for statement in statements]
    except _GROUP_FAILED as exc:
        conn.execute("ROLLBACK TO grp")
        conn.execute("RELEASE grp")
        return exc
    conn.execute("RELEASE grp")
    return ids
