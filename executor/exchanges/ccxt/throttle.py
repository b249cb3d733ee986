"""Pacing: the venue's order-rate limit and its request-weight window, as far as we can know them.

Four parts, one for each thing the venue counts or tells (ccxt's leaky bucket, held by the last
one, is in `bucket`):

- `VenueClock`: the venue's clock as its answers tell it (Binance's `serverTime` and each order's
  `transactTime`), as bounds on its offset from our monotonic clock, so that its windows can be
  told apart from ours whatever the skew.
- `OrderRate`: at most N order requests in any window of our own clock (a venue whose counting
  we do not know, or Binance before its clock is known), counted when a request really leaves.
- `OrderWindows`: Binance's ORDERS limits as Binance counts them, in fixed windows aligned to the
  epoch of the venue's clock (100 per 10 s: 100 between 12:34:00 and 12:34:10, 100 more from
  12:34:10; 200,000 per day), from our own requests (in flight ones in every window they may land
  in), the venue's `X-MBX-ORDER-COUNT-10S` / `-1D` answers, and what the venue says each window
  holds when asked (`GET /api/v3/rateLimit/order`) before a window's first order.
- `WeightWindow`: what the venue's fixed one-minute request-weight window (on the venue's clock)
  already holds, from our own count, what is on the wire, and the venue's `X-MBX-USED-WEIGHT-1M`
  header; ccxt's leaky bucket (`bucket.cooldown_throttler`) paces requests at the venue's
  announced weight per minute and its queue stands still while the window is full (another
  process on the same key, a restart inside the minute) rather than drawing a 429.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# The share of the venue's weight window the window check lets us fill: the rest is for a
# request the venue counts before we hear of it (another process on the key).
WINDOW_SHARE = 0.95
# Venue and local clocks disagree a little: a header from a request sent this close to a window
# boundary may belong to either window, and a held queue resumes this long after the boundary.
CLOCK_SLACK = 1.0
# How far the venue's order counter may disagree with the clock that stamps `transactTime` (both
# Binance's servers, on one time): at first; each order-count refusal all the same doubles it.
COUNTER_SLACK = 0.02
_MAX_COUNTER_SLACK = 1.0
# How fast our monotonic clock and the venue's may drift apart (100 ppm: far beyond NTP's).
DRIFT = 1e-4
# A request that got no answer may still be counted this long after we gave up on it (Binance
# answers -1007 after 10 s of waiting on its matching engine).
LATE_LANDING = 10.0
# What `OrderWindows._wait` answers when the venue must be asked for a window's count first.
ASK = -1.0
# The longest a queued order admission sleeps before it looks again.
_NAP = 0.25


class VenueClock:
    """The venue's epoch time as bounds: venue time = local `clock()` + an offset in `bounds()`.

    Each answer stamped by the venue (`venue_ms`) was stamped after its request left and before
    its answer arrived, which bounds the offset on both sides; the tightest bounds are kept and
    widened by `DRIFT` as they age. A sample that contradicts them (a clock was stepped) starts over.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._low: tuple[float, float] | None = None  # (offset, local time it was learned)
        self._high: tuple[float, float] | None = None

    @property
    def known(self) -> bool:
        return self._low is not None

    def bounds(self, now: float | None = None) -> tuple[float, float]:
        """The smallest and largest offset (venue minus local, seconds) the answers allow now."""
        assert self._low is not None and self._high is not None, "no answer has told the venue's clock yet"
        now = self.clock() if now is None else now
        (low, low_at), (high, high_at) = self._low, self._high
        return low - DRIFT * abs(now - low_at), high + DRIFT * abs(now - high_at)

    def sample(self, venue_ms: int, sent_at: float, answered_at: float) -> None:
        """An answer stamped `venue_ms` (venue epoch ms) to a request sent and answered at these local times."""
        low = (venue_ms / 1000) - answered_at
        high = (venue_ms + 1) / 1000 - sent_at  # the stamp is truncated to whole milliseconds
        new_low, new_high = (low, answered_at), (high, answered_at)
        if self._low is not None and self._high is not None:
            cur_low, cur_high = self.bounds(answered_at)
            if low <= cur_high and high >= cur_low:  # consistent: keep the tighter side of each
                if cur_low >= low:
                    new_low = self._low
                if cur_high <= high:
                    new_high = self._high
        self._low, self._high = new_low, new_high

    def offset(self) -> float:
        """The offset's best guess (the middle of its bounds)."""
        low, high = self.bounds()
        return (low + high) / 2


@dataclass(eq=False)
class Slot:
    """One order request's admission: reserved, sent, answered (local monotonic times)."""

    sent_at: float | None = None  # None: reserved, not sent yet
    reserved_at: float = 0.0
    answered_at: float | None = None
    reached: bool = True  # the venue answered it (else: no answer, it may still land late)
    venue_at: float | None = None  # the venue's stamp on its answer (`transactTime`), epoch seconds
    rate: Any = field(default=None, repr=False)  # the limiter it was taken from

    def sent(self, at: float) -> None:
        """Its request leaves now (again, if an earlier one inside the admission was answered)."""
        self.sent_at, self.answered_at, self.venue_at = at, None, None


class OrderRate:
    """At most `limit` order requests in any `window` seconds, counted when they really leave.

    A slot is reserved before the request queues (cooldown, ccxt's throttle) and time-stamped by
    `fetch`; an unsent slot counts as "now", so a slow queue can never let a burst through.
    Admissions queue in order: only the first waiter looks at the slots, and it looks again when
    one is released or answered, or when the oldest one leaves the window.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.seconds = window
        # Margin for the venue's clock and a request's time on the wire.
        self.window = window * 1.02 + 0.1
        self.clock = clock
        self._slots: list[Slot] = []
        self._queue = asyncio.Lock()
        self._queued = 0  # admissions in `acquire` (waiting, or about to take their slot)
        self._changed = asyncio.Event()

    def _busy(self, now: float) -> list[Slot]:
        self._slots = [s for s in self._slots if s.sent_at is None or s.sent_at > now - self.window]
        return self._slots

    def _wait(self, now: float, ahead: int = 0) -> float | None:
        """Seconds until one more may go, roughly (None: it may go now), after `ahead` more."""
        busy = self._busy(now)
        if len(busy) + ahead < self.limit:
            return None
        sent = [s.sent_at for s in busy if s.sent_at is not None]
        return min(sent) + self.window - now if sent else _NAP

    def free(self, ahead: int = 0) -> bool:
        """Whether `acquire` would return at once, after `ahead` admissions promised before it:
        nobody queued, and one more may go now (no wait, no question to the venue first)."""
        return self._queued == 0 and self._wait(self.clock(), ahead) is None

    async def acquire(self, before_wait: Callable[[], Awaitable[object]] | None = None) -> Slot:
        """One slot, once the limit has room (asking the venue first where `_wait` says so);
        `before_wait` is awaited once, before the first moment this would suspend."""
        if before_wait is not None and self._queued:
            before_wait, first = None, before_wait
            await first()
        self._queued += 1
        try:
            async with self._queue:
                while True:
                    self._changed.clear()
                    if (wait := self._wait(self.clock())) is None:
                        break
                    if before_wait is not None:
                        before_wait, first = None, before_wait
                        await first()
                        continue  # time has passed: look again
                    if wait == ASK:
                        await self._ask()
                        continue
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), min(max(wait, 0.001), _NAP))
                slot = Slot(reserved_at=self.clock(), rate=self)
                self._slots.append(slot)
                return slot
        finally:
            self._queued -= 1

    async def _ask(self) -> None:
        """Ask the venue what its window holds (only a limiter whose `_wait` says `ASK` can)."""

    def release(self, slot: Slot) -> None:
        if slot.sent_at is None and slot in self._slots:
            self._slots.remove(slot)
            self._changed.set()

    def refused(self) -> None:
        """The venue refused a new order for its count (nothing to learn for a window of our own clock)."""

    def answered(
        self, slot: Slot, at: float, *, reached: bool, venue_ms: Any = None, count: float | None = None
    ) -> None:
        """The venue's answer to the request of `slot` (`reached`: it answered at all), stamped
        `venue_ms` (epoch ms) and saying the window now holds `count` orders; either may be None."""
        slot.answered_at, slot.reached = at, reached
        if isinstance(venue_ms, int) and not isinstance(venue_ms, bool):
            slot.venue_at = venue_ms / 1000
        self._changed.set()


class OrderWindows(OrderRate):
    """At most `limit` order requests in each of the venue's fixed windows of `seconds`, aligned to
    the epoch of the venue's clock (`venue`), as Binance counts its ORDERS limits.

    A window's count is bounded by our own requests that may be in it: every request not answered
    yet (it may land in any window from now on), and every answered one whose stamp (or, without
    one, the time between its sending and its answer, and `LATE_LANDING` after a request nobody
    answered) lies in it, give or take `slack`. Where the venue says its count (`header`,
    Binance's X-MBX-ORDER-COUNT-10S, or its answer to `ask`), that count plus ours it may not hold
    yet (all but those answered before the request it answered left) bounds it too: someone else
    on the account, a restart inside the window; the larger bound holds. Someone else may place
    orders at any time, so before a window's first order the venue is asked what the window
    holds: with `ask` (Binance's `GET /api/v3/rateLimit/order`, which places nothing) when the
    venue answers it, else by that first order itself, alone in flight in the window until its
    answer (or its failure) comes back. A request is admitted only when every window it may land
    in has room; a full window is waited out until the venue's clock has certainly passed its end.
    Until the venue's clock is known, the rule of `OrderRate` holds.
    """

    def __init__(
        self,
        limit: int,
        seconds: float,
        venue: VenueClock,
        header: str | None = None,
        ask: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        super().__init__(limit, seconds, clock=venue.clock)
        self.venue = venue
        self.header = header
        # Whether the venue tells its count (`header`) in order answers: Binance does, until an
        # answer without it says otherwise.
        self.reporting = header is not None
        # Asks the venue for every window's count (and tells each limiter with `heard`); False:
        # it could not (the venue does not serve that, or the request failed).
        self.ask = ask
        self.slack = COUNTER_SLACK
        # Once the venue's clock is known `_slots` holds the requests not answered yet only; the
        # answered ones are here, as their answer times under each window they may be counted in.
        self._answers: dict[int, list[float]] = {}
        # window -> (its count, when the request that told it left, 1 if that request is one of the orders)
        self._reports: dict[int, tuple[float, float, int]] = {}
        self._asking: int | None = None  # the window `_wait` wants `ask` to ask about
        self._unasked: set[int] = set()  # windows `ask` could not tell: their first order asks

    def refused(self) -> None:
        """The venue refused a new order for its count all the same: its counter and its stamps
        disagree more than we allowed for (or someone else on the account sent orders)."""
        self.slack = min(self.slack * 2, _MAX_COUNTER_SLACK)

    def _index(self, t: float) -> int:
        return math.floor(t / self.seconds)

    def _span(self, slot: Slot, low: float, high: float) -> range:
        """The windows an answered request may have been counted in."""
        assert slot.sent_at is not None and slot.answered_at is not None
        first = self._index(slot.sent_at + low - self.slack)
        if slot.venue_at is not None:
            return range(first, self._index(slot.venue_at + self.slack) + 1)
        late = 0.0 if slot.reached else LATE_LANDING
        return range(first, self._index(slot.answered_at + late + high + self.slack) + 1)

    def _pin(self, slot: Slot, low: float, high: float) -> range:
        span = self._span(slot, low, high)
        for k in span:
            bisect.insort(self._answers.setdefault(k, []), slot.answered_at)  # type: ignore[arg-type]
        return span

    def _count(self, k: int) -> float:
        """A count the venue's window `k` certainly does not exceed (as far as anyone tells)."""
        answers = self._answers.get(k, ())
        own = len(self._slots) + len(answers)
        report = self._reports.get(k)
        return own if report is None else max(own, self._bound(k, report))

    def _bound(self, k: int, report: tuple[float, float, int]) -> float:
        """The venue's count as it said it, plus ours it may not hold: every one not answered
        before the request that told it left (that request itself excepted, if it is an order)."""
        count, sent_at, itself = report
        answers = self._answers.get(k, ())
        return count + len(self._slots) + len(answers) - bisect.bisect_left(answers, sent_at) - itself

    def _report(self, k: int, report: tuple[float, float, int]) -> None:
        old = self._reports.get(k)
        if old is None or self._bound(k, report) <= self._bound(k, old):
            self._reports[k] = report

    def _wait(self, now: float, ahead: int = 0) -> float | None:
        if not self.venue.known:
            return super()._wait(now, ahead)
        low, high = self.venue.bounds(now)
        if any(s.answered_at is not None for s in self._slots):  # answered before the clock was known
            for slot in [s for s in self._slots if s.answered_at is not None]:
                self._pin(slot, low, high)
                self._slots.remove(slot)
        first, last = self._index(now + low - self.slack), self._index(now + high + self.slack)
        for old in [k for k in self._answers if k < first]:
            del self._answers[old]
        for old in [k for k in self._reports if k < first]:
            del self._reports[old]
        self._unasked = {k for k in self._unasked if k >= first}
        for k in range(first, last + 1):
            if self._count(k) + 1 + ahead > self.limit:
                # until the venue's clock has certainly passed the end of window k
                return max((k + 1) * self.seconds + self.slack - low - now, 0.001)
            if k in self._reports:
                continue
            if self.ask is not None and k not in self._unasked:
                if first != last:  # an answer now may be either window's: ask once the venue is in one
                    return max((first + 1) * self.seconds + self.slack - low - now, 0.001)
                self._asking = k
                return ASK
            if self.reporting:
                start = k * self.seconds - high - self.slack  # local time the window may have begun
                if ahead or any(s.reserved_at >= start for s in self._slots):
                    return _NAP  # its first request asks the venue for the count: until its answer
        return None

    async def _ask(self) -> None:
        k, self._asking = self._asking, None
        assert self.ask is not None and k is not None
        if not await self.ask() or k not in self._reports:
            self._unasked.add(k)  # its first order asks

    def heard(self, count: float, sent_at: float, answered_at: float) -> None:
        """The venue's count of its current window (`ask`'s answer to a request sent and answered
        at these local times), if only one window can be meant."""
        if not self.venue.known:
            return
        low, high = self.venue.bounds(answered_at)
        first = self._index(sent_at + low - self.slack)
        if first == self._index(answered_at + high + self.slack):
            self._report(first, (count, sent_at, 0))

    def answered(
        self, slot: Slot, at: float, *, reached: bool, venue_ms: Any = None, count: float | None = None
    ) -> None:
        super().answered(slot, at, reached=reached, venue_ms=venue_ms, count=count)
        if reached and count is None and slot.venue_at is not None:
            self.reporting = False  # an order answered without its count: this venue does not say
        if not self.venue.known or slot.sent_at is None:
            return  # counted by `OrderRate`'s rule until the venue's clock is known
        if slot in self._slots:
            self._slots.remove(slot)
        low, high = self.venue.bounds(at)
        span = self._pin(slot, low, high)
        if count is None:
            return
        self.reporting = True
        if len(span) == 1:  # else it may be either window's count
            self._report(span[0], (count, slot.sent_at, 1))


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
