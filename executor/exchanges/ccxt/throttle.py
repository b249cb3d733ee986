"""Pacing: the venue's order-rate limit, its request-weight window, and ccxt's throttle around them.

Three brakes, each for one of the venue's limits:

- `OrderRate`: at most N order requests in any window (Binance ORDERS, 100 per 10 s), counted
  when a request really leaves.
- ccxt's leaky bucket (`cooldown_throttler`), paced by the adapter to a share of the venue's
  announced request weight per minute, so that any 60 s hold at most that share plus one
  request: against a venue announcing 1,200 weight/min, requests queue instead of drawing a 429.
- `WeightWindow`: what the venue's fixed one-minute window (aligned to the epoch, like Binance's)
  already holds, from our own count and the venue's `X-MBX-USED-WEIGHT-1M` header. When the venue
  counts more than we sent (another process on the same key, a restart inside the minute), the
  throttle's queue stands still until the window rolls over rather than drawing a 429.

The throttle's queue also stands still while the adapter's shared cooldown runs (after a 429/418),
so nothing queued slips out inside a Retry-After, and nothing bursts out after it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from executor.exchanges.base import Cooldown

# The share of the venue's weight window the window check lets us fill (the leaky bucket paces
# at a lower share, so this only bites when someone else uses the same budget).
WINDOW_SHARE = 0.95
# Venue and local clocks disagree a little: a header from a request sent this close to a window
# boundary may belong to either window, and a held queue resumes this long after the boundary.
CLOCK_SLACK = 1.0


@dataclass
class Slot:
    sent_at: float | None = None  # None: reserved, not sent yet


class OrderRate:
    """At most `limit` order requests in any `window` seconds, counted when they really leave.

    A slot is reserved before the request queues (cooldown, ccxt's throttle) and time-stamped by
    `fetch`; an unsent slot counts as "now", so a slow queue can never let a burst through.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        # Margin for the venue's clock and a request's time on the wire.
        self.window = window * 1.02 + 0.1
        self.clock = clock
        self._slots: list[Slot] = []

    def _busy(self, now: float) -> list[Slot]:
        self._slots = [s for s in self._slots if s.sent_at is None or s.sent_at > now - self.window]
        return self._slots

    async def acquire(self) -> Slot:
        while True:
            now = self.clock()
            busy = self._busy(now)
            if len(busy) < self.limit:
                slot = Slot()
                self._slots.append(slot)
                return slot
            sent = [s.sent_at for s in busy if s.sent_at is not None]
            wait = min(sent) + self.window - now if sent else 0.01
            await asyncio.sleep(min(max(wait, 0.005), 0.25))

    def release(self, slot: Slot) -> None:
        if slot.sent_at is None and slot in self._slots:
            self._slots.remove(slot)


class WeightWindow:
    """The venue's current request-weight window as far as we can know it.

    Fixed windows of `seconds`, aligned to the epoch of the venue's clock (local wall clock plus
    `offset`). Per window: `own`, the weight we let out in it; `reported`, the largest count the
    venue reported for it (its count only grows inside a window, so the largest is the freshest);
    `inflight`, the weight of requests sent and not answered yet. Everything is forgotten when the
    window rolls over. Weights are in the venue's units (Binance weight).
    """

    def __init__(
        self,
        limit: float | None = None,
        seconds: float = 60.0,
        *,
        share: float = WINDOW_SHARE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit  # per window; None: no limit known, nothing is held
        self.seconds = seconds
        self.share = share
        self.clock = clock
        self.offset = 0.0  # venue clock minus local clock, seconds
        self.inflight = 0.0
        self._index: int | None = None
        self._own = 0.0
        self._reported: float | None = None
        self.holds = 0  # how often the queue was held until a rollover (tests, the log)
        self._holding: int | None = None  # the window index the queue is being held in

    def _venue_now(self, now: float | None = None) -> float:
        return (self.clock() if now is None else now) + self.offset

    def _roll(self, now: float | None = None) -> float:
        t = self._venue_now(now)
        index = math.floor(t / self.seconds)
        if index != self._index:
            self._index, self._own, self._reported = index, 0.0, None
        return t

    @property
    def used(self) -> float:
        """The venue's count for its current window when it reported one, else ours."""
        self._roll()
        return max(self._own, self._reported or 0.0)

    @property
    def reported(self) -> float | None:
        self._roll()
        return self._reported

    def estimate(self) -> float:
        """A count the venue's window certainly does not exceed by much: what it reported plus
        everything of ours still on the wire, or what we sent, whichever is larger."""
        self._roll()
        return max(self._own, (self._reported or 0.0) + self.inflight)

    def admit(self, weight: float) -> None:
        self._roll()
        self._own += weight

    def sent(self, weight: float) -> None:
        self.inflight += weight

    def answered(self, weight: float) -> None:
        self.inflight = max(0.0, self.inflight - weight)

    def report(self, used: float, sent_at: float) -> None:
        """The venue's count (`X-MBX-USED-WEIGHT-1M`) in the answer to a request sent at `sent_at`
        (local wall clock). An answer that crossed a window boundary, or whose request left right
        after one, may be counted in either window: it is ignored (our own count still holds)."""
        t = self._roll()
        start = self._index * self.seconds if self._index is not None else t
        sent = self._venue_now(sent_at)
        if sent < start + CLOCK_SLACK:
            return
        self._reported = max(self._reported or 0.0, float(used))

    def hold(self, weight: float) -> float:
        """Seconds to hold a request of `weight` so that the window does not overflow (0: send)."""
        if not self.limit:
            return 0.0
        t = self._roll()
        estimate = self.estimate()
        if estimate <= 0 or estimate + weight <= self.limit * self.share:
            return 0.0
        assert self._index is not None
        if self._holding != self._index:
            self._holding = self._index
            self.holds += 1
        return (self._index + 1) * self.seconds - t + CLOCK_SLACK


def cooldown_throttler(
    config: dict[str, Any],
    loop: Any,
    cooldown: Cooldown,
    window: WeightWindow | None = None,
    weight_per_cost: Callable[[], float] = lambda: 1.0,
) -> Any:
    """ccxt's leaky-bucket throttle, whose queue stands still while the shared cooldown runs or
    while the venue's weight window is full.

    Nothing queued slips out inside a 429's Retry-After, and nothing bursts out after it: the
    queue resumes at the throttle's pace, in order (a venue bans a burst of requests that all
    arrive inside its back-off, even when the client honoured the Retry-After it had seen).
    The pace itself is `config["refillRate"]` (ccxt cost units per ms), which the adapter sets
    from the venue's announced limit; it is read on every turn, so a change applies at once.
    """
    from ccxt.async_support.base.throttler import Throttler

    class CooldownThrottler(Throttler):
        async def leaky_bucket_loop(self) -> None:
            # ccxt's loop (async_support/base/throttler.py), plus the cooldown and the window check.
            last_timestamp = time.time() * 1000
            while self.running:
                if cooldown.remaining > 0:
                    await cooldown.wait()
                    last_timestamp = time.time() * 1000
                    continue
                future, cost = self.queue[0]
                if future.done():
                    # Its caller gave up (canceled) while it queued: nothing is sent, nothing spent.
                    self.queue.popleft()
                    if len(self.queue) == 0:
                        self.running = False
                    continue
                cost = self.config["cost"] if cost is None else cost
                if self.config["tokens"] >= 0:
                    weight = cost * weight_per_cost()
                    held = window.hold(weight) if window is not None else 0.0
                    if held > 0:
                        await asyncio.sleep(min(held, 0.5))
                        last_timestamp = time.time() * 1000
                        continue
                    self.config["tokens"] -= cost
                    if window is not None:
                        window.admit(weight)
                    future.set_result(None)
                    self.queue.popleft()
                    await asyncio.sleep(0)
                    if len(self.queue) == 0:
                        self.running = False
                else:
                    await asyncio.sleep(self.config["delay"])
                    now = time.time() * 1000
                    elapsed = now - last_timestamp
                    last_timestamp = now
                    refill = elapsed * self.config["refillRate"]
                    self.config["tokens"] = min(self.config["tokens"] + refill, self.config["capacity"])

    return CooldownThrottler(config, loop)
