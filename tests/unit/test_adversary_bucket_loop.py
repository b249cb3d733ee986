"""Adversary tests of the bucket's loop (`bucket.cooldown_throttler`, 5d8ad93): the refill settled
at the top of every turn, the shared cooldown and the venue weight window's hold.

Two flaws, one test each (both fail on 5d8ad93):

- A wall clock stepped back (NTP, a VM resumed) is debited from the bucket. The loop reads
  `time.time()` and credits `(now - last) * refillRate` with no floor, now on every turn and from
  the moment a request was queued: a step back of D ms takes D * refillRate units away, and the
  queue stands still for D ms of the clock even with a full bucket. ccxt's own loop grants from a
  full bucket without reading the clock, so it lets the same requests out at once. Fix: credit
  `max(0.0, now - last_timestamp) * refillRate` (and still set `last_timestamp = now`), or run the
  bucket on `time.monotonic()`.
- Time in a weight-window hold is refill when the hold begins while the bucket is short. The hold
  is looked at only once the tokens are >= 0, so a hold that starts while the head still waits its
  refill (the answer of the request just given reports a full window) is spent in the short-bucket
  branch, whose turns credit the whole hold (capped at `capacity`); at the window's rollover the
  bucket gives `capacity` plus one create at once. A hold seen with the tokens >= 0 credits
  nothing (the loop resets its clock after each nap), which is what the queue "standing still"
  means. Fix: settle the refill, then look at the window whatever the tokens (move the
  `window.hold` check out of `if tokens >= 0`, before it): while it holds, nap and reset
  `last_timestamp`; grant only when it does not hold and the tokens are >= 0.

One property pins the rest on a clock that only moves forward (a hypothesis script of queued
requests, clock moves, a grantee's work, given-up requests, cooldowns and holds): over any span
of the bucket's clock it gives at most `capacity + refillRate * (span - time in cooldowns) +` the
last request's cost; nothing is given inside a cooldown or while the window holds; the requests
are given in the order they were queued; none given up is given or costs anything; none waits
for ever once the clock moves on. (Run on d6f907f it finds the 11-creates flaw of
test_adversary_refill.py: 3 creates of 1 unit out within 10 ms at 0.05 units per ms.) Its naps
are plain yields (`bucket.asyncio.sleep` replaced), so each example is deterministic and quick.

The bucket's clock (`time.time` in bucket.py) is replaced by one the test moves; no wall-clock
figure is asserted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from bucket_clock import CREATE, PACE, BucketClock, settled
from ccxt.async_support.base import throttler as ccxt_throttler
from helpers import eventually
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.exchanges.base import Cooldown
from executor.exchanges.ccxt import bucket
from executor.exchanges.ccxt.throttle import WeightWindow

STEP_BACK_MS = 60_000.0  # a wall clock stepped back one minute


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> BucketClock:
    moved = BucketClock()
    monkeypatch.setattr(bucket, "time", SimpleNamespace(time=moved.time, monotonic=time.monotonic))
    monkeypatch.setattr(ccxt_throttler, "time", moved.time)  # ccxt's loop: `from time import time`
    return moved


async def _given_after_a_step_back(clock: BucketClock, throttler: Any, where: str) -> int:
    """A full bucket, three creates queued at once; the wall clock steps back a minute `where`
    ("before the first turn": while the loop task waits to run; "between two grants": in the first
    grantee's turn). How many creates the loop gives at the standing clock after the step."""
    burst = [throttler(CREATE) for _ in range(3)]
    if where == "before the first turn":
        clock.ms -= STEP_BACK_MS
    else:

        def step_back(_: asyncio.Future[None]) -> None:
            clock.ms -= STEP_BACK_MS

        burst[0].add_done_callback(step_back)
        await asyncio.wait_for(burst[0], timeout=10)
    return await settled(clock, burst)


@pytest.mark.parametrize("where", ["before the first turn", "between two grants"])
async def test_a_wall_clock_stepped_back_does_not_stall_a_full_bucket(clock: BucketClock, where: str):
    """A full bucket (1 unit) gives three creates (0.6) at once, whatever its clock says. ccxt's
    own loop does; 5d8ad93 debits the step (60 s * 0.02 = 1200 units) at its next turn and holds
    the queue a minute of the new clock: every request of the adapter (cancels too) waits."""
    loop = asyncio.get_running_loop()
    reference = ccxt_throttler.Throttler(dict(PACE, tokens=PACE["capacity"]), loop)
    assert await _given_after_a_step_back(clock, reference, where) == 3  # ccxt's loop

    ours = bucket.cooldown_throttler(dict(PACE, tokens=PACE["capacity"]), loop, Cooldown())
    given = await _given_after_a_step_back(clock, ours, where)
    assert given == 3, (
        f"{given} of 3 creates given from a full bucket after its wall clock stepped back {where} "
        f"(tokens now {ours.config['tokens']:.1f}): the step was debited as a negative refill; "
        f"ccxt's loop gives all 3"
    )


async def test_a_hold_that_begins_while_the_bucket_is_short_is_no_refill(clock: BucketClock):
    """The answer to the create just given reports the venue's weight window full (another process
    on the key): the bucket is 0.2 short, seven creates wait, the window holds them 31 s until its
    rollover. The queue stands still meanwhile, so at the rollover the bucket is as short as when
    the hold began: the head waits its 10 ms of refill, then the pace. 5d8ad93 looks at the window
    only once the tokens are >= 0, so it credits the hold in its short-bucket turns (capped at
    1 unit) and gives 6 creates at the instant the window rolls over."""
    window = WeightWindow(limit=100, seconds=60.0, clock=clock.seconds)
    clock.ms = 60_000.0 * 100_000 + 30_000.0  # 30 s into a venue window
    window.admit(95)  # full: 95 of the 95 the check lets us fill
    throttler = bucket.cooldown_throttler(dict(PACE, tokens=-CREATE), asyncio.get_running_loop(), Cooldown(), window)
    burst = [throttler(CREATE) for _ in range(7)]
    reads = clock.reads
    await eventually(lambda: clock.reads > reads + 1, interval=0.001)  # the loop has turned
    clock.ms += 20_000.0  # inside the hold
    await eventually(lambda: window.holds >= 1, interval=0.001)  # the loop has seen the hold
    clock.ms += 12_000.0  # past the rollover and its slack: the window no longer holds
    assert window.hold(CREATE) == 0
    given = await settled(clock, burst)
    assert given <= 1, (
        f"{given} creates given at the instant the window's hold ended, from a bucket 0.2 short when "
        f"the hold began: the 31 s of the hold were credited as refill"
    )


# -- the property ---------------------------------------------------------------------------------


async def _turn(delay: float = 0.0, result: Any = None) -> Any:
    """The loop's naps in the property: a yield to the other tasks (the test moves the clock)."""
    await asyncio.sleep(0)
    return result


class YieldingCooldown(Cooldown):
    """The shared cooldown on the test's clock; its wait yields until the clock has passed it."""

    async def wait(self) -> None:
        while self.remaining > 0:
            await asyncio.sleep(0)


@dataclass
class Gate:
    """The venue weight window as the loop sees it (`hold`, `admit`), held when the test says; it
    records every grant: (bucket clock ms, weight, cooldown left, held)."""

    clock: BucketClock
    cooldown: Cooldown
    holding: bool = False
    grants: list[tuple[float, float, float, bool]] = field(default_factory=list)

    def hold(self, weight: float) -> float:
        return 0.25 if self.holding else 0.0

    def admit(self, weight: float) -> None:
        self.grants.append((self.clock.ms, weight, self.cooldown.remaining, self.holding))


_MS = st.sampled_from([0.0, 0.5, 4.0, 10.0, 25.0, 60.0]) | st.floats(0, 60, allow_nan=False)
_action = st.one_of(
    # n requests of one cost queued at once, the loop's first look at them `late` ms later
    st.tuples(st.just("queue"), st.integers(1, 8), st.sampled_from([0.2, 0.5, 1.0]), st.sampled_from([0.0, 30.0])),
    st.tuples(st.just("advance"), _MS),
    st.tuples(st.just("work"), _MS),  # the next grantee's work
    st.tuples(st.just("give up"), st.integers(0, 20)),
    st.tuples(st.just("trip"), st.sampled_from([1.0, 20.0, 100.0])),
    st.tuples(st.just("hold"), st.booleans()),
)
# Each action, then how many times the other tasks run before the next one (60: the loop is done
# with everything at the standing clock).
_step = st.tuples(_action, st.sampled_from([1, 2, 5, 60]))


async def _run(steps: list[tuple[tuple, int]], tokens: float, capacity: float, rate: float) -> None:
    clock = BucketClock()
    cooldown = YieldingCooldown(clock=clock.seconds)
    gate = Gate(clock, cooldown)
    config = {"refillRate": rate, "capacity": capacity, "tokens": tokens, "cost": 1.0, "delay": 0.001}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bucket, "time", SimpleNamespace(time=clock.time, monotonic=time.monotonic))
        patch.setattr(bucket, "asyncio", SimpleNamespace(sleep=_turn, ensure_future=asyncio.ensure_future))
        throttler = bucket.cooldown_throttler(config, asyncio.get_running_loop(), cooldown, gate)
        queued: list[tuple[asyncio.Future[None], float]] = []
        order: list[int] = []  # indices of the requests given, in the order given
        blocked: list[tuple[float, float]] = []  # cooldowns on the bucket's clock (ms)
        work = {"ms": 0.0}

        def given(index: int, future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                order.append(index)
                clock.ms += work["ms"]  # the grantee's turn runs before the loop's next one
                work["ms"] = 0.0

        async def turns(n: int) -> None:
            for _ in range(n):
                await asyncio.sleep(0)

        for step, yields in steps:
            kind = step[0]
            if kind == "queue":
                for _ in range(step[1]):
                    future = throttler(step[2])
                    future.add_done_callback(lambda f, i=len(queued): given(i, f))
                    queued.append((future, step[2]))
                clock.ms += step[3]
            elif kind == "advance":
                clock.ms += step[1]
            elif kind == "work":
                work["ms"] = step[1]
            elif kind == "give up":
                waiting = [f for f, _ in queued if not f.done()]
                if waiting:
                    waiting[step[1] % len(waiting)].cancel()
            elif kind == "trip":
                cooldown.trip(step[1] / 1000)
                blocked.append((clock.ms, cooldown.until * 1000))
            elif kind == "hold":
                gate.holding = step[1]
            await turns(yields)  # at least one: the loop looks at what changed before the clock moves

        gate.holding = False
        left = sum(c for f, c in queued if not f.done()) / rate + cooldown.remaining * 1000 + 1000
        for _ in range(int(left / 5) + 10):
            if all(f.done() for f, _ in queued) and not throttler.running:
                break
            await turns(60)
            clock.ms += 5.0
        waiting = [i for i, (f, _) in enumerate(queued) if not f.done()]
        assert not waiting, f"requests {waiting} still wait with the clock long past their refill"
        assert not throttler.running and not throttler.queue
        await turns(3)  # the last done callbacks

    wanted = [i for i, (f, _) in enumerate(queued) if not f.cancelled()]
    assert order == wanted, "the requests were not given in the order they were queued"
    assert len(gate.grants) == len(wanted), "a request given up was given (or cost) all the same"
    for at, _, cooling, held in gate.grants:
        assert cooling == 0, f"a request given at {at} with {cooling:.3f} s of cooldown left"
        assert not held, f"a request given at {at} while the window held"
    assert [w for _, w, _, _ in gate.grants] == [queued[i][1] for i in wanted]

    def cooling_within(a: float, b: float) -> float:
        """How much of [a, b] lies inside a cooldown (the union of the trips' spans)."""
        total, covered = 0.0, a
        for start, end in sorted(blocked):
            start, end = max(start, covered), min(end, b)
            if end > start:
                total, covered = total + end - start, end
        return total

    for i, (t_i, _, _, _) in enumerate(gate.grants):
        spent = 0.0
        for t_j, weight, _, _ in gate.grants[i:]:
            spent += weight
            credit = rate * (t_j - t_i - cooling_within(t_i, t_j))
            assert spent <= capacity + credit + weight + 1e-6, (
                f"{spent:.2f} units given over [{t_i}, {t_j}] ms of the bucket's clock; its pace "
                f"allows {capacity} + {credit:.2f} refilled + the last request's {weight}"
            )


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    steps=st.lists(_step, min_size=1, max_size=40),
    tokens=st.sampled_from([-1.0, -0.2, 0.0, 0.4, 1.0]),
    capacity=st.sampled_from([1.0, 2.0]),
    rate=st.sampled_from([0.02, 0.05]),
)
def test_the_loop_keeps_its_pace_order_cooldown_and_hold_on_a_forward_clock(
    steps: list[tuple[tuple, int]], tokens: float, capacity: float, rate: float
):
    asyncio.run(_run(steps, min(tokens, capacity), capacity, rate))
