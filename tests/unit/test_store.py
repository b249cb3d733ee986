"""The SQLite store: WAL, migrations, append-only journal and audit, read-only opening."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

import aiosqlite
import pytest

from executor.models import Order, OrderStatus, OrderType, Side, SignalRecord, SignalStatus
from executor.store import SCHEMA_VERSION, ReadOnlyStore, Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def order(**changes) -> Order:
    base = dict(
        client_order_id="tc-a-0",
        signal_id="a",
        symbol="BTC/USDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        amount=Decimal("0.01"),
        price=Decimal("60000"),
        created_at=NOW,
        updated_at=NOW,
    )
    return Order(**(base | changes))


def record(signal_id: str | None, status=SignalStatus.PENDING) -> SignalRecord:
    return SignalRecord(id=signal_id, status=status, source="test", received_at=NOW, raw="{}")


@pytest.fixture
async def store(db_path):
    s = await Store.open(db_path)
    yield s
    await s.close()


async def test_new_store_is_wal_and_at_the_current_schema(store, db_path):
    assert await store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopening_does_not_migrate_twice(store, db_path):
    await store.insert_signal(record("s1"))
    again = await Store.open(db_path)
    assert len(await again.signals()) == 1
    await again.close()


async def test_a_store_from_a_newer_program_is_refused(db_path):
    async with aiosqlite.connect(db_path) as conn:
        await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        await conn.commit()
    with pytest.raises(Exception, match="newer than this program"):
        await Store.open(db_path)


async def test_every_arrival_is_its_own_row_and_repeats_are_duplicates(store):
    await store.insert_signal(record("s1"))
    assert await store.accepted_signal_ids() == {"s1"}
    await store.insert_signal(record("s1", SignalStatus.DUPLICATE))
    await store.insert_signal(record(None, SignalStatus.INVALID))
    rows = await store.signals()
    assert [(r.id, r.status) for r in rows] == [("s1", "pending"), ("s1", "duplicate"), (None, "invalid")]


async def test_a_second_accepted_row_with_the_same_id_is_stored_as_duplicate(store):
    await store.insert_signal(record("s1"))
    second = await store.insert_signal(record("s1"))
    assert second.status is SignalStatus.DUPLICATE


async def test_order_changes_are_journaled_with_their_source(store):
    o = order()
    await store.save_order(o, old=None, source="request")
    await store.save_order(
        o.model_copy(update={"status": OrderStatus.SUBMITTING}), old=OrderStatus.NEW, source="request"
    )
    await store.save_order(
        o.model_copy(update={"status": OrderStatus.OPEN}), old=OrderStatus.SUBMITTING, source="reconcile"
    )
    events = await store.events("tc-a-0")
    assert [(e["from_state"], e["to_state"], e["source"]) for e in events] == [
        (None, "new", "request"),
        ("new", "submitting", "request"),
        ("submitting", "open", "reconcile"),
    ]
    assert (await store.get_order("tc-a-0")).status is OrderStatus.OPEN


async def test_the_journal_and_the_audit_log_are_append_only(store):
    await store.save_order(order(), old=None, source="request")
    await store.record_audit("ops@host", "approve", "a", {}, NOW)
    for table in ("events", "audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await store._write([(f"UPDATE {table} SET ts = 'x'", ())])
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await store._write([(f"DELETE FROM {table}", ())])


async def test_decimals_survive_the_round_trip_exactly(store):
    o = order(amount=Decimal("0.12345678"), filled=Decimal("0.00000001"), average=Decimal("60000.123456789"))
    await store.save_order(o, old=None, source="request")
    back = await store.get_order(o.client_order_id)
    assert (back.amount, back.filled, back.average) == (o.amount, o.filled, o.average)


async def test_read_only_store_refuses_writes(store, db_path):
    await store.insert_signal(record("s1"))
    ro = await Store.open(db_path, read_only=True)
    try:
        assert [r.id for r in await ro.signals()] == ["s1"]
        with pytest.raises(ReadOnlyStore):
            await ro.insert_signal(record("s2"))
    finally:
        await ro.close()


async def test_data_version_moves_when_another_connection_commits(store, db_path):
    ro = await Store.open(db_path, read_only=True)
    try:
        before = await ro.data_version()
        await store.insert_signal(record("s9"))
        assert await ro.data_version() != before
    finally:
        await ro.close()


async def test_fills_are_deduplicated_by_id(store):
    from executor.models import Fill

    fill = Fill(
        fill_id="tc-a-0:0.01",
        client_order_id="tc-a-0",
        signal_id="a",
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=Decimal("0.01"),
        price=Decimal(60000),
        ts=NOW,
    )
    await store.save_order(order(), old=None, source="request", fills=[fill])
    await store.save_order(order(), old=None, source="request", fills=[fill])
    assert len(await store.fills("tc-a-0")) == 1


async def test_a_version_1_store_is_migrated_in_place(db_path):
    from executor.store import MIGRATIONS

    async with aiosqlite.connect(db_path, isolation_level=None) as conn:
        await conn.executescript(f"BEGIN;\n{MIGRATIONS[1]}\nPRAGMA user_version = 1;\nCOMMIT;")
        await conn.execute(
            "INSERT INTO signals (id, status, source, received_at, raw) VALUES ('old', 'pending', 't', ?, '{}')",
            (NOW.isoformat(),),
        )
    store = await Store.open(db_path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION == 3
        assert [r.id for r in await store.signals()] == ["old"]
        await store.append_log([{"ts": NOW, "level": "error", "message": "boom"}])
        assert [r["message"] for r in await store.log_entries()] == ["boom"]
    finally:
        await store.close()
