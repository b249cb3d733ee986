"""Crash recovery on the paper exchange (issue 7): honest `new`/`submitting`, restart re-checks,
bulk reconciliation instead of a lookup per order, and the follow-up round for orders still inside
the venue's visibility window."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from harness import GatedPaper, make_harness, offline_harness, order_row, restart, running
from helpers import eventually

from executor.clientid import client_order_id
from executor.exchanges.base import RequestBudget
from executor.exchanges.paper import PaperExchange
from executor.models import Order, OrderStatus, OrderType, Side, SignalStatus, utcnow

O = OrderStatus
S = SignalStatus


def coid(signal_id: str, n: int = 0) -> str:
    return client_order_id("tc", signal_id, n)


class CountingPaper(PaperExchange):
    """The paper exchange, counting the requests of each port method."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()

    async def fetch_order(self, client_order_id, symbol):
        self.calls["fetch_order"] += 1
        return await super().fetch_order(client_order_id, symbol)

    async def fetch_orders_since(self, symbol, since):
        self.calls["fetch_orders_since"] += 1
        return await super().fetch_orders_since(symbol, since)

    async def fetch_open_orders(self, symbol=None):
        self.calls["fetch_open_orders"] += 1
        return await super().fetch_open_orders(symbol)


async def _intent(
    h,
    signal_id: str,
    *,
    status=O.NEW,
    type_=OrderType.LIMIT,
    price=Decimal("30000"),
    amount=Decimal("0.01"),
    symbol="BTC/USDT",
    age: float = 0.0,
    **signal_fields,
) -> Order:
    """An approved signal and its order row as a crash left them."""
    fields = {"id": signal_id, "symbol": symbol, "amount": float(amount), "price": float(price)}
    if type_ is OrderType.MARKET:
        fields["order_type"] = "market"  # the price is the reference the slippage rule checks against
    fields.update(signal_fields)
    record = await h.approved(**fields)
    price_if_limit = price if type_ is OrderType.LIMIT else None
    order = order_row(signal_id, status=status, type=type_, amount=amount, price=price_if_limit, symbol=symbol, age=age)
    await h.left(order)
    return order, record


# -- honest states ----------------------------------------------------------------------------


async def test_an_order_waiting_for_the_pacer_is_journaled_new_not_submitting(settings, db_path):
    h = await offline_harness(settings, db_path, GatedPaper)
    async with running(h, watch=False):
        record = await h.approved(id="paced", symbol="BTC/USDT", amount=0.01, price=30000)
        task = asyncio.create_task(h.executor.execute_signal(record))
        await eventually(lambda: h.exchange.waiting == 1)
        assert (await h.store.get_order(coid("paced"))).status is O.NEW  # certainly not sent
        h.exchange.gate.set()
        order = await task
        assert order.status is O.OPEN
        states = [e["to_state"] for e in await h.store.events(coid("paced"))]
        assert states == ["new", "submitting", "open"]


async def test_a_create_certainly_not_placed_goes_back_to_new_before_its_retry(h_started):
    from executor.venue.faults import Fault

    h = h_started
    h.faults.script("create_order", Fault.REFUSED)
    record = await h.approved(id="back-to-new", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.FILLED
    states = [e["to_state"] for e in await h.store.events(order.client_order_id)]
    assert states == ["new", "submitting", "new", "submitting", "filled"]


@pytest.fixture
async def h_started(settings, db_path):
    h = await make_harness(settings, db_path)
    async with running(h, watch=False):
        yield h


# -- restart: re-checked, then sent, or given up -------------------------------------------------


async def test_a_crash_in_new_is_sent_once_at_restart(settings, db_path):
    h = await offline_harness(settings, db_path)
    order, _ = await _intent(h, "crash-new")
    again = await restart(h, settings, db_path)
    async with running(again, watch=False):
        await eventually(lambda: not again.executor.tasks_named("redrive"))
        assert len(again.engine_orders(coid("crash-new"))) == 1
        assert (await again.store.get_order(order.client_order_id)).status is O.OPEN


async def test_a_stale_market_intent_after_restart_fails_and_its_signal_goes_back_to_pending(settings, db_path):
    h = await offline_harness(settings, db_path)
    # The reference was 40,000; BTC trades near 60,000 now: sending it would fill 50 % off.
    order, _ = await _intent(h, "stale-mkt", type_=OrderType.MARKET, price=Decimal("40000"))
    again = await restart(h, settings, db_path)
    async with running(again, watch=False):
        await eventually(lambda: again.executor.idle)
        stored = await again.store.get_order(order.client_order_id)
        assert stored.status is O.FAILED and stored.last_error.startswith("stale after restart: price moved")
        signal = await again.store.get_signal("stale-mkt")
        assert signal.status is S.PENDING and "price moved" in signal.reason
        assert again.engine_orders() == []


async def test_an_intent_past_its_ttl_at_restart_fails_and_its_signal_expires(settings, db_path):
    h = await offline_harness(settings, db_path)
    order, _ = await _intent(h, "stale-ttl")
    await h.store._write(
        [("UPDATE signals SET expires_at=? WHERE id=?", ((utcnow() - timedelta(seconds=1)).isoformat(), "stale-ttl"))]
    )
    again = await restart(h, settings, db_path)
    async with running(again, watch=False):
        await eventually(lambda: again.executor.idle)
        assert (await again.store.get_order(order.client_order_id)).status is O.FAILED
        assert (await again.store.get_signal("stale-ttl")).status is S.EXPIRED
        assert again.engine_orders() == []


async def test_an_intent_the_balance_no_longer_covers_fails_stale_at_restart(settings, db_path):
    h = await offline_harness(settings, db_path)
    order, _ = await _intent(h, "stale-bal", amount=Decimal("0.5"))
    h.engine._free["USDT"] = Decimal(100)  # spent elsewhere while we were down
    again = await restart(h, settings, db_path)
    async with running(again, watch=False):
        await eventually(lambda: again.executor.idle)
        stored = await again.store.get_order(order.client_order_id)
        assert stored.status is O.FAILED and "insufficient free USDT" in stored.last_error
        assert (await again.store.get_signal("stale-bal")).status is S.PENDING
        assert again.engine_orders() == []


async def test_an_approved_signal_without_an_order_is_redriven_at_restart(settings, db_path):
    h = await offline_harness(settings, db_path)
    await h.approved(id="orphan-approval", symbol="BTC/USDT", amount=0.01, price=30000)
    again = await restart(h, settings, db_path)
    async with running(again, watch=False):
        await eventually(lambda: not again.executor.tasks_named("place"))
        assert [o.client_order_id for o in again.engine_orders()] == [coid("orphan-approval")]


# -- restart: bulk first ------------------------------------------------------------------------


async def test_restart_settles_150_submitting_orders_in_bulk_without_a_lookup_each(settings, db_path):
    h = await offline_harness(settings, db_path, CountingPaper)
    await h.executor.start(watch=False)
    placed = []
    for i in range(150):
        symbol = ("BTC/USDT", "ETH/USDT", "SOL/USDT")[i % 3]
        price = {"BTC/USDT": Decimal("30000"), "ETH/USDT": Decimal("1000"), "SOL/USDT": Decimal("10")}[symbol]
        amount = Decimal("1") if symbol == "SOL/USDT" else Decimal("0.01")
        order, _ = await _intent(h, f"bulk-{i}", status=O.SUBMITTING, symbol=symbol, price=price, age=30, amount=amount)
        if i % 2 == 0:  # half of them reached the venue before the crash
            h.engine.create_order(order.client_order_id, symbol, Side.BUY, OrderType.LIMIT, order.amount, price)
            placed.append(order.client_order_id)
    again = await restart(h, settings, db_path, CountingPaper)
    async with running(again, watch=False) as result:
        assert again.exchange.calls["fetch_order"] == 0
        assert again.exchange.calls["fetch_orders_since"] <= 3
        assert result.resolved_unknown == 150
        for c in placed:
            assert (await again.store.get_order(c)).status is O.OPEN
        await eventually(lambda: not again.executor.tasks_named("replace"), timeout=30)
        # the absent half was replaced under the next replacement number, each exactly once
        venue = Counter(o.client_order_id for o in again.engine.all_orders())
        assert all(n == 1 for n in venue.values())
        for i in range(1, 150, 2):
            assert venue[coid(f"bulk-{i}", 1)] == 1 and venue[coid(f"bulk-{i}", 0)] == 0


async def test_orders_still_inside_the_visibility_window_are_settled_by_a_followup_round(settings, db_path):
    h = await offline_harness(settings, db_path, CountingPaper)
    await h.executor.start(watch=False)
    await _intent(h, "fresh", status=O.SUBMITTING)  # journaled just now
    again = await restart(h, settings, db_path, CountingPaper)
    async with running(again, watch=False) as result:
        assert result.unknown == 1  # too fresh to call absent: the venue may not show it yet
        await eventually(
            lambda: (
                again.executor.current(coid("fresh")) is None
                or again.executor.current(coid("fresh")).status is not O.SUBMITTING
            )
        )
        await eventually(lambda: again.engine_orders(coid("fresh", 1)), timeout=10)
        assert again.exchange.calls["fetch_order"] == 0


# -- the request budget -------------------------------------------------------------------------


async def test_polling_stretches_its_interval_to_the_venues_request_budget(h_started):
    h = h_started

    class Budgeted(PaperExchange):
        def budget(self):
            return RequestBudget(weight_per_minute=1200, used=0)

        def request_cost(self, operation):
            return {"fetch_open_orders": 6, "fetch_balances": 20}.get(operation, 1)

    h.executor.exchange = Budgeted(h.engine)
    # three markets' open orders: 18 weight a round within 30 % of 1,200 a minute -> every 3 s
    assert h.executor.budget_interval("fetch_open_orders", 0.30, 0.5, 3) == pytest.approx(3.0)
    # the account every 20 s at most within 5 %
    assert h.executor.budget_interval("fetch_balances", 0.05, 2.0) == pytest.approx(20.0)
    h.executor.exchange = h.exchange
    assert h.executor.budget_interval("fetch_open_orders", 0.30, 0.5, 3) == 0.5  # no limit announced
