"""Adversary tests of the order pacing (`throttle.OrderWindows`, `discipline`): real ccxt binance
against the emulator at Binance spot's default limits (100 orders per 10 s, 200,000 per day,
6,000 weight per minute). Each test is a way to draw an order-count refusal (-1015) that the
invariant "zero 429/-1015/418, ever" rules out.

"The previous process" is a raw ccxt binance on the same key that placed orders in the venue's
current window and went away: a restart (kill -9, then B5's quick start) lands in the same window.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers import eventually

from executor.venue.faults import Limits

from .support import buy, emulator_adapter, emulator_faults, emulator_running, raw_binance

pytestmark = pytest.mark.integration

BTC = "BTC/USDT"
WINDOW = 10.0
SLOW_TIMEOUT_MS = 6000


def venue_limits() -> Any:
    return emulator_faults(limits=Limits())  # Binance spot's defaults


async def early_in_a_window(phase: float = 2.0, after: int | None = None) -> int:
    """Wait until the venue's 10 s window (its clock is this machine's) is under `phase` seconds old
    (and later than window `after`); returns its index.

    The tests below then wait for that window to end: the larger the `phase` they accept, the less
    they wait in all (from a random moment, 15 s less `phase` on average). Each leaves what has to
    happen inside the window over 3 s, many times what it takes."""
    await eventually(
        lambda: time.time() % WINDOW < phase and (after is None or time.time() // WINDOW > after),
        timeout=30,
        interval=0.01,
    )
    return int(time.time() // WINDOW)


async def theirs_then_ours(
    running: Any,
    adapter: Any,
    theirs: tuple[int, str],
    ours: tuple[int, str],
    *,
    phase: float,
    after: int | None = None,
    timeout_ms: int | None = None,
) -> None:
    """Early in a window (`early_in_a_window(phase, after)`), someone else on the same key (a
    process gone now, an outsider) places `theirs` = (n, tag) resting orders at once; then a burst
    of `ours` = (n, tag) through the adapter. Neither draws an order-count refusal (-1015). The
    other's markets are loaded before the window is waited for: only its orders go inside it."""
    async with raw_binance(running.url) as other:
        if timeout_ms:
            other.timeout = timeout_ms
        await other.load_markets()
        await early_in_a_window(phase, after)
        n, tag = theirs
        await asyncio.gather(
            *(other.create_order(BTC, "limit", "buy", 0.001, 20000, {"clientOrderId": f"{tag}{i}"}) for i in range(n))
        )
        assert running.emulator.codes[-1015] == 0
        await burst(adapter, *ours)
    assert running.emulator.codes[-1015] == 0, running.emulator.record()["error_codes"]


async def burst(adapter: Any, n: int, tag: str) -> list[Any]:
    """`n` orders at once through the adapter; their outcomes (orders or exceptions)."""
    calls = (buy(adapter, f"tc{tag}{i}", price="20000") for i in range(n))
    return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=60)


async def test_a_restart_into_a_window_the_previous_process_filled_draws_no_order_count_refusal():
    async with (
        emulator_running(seed=21, faults=venue_limits(), markets=[BTC]) as running,
        emulator_adapter(running.url, markets=[BTC]) as adapter,
    ):
        await adapter.load_markets()  # the fresh process: the venue's clock is known from here
        # the window's 100, spent before the crash; then the restart's burst, whose first order
        # "asks" the venue for the window's count by placing an order: refused
        await theirs_then_ours(running, adapter, (100, "prev"), (3, "restart"), phase=6.0)


async def test_a_slow_first_answer_does_not_let_a_restarted_burst_overrun_the_window():
    async with (
        emulator_running(seed=22, faults=venue_limits(), markets=[BTC], latency_ms=700) as running,
        emulator_adapter(running.url, markets=[BTC], timeout_ms=SLOW_TIMEOUT_MS) as adapter,
    ):
        await adapter.load_markets()
        # each answer takes 0.7 s: the other 59 must wait for the window's count, never go as if
        # the window held ours only (a 0.5 s wait for the first answer once let them)
        await theirs_then_ours(running, adapter, (60, "prev"), (60, "slow"), phase=3.0, timeout_ms=SLOW_TIMEOUT_MS)


async def test_an_outsider_burst_in_a_window_after_a_clean_one_draws_no_order_count_refusal():
    async with (
        emulator_running(seed=24, faults=venue_limits(), markets=[BTC]) as running,
        emulator_adapter(running.url, markets=[BTC]) as adapter,
    ):
        await adapter.load_markets()
        first = await early_in_a_window(6.0)
        for i in range(5):  # a clean window: every count the venue tells is ours
            await buy(adapter, f"tcclean{i}", price="20000")
        # someone else on the key spends most of the next window; then a burst of ours
        await theirs_then_ours(running, adapter, (96, "other"), (10, "after"), phase=2.0, after=first)


async def test_the_daily_order_count_the_venue_tells_holds_new_orders_before_a_refusal():
    async with (
        emulator_running(seed=25, faults=venue_limits(), markets=[BTC]) as running,
        emulator_adapter(running.url, markets=[BTC]) as adapter,
    ):
        await adapter.load_markets()
        # earlier today this key placed all but 5 of its 200,000 (the venue says so in every
        # order answer: X-MBX-ORDER-COUNT-1D)
        day = running.emulator.limits.orders_day
        day.roll(time.time())
        day.used = 200_000 - 5
        await early_in_a_window(3.0)
        placed: list[Any] = []

        async def one_by_one() -> None:
            for i in range(6):
                placed.append(await buy(adapter, f"tcday{i}", price="20000"))

        task = asyncio.ensure_future(one_by_one())
        try:
            await eventually(lambda: len(placed) == 5 or task.done(), timeout=30)
            # the sixth would be the day's 200,001st: held (until the venue's day ends), not sent
            await asyncio.wait({task}, timeout=2.0)
            assert running.emulator.codes[-1015] == 0, running.emulator.record()["error_codes"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
