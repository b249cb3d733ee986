"""Adversary tests (kept as guarantees) of the store's write path under mixed reads and writes.

They were written against a version that committed small writes on the event loop's thread
through a second connection. While a read on the store's connection has a statement in progress,
that connection holds a read snapshot; a write committed meanwhile on the other connection made
the read stale, and the next batch in SQLite's thread met SQLITE_BUSY_SNAPSHOT ("database is
locked"), which no busy timeout waits out. That path was taken out; these hold on the one
connection every write goes through.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from harness import open_service
from helpers import eventually

from executor.events import ErrorOccurred, LogLine, OrderUpdated, SignalDecided
from executor.models import OrderStatus, SignalStatus
from executor.store import Store
from executor.store.connection import StoreConnection

DIRECT_MAX = 16  # the largest write the reverted direct path took (a larger one went to the thread)


@pytest.fixture
async def conn(tmp_path):
    made = await StoreConnection.open(tmp_path / "adv.db")
    await made._conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield made
    await made.close()


def small(v: str) -> list:
    return [("INSERT INTO t (v) VALUES (?)", (v,))]


def big(tag: str) -> list:
    return [("INSERT INTO t (v) VALUES (?)", (f"{tag}-{i}",)) for i in range(DIRECT_MAX + 1)]


async def count(conn: StoreConnection) -> int:
    async with conn._conn.execute("SELECT count(*) FROM t") as cur:
        return (await cur.fetchone())[0]


# -- the mechanism, step by step ------------------------------------------------------------


async def test_a_read_made_after_a_small_write_returned_sees_that_write(conn):
    for i in range(3):
        await conn.transact(small(f"a{i}"))
    # A read on the store's connection half way (what `async with execute(...) as cur` is
    # between its execute and its fetch): its statement is in progress.
    cur = await conn._conn.execute("SELECT id FROM t ORDER BY id")
    try:
        await conn.transact(small("direct"))  # returned: committed
        assert await count(conn) == 4  # FAILS: 3, the read sees the snapshot from before the write
    finally:
        await cur.close()


async def test_a_large_batch_after_a_small_write_during_a_read_commits(conn):
    await conn.transact(small("a"))
    cur = await conn._conn.execute("SELECT id FROM t ORDER BY id")
    try:
        await conn.transact(small("direct"))
        await conn.transact(big("big"))  # FAILS: StoreError "write failed: database is locked"
    finally:
        await cur.close()
    assert await count(conn) == 2 + DIRECT_MAX + 1


# -- the same under load, through the Store's own reads and writes, no cursor held by the test --


async def test_mixed_load_of_store_reads_small_writes_and_large_batches_never_fails(tmp_path):
    """Readers use only the Store's read methods; writers only `set_flag` (direct) and
    `transact` of a big group (SQLite's thread). Nothing here holds a cursor itself."""
    store = await Store.open(tmp_path / "load.db")
    rng = random.Random(13)
    errors: list[BaseException] = []
    stale: list[tuple[str, str, str | None]] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            try:
                await store.signals()
                await store.log_entries(limit=50)
                await store.get_flag("k0")
            except Exception as exc:
                errors.append(exc)

    async def flag_writer(n: int) -> None:
        for i in range(300):
            key, value = f"k{n}", f"{n}-{i}"
            try:
                await store.set_flag(key, value)
                got = await store.get_flag(key)  # read your own committed write
            except Exception as exc:
                errors.append(exc)
                continue
            if got != value:
                stale.append((key, value, got))
            if rng.random() < 0.3:
                await asyncio.sleep(0)

    async def batch_writer(n: int) -> None:
        for i in range(60):
            rows = [
                ("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (f"b{n}-{i}-{j}", "x"))
                for j in range(DIRECT_MAX + 1)
            ]
            try:
                await store.transact(rows)
            except Exception as exc:
                errors.append(exc)
            await asyncio.sleep(0)

    readers = [asyncio.ensure_future(reader()) for _ in range(3)]
    try:
        await asyncio.gather(*(flag_writer(n) for n in range(3)), *(batch_writer(n) for n in range(2)))
    finally:
        stop.set()
        await asyncio.gather(*readers)
        await store.close()
    assert not errors, f"{len(errors)} failed, first: {errors[0]!r}"
    assert not stale, f"{len(stale)} reads after a returned write did not see it, first: {stale[0]}"


# -- what was expected to break and holds (kept) ---------------------------------------------


async def test_a_small_write_after_queued_writes_lands_after_them(conn):
    order: list[str] = []
    first = asyncio.ensure_future(conn.transact(big("q1")))
    second = asyncio.ensure_future(conn.transact(small("q2")))  # queued: a flusher runs
    await asyncio.sleep(0)
    await asyncio.gather(first, second)
    order.append("gathered")
    await conn.transact(small("d"))
    async with conn._conn.execute("SELECT v FROM t ORDER BY id") as cur:
        values = [r[0] for r in await cur.fetchall()]
    assert values[-2:] == ["q2", "d"] and values[0] == "q1-0"


async def test_at_scale_every_approval_line_comes_before_its_fill_line(tmp_path):
    service = await open_service(tmp_path / "s.db", approval={"mode": "auto"})
    events: list = []
    service.bus.subscribe(events.append)
    n = 1000
    try:
        lines = [
            json.dumps({"id": f"sc-{i}", "symbol": "BTC/USDT", "side": "buy", "amount": 0.001, "order_type": "market"})
            for i in range(n)
        ]
        await service.submit(lines, source="test")
        await eventually(service.idle, 120)
    finally:
        await service.close()
    decided: dict[str, int] = {}
    filled: dict[str, int] = {}
    approved_line: dict[str, int] = {}
    fill_line: dict[str, int] = {}
    for i, e in enumerate(events):
        if isinstance(e, SignalDecided) and e.record.status is SignalStatus.APPROVED:
            decided.setdefault(e.record.id, i)
        elif isinstance(e, OrderUpdated) and e.order.status is OrderStatus.FILLED and e.order.signal_id:
            filled.setdefault(e.order.signal_id, i)
        elif isinstance(e, LogLine) and e.signal_id:
            if " approved: " in e.message:
                approved_line.setdefault(e.signal_id, i)
            elif "filled" in e.message:
                fill_line.setdefault(e.signal_id, i)
    assert len(filled) == n
    failures = [e for e in events if isinstance(e, ErrorOccurred) and e.level == "error"]
    assert not failures, f"{len(failures)} errors, first: {failures[0].message}"
    late = [s for s in filled if decided.get(s, 1 << 60) > filled[s]]
    assert not late, f"{len(late)} fills published before their approval, e.g. {late[:3]}"
    late_lines = [s for s in fill_line if approved_line.get(s, 1 << 60) > fill_line[s]]
    assert not late_lines, f"{len(late_lines)} fill lines before their approval line, e.g. {late_lines[:3]}"


def consoles_taking_snapshots(service, count: int = 2):
    """`count` consoles taking snapshots (as the control server does for each client) until the
    returned event is set: (that event, the errors their reads raised, their tasks)."""
    stop = asyncio.Event()
    read_errors: list[BaseException] = []

    async def console() -> None:
        while not stop.is_set():
            try:
                await service.snapshot(history=50)
            except Exception as exc:
                read_errors.append(exc)
            await asyncio.sleep(0)

    return stop, read_errors, [asyncio.ensure_future(console()) for _ in range(count)]


async def test_at_scale_with_a_client_taking_snapshots_no_order_step_fails(tmp_path):
    """1,000 auto-approved signals on the paper exchange while a console (as the control server
    does for each client) takes snapshots: every order is filled, no write fails."""
    service = await open_service(tmp_path / "s.db", approval={"mode": "auto"})
    events: list = []
    service.bus.subscribe(events.append)
    stop, read_errors, viewers = consoles_taking_snapshots(service)
    n = 1000
    try:
        lines = [
            json.dumps({"id": f"sn-{i}", "symbol": "BTC/USDT", "side": "buy", "amount": 0.001, "order_type": "market"})
            for i in range(n)
        ]
        submitted = await service.submit(lines, source="test")
        await eventually(service.idle, 120)
        await eventually(lambda: not service._log_buffer and not service._persisting)
        orders = await service.store.orders()
    finally:
        stop.set()
        await asyncio.gather(*viewers)
        await service.close()
    failures = [e.message for e in events if isinstance(e, ErrorOccurred)]
    assert not read_errors, f"{len(read_errors)} snapshots failed, first: {read_errors[0]!r}"
    assert not failures, f"{len(failures)} errors, first: {failures[0]}"
    assert sum(1 for r in submitted if r.status is SignalStatus.APPROVED) == n
    assert sum(1 for o in orders if o.status is OrderStatus.FILLED) == n


async def test_a_burst_of_log_lines_while_a_console_takes_snapshots_is_all_journaled(tmp_path):
    """A burst of more than DIRECT_MAX Log lines (a reconciliation round, a price move filling
    many orders) is one write in SQLite's thread; the flags a core saves meanwhile are small
    writes; a console takes snapshots. Every line must reach the journaled `log` table."""
    service = await open_service(tmp_path / "s.db", approval={"mode": "auto"})
    lines = [
        json.dumps({"id": f"lb-{i}", "symbol": "BTC/USDT", "side": "buy", "amount": 0.001, "order_type": "market"})
        for i in range(50)
    ]
    await service.submit(lines, source="test")  # rows for the console to read
    await eventually(service.idle, 60)
    stop, read_errors, viewers = consoles_taking_snapshots(service)
    rounds, burst = 40, DIRECT_MAX + 4
    try:
        for r in range(rounds):
            for i in range(burst):
                service.trace(f"adv burst {r}-{i}", actor="test")
            await service.store.set_flag("adv", str(r))
            await asyncio.sleep(0)
        await eventually(lambda: not service._log_buffer and not service._persisting)
    finally:
        stop.set()
        await asyncio.gather(*viewers)
    try:
        async with service.store._conn.execute("SELECT count(*) FROM log WHERE message LIKE 'adv burst %'") as cur:
            journaled = (await cur.fetchone())[0]
    finally:
        await service.close()
    assert not read_errors, f"{len(read_errors)} snapshots failed, first: {read_errors[0]!r}"
    assert journaled == rounds * burst  # lines lost: "could not journal N log lines: database is locked"
