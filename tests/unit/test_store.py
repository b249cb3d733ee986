"""The SQLite store: WAL, migrations, append-only journal and audit, read-only opening."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import aiosqlite
import pytest
from harness import fill_row, order_row, signal_row

from executor.models import MarketInfo, Order, OrderStatus, OrderType, Side, SignalRecord, SignalStatus
from executor.store import SCHEMA_VERSION, ReadOnlyStore, Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def order(**changes) -> Order:
    base = {"client_order_id": "tc-a-0", "price": Decimal("60000"), "created_at": NOW, "updated_at": NOW}
    return order_row(**(base | changes))


def btc_info() -> MarketInfo:
    """BTC/USDT as a venue describes it (its raw answer in `extra`, which the store does not keep)."""
    steps = (Decimal("0.00001"), Decimal("0.01"), Decimal("0.00001"), Decimal("5"))
    return MarketInfo("BTC/USDT", "BTC", "USDT", *steps, extra={"raw": "venue"})


def record(signal_id: str | None, status=SignalStatus.PENDING, **fields) -> SignalRecord:
    return signal_row(signal_id, status, at=NOW, **fields)


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
    assert await store.accepted_signal_ids() == ["s1"]
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

    fill = fill_row(ts=NOW)
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


# -- rows: read and written through the models, in the formats every store has held -----------

PLUS2 = datetime(2026, 11, 25, 14, 0, 7, 5, tzinfo=timezone(timedelta(hours=2)))


def _columns(db_path, sql: str) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql).fetchall()


async def test_rows_keep_decimals_as_written_and_timestamps_as_isoformat(store, db_path):
    from executor.models import Signal

    signal = Signal.model_validate(
        {"id": "a", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "created_at": "2026-11-25T11:59:00Z"}
    )
    await store.insert_signal(
        record(
            "a", source="t", signal=signal, amount=Decimal("0.0100"), reference_price=Decimal("6E+4"), expires_at=PLUS2
        )
    )
    fill = fill_row(
        fill_id="f1",
        amount=Decimal("0.004"),
        price=Decimal("60000.50"),
        fee=Decimal("4E-6"),
        fee_currency="BTC",
        ts=PLUS2,
    )
    await store.save_order(
        order(filled=Decimal("0.0040"), average=Decimal("60000.500"), timeout_at=PLUS2, fee=Decimal("4E-6")),
        old=None,
        source="request",
        fills=[fill],
    )
    assert _columns(
        db_path,
        "SELECT received_at, payload, symbol, side, amount, reference_price, expires_at, decided_at FROM signals",
    ) == [
        (
            "2026-11-25T12:00:00+00:00",
            '{"id":"a","symbol":"BTC/USDT","side":"buy","amount":0.01,"created_at":"2026-11-25T11:59:00Z"}',
            "BTC/USDT",
            "buy",
            "0.0100",
            "6E+4",
            "2026-11-25T14:00:07.000005+02:00",
            None,
        )
    ]
    assert _columns(
        db_path,
        "SELECT side, type, amount, price, status, filled, average, fee, created_at, "
        "timeout_at, origin, version FROM orders",
    ) == [
        (
            "buy",
            "limit",
            "0.01",
            "60000",
            "new",
            "0.0040",
            "60000.500",
            "0.000004",
            "2026-11-25T12:00:00+00:00",
            "2026-11-25T14:00:07.000005+02:00",
            "executor",
            0,
        )
    ]
    assert _columns(db_path, "SELECT amount, price, fee, ts FROM fills") == [
        ("0.004", "60000.50", "0.000004", "2026-11-25T14:00:07.000005+02:00")
    ]
    assert (await store.fills()) == [fill]
    back = await store.get_signal("a")
    assert (back.signal, back.amount, back.reference_price, back.expires_at) == (
        signal,
        Decimal("0.0100"),
        Decimal("6E+4"),
        PLUS2,
    )


async def test_rows_an_older_version_wrote_read_back_as_models(store, db_path):
    with sqlite3.connect(db_path) as conn:  # as the store has always written them, by hand
        conn.execute(
            "INSERT INTO signals (id, status, reason, source, received_at, raw, payload, symbol, side, amount, "
            "reference_price, expires_at, decided_at, decided_by) VALUES ('old', 'approved', '', 'file:x', "
            '\'2026-11-25T12:00:00.123456+00:00\', \'{}\', \'{"id":"old","symbol":"ETH/USDT","side":"sell",'
            "\"amount\":2.5}', 'ETH/USDT', 'sell', '2.5', '3000.10', NULL, '2026-11-25T12:00:01+00:00', 'ops@h')"
        )
        conn.execute(
            "INSERT INTO orders (client_order_id, signal_id, replacement, exchange_order_id, symbol, side, type, "
            "amount, price, status, filled, average, fee, fee_currency, attempts, created_at, updated_at, "
            "timeout_at, last_error, origin) VALUES ('tc-old-0', 'old', 0, '77', 'ETH/USDT', 'sell', 'market', "
            "'2.5', NULL, 'filled', '2.5', '3000.1', '0.0025', 'ETH', 1, '2026-11-25T12:00:01+00:00', "
            "'2026-11-25T12:00:02+00:00', NULL, '', 'executor')"
        )
    record = await store.get_signal("old")
    assert (record.status, record.amount, record.reference_price, record.decided_by) == (
        SignalStatus.APPROVED,
        Decimal("2.5"),
        Decimal("3000.10"),
        "ops@h",
    )
    assert record.signal.symbol == "ETH/USDT" and record.signal.amount == 2.5
    assert record.received_at == datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
    assert await store.get_order("tc-old-0") == Order(
        client_order_id="tc-old-0",
        signal_id="old",
        exchange_order_id="77",
        symbol="ETH/USDT",
        side=Side.SELL,
        type=OrderType.MARKET,
        amount=Decimal("2.5"),
        status=OrderStatus.FILLED,
        filled=Decimal("2.5"),
        average=Decimal("3000.1"),
        fee=Decimal("0.0025"),
        fee_currency="ETH",
        attempts=1,
        created_at=datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC),
        updated_at=datetime(2026, 11, 25, 12, 0, 2, tzinfo=UTC),
    )


# -- saved state: the kv table's JSON, through a TypeAdapter per key --------------------------


async def test_saved_state_round_trips_through_the_store(store):
    from executor.events import MarketQuote, ReconcileResult
    from executor.models import Balance
    from executor.store.state import (
        BALANCES,
        LAST_RECONCILE,
        MARKET_INFO,
        MARKETS,
        SavedBalances,
    )

    assert await store.load_state(BALANCES) is None
    saved = SavedBalances.of(
        {"BTC": Balance("BTC", Decimal("0.5"), Decimal("0.1"))}, {"BTC": Decimal("60000.5")}, "USDT"
    )
    await store.save_state(BALANCES, saved)
    event = (await store.load_state(BALANCES)).event()
    assert (event.balances, event.prices, event.quote) == (
        {"BTC": Balance("BTC", Decimal("0.5"), Decimal("0.1"))},
        {"BTC": Decimal("60000.5")},
        "USDT",
    )
    result = ReconcileResult(at=NOW, checked=3, open=1, drift={"BTC": Decimal("0.001")}, errors=["x"])
    await store.save_state(LAST_RECONCILE, result)
    assert await store.load_state(LAST_RECONCILE) == result
    quote = MarketQuote("BTC/USDT", Decimal("60000"), Decimal("59999.9"), Decimal("60000.1"), None, NOW, NOW)
    await store.save_state(MARKETS, {"BTC/USDT": quote})
    assert (await store.load_state(MARKETS))["BTC/USDT"] == quote
    info = btc_info()
    await store.save_state(MARKET_INFO, {"BTC/USDT": info})
    assert await store.load_state(MARKET_INFO) == {"BTC/USDT": info}
    assert "extra" not in await store.get_flag("market_info")


def test_saved_state_reads_what_older_cores_saved_with_json_dumps():
    import dataclasses
    import json

    from executor.store.state import BALANCES, LAST_RECONCILE, MARKET_INFO, MARKETS

    balances = BALANCES.parse(
        json.dumps({"quote": "USDT", "balances": {"BTC": ["0.5", "0.1"]}, "prices": {"BTC": "60000.5", "USDT": "1"}})
    )
    assert balances.balances == {"BTC": (Decimal("0.5"), Decimal("0.1"))} and balances.prices["USDT"] == 1
    reconcile = LAST_RECONCILE.parse(
        json.dumps(
            {
                "at": NOW.isoformat(),
                "checked": 3,
                "updated": 1,
                "resolved_unknown": 0,
                "adopted": 0,
                "external": 2,
                "open": 1,
                "unknown": 0,
                "drift": {"BTC": "0.001"},
                "errors": [],
                "exchange": "binance",
                "mode": "live",
            }
        )
    )
    assert (reconcile.at, reconcile.external, reconcile.drift) == (NOW, 2, {"BTC": Decimal("0.001")})
    markets = MARKETS.parse(
        json.dumps(
            {
                "BTC/USDT": {
                    "last": "60000",
                    "bid": "59999.9",
                    "ask": "60000.1",
                    "change_pct": "-1.5",
                    "ts": NOW.isoformat(),
                    "change_since": None,
                }
            }
        )
    )
    assert markets["BTC/USDT"].change_pct == Decimal("-1.5") and markets["BTC/USDT"].ts == NOW
    assert markets["BTC/USDT"].symbol == "BTC/USDT"
    info = btc_info()
    older = {
        "BTC/USDT": {
            f.name: str(getattr(info, f.name))
            for f in dataclasses.fields(info)
            if f.name != "extra" and getattr(info, f.name) is not None
        }
    }
    assert MARKET_INFO.parse(json.dumps(older)) == {"BTC/USDT": info}
    assert json.loads(MARKET_INFO.dump({"BTC/USDT": info})) == older  # and saves the same fields
