"""`ExchangePort.admits_now`: the intent and its `submitting` are one transaction exactly when the
venue's pacer admits the create at once, and an intent is committed on its own before any wait.

The executor side runs on a paper exchange with a pacer of its own (`PacedPaper`); the ccxt
adapter's answer is read from its real pacer state (cooldowns, order-rate limiters), offline.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from harness import GatedPaper, offline_harness, running
from helpers import eventually

from executor.clientid import client_order_id
from executor.events import OrderUpdated
from executor.exchanges.ccxt import CcxtExchange
from executor.exchanges.ccxt.discipline import EXPECTED_FRESH
from executor.exchanges.ccxt.throttle import OrderRate, OrderWindows, VenueClock
from executor.exchanges.paper import PaperExchange
from executor.models import OrderStatus

O = OrderStatus


def coid(signal_id: str) -> str:
    return client_order_id("tc", signal_id, 0)


class PacedPaper(GatedPaper):
    """The paper exchange behind a pacer that admits `room` orders at once, then only through `gate`."""

    room = 0

    def admits_now(self, ahead: int = 0) -> bool:
        return self.room > ahead

    def admit(self, before_wait=None):
        if self.room > 0:
            self.room -= 1
            return contextlib.nullcontext()
        gated = super().admit()
        if before_wait is None:
            return gated

        @contextlib.asynccontextmanager
        async def written_first():  # the port's promise: `before_wait` before the admission waits
            await before_wait()
            async with gated:
                yield

        return written_first()


def first_states(h, signal_id: str) -> list[O]:
    return [e.order.status for e in h.of(OrderUpdated) if e.order.client_order_id == coid(signal_id)]


def transactions_of(h, signal_id: str) -> list[list[str]]:
    """Record each store transaction that writes the order of `signal_id`: its statements' SQL."""
    real, seen = h.store.transact, []

    async def transact(*groups):
        sql = [str(st[0]) for group in groups for st in group]
        if any(coid(signal_id) in map(str, st[1]) for group in groups for st in group):
            seen.append(sql)
        return await real(*groups)

    h.store.transact = transact
    return seen


def test_the_default_port_admits_at_once_only_without_a_pacer_of_its_own():
    assert PaperExchange.admits_now(PaperExchange.__new__(PaperExchange))
    assert not GatedPaper.admits_now(GatedPaper.__new__(GatedPaper))  # overrides `admit`, says nothing


async def test_an_order_the_pacer_admits_at_once_is_written_with_its_submitting_in_one_transaction(settings, db_path):
    h = await offline_harness(settings, db_path, PacedPaper)
    h.exchange.room = 1
    async with running(h, watch=False):
        record = await h.approved(id="at-once", symbol="BTC/USDT", amount=0.01, order_type="market")
        writes = transactions_of(h, "at-once")
        order, _ = await h.executor.commit_intent(record)
        assert order is not None and order.status is O.NEW
        await eventually(lambda: not h.executor._tasks)
        assert first_states(h, "at-once")[0] is O.SUBMITTING  # never published as a lone `new`
        assert len(writes) == 2  # intent + submitting, then the answer
        states = [e["to_state"] for e in await h.store.events(coid("at-once"))]
        assert states == ["new", "submitting", "filled"]
        assert not h.executor._promised


async def test_an_order_the_pacer_would_hold_has_its_intent_committed_alone_before_the_wait(settings, db_path):
    h = await offline_harness(settings, db_path, PacedPaper)
    async with running(h, watch=False):
        record = await h.approved(id="held", symbol="BTC/USDT", amount=0.01, order_type="market")
        await h.executor.commit_intent(record)
        await eventually(lambda: h.exchange.waiting == 1)
        assert (await h.store.get_order(coid("held"))).status is O.NEW  # committed, certainly not sent
        assert not h.engine_orders(coid("held"))
        h.exchange.gate.set()
        await eventually(lambda: not h.executor._tasks)
        assert first_states(h, "held")[:2] == [O.NEW, O.SUBMITTING]
        states = [e["to_state"] for e in await h.store.events(coid("held"))]
        assert states == ["new", "submitting", "filled"]


async def test_an_admission_promised_to_one_intent_is_not_promised_to_the_next(settings, db_path):
    h = await offline_harness(settings, db_path, PacedPaper)
    h.exchange.room = 1  # room for one: two signals decided before either task took its admission
    async with running(h, watch=False):
        first = await h.approved(id="p1", symbol="BTC/USDT", amount=0.01, order_type="market")
        second = await h.approved(id="p2", symbol="BTC/USDT", amount=0.01, order_type="market")
        await asyncio.gather(h.executor.commit_intent(first), h.executor.commit_intent(second))
        await eventually(lambda: h.exchange.waiting == 1)
        firsts = {sid: first_states(h, sid)[0] for sid in ("p1", "p2")}
        assert sorted(firsts.values()) == sorted([O.SUBMITTING, O.NEW]), firsts
        held = next(sid for sid, status in firsts.items() if status is O.NEW)
        assert (await h.store.get_order(coid(held))).status is O.NEW
        h.exchange.gate.set()
        await eventually(lambda: not h.executor._tasks)
        assert not h.executor._promised


class WrongForecast(PacedPaper):
    """A pacer whose forecast says "at once" while its admission waits at the gate."""

    def admits_now(self, ahead: int = 0) -> bool:
        return True


async def test_a_forecast_the_pacer_breaks_writes_the_intent_before_the_wait(settings, db_path):
    """`admits_now` said yes, then the room went to another create before this one's task took
    it: the intent and the signal's rows are committed before the admission waits (a kill -9
    during the wait loses nothing), and the create still goes inside the admission."""
    h = await offline_harness(settings, db_path, WrongForecast)
    async with running(h, watch=False):
        record = await h.approved(id="broken", symbol="BTC/USDT", amount=0.01, order_type="market")
        order, _ = await asyncio.wait_for(h.executor.commit_intent(record), 30)  # once the intent is written
        assert order is not None
        await eventually(lambda: h.exchange.waiting == 1)
        assert (await h.store.get_order(coid("broken"))).status is O.NEW  # committed, certainly not sent
        assert not h.engine_orders(coid("broken")) and not h.executor._promised
        h.exchange.gate.set()
        await eventually(lambda: not h.executor._tasks)
        states = [e["to_state"] for e in await h.store.events(coid("broken"))]
        assert states == ["new", "submitting", "filled"]


class BrokenPacer(PacedPaper):
    """A pacer that forecasts room and then fails to admit."""

    room = 1

    def admit(self, before_wait=None):
        raise RuntimeError("the pacer broke")


async def test_an_intent_whose_task_fails_before_writing_never_leaves_commit_intent_waiting(settings, db_path):
    h = await offline_harness(settings, db_path, BrokenPacer)
    async with running(h, watch=False):
        record = await h.approved(id="stuck", symbol="BTC/USDT", amount=0.01, order_type="market")
        with pytest.raises(RuntimeError, match="the pacer broke"):
            await asyncio.wait_for(h.executor.commit_intent(record), timeout=30)
        assert await h.store.get_order(coid("stuck")) is None  # nothing of it was written
        await eventually(lambda: not h.executor._tasks and not h.executor._promised)


# -- the ccxt adapter's answer, from its pacer's state --------------------------------------------


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_an_order_rate_limiter_is_free_while_it_has_room_for_the_promised_ones_too():
    clock = Clock(100.0)
    rate = OrderRate(2, 10.0, clock=clock)
    assert rate.free() and rate.free(ahead=1) and not rate.free(ahead=2)
    (await rate.acquire()).sent(clock.now)
    assert rate.free() and not rate.free(ahead=1)
    (await rate.acquire()).sent(clock.now)
    assert not rate.free()  # full: acquire would wait
    clock.now += 11.0
    assert rate.free()


async def test_a_window_whose_count_must_be_asked_first_is_not_free():
    clock = Clock(0.0)
    venue = VenueClock(clock)
    venue.sample(int((1_700_000_000.0 + 5.0) * 1000), 0.0, 0.0)  # five seconds into a venue window
    asked: list[int] = []

    async def ask() -> bool:
        asked.append(1)
        return False

    rate = OrderWindows(100, 10.0, venue, "x-mbx-order-count-10s", ask)
    assert not rate.free()  # its first order asks the venue what the window holds
    assert not asked  # the question changes nothing
    rate.heard(0, 0.0, 0.0)
    assert rate.free()


@pytest.fixture
async def adapter():
    made = CcxtExchange("binance", api_key="test-key-0000", api_secret="test-secret-0000")
    yield made
    made._ex.timeout_on_exit = 0  # no session was ever opened
    await made.close()


async def test_the_ccxt_adapter_admits_now_only_without_a_cooldown_and_with_room_in_every_limit(adapter):
    assert adapter.admits_now()  # the venue's clock unknown: Binance's 100 per 10 s of our own clock
    assert not adapter.admits_now(ahead=100)
    adapter.order_cooldown.trip(5)
    assert not adapter.admits_now()
    adapter.order_cooldown.until = 0.0
    adapter.cooldown.trip(5)
    assert not adapter.admits_now()
    adapter.cooldown.until = 0.0
    assert adapter.admits_now()
    queued = asyncio.ensure_future(adapter._order_rates[0].acquire())
    await asyncio.sleep(0)
    assert queued.done() and adapter.admits_now()  # taken at once: its slot counts, nobody queues
    for _ in range(98):
        await adapter._order_rates[0].acquire()
    assert adapter.admits_now() and not adapter.admits_now(ahead=1)  # 99 of 100 taken
    await adapter._order_rates[0].acquire()
    assert not adapter.admits_now()


# -- a create's place in ccxt's bucket asked for ahead of its signal (`expect_order`) ------------


def counting_bucket(adapter) -> list:
    """The costs of the places asked of the adapter's ccxt bucket from now on (its real bucket)."""
    asked: list = []
    throttler = adapter._ex.throttler

    def counting(cost=None):
        asked.append(cost)
        return throttler(cost)

    adapter._ex.throttler = counting
    return asked


async def test_a_place_asked_for_ahead_is_taken_by_the_next_admission_and_never_asked_twice(adapter):
    asked = counting_bucket(adapter)
    adapter.expect_order()
    held = adapter._expected
    assert held is not None and asked == [adapter._create_units]
    for _ in range(50):  # a burst of signals that may become orders: still one place held
        adapter.expect_order()
    assert adapter._expected is held and len(asked) == 1
    async with adapter.admit():
        assert adapter._expected is None  # the admission took it: no second place asked
        assert len(asked) == 1
    assert held.future is None  # the create never came: withdrawn with the admission
    async with adapter.admit():  # nothing held: the admission asks as before
        assert len(asked) == 2


async def test_a_place_held_long_is_kept_and_its_weight_counted_again_when_taken(adapter):
    adapter.expect_order()
    held = adapter._expected
    assert held is not None
    await asyncio.wait_for(asyncio.shield(held.future), timeout=5)  # given by the bucket
    held.asked_at -= 2 * EXPECTED_FRESH
    adapter.expect_order()  # never replaced: one place is the most ever spent ahead
    assert adapter._expected is held
    before = adapter._window._own
    async with adapter.admit():
        assert adapter._expected is None
        weight = adapter._create_units * adapter._weight_per_cost
        assert adapter._window._own == pytest.approx(before + weight)  # counted in the window of now


async def test_a_place_given_before_the_window_filled_is_withdrawn_and_the_admission_queues_anew(adapter):
    adapter.expect_order()
    held = adapter._expected
    await asyncio.wait_for(asyncio.shield(held.future), timeout=5)  # given while the window looked empty
    adapter._window.limit = 6000
    adapter._window.report(6000, adapter._window.clock())  # then an answer said it is full
    assert adapter._window.hold(adapter.request_cost("create_order")) > 0
    asked = counting_bucket(adapter)
    async with adapter.admit():
        assert held.future is None  # withdrawn, not taken
        assert asked == [adapter._create_units]  # a new place, queued behind the hold


async def test_closing_the_adapter_withdraws_a_place_held_for_a_create(adapter):
    adapter.expect_order()
    held = adapter._expected
    future = held.future
    adapter._ex.timeout_on_exit = 0
    await adapter.close()
    assert adapter._expected is None and held.future is None
    await asyncio.sleep(0)
    assert future.done()  # withdrawn (or given): nothing left waiting in the bucket's queue


async def test_the_paper_port_expects_an_order_without_doing_anything():
    PaperExchange.expect_order(PaperExchange.__new__(PaperExchange))
