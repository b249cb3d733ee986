"""Small writes on the event loop's thread (`StoreConnection._write_direct`): the same transaction
as in SQLite's thread, never a wait on a lock, never a checkpoint on the loop, and in order with
every other write."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from executor.store.connection import CHECKPOINT_EVERY, DIRECT_MAX, StaleWrite, StoreConnection


@pytest.fixture
async def conn(tmp_path):
    made = await StoreConnection.open(tmp_path / "direct.db")
    await made._conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, version INTEGER)")
    yield made
    await made.close()


async def rows(conn: StoreConnection) -> list[tuple]:
    async with conn._conn.execute("SELECT id, v, version FROM t ORDER BY id") as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def test_a_small_write_with_nothing_else_written_runs_here_and_is_read_back(conn):
    ids = await conn.transact([("INSERT INTO t (v, version) VALUES (?, ?)", ("a", 1))])
    assert ids == [1] and conn._direct_writes == 1
    assert await rows(conn) == [(1, "a", 1)]


async def test_a_compare_and_set_that_finds_the_row_changed_writes_nothing(conn):
    await conn.transact([("INSERT INTO t (v, version) VALUES (?, ?)", ("a", 1))])
    with pytest.raises(StaleWrite):
        await conn.transact(
            [("INSERT INTO t (v, version) VALUES (?, ?)", ("b", 1))],
            [("UPDATE t SET v = ? WHERE id = ? AND version = ?", ("x", 1, 7), True)],
        )
    assert await rows(conn) == [(1, "a", 1)]  # the whole transaction undone, the INSERT too


async def test_a_write_that_finds_the_database_locked_goes_to_sqlites_thread_and_the_loop_runs_on(conn, tmp_path):
    other = sqlite3.connect(tmp_path / "direct.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.ensure_future(ticking())
    try:
        write = asyncio.ensure_future(conn.transact([("INSERT INTO t (v, version) VALUES (?, ?)", ("a", 1))]))
        await asyncio.sleep(0.05)
        assert not write.done() and ticks > 5  # waiting in SQLite's thread, not on the loop
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, timeout=10) == [1]
    finally:
        ticker.cancel()
        other.close()
    assert conn._direct_writes == 0 and await rows(conn) == [(1, "a", 1)]


async def test_writes_land_in_the_order_they_were_made_whichever_way_each_goes(conn):
    big = [("INSERT INTO t (v, version) VALUES (?, ?)", (f"big-{i}", 1)) for i in range(DIRECT_MAX + 1)]
    small = [("INSERT INTO t (v, version) VALUES (?, ?)", ("small", 1))]
    results = await asyncio.gather(conn.transact(small), conn.transact(big), conn.transact(small))
    assert [len(r) for r in results] == [1, DIRECT_MAX + 1, 1]
    values = [v for _, v, _ in await rows(conn)]
    assert values == ["small", *(f"big-{i}" for i in range(DIRECT_MAX + 1)), "small"]


async def test_the_wal_is_checkpointed_in_sqlites_thread_every_so_many_direct_writes(conn):
    assert conn._direct.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # never on the loop
    for i in range(CHECKPOINT_EVERY - 1):
        await conn.transact([("INSERT INTO t (v, version) VALUES (?, ?)", ("x" * 500, i))])
    assert conn._checkpoint is None
    await conn.transact([("INSERT INTO t (v, version) VALUES (?, ?)", ("x" * 500, -1))])
    assert conn._checkpoint is not None  # asked of SQLite's thread
    await asyncio.wait_for(asyncio.shield(conn._checkpoint), timeout=30)
    assert conn._checkpoint.exception() is None
    # A write in SQLite's thread after it commits (the checkpoint left no statement in progress).
    big = [("INSERT INTO t (v, version) VALUES (?, ?)", ("big", i)) for i in range(DIRECT_MAX + 1)]
    await conn.transact(big)
    assert len(await rows(conn)) == CHECKPOINT_EVERY + DIRECT_MAX + 1
