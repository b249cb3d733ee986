"""Fills reach every view through the core's events and snapshot: `OrderUpdated.fills` carries the
fills a write recorded (all of them, `fills_replaced`, when the venue's trades replace them), the
snapshot carries every fill in the store, and `inspect` republishes an order's fills as the store
has them. A console attached anywhere folds positions from these alone."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from harness import NoFeesInOrders, fill_row, make_harness, order_row, running
from helpers import eventually, make_settings

from executor.events import OrderUpdated
from executor.models import Fill, Order, OrderStatus, OrderType
from executor.service import TradingService

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def with_fills(events: list, coid: str) -> list[OrderUpdated]:
    return [e for e in events if isinstance(e, OrderUpdated) and e.order.client_order_id == coid and e.fills]


async def test_a_fill_is_published_with_the_order_write_that_recorded_it(settings, db_path):
    h = await make_harness(settings, db_path)
    async with running(h, watch=False):
        order = await h.placed(id="fills", symbol="SOL/USDT", amount=2.0, price=100, fill=Decimal("0.5"))
        await h.executor.poll()
        h.engine.force_fill(order.client_order_id, Decimal("1.5"))
        await h.executor.poll()
        published = with_fills(h.events, order.client_order_id)
        assert [e.order.filled for e in published] == [Decimal("0.5"), Decimal("2.0")]
        assert not any(e.fills_replaced for e in published)
        told = [f for e in published for f in e.fills]
        assert told == await h.store.fills(order.client_order_id)  # exactly what the store recorded
        assert [f.amount for f in told] == [Decimal("0.5"), Decimal("1.5")]


async def test_the_venues_trades_replace_an_orders_fills_in_its_event_too(settings, db_path):
    h = await make_harness(settings, db_path, exchange_cls=NoFeesInOrders)
    async with running(h, watch=False):
        order = await h.placed(id="fees", symbol="SOL/USDT", amount=2.0, price=100, fill=Decimal("2.0"))
        await h.executor.poll()
        (first,) = with_fills(h.events, order.client_order_id)
        assert first.fills[0].fee_currency is None  # the order's answer said nothing of the fee
        await h.executor.reconcile()
        replaced = [e for e in with_fills(h.events, order.client_order_id) if e.fills_replaced]
        assert len(replaced) == 1
        assert list(replaced[0].fills) == await h.store.fills(order.client_order_id)
        assert all(f.fee_currency == "SOL" and f.fee > 0 for f in replaced[0].fills)


def _filled(coid: str) -> tuple[Order, Fill]:
    order = order_row(
        None,
        client_order_id=coid,
        type=OrderType.MARKET,
        price=None,
        status=OrderStatus.FILLED,
        filled=Decimal("0.01"),
        average=Decimal(60000),
        created_at=T0,
        updated_at=T0,
        version=1,
    )
    fill = fill_row(coid, fill_id=f"{coid}:t1", signal_id=None, fee=Decimal("0.00001"), fee_currency="BTC", ts=T0)
    return order, fill


async def test_the_snapshot_and_inspect_carry_the_fills_of_the_store(db_path, store):
    before, before_fill = _filled("tc-before")
    await store.transact(store.order_write(before, old=None, expect_version=None, source="test", fills=[before_fill]))
    events: list = []
    ro = await TradingService.open(make_settings(), db_path, read_only=True, poll_interval=0.02)
    ro.bus.subscribe(events.append)
    await ro.start()
    try:
        assert (await ro.snapshot()).fills == [before_fill]
        later, later_fill = _filled("tc-later")
        await store.transact(store.order_write(later, old=None, expect_version=None, source="test", fills=[later_fill]))
        await eventually(lambda: with_fills(events, "tc-later"))
        (event,) = with_fills(events, "tc-later")
        assert event.fills == (later_fill,) and event.fills_replaced  # the order's fills as stored now
    finally:
        await ro.close()
