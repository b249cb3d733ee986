"""The adapter's leaky bucket (`cooldown_throttler`) refills from the moment a request waits in it.

ccxt's loop starts its refill clock when its task first runs, one loop turn after the request was
queued. On a core that turn comes after the signal's checks (about a millisecond at 5 ms venue
latency, measured in B1), and every create waited that long on top of its refill. The clock here
is the bucket's own (`time.time`, replaced): no wall-clock figure is asserted.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from executor.exchanges.base import Cooldown
from executor.exchanges.ccxt import bucket


@pytest.fixture
def clock(monkeypatch):
    """The bucket's clock, in ms, moved only by the test."""
    now = {"ms": 1_000_000.0}
    monkeypatch.setattr(bucket, "time", SimpleNamespace(time=lambda: now["ms"] / 1000, monotonic=time.monotonic))
    return now


def _bucket(tokens: float) -> tuple[dict, object]:
    """(the bucket's own config, the bucket). Binance's pace through ccxt: 0.02 cost units per ms,
    a create costs 0.2 (10 ms of refill)."""
    config = {"refillRate": 0.02, "capacity": 1.0, "tokens": tokens, "cost": 0.2, "delay": 0.001}
    throttler = bucket.cooldown_throttler(config, asyncio.get_running_loop(), Cooldown())
    return throttler.config, throttler


async def test_time_spent_before_the_buckets_loop_first_runs_counts_as_refill(clock):
    config, throttler = _bucket(tokens=-0.2)
    granted = throttler(0.2)  # queued now; the bucket's loop task has not run yet
    clock["ms"] += 10.5  # the signal's checks run first: the loop's first turn comes 10.5 ms later
    # From here the bucket's clock stands still: only the wait since the request was queued can
    # refill the 0.2 it lacks (ccxt's own loop would wait for ever here).
    await asyncio.wait_for(granted, timeout=10)
    assert config["tokens"] == pytest.approx(-0.2 + 10.5 * 0.02 - 0.2)


async def test_a_request_queued_while_the_bucket_is_short_still_waits_for_its_refill(clock):
    config, throttler = _bucket(tokens=-0.2)
    granted = throttler(0.2)
    clock["ms"] += 5.0  # half the refill it needs
    done, _ = await asyncio.wait({granted}, timeout=0.05)  # the loop turns about 50 times meanwhile
    assert not done and config["tokens"] < 0
    clock["ms"] += 5.5
    await asyncio.wait_for(granted, timeout=10)
    assert config["tokens"] == pytest.approx(-0.2 + 10.5 * 0.02 - 0.2)
