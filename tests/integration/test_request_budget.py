"""The request budget against the emulator: real ccxt binance, a venue announcing 1,200 weight/min.

Nothing the core asks for may draw a 429 (SPEC 7): the adapter paces every request to the weight
limit the venue announces, holds its queue when the venue counts more than the adapter sent, and
pages Binance's allOrders and myTrades 1,000 at a time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from helpers import eventually

from executor.exchanges.base import NotPlaced, OrderNotFound
from executor.exchanges.ccxt import CcxtExchange
from executor.exchanges.ccxt.discipline import PACE_SHARE
from executor.venue.emulator import wire
from executor.venue.emulator.app import RunningEmulator
from executor.venue.faults import Fault, Limits

from .support import (
    CLIENT_TIMEOUT_MS,
    MARKETS,
    buy,
    emulator_adapter,
    emulator_faults,
    emulator_running,
    own_venue,
    raw_binance,
)

pytestmark = pytest.mark.integration

D = Decimal
BTC, ETH = "BTC/USDT", "ETH/USDT"
LIMIT = 1200  # weight per minute the emulator announces (Binance's limit until 2023)
HAMMER_S = 12.0
# Binance weights of what the hammer sends (all with a symbol)
WEIGHTS = {
    "GET /api/v3/exchangeInfo": 20,
    "GET /api/v3/ticker/24hr": 2,
    "GET /api/v3/account": 20,
    "GET /api/v3/order": 4,
    "POST /api/v3/order": 1,
    "DELETE /api/v3/order": 1,
    "GET /api/v3/openOrders": 6,
    "GET /api/v3/allOrders": 20,
    "GET /api/v3/myTrades": 20,
}


@pytest.fixture
async def venue() -> AsyncIterator[RunningEmulator]:
    faults = emulator_faults(limits=Limits(weight_per_minute=LIMIT, orders_per_10s=100, ban_after=3, ban_seconds=30))
    async with emulator_running(seed=5, faults=faults, markets=list(MARKETS)) as running:
        yield running


@pytest.fixture
async def adapter(venue: RunningEmulator) -> AsyncIterator[CcxtExchange]:
    """Its markets not loaded: a test sees the budget before the venue announces its limit."""
    async with emulator_adapter(venue.url, timeout_ms=CLIENT_TIMEOUT_MS * 10) as exchange:
        yield exchange


def served_weight(venue: RunningEmulator) -> int:
    return sum(WEIGHTS[endpoint] * n for endpoint, n in venue.emulator.requests.items() if endpoint in WEIGHTS)


def no_rate_limit_answers(venue: RunningEmulator) -> bool:
    return venue.emulator.statuses[429] == 0 and venue.emulator.statuses[418] == 0


async def mid_minute() -> None:
    """Wait until the minute's window is well under way and not about to roll over: 8 s or more
    are left for what has to happen inside it, which takes a few seconds at most."""
    await eventually(lambda: 3 <= time.time() % 60 <= 52, timeout=30, interval=0.05)


# -- pacing ---------------------------------------------------------------------------------------


async def test_many_tasks_asking_far_too_much_draw_no_429_they_queue_at_the_learned_pace(adapter, venue):
    await adapter.load_markets()
    assert adapter.budget().weight_per_minute == LIMIT
    rng = random.Random(7)
    since = datetime.now(UTC) - timedelta(minutes=1)
    counter = iter(range(1_000_000))
    most_queued = 0

    async def one_request() -> None:
        symbol = rng.choice(MARKETS)
        kind = rng.choice(["ticker", "ticker", "balances", "open", "order", "since", "trades"])
        if kind == "ticker":
            await adapter.fetch_ticker(symbol)
        elif kind == "balances":
            await adapter.fetch_balances()
        elif kind == "open":
            await adapter.fetch_open_orders(symbol)
        elif kind == "since":
            await adapter.fetch_orders_since(symbol, since)
        elif kind == "trades":
            await adapter.fetch_my_trades(symbol, since)
        else:
            coid = f"tc-hammer-{next(counter)}"
            await buy(adapter, coid, price="20000")
            await adapter.fetch_order(coid, BTC)
            await adapter.cancel_order(coid, BTC)

    async def hammer() -> None:
        while True:
            await one_request()

    before = served_weight(venue)
    started = time.monotonic()
    tasks = [asyncio.ensure_future(hammer()) for _ in range(40)]
    try:
        while time.monotonic() - started < HAMMER_S:
            most_queued = max(most_queued, adapter.budget().queued)
            done = [t for t in tasks if t.done()]
            assert not done, [t.exception() for t in done]
            await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - started
    served = served_weight(venue) - before
    assert no_rate_limit_answers(venue), venue.emulator.statuses
    pace = PACE_SHARE * LIMIT / 60  # 20 weight/s
    # 40 tasks would send thousands of weight a second unpaced: they queued instead ...
    assert most_queued >= 20
    # ... and left at the pace, not slower (a stalled queue) and not faster (a 429 in the making)

    assert 0.6 * pace * elapsed <= served <= pace * elapsed + 45, (served, elapsed)
    assert adapter.budget().used <= LIMIT


async def test_requests_canceled_while_queued_cost_nothing(adapter, venue):
    await adapter.load_markets()
    before = served_weight(venue)
    queued = [asyncio.ensure_future(adapter.fetch_balances()) for _ in range(30)]  # 600 weight
    await eventually(lambda: adapter.budget().queued >= 25, timeout=5)
    for task in queued:
        task.cancel()
    await asyncio.gather(*queued, return_exceptions=True)
    started = time.monotonic()
    await adapter.fetch_ticker(BTC)  # not behind 30 canceled requests' worth of tokens (30 s of them)
    assert time.monotonic() - started < 3.5
    assert served_weight(venue) - before <= 5 * 20 + 2


# -- the budget -----------------------------------------------------------------------------------


async def test_the_budget_learns_the_limit_and_follows_the_venues_used_weight_header(adapter, venue):
    assert adapter.budget().weight_per_minute == 6000  # Binance's default until the venue says
    await mid_minute()
    await adapter.load_markets()
    assert adapter.budget().weight_per_minute == LIMIT
    outsider = raw_binance(venue.url)  # another process on the same key
    try:
        for _ in range(3):
            await outsider.fetch_balance()
    finally:
        await outsider.close()
    await adapter.fetch_balances()
    header = float(adapter._ex.last_response_headers["X-MBX-USED-WEIGHT-1M"])
    assert header >= 20 + 3 * 20 + 20  # the venue counts the outsider too
    budget = adapter.budget()
    assert budget.used == header and budget.queued == 0
    assert budget.headroom == pytest.approx(1 - header / LIMIT)


async def test_the_queue_is_held_when_the_venue_counts_more_than_the_adapter_sent(adapter, venue):
    await mid_minute()
    outsider = raw_binance(venue.url)
    try:
        # 57 x exchangeInfo = 1,140 of the minute's 1,200 weight, spent elsewhere
        await asyncio.gather(*(outsider.publicGetExchangeInfo() for _ in range(57)))
    finally:
        await outsider.close()
    await adapter.load_markets()  # +20: the venue says 1,160
    assert adapter.budget().used >= 1160
    held = asyncio.ensure_future(adapter.fetch_balances())  # +20 would pass 95 % of 1,200
    try:
        done, _ = await asyncio.wait({held}, timeout=1.5)
        assert not done, "sent into a nearly full window"
        assert adapter.budget().queued == 1
        assert adapter._window.holds == 1
    finally:
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
    assert no_rate_limit_answers(venue), venue.emulator.statuses


async def test_an_order_count_429_holds_new_orders_only():
    faults = emulator_faults(limits=Limits(orders_per_10s=3))
    async with (
        own_venue(seed=6, faults=faults, markets=[BTC]) as (running, outsider),
        emulator_adapter(running.url, markets=[BTC]) as adapter,
    ):
        await adapter.load_markets()
        # early in a 10 s order window, so that everything below happens inside it (about a second
        # of the 4 s or more left; a later start would only wait longer for the window to end)
        await eventually(lambda: time.time() % 10 < 6, timeout=15, interval=0.02)
        # someone else on the key takes this window's three new orders
        for n in range(3):
            await outsider.create_order(BTC, "limit", "buy", 0.001, 20000, {"clientOrderId": f"other-{n}"})
        # the venue cannot tell the window's count when asked: the order asks by itself, and is refused
        faults.script("GET /api/v3/rateLimit/order", Fault.ERROR_BEFORE)
        with pytest.raises(NotPlaced) as caught:
            await buy(adapter, "tc-count-0", price="20000")
        assert caught.value.rate_limited and caught.value.retry_after > 0
        assert "-1015" in str(caught.value)
        assert adapter.cooldown.remaining == 0 and adapter.order_cooldown.remaining > 0
        # reads and cancels go on at once
        started = time.monotonic()
        await adapter.fetch_ticker(BTC)
        canceled = await adapter.cancel_order("other-0", BTC)
        assert canceled.status == "canceled" and time.monotonic() - started < caught.value.retry_after
        # the next new order waits the window out instead of drawing another -1015
        order = await buy(adapter, "tc-count-1", price="20000")
        assert order.status == "open" and running.emulator.codes[-1015] == 1
        assert running.emulator.statuses[418] == 0


def orders_per_window(running: RunningEmulator) -> dict[int, int]:
    """How many new orders the venue counted in each of its 10 s windows (by its own clock)."""
    counts: dict[int, int] = {}
    for order in running.emulator.record()["orders"]:
        window = int(order["created_at"] // 10)
        counts[window] = counts.get(window, 0) + 1
    return counts


async def test_orders_someone_else_placed_in_the_window_are_counted_from_the_venues_answers():
    limits = Limits(orders_per_10s=5)
    async with own_venue(emulator_adapter, seed=7, faults=emulator_faults(limits=limits), markets=[BTC]) as venue:
        running, adapter = venue
        async with raw_binance(running.url) as outsider:
            await eventually(lambda: time.time() % 10 < 6, timeout=15, interval=0.02)
            # someone else on the key takes three of this window's five
            others = [{"clientOrderId": f"other-{n}"} for n in range(3)]
            await asyncio.gather(*(outsider.create_order(BTC, "limit", "buy", 0.001, 20000, p) for p in others))
        # the first answer says four: one more fits, the third waits for the next window
        orders = await asyncio.gather(*(buy(adapter, f"tc-shared-{n}", price="20000") for n in range(3)))
        assert [o.status for o in orders] == ["open"] * 3
        assert running.emulator.codes[-1015] == 0 and running.emulator.statuses[429] == 0
        assert max(orders_per_window(running).values()) == 5


async def test_a_burst_across_the_venues_window_boundary_draws_no_order_count_refusal():
    faults = emulator_faults(limits=Limits(orders_per_10s=4))
    async with own_venue(emulator_adapter, seed=8, faults=faults, markets=[BTC]) as (running, adapter):
        # the venue's clock, from its answers (the emulator's is this machine's)
        low, high = adapter._venue_clock.bounds()
        assert high - low < 0.5 and low - 0.05 <= time.time() - time.monotonic() <= high + 0.05
        await eventually(lambda: 9.0 <= time.time() % 10 < 9.5, timeout=15, interval=0.01)
        orders = await asyncio.gather(*(buy(adapter, f"tc-edge-{n}", price="20000") for n in range(8)))
        assert [o.status for o in orders] == ["open"] * 8
        assert running.emulator.codes[-1015] == 0 and running.emulator.statuses[429] == 0
        assert max(orders_per_window(running).values()) <= 4


async def test_the_venue_answers_what_its_order_count_windows_hold_as_binance_does():
    async with own_venue(seed=9, faults=emulator_faults(limits=Limits()), markets=[BTC]) as (running, other):
        await eventually(lambda: time.time() % 10 < 8, timeout=15, interval=0.02)
        await other.create_order(BTC, "limit", "buy", 0.001, 20000, {"clientOrderId": "counted-0"})
        answer = await other.privateGetRateLimitOrder()
        assert other.last_response_headers.get("X-MBX-USED-WEIGHT-1M") is not None
    assert answer == [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100, "count": 1},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200_000, "count": 1},
    ]
    assert wire.request_weight("GET /api/v3/rateLimit/order", {}) == 40  # ccxt's cost 8 = 0.2 * 40
    assert running.emulator.record()["statuses_by_path"]["GET /api/v3/rateLimit/order"] == {"200": 1}


async def test_a_windows_first_order_waits_for_the_venues_count_and_a_full_window_holds_it():
    faults = emulator_faults(limits=Limits(orders_per_10s=5))
    async with own_venue(emulator_adapter, seed=10, faults=faults, markets=[BTC]) as (running, adapter):
        async with raw_binance(running.url) as outsider:
            first = int(await eventually_early_in_a_window())
            others = [{"clientOrderId": f"full-{n}"} for n in range(5)]
            await asyncio.gather(*(outsider.create_order(BTC, "limit", "buy", 0.001, 20000, p) for p in others))
        order = await buy(adapter, "tc-after-full", price="20000")  # asked: the window is full, so it waits
        assert order.status == "open" and running.emulator.codes[-1015] == 0
        assert running.emulator.requests["GET /api/v3/rateLimit/order"] >= 1
        assert min(orders_per_window(running)) == first and max(orders_per_window(running)) > first


async def test_reading_the_venues_clock_after_an_orders_timestamp_refusal_is_not_that_orders_answer():
    async with own_venue(emulator_adapter, seed=11, markets=[BTC]) as (running, adapter):
        adapter._ex.options["timeDifference"] = 60_000  # our clock a minute ahead of the venue's
        with pytest.raises(NotPlaced, match="-1021"):
            await buy(adapter, "tc-skewed-0", price="20000")
        assert running.emulator.requests["GET /api/v3/time"] == 1
        # GET /time, stamped and without an order count, was not taken for the order's answer
        assert all(rate.reporting and not rate._slots for rate in adapter._order_rates)
        assert (await buy(adapter, "tc-skewed-1", price="20000")).status == "open"


async def eventually_early_in_a_window() -> int:
    """Wait until the venue's 10 s window (its clock is this machine's) is under 6 s old; its index.
    (What has to happen inside it takes well under a second; the test then waits for the window
    to end, the less the later it starts.)"""
    await eventually(lambda: time.time() % 10 < 6, timeout=15, interval=0.02)
    return int(time.time() // 10)


# -- paging ---------------------------------------------------------------------------------------


async def test_orders_since_pages_binance_all_orders_past_1000(adapter, venue):
    engine = venue.emulator.engine
    await adapter.load_markets()
    start = time.time()
    for n in range(5):  # before `since`: not wanted
        engine.place_resting(BTC, "buy", D("0.001"), client_order_id=f"tc-old-{n}", created_at=start - 3600)
    since = datetime.fromtimestamp(start - 60, UTC)
    for n in range(1100):
        engine.place_resting(BTC, "buy", D("0.001"), client_order_id=f"tc-seed-{n}")
    for n in range(20):
        engine.place_resting(ETH, "buy", D("0.01"), client_order_id=f"tc-eth-{n}")
    engine.cancel_order(client_order_id="tc-seed-7")  # ended orders are listed too
    orders = await adapter.fetch_orders_since(BTC, since)
    assert [o.client_order_id for o in orders] == [f"tc-seed-{n}" for n in range(1100)]
    assert len({o.exchange_order_id for o in orders}) == 1100
    assert all(o.created is not None and o.created >= since for o in orders)
    assert orders[7].status == "canceled" and orders[8].status == "open"
    # one page by startTime, then one by orderId: 2 x 20 weight
    assert venue.emulator.requests["GET /api/v3/allOrders"] == 2
    assert no_rate_limit_answers(venue) and venue.emulator.statuses[400] == 0
    # what it listed, it can now name: a lookup by client id goes without a scan
    assert (await adapter.fetch_order("tc-seed-1099", BTC)).exchange_order_id == orders[-1].exchange_order_id


async def test_orders_since_more_than_a_day_ago_walks_24_hour_windows(adapter, venue):
    engine = venue.emulator.engine
    await adapter.load_markets()
    now = time.time()
    for n in range(3):
        engine.place_resting(BTC, "buy", D("0.001"), client_order_id=f"tc-2d-{n}", created_at=now - 2 * 86400 + n)
    for n in range(2):
        engine.place_resting(BTC, "buy", D("0.001"), client_order_id=f"tc-1h-{n}", created_at=now - 3600 + n)
    orders = await adapter.fetch_orders_since(BTC, datetime.fromtimestamp(now - 3 * 86400, UTC))
    assert [o.client_order_id for o in orders] == ["tc-2d-0", "tc-2d-1", "tc-2d-2", "tc-1h-0", "tc-1h-1"]
    # the first window (3 to 2 days ago) empty, the second holds the oldest, then by orderId
    assert venue.emulator.requests["GET /api/v3/allOrders"] == 3
    assert venue.emulator.statuses[400] == 0  # never more than 24 h between startTime and endTime


async def test_my_trades_page_by_from_id_and_carry_the_client_ids_of_orders_seen(adapter, venue):
    engine = venue.emulator.engine
    await adapter.load_markets()
    since = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(1010):
        engine.create_order(f"tc-taker-{n}", BTC, "buy", "market", D("0.0002"))
    expected = engine.trades(BTC)
    assert len(expected) >= 1010
    trades = await adapter.fetch_my_trades(BTC, since)
    assert [t.trade_id for t in trades] == [str(t.id) for t in expected]
    assert venue.emulator.requests["GET /api/v3/myTrades"] == 2  # 1,000 by startTime, the rest by fromId
    # Binance's trades name only the orderId: the client id is known for the orders seen so far
    assert {t.client_order_id for t in trades} == {None}
    await adapter.fetch_orders_since(BTC, since)
    trades = await adapter.fetch_my_trades(BTC)  # no `since`: every trade, from the first id
    assert len(trades) == len(expected)
    assert {t.client_order_id for t in trades} == {f"tc-taker-{n}" for n in range(1010)}
    assert all(t.fee > 0 and t.fee_currency == "BTC" for t in trades)  # a buy pays in the asset received
    with pytest.raises(OrderNotFound):
        await adapter.fetch_order("tc-nobody-0", BTC)
