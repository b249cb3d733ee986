"""The rig of the bucket-loop tests (`bucket.cooldown_throttler`): a wall clock only the test
moves, Binance's pace through ccxt, and a count of what the loop gives at a standing clock."""

from __future__ import annotations

import asyncio

from helpers import eventually

CREATE = 0.2  # a create's cost in ccxt's units on Binance (weight 1)
# Binance through ccxt: 0.02 units per ms (100 weight/s), 1 unit banked at most.
PACE = {"refillRate": 0.02, "capacity": 1.0, "cost": 1.0, "delay": 0.001}


class BucketClock:
    """The bucket's wall clock in ms, moved only by the test; counts how often the bucket read it
    (one read per refill turn of its loop)."""

    def __init__(self) -> None:
        self.ms = 5_000_000.0
        self.reads = 0

    def time(self) -> float:
        self.reads += 1
        return self.ms / 1000

    def seconds(self) -> float:
        return self.ms / 1000


async def settled(clock: BucketClock, grants: list[asyncio.Future[None]], turns: int = 30) -> int:
    """How many of `grants` the bucket gives at the standing clock: wait until its loop has read
    the clock `turns` more times without it moving (nothing more can refill), or all are given;
    count."""
    start = clock.reads
    await eventually(lambda: clock.reads - start >= turns or all(g.done() for g in grants), interval=0.001)
    return sum(g.done() for g in grants)
