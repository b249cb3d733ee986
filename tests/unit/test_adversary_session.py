"""Adversary tests of the change since 7a108f3: the paper engine that forgets ended orders beyond the
last `keep_closed` (5,000) lets the core place a signal twice and lose a fill (SPEC 6, 7)."""

from __future__ import annotations

from decimal import Decimal

from harness import make_harness, running
from helpers import eventually

from executor.clientid import client_order_id
from executor.models import OrderStatus, OrderType, Side
from executor.venue.faults import Fault

O = OrderStatus
D = Decimal


def coid(signal_id: str, n: int = 0) -> str:
    return client_order_id("tc", signal_id, n)


def busy_venue(engine, n: int) -> None:
    """`n` other orders of this account fill and end on the venue (a busy paper run: B2 is 5,000/s)."""
    for k in range(n):
        engine.create_order(f"other{k}", "ETH/USDT", Side.BUY if k % 2 else Side.SELL, OrderType.MARKET, D("0.01"))


async def test_an_unknown_order_that_filled_is_never_placed_again_after_a_busy_second(settings, db_path):
    # A create's answer is lost (the venue placed and filled it); the lookups fail for a while,
    # so the order stays `unknown` for reconciliation. Meanwhile the paper run goes on: 5,000
    # other orders end. Reconciliation must find the order filled, not place the signal again.
    h = await make_harness(settings, db_path)
    async with running(h, watch=False):
        h.faults.script("create_order", Fault.TIMEOUT_AFTER_ACCEPT)
        h.faults.script("fetch_order", *[Fault.ERROR_BEFORE] * 10)
        record = await h.approved(id="lost", symbol="BTC/USDT", amount=0.01, order_type="market")
        order = await h.executor.execute_signal(record)
        assert order.status is O.UNKNOWN
        assert [o.client_order_id for o in h.engine_orders("tc")] == [coid("lost")]
        h.faults._scripts.clear()
        busy_venue(h.engine, 5_000)
        await h.executor.reconcile()
        await eventually(lambda: h.executor.idle, what="the executor settles")
        orders = await h.store.orders_for_signal("lost")
        states = {o.client_order_id: (o.status.value, str(o.filled), o.last_error) for o in orders}
        # What the venue bought for the signal: BTC moves only through its orders (fees in BTC too).
        bought = h.engine.balance("BTC").free + h.engine.balance("BTC").used - D(1)
        assert bought <= D("0.01"), f"the venue bought {bought} BTC for a signal of 0.01: {states}"


async def test_a_resting_order_that_filled_while_the_venue_was_busy_keeps_its_fill(settings, db_path):
    # A resting limit order fills on the venue; before the core's next look at it, 5,000 other
    # orders end. The store must record the fill (the venue bought the BTC), not end the order
    # `expired` with nothing filled.
    h = await make_harness(settings, db_path)
    async with running(h):
        record = await h.approved(id="rest", symbol="BTC/USDT", amount=0.01, price=30000)
        order = await h.executor.execute_signal(record)
        assert order.status is O.OPEN
        h.engine.force_fill(order.client_order_id, D("0.01"))
        busy_venue(h.engine, 5_000)

        async def ended():
            stored = await h.store.get_order(order.client_order_id)
            return stored if stored.status.is_terminal else None

        stored = await eventually(ended, what="the core learns how the order ended")
        bought = h.engine.balance("BTC").free + h.engine.balance("BTC").used - D(1)
        assert bought > 0, "the venue did buy for the signal"
        outcome = (stored.status, stored.filled, stored.last_error)
        assert outcome[:2] == (O.FILLED, D("0.01")), outcome
