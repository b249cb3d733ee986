"""Adversary pin of the bucket's pace at scale (`bucket.cooldown_throttler`, whose refill runs from
the moment a busy spell's first request was queued since d6f907f): real ccxt binance through the
adapter against the emulator, Binance spot's default limits (6,000 weight per minute, 100 orders
per 10 s).

Three bursts of a few hundred mixed requests (tickers, open orders, order lookups, a balance,
creates with and without a place asked for ahead, admissions that never create, requests whose
caller gives up while they queue); the bucket's loop ends and restarts between bursts. Pinned:
no 429/418 and no -1003/-1015 from the venue, every request that was not given up answered (none
waits for ever), none sent twice, and what the bucket gives in any span of its clock stays within
its pace: `refillRate * span + capacity`, plus the request that takes it below zero (the loop
settles the refill before every grant, so no credit comes late: tests/unit/test_adversary_refill.py
shows what a late one did, at one instant of a clock the test moves).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import eventually

from executor.exchanges.base import OrderNotFound
from executor.exchanges.ccxt import CcxtExchange

from .support import CLIENT_TIMEOUT_MS, buy, emulator_adapter, emulator_faults, emulator_running

pytestmark = pytest.mark.integration

BTC, ETH = "BTC/USDT", "ETH/USDT"
BURSTS = 3
CREATES, NO_CREATE = 15, 5  # per burst: creates, and admissions that never create
GIVEN_UP = 12  # ticker reads per burst whose caller gives up once the bucket's queue is long


def record_grants(adapter: CcxtExchange) -> list[tuple[float, float]]:
    """(bucket clock in ms, ccxt units) of every place the bucket gives from now on: the bucket
    counts each in the weight window as it gives it, in its loop (`_expected_grant` counting a stale
    place again is not a grant)."""
    grants: list[tuple[float, float]] = []
    window, per_unit = adapter._window, adapter._weight_per_cost
    admit = window.admit

    def admitted(weight: float) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_coro().__name__ == "looper":
            grants.append((time.time() * 1000, weight / per_unit))
        admit(weight)

    window.admit = admitted  # type: ignore[method-assign]
    return grants


def worst_excess(grants: list[tuple[float, float]], rate: float, allowance: float) -> tuple[float, int, int]:
    """The most the grants i..j-1 exceed `allowance + rate * (t_j - t_i)` by, over all i < j
    (grant j itself may take the bucket below zero), and where."""
    prefix = [0.0]
    for _, cost in grants:
        prefix.append(prefix[-1] + cost)
    worst = (float("-inf"), 0, 0)
    for i in range(len(grants)):
        for j in range(i + 1, len(grants)):
            excess = prefix[j] - prefix[i] - allowance - rate * (grants[j][0] - grants[i][0])
            worst = max(worst, (excess, i, j))
    return worst


def burst_calls(
    adapter: CcxtExchange, rng: random.Random, burst: int, placed: list[str]
) -> list[tuple[str, Callable[[], Any]]]:
    """One burst's calls, shuffled: about 130, some 300 weight (3 s of Binance's default pace)."""

    async def create(coid: str, ahead: bool) -> None:
        if ahead:
            adapter.expect_order()
        async with adapter.admit():
            await buy(adapter, coid)
        placed.append(coid)

    async def admitted_only() -> None:
        async with adapter.admit():  # the signal was refused after its admission: no create
            pass

    async def lookup(coid: str) -> None:
        try:
            await adapter.fetch_order(coid, BTC)
        except OrderNotFound:  # the emulator's visibility delay
            pass

    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    calls += [("ticker", lambda s=rng.choice((BTC, ETH)): adapter.fetch_ticker(s)) for _ in range(80)]
    calls += [("open", lambda s=rng.choice((BTC, ETH)): adapter.fetch_open_orders(s)) for _ in range(10)]
    calls += [("lookup", lambda c=coid: lookup(c)) for coid in placed[-10:]]
    calls += [("create", lambda n=n: create(f"tc-refill-{burst}-{n}", n % 3 == 0)) for n in range(CREATES)]
    calls += [("admitted", admitted_only) for _ in range(NO_CREATE)]
    calls += [("balances", adapter.fetch_balances)]
    rng.shuffle(calls)
    return calls


async def test_bursts_of_mixed_requests_keep_the_buckets_pace_and_draw_no_rate_limit_answer():
    rng = random.Random(67)
    async with emulator_running(seed=67, faults=emulator_faults(seed=67), markets=[BTC, ETH]) as running:
        emulator = running.emulator
        async with emulator_adapter(running.url, markets=[BTC, ETH], timeout_ms=CLIENT_TIMEOUT_MS * 10) as adapter:
            adapter._ex.timeout_on_exit = 0
            await adapter.load_markets()
            assert adapter.budget().weight_per_minute == 6000
            throttler = adapter._ex.throttler
            grants = record_grants(adapter)
            served_before = sum(emulator.requests.values())
            placed: list[str] = []
            answered = given_up = 0
            for burst in range(BURSTS):
                await eventually(lambda: not throttler.running, what="the bucket's loop has ended")
                calls = burst_calls(adapter, rng, burst, placed)
                tasks = [asyncio.ensure_future(call()) for _, call in calls]
                readers = [task for task, (kind, _) in zip(tasks, calls, strict=True) if kind == "ticker"]
                await eventually(lambda: len(throttler.queue) >= 50, what="a long queue in the bucket")
                queued = [t for t in readers if not t.done()]
                for task in rng.sample(queued[-40:], GIVEN_UP):
                    task.cancel()
                done, pending = await asyncio.wait(tasks, timeout=60)
                assert not pending, f"{len(pending)} requests still waiting in burst {burst}"
                failures = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
                assert not failures, failures[:3]
                answered += sum(not t.cancelled() for t in done)
                given_up += sum(t.cancelled() for t in done)

            assert emulator.statuses[429] == 0 and emulator.statuses[418] == 0, emulator.record()
            assert emulator.codes[-1003] == 0 and emulator.codes[-1015] == 0, emulator.record()
            assert adapter.rate_limit_state().trips == 0
            assert given_up > 0
            served = sum(emulator.requests.values()) - served_before
            # every answered call but an admission without a create was served (and the order-count
            # questions of a window's first order); nothing was sent without a place of its own
            assert answered - NO_CREATE * BURSTS <= served <= len(grants), (answered, served, len(grants))
            assert len(placed) == CREATES * BURSTS and len(set(placed)) == len(placed)

            config = throttler.config
            largest = max(cost for _, cost in grants)
            allowance = config["capacity"] + largest
            excess, i, j = worst_excess(grants, config["refillRate"], allowance)
            assert excess <= 1e-9, (
                f"grants {i}..{j - 1} cost {excess:.3f} units more than the pace allows over "
                f"{grants[j][0] - grants[i][0]:.1f} ms"
            )
