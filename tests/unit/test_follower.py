"""The read-only follower behind `inspect` (executor/follower.py): it follows the whole store by
journal sequence (every non-terminal order, however old), reads only what changed, and publishes
the Log from before it opened."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import eventually, make_settings
from harness import order_row, signal_row

from executor.events import ErrorOccurred, OrderUpdated, RetryScheduled, SignalDecided, SignalReceived
from executor.models import Order, OrderStatus, Side, Signal, SignalRecord, SignalStatus
from executor.service import TradingService
from executor.store import JournalPosition, Store

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
N = 10_000


def order(i: int, **changes) -> Order:
    """The i-th of N open limit orders, a second apart, buys and sells in turn."""
    at = T0 + timedelta(seconds=i)
    side, price = Side.BUY if i % 2 else Side.SELL, Decimal(58000 + i % 500)
    fields = dict(client_order_id=f"tc-{i:06d}", side=side, price=price, status=OrderStatus.OPEN)
    return order_row(f"sig-{i:06d}", **(fields | {"created_at": at, "updated_at": at} | changes))


def signal(
    signal_id: str | None, status: SignalStatus = SignalStatus.PENDING, *, at: datetime = T0, reason: str = ""
) -> SignalRecord:
    sig = Signal(id=signal_id, symbol="BTC/USDT", side=Side.BUY, amount=0.01) if signal_id else None
    amount = Decimal("0.01") if sig else None
    return signal_row(
        signal_id, status, at=at, reason=reason, raw=json.dumps({"id": signal_id}), signal=sig, amount=amount
    )


@pytest.fixture
async def writer(db_path):
    """The other process: a writable connection to the store `inspect` reads."""
    store = await Store.open(db_path)
    yield store
    await store.close()


async def seed_orders(store: Store, n: int) -> list[Order]:
    orders = [order(i) for i in range(n)]
    await store.transact(*(store.order_write(o, old=None, expect_version=None, source="seed") for o in orders))
    return orders


async def inspect(db_path, events: list) -> TradingService:
    service = await TradingService.open(make_settings(), db_path, read_only=True, poll_interval=0.02)
    service.bus.subscribe(events.append)
    await service.start()
    return service


def updates(events: list, coid: str | None = None) -> list[Order]:
    return [e.order for e in events if isinstance(e, OrderUpdated) and coid in (None, e.order.client_order_id)]


async def test_an_old_open_order_among_10000_is_republished_and_only_it(db_path, writer):
    orders = await seed_orders(writer, N)
    events: list = []
    ro = await inspect(db_path, events)
    try:
        snapshot = await ro.snapshot()
        assert len([o for o in snapshot.orders if o.status.is_active]) == N  # every active order
        oldest = orders[0]  # far outside any "newest 500"
        fill = oldest.model_copy(
            update={"status": OrderStatus.PARTIALLY_FILLED, "filled": Decimal("0.004"), "version": oldest.version + 1}
        )
        await writer.transact(
            writer.order_write(fill, old=OrderStatus.OPEN, expect_version=oldest.version, source="poll")
        )
        await eventually(lambda: updates(events, oldest.client_order_id))
        assert updates(events) == [updates(events, oldest.client_order_id)[0]]  # nothing else re-read
        got = updates(events)[0]
        assert got.status is OrderStatus.PARTIALLY_FILLED and got.filled == Decimal("0.004")
        assert ro.follower is not None and ro.follower.position.event_seq == N + 1
    finally:
        await ro.close()


async def test_a_poll_reads_only_what_the_journal_names(db_path, writer):
    await seed_orders(writer, N)
    position = await writer.journal_position()
    assert position == JournalPosition(event_seq=N, signal_seq=0, log_seq=0)
    first = order(7, status=OrderStatus.CANCELED, version=1)
    await writer.transact(writer.order_write(first, old=OrderStatus.OPEN, expect_version=0, source="operator"))
    changes = await writer.changes_since(position, flags=("paused",))
    assert [o.client_order_id for o in changes.orders] == [first.client_order_id]
    assert changes.position.event_seq == N + 1 and not changes.more
    assert changes.flags == {"paused": None}
    assert not await writer.changes_since(changes.position)  # nothing newer: nothing read


async def test_the_log_from_before_opening_is_published_at_start(db_path, writer):
    await writer.insert_signal(signal("s1", at=T0))
    await writer.insert_signal(signal(None, SignalStatus.INVALID, at=T0 + timedelta(seconds=1), reason="no id"))
    await writer.append_log(
        [
            {
                "ts": T0 + timedelta(seconds=2),
                "level": "retry",
                "message": "429 Too Many",
                "operation": "create_order",
                "attempt": 1,
                "max_attempts": 4,
                "delay": 1.5,
                "client_order_id": "tc-1",
                "signal_id": "s1",
            }
        ]
    )
    await writer.insert_signal(
        signal("s1", SignalStatus.DUPLICATE, at=T0 + timedelta(seconds=3), reason="id s1 seen before")
    )
    await writer.append_log([{"ts": T0 + timedelta(seconds=4), "level": "warning", "message": "cancel not confirmed"}])
    events: list = []
    ro = await inspect(db_path, events)  # no waiting: start() itself publishes the backlog
    try:
        logged = [e for e in events if isinstance(e, ErrorOccurred | RetryScheduled | SignalReceived)]
        assert [(type(e).__name__, getattr(e, "record", None) and e.record.status) for e in logged] == [
            ("SignalReceived", SignalStatus.INVALID),
            ("RetryScheduled", None),
            ("SignalReceived", SignalStatus.DUPLICATE),
            ("ErrorOccurred", None),
        ]
        assert logged[1].attempt == 1 and logged[1].max_attempts == 4 and logged[3].message == "cancel not confirmed"
        assert not [e for e in events if isinstance(e, OrderUpdated)]
    finally:
        await ro.close()


async def test_signals_and_orders_written_by_another_connection_appear(db_path, writer):
    events: list = []
    ro = await inspect(db_path, events)
    try:
        stored = await writer.insert_signal(signal("live"))
        await eventually(lambda: any(isinstance(e, SignalReceived) and e.record.id == "live" for e in events))
        rejected = stored.model_copy(
            update={"status": SignalStatus.REJECTED, "reason": "rejected by ops", "decided_at": T0, "decided_by": "ops"}
        )
        await writer.update_signal(rejected, SignalStatus.PENDING, source="operator")
        await eventually(
            lambda: any(isinstance(e, SignalDecided) and e.record.status is SignalStatus.REJECTED for e in events)
        )
        await writer.transact(writer.order_write(order(1), old=None, expect_version=None, source="request"))
        await writer.append_log([{"ts": T0, "level": "error", "message": "venue down"}])
        await writer.set_flag("paused", "1")
        await eventually(
            lambda: (
                updates(events, "tc-000001")
                and any(isinstance(e, ErrorOccurred) and e.message == "venue down" for e in events)
                and ro.paused
            )
        )
        assert [e.record.id for e in events if isinstance(e, SignalReceived)] == ["live"]  # once, never again
    finally:
        await ro.close()


async def test_every_pending_signal_is_in_the_snapshot_not_only_the_recent_ones(db_path, writer):
    await writer.insert_signal(signal("old-pending"))
    for i in range(300):
        await writer.insert_signal(signal(f"done-{i}", SignalStatus.REJECTED))
    events: list = []
    ro = await inspect(db_path, events)
    try:
        snapshot = await ro.snapshot(history=200)
        assert "old-pending" in [r.id for r in snapshot.signals if r.status is SignalStatus.PENDING]
    finally:
        await ro.close()


async def test_inspect_shows_the_writers_market_prices_and_precision(db_path):
    from executor.events import MarketsUpdated

    core = await TradingService.open(make_settings(), db_path)
    await core.start()
    try:
        await eventually(lambda: core.market_view is not None and core.market_view.quotes)
        quotes = dict(core.market_view.quotes)
        await core._persist_markets(quotes)
        events: list = []
        ro = await inspect(db_path, events)
        try:
            published = [e for e in events if isinstance(e, MarketsUpdated)]
            assert published and published[-1].quotes == quotes  # last, bid, ask, change as the core saw them
            assert ro.markets == core.markets  # amounts and prices rounded as the core rounds them
            quotes2 = {
                s: q.__class__(s, q.last + 1, q.bid + 1, q.ask + 1, q.change_pct, q.ts, q.change_since)
                for s, q in quotes.items()
            }
            await core._persist_markets(quotes2)
            await eventually(lambda: [e for e in events if isinstance(e, MarketsUpdated)][-1].quotes == quotes2)
        finally:
            await ro.close()
    finally:
        await core.close()


# The flags as cores before the TypeAdapter wrote them (json.dumps), byte for byte.
OLD_FLAGS = {
    "balances": '{"quote": "USDT", "balances": {"BTC": ["0.5", "0.1"]}, "prices": {"BTC": "60000.5", "USDT": "1"}}',
    "last_reconcile": (
        '{"at": "2026-11-23T10:00:00+00:00", "checked": 3, "updated": 1, "resolved_unknown": 0, "adopted": 0, '
        '"external": 2, "open": 1, "unknown": 0, "drift": {"BTC": "0.001"}, "errors": ["x"], "exchange": "binance", '
        '"mode": "LIVE"}'
    ),
    "markets": (
        '{"BTC/USDT": {"last": "60000", "bid": "59999.9", "ask": "60000.1", "change_pct": "-1.5", '
        '"ts": "2026-11-23T10:00:00+00:00", "change_since": null}}'
    ),
    "market_info": (
        '{"BTC/USDT": {"symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "amount_step": "0.00001", '
        '"price_tick": "0.01", "min_amount": "0.00001", "min_cost": "5", "maker_fee": "0.001", "taker_fee": "0.001"}}'
    ),
}


async def test_inspect_reads_the_state_an_older_core_saved(db_path, writer):
    from executor.events import BalancesUpdated, MarketQuote, MarketsUpdated, Reconciled, ReconcileResult
    from executor.models import Balance, MarketInfo

    for key, text in OLD_FLAGS.items():
        await writer.set_flag(key, text)
    events: list = []
    ro = await inspect(db_path, events)
    try:
        btc = Balance("BTC", Decimal("0.5"), Decimal("0.1"))
        prices = {"BTC": Decimal("60000.5"), "USDT": Decimal(1)}
        assert [e for e in events if isinstance(e, BalancesUpdated)] == [BalancesUpdated({"BTC": btc}, prices, "USDT")]
        result = ReconcileResult(T0, 3, 1, 0, 0, 2, 1, 0, {"BTC": Decimal("0.001")}, ["x"])
        assert [e.result for e in events if isinstance(e, Reconciled)] == [result]
        quote = MarketQuote("BTC/USDT", Decimal(60000), Decimal("59999.9"), Decimal("60000.1"), Decimal("-1.5"), T0)
        assert [e.quotes for e in events if isinstance(e, MarketsUpdated)] == [{"BTC/USDT": quote}]
        steps = Decimal("0.00001"), Decimal("0.01"), Decimal("0.00001"), Decimal(5)
        assert ro.markets == {"BTC/USDT": MarketInfo("BTC/USDT", "BTC", "USDT", *steps)}
    finally:
        await ro.close()
