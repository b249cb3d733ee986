"""A periodic reconciliation round over many live orders: those the venue's answers leave as they
are stay untouched (no lock, no write), a changed one is folded, an over-report still alerts, and
the round gives the event loop a turn between slices of orders."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from harness import make_harness, running

import executor.reconcile as reconcile
from executor.events import ErrorOccurred
from executor.exchanges.base import ExchangeOrder
from executor.models import OrderStatus


@pytest.fixture
async def h(settings, db_path):
    """A started harness that does not poll the venue: every round here is the test's own."""
    harness = await make_harness(settings, db_path)
    async with running(harness, watch=False) as started:
        assert started.checked == 0
        yield harness


async def _resting(h, n: int) -> list:
    """`n` buy limit orders far below the market: they rest."""
    return [await h.placed(id=f"rest-{i}", symbol="SOL/USDT", amount=1.0, price=50) for i in range(n)]


async def test_a_round_leaves_unchanged_orders_alone_and_folds_the_one_that_filled(h):
    orders = await _resting(h, 3)
    kept = {o.client_order_id: h.executor.active_orders[o.client_order_id] for o in orders}
    journal = len(await h.store.events())
    h.engine.force_fill(orders[1].client_order_id, Decimal("0.5"))
    result = await h.executor.reconcile()
    assert (result.checked, result.updated) == (3, 1)
    moved = h.executor.active_orders[orders[1].client_order_id]
    assert (moved.status, moved.filled) == (OrderStatus.PARTIALLY_FILLED, Decimal("0.5"))
    for order in (orders[0], orders[2]):  # the same copies: nothing was written for them
        assert h.executor.active_orders[order.client_order_id] is kept[order.client_order_id]
    assert len(await h.store.events()) > journal
    journal = len(await h.store.events())
    again = await h.executor.reconcile()
    assert (again.checked, again.updated) == (3, 0)
    assert len(await h.store.events()) == journal  # an unchanged round writes no order


async def test_a_report_of_more_than_the_order_is_still_folded_and_alerted(h, monkeypatch):
    (order,) = await _resting(h, 1)
    exchange = h.exchange
    answer = exchange.fetch_open_orders

    async def over(symbol=None) -> list[ExchangeOrder]:
        reports = await answer(symbol)
        return [
            ExchangeOrder(**{**{f: getattr(r, f) for f in r.__slots__}, "filled": r.amount * 2})
            if r.client_order_id == order.client_order_id
            else r
            for r in reports
        ]

    monkeypatch.setattr(exchange, "fetch_open_orders", over)
    h.events.clear()
    await h.executor.reconcile()
    assert any(isinstance(e, ErrorOccurred) and "capped at the order amount" in e.message for e in h.events)


async def test_a_round_gives_the_loop_a_turn_between_slices(h, monkeypatch):
    await _resting(h, 6)
    monkeypatch.setattr(reconcile, "SETTLE_SLICE", 2)
    turns, seen = 0, []  # how often another task ran, as each order is looked at
    same = reconcile.Reconciler._same

    def looked_at(self, coid, market):
        seen.append(turns)
        return same(self, coid, market)

    monkeypatch.setattr(reconcile.Reconciler, "_same", looked_at)
    done = asyncio.Event()

    async def other() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    runner = asyncio.create_task(other())
    try:
        result = await h.executor.reconcile()
    finally:
        done.set()
        await runner
    assert result.checked == 6 and len(seen) == 6
    # Unchanged orders need no await of their own: only the round's yields let the other task in.
    assert seen[1] > seen[0] and seen[3] > seen[2] and seen[5] > seen[4]
