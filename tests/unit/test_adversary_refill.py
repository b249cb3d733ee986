"""Adversary tests of the bucket's refill clock (`bucket.cooldown_throttler`, d6f907f): the refill of a
busy spell runs from the moment its first request was queued (`queued_at`), not from the loop
task's first turn.

The claim: this never lets requests through faster than the bucket's pace, `refillRate` cost units
per ms with at most `capacity` banked. A leaky bucket holding its pace gives, in any span of its own
clock from a to b, at most `capacity + refillRate * (b - a)` plus the cost of the one grant that may
take it below zero (ccxt grants while the tokens are >= 0). At one instant (a == b) that is
`capacity + cost`: with Binance's pace through ccxt (capacity 1 unit, a create 0.2), 6 creates.

What breaks it: the time a request waited before the loop's first turn is credited after that
turn's grants, so the cap (`min(..., capacity)`) no longer takes back what a bucket already full
would have wasted. A spell that starts with tokens left (the last one ended after a late refill)
and whose first turn comes late (the signal's checks on a loaded core, `expect_order`'s place
asked for as the signal arrives) gives its tokens, then the whole wait on top of them at once.
ccxt's own loop credits only time after its grants' instant there, so it stays inside the bound.

The fix: settle the refill before granting, in time order: on the first turn (and, for the second
test, on every turn before the tokens are read), `tokens = min(tokens + (now - last) * refillRate,
capacity)` and `last = now`; then grant while the tokens are >= 0.

The bucket's clock (`time.time` in bucket.py) is replaced by one the test moves: no wall-clock
figure is asserted; the tests wait on the number of turns the loop has made at a standing clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from bucket_clock import CREATE, PACE, BucketClock, settled
from helpers import eventually

from executor.exchanges.base import Cooldown
from executor.exchanges.ccxt import bucket

LATE_MS = 60.0  # how late a turn comes: what a loaded core's other work takes
AT_ONCE = int((PACE["capacity"] + CREATE) / CREATE + 1e-9)  # creates a bucket may give at one instant: 6


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> BucketClock:
    moved = BucketClock()
    monkeypatch.setattr(bucket, "time", SimpleNamespace(time=moved.time, monotonic=time.monotonic))
    return moved


async def _spell_left_with_tokens(clock: BucketClock, throttler: Callable[[float], asyncio.Future[None]]) -> None:
    """A spell that ends with tokens left: one create queued while the bucket is short; the loop's
    refill turn comes LATE_MS late (the cap keeps 1 unit), the create takes 0.2, the queue is empty."""
    granted = throttler(CREATE)
    reads = clock.reads
    await eventually(lambda: clock.reads > reads, interval=0.001)  # the loop's first turn has run
    clock.ms += LATE_MS
    await asyncio.wait_for(granted, timeout=10)


async def test_a_spell_whose_first_turn_comes_late_gives_no_more_than_capacity_at_once(clock: BucketClock):
    """The first spell leaves 0.8 in the bucket. Twelve creates queue at once (a burst of signals);
    the loop's first turn comes LATE_MS after the first of them was queued. At that instant the
    bucket holds at most its capacity: 6 creates may go. d6f907f gives the 0.8 (5 creates), then
    credits the 60 ms waited before the turn (1.2 units, capped at 1.0 only after the grants) and
    gives 6 more: 11 creates at one instant of the bucket's clock, nearly twice its capacity."""
    throttler = bucket.cooldown_throttler(dict(PACE, tokens=-CREATE), asyncio.get_running_loop(), Cooldown())
    config = throttler.config
    await _spell_left_with_tokens(clock, throttler)
    assert config["tokens"] == pytest.approx(PACE["capacity"] - CREATE)
    await eventually(lambda: not throttler.running, interval=0.001)

    burst = [throttler(CREATE) for _ in range(12)]  # queued now; the loop task has not run yet
    clock.ms += LATE_MS  # what runs before the loop's first turn; from here the clock stands still
    given = await settled(clock, burst)
    assert given <= AT_ONCE, (
        f"{given} creates ({given * CREATE:.1f} units) given at one instant of the bucket's clock; "
        f"its pace allows {AT_ONCE} (capacity {PACE['capacity']} + one create): the wait before the "
        f"loop's first turn was credited after that turn's grants, past the cap"
    )


async def test_a_grantees_work_between_two_grants_is_not_credited_past_the_cap(clock: BucketClock):
    """The same flaw inside a spell, in ccxt's loop itself (before d6f907f too): the grant path
    does not settle the refill, so time that passes while the loop yields after a grant (the task
    it woke signs and sends its request first) is credited only at the next refill turn, after the
    grants that followed. Twelve creates queued with the bucket short; the refill turn comes
    LATE_MS late (capped: 1 unit), the first create is given and its task runs LATE_MS of work;
    at that instant the bucket holds at most its capacity, yet 5 creates go from the 0.8 left and
    then 6 more from the 60 ms credited after them: 11 at one instant."""
    throttler = bucket.cooldown_throttler(dict(PACE, tokens=-CREATE), asyncio.get_running_loop(), Cooldown())
    burst = [throttler(CREATE) for _ in range(12)]

    def work(_: asyncio.Future[None]) -> None:
        clock.ms += LATE_MS  # the woken task's turn, before the loop's next one

    burst[0].add_done_callback(work)
    reads = clock.reads
    await eventually(lambda: clock.reads > reads, interval=0.001)  # the loop's first turn has run
    clock.ms += LATE_MS
    await asyncio.wait_for(burst[0], timeout=10)
    moment = clock.ms  # every grant after the first is at this instant of the bucket's clock
    given = await settled(clock, burst) - 1
    assert clock.ms == moment
    assert given <= AT_ONCE, (
        f"{given} creates given at one instant of the bucket's clock; its pace allows {AT_ONCE}: "
        f"time that passed after a grant was credited after the grants that followed, past the cap"
    )
