"""Every request's discipline, and the request budget the adapter reports.

Owns, for the adapter's ccxt client: the one cooldown all requests share after a 429/418, and the
new-orders-only cooldown after an order-count refusal (Binance -1015); the venue's order-rate
limit, held around each order request (`admit`), in Binance's fixed windows on Binance; ccxt's
throttle paced to the venue's announced request weight and held while the venue's weight window
is full (the brakes themselves are in `throttle` and `bucket`); learning those limits from Binance's
`exchangeInfo`, its clock from the `serverTime` and `transactTime` in its answers, and what its
windows hold from its X-MBX-USED-WEIGHT-1M and X-MBX-ORDER-COUNT-10S / -1D headers and, before a
window's first order, from its `GET /api/v3/rateLimit/order` (`_ask_order_counts`); `_request`, where
every call's failure is classified once (`errors.classify`) and trips the right cooldown; and
what a port call costs (`request_cost`) and how much of the budget is in use (`budget`).

Why some ccxt internals are replaced on the instance: ccxt's REST layer ignores Retry-After and
keeps response headers only in a shared attribute that concurrent requests overwrite, so
`handle_errors` is wrapped to attach each error's own headers to it and to read each answer's
used-weight header; ccxt's throttle becomes the same leaky bucket with a queue that stands still
during a cooldown or while the venue's weight window is full; and `fetch` is wrapped to
time-stamp order requests when they really leave and when their answer comes back (for the
order-rate limiter), to count what is on the wire, and to learn the venue's limits and clock.

Request weight. ccxt describes each endpoint's cost in its own units: one unit is `rateLimit` ms
of its pacing. For Binance, ccxt's tables say "cost = 0.2 * weight" (`rateLimit` 50 ms: 20
units/s = 100 weight/s = Binance's default 6,000 weight/min), so one ccxt unit is
`rateLimit * 6000 / 60000` = 5 weight; the adapter reports Binance weight and paces the bucket at
`PACE_SHARE` of the limit the venue announces in `exchangeInfo` (REQUEST_WEIGHT: all of it, as
ccxt paces Binance; the weight window keeps each of the venue's minutes under it). For venues that
announce no weight limit we can read (OKX, Bybit, ...), costs and budget are in ccxt's own units
and the budget is ccxt's own pace for the venue (60,000 / `rateLimit` per min).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from executor.exchanges.base import BeforeWait, Cooldown, NotPlaced, RateLimitState, Rejected, RequestBudget
from executor.exchanges.ccxt.announced import USED_WEIGHT_HEADER, header_number, limit_entries, order_count_header
from executor.exchanges.ccxt.bucket import Grant, cooldown_throttler, units
from executor.exchanges.ccxt.errors import (
    DEFAULT_RETRY_AFTER,
    annotate,
    ccxt_async,
    classify,
    is_order_count_limit,
    scrub,
)
from executor.exchanges.ccxt.throttle import OrderRate, OrderWindows, Slot, VenueClock, WeightWindow

log = logging.getLogger("tradeconsole.exchange.ccxt")

T = TypeVar("T")
# The share of the venue's announced request weight ccxt's throttle paces us to: all of it, as
# ccxt paces Binance itself; the weight window (`throttle.WeightWindow`) keeps each of the venue's
# minutes under its limit, counting what the venue reports and what is on the wire.
PACE_SHARE = 1.0

# Binance spot's limits until the venue's exchangeInfo says otherwise.
_BINANCE_ORDER_LIMITS = ((100, 10.0), (200_000, 86_400.0))
_BINANCE_WEIGHT_LIMIT = (6000, 60.0)
# A create's place in ccxt's bucket asked for ahead of its signal (`expect_order`) and given longer
# ago than this (seconds) has its weight counted again in the venue's window when it is taken.
EXPECTED_FRESH = 1.0

# The order slots the current task holds (owner, slots), and whether the request being made is the
# order request those slots are for: `fetch` stamps them when it really leaves, and again when
# its answer comes back.
_ORDER_SLOTS: contextvars.ContextVar[tuple[int, tuple[Slot, ...]] | None] = contextvars.ContextVar(
    "tc_order_slots", default=None
)
_ORDER_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("tc_order_request", default=False)
_RESPONSE_HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "tc_response_headers", default=None
)
_REQUEST_WEIGHT: contextvars.ContextVar[float] = contextvars.ContextVar("tc_request_weight", default=0.0)
_SENT_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar("tc_sent_at", default=None)
# The bucket's admission asked for with the order slots by `admit`, for the order request inside.
_GRANT: contextvars.ContextVar[Grant | None] = contextvars.ContextVar("tc_grant", default=None)


@contextlib.contextmanager
def _apart() -> Iterator[None]:
    """A request made inside an order's admission that is not its order request."""
    tokens = (_ORDER_SLOTS.set(None), _ORDER_REQUEST.set(False))
    try:
        yield
    finally:
        _ORDER_REQUEST.reset(tokens[1])
        _ORDER_SLOTS.reset(tokens[0])


def _once(callback: BeforeWait) -> BeforeWait:
    """`callback`, awaited at most once however often the result is."""
    called = False

    async def first() -> None:
        nonlocal called
        if not called:
            called = True
            await callback()

    return first


class RequestDiscipline:
    """The request discipline of `CcxtExchange` (a mixin: see the module's doc).

    `_init_discipline` sets it up on a client built by `client.new_client`; every call to the
    venue goes through `_request`, every order request inside `_order_slot`.
    """

    # Set by CcxtExchange before `_init_discipline`.
    name: str
    _ex: Any
    _binance: bool
    _secrets: tuple[str, ...]
    _venue: str

    def _init_discipline(self, order_limits: Sequence[tuple[int, float]] | None) -> None:
        """The cooldowns, the limits (Binance's until the venue says), the wrapped client, the pace.

        `order_limits`: (orders, seconds) pairs; None: Binance's for Binance, none elsewhere.
        """
        ex = self._ex
        self.cooldown = Cooldown()  # every request waits it out (429 on weight, 418 ban)
        self.order_cooldown = Cooldown()  # new orders only (an order-count 429, Binance -1015)
        self._resyncing = False
        self._counts_served = self._binance  # Binance's GET /api/v3/rateLimit/order, until it says otherwise
        self._counts_asked = asyncio.Lock()
        self._ccxt_rate_limit = float(ex.rateLimit or 0)  # ms per ccxt cost unit, as ccxt ships it
        # Binance weight per ccxt cost unit (see the module's doc); elsewhere costs stay ccxt units.
        self._weight_per_cost = self._ccxt_rate_limit * _BINANCE_WEIGHT_LIMIT[0] / 60_000 if self._binance else 1.0
        self._weight_limit: tuple[float, float] | None = _BINANCE_WEIGHT_LIMIT if self._binance else None
        self._window = WeightWindow()
        self._venue_clock = VenueClock()  # from Binance's serverTime and transactTime stamps
        self._install(ex)
        self._create_units = units(ex, self._venue, "create_order")  # a create's cost in the bucket
        self._expected: Grant | None = None  # a create's place asked for ahead (`expect_order`)
        if order_limits is None:
            order_limits = _BINANCE_ORDER_LIMITS if self._binance else ()
        self._set_order_limits(tuple(order_limits))
        self._pace()

    def _set_order_limits(self, limits: tuple[tuple[int, float], ...]) -> None:
        """One limiter per (orders, seconds): Binance's fixed windows on Binance, else any window."""
        self._order_limits = limits
        self._order_rates: list[OrderRate] = [
            OrderWindows(limit, seconds, self._venue_clock, order_count_header(seconds), self._ask_order_counts)
            if self._binance
            else OrderRate(limit, seconds)
            for limit, seconds in limits
        ]

    def _install(self, ex: Any) -> None:
        """Replace the client's throttle, `fetch` and error handlers with ours (see the module's doc)."""
        cooldown, window = self.cooldown, self._window
        if getattr(ex, "tokenBucket", None) and ex.rateLimiterAlgorithm == "leakyBucket":
            ex.throttler = cooldown_throttler(
                ex.tokenBucket, ex.asyncio_loop, cooldown, window, lambda: self._weight_per_cost
            )
        throttle, fetch = ex.throttle, ex.fetch
        handle_errors, handle_status = ex.handle_errors, ex.handle_http_status_code

        async def throttled(cost: Any = None) -> Any:
            await cooldown.wait()
            grant = _GRANT.get() if _ORDER_REQUEST.get() else None
            early = grant.take(id(self), cost) if grant is not None else None
            result = await (throttle(cost) if early is None else early)
            # Let through by the throttle just before a 429 was read: wait out its cooldown too.
            await cooldown.wait()
            if _ORDER_REQUEST.get():
                await self.order_cooldown.wait()
            units = cost if isinstance(cost, int | float) else (ex.tokenBucket or {}).get("cost", 1)
            _REQUEST_WEIGHT.set(float(units) * self._weight_per_cost)
            return result

        async def fetched(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            weight = _REQUEST_WEIGHT.get()
            _REQUEST_WEIGHT.set(0.0)
            held = _ORDER_SLOTS.get()
            slots = held[1] if held is not None and _ORDER_REQUEST.get() else ()
            sent = time.monotonic()
            for slot in slots:
                slot.sent(sent)  # moving it later only makes the limiter stricter
            token = _SENT_AT.set(time.time())
            _RESPONSE_HEADERS.set(None)
            window.sent(weight)
            response = None
            try:
                response = await fetch(url, method, headers, body)
                return response
            finally:
                window.answered(weight)
                _SENT_AT.reset(token)
                self._answered(slots, sent, response)

        def errors(code, reason, url, method, headers, body, response, request_headers, request_body):
            _RESPONSE_HEADERS.set(headers)
            self._read_used_weight(headers)
            try:
                return handle_errors(code, reason, url, method, headers, body, response, request_headers, request_body)
            except Exception as exc:
                annotate(exc, code, headers, body, self._venue)
                raise

        def status(code, reason, url, method, body):
            try:
                return handle_status(code, reason, url, method, body)
            except Exception as exc:
                annotate(exc, code, _RESPONSE_HEADERS.get(), body, self._venue)
                raise

        ex.throttle = throttled
        ex.fetch = fetched
        ex.handle_errors = errors
        ex.handle_http_status_code = status

    def _answered(self, slots: Sequence[Slot], sent: float, response: Any) -> None:
        """What an answer tells: the venue's limits and clock (Binance's exchangeInfo and stamps),
        and, to the order-rate limiters, that the order request of `slots` was answered."""
        now = time.monotonic()
        stamp = None
        if self._binance and isinstance(response, dict):
            if isinstance(response.get("rateLimits"), list):
                self._learn_limits(response["rateLimits"])
            stamp = response.get("transactTime", response.get("serverTime"))
            if isinstance(stamp, int) and not isinstance(stamp, bool):
                self._venue_clock.sample(stamp, sent, now)
                self._window.offset = self._venue_clock.offset() + now - time.time()  # venue minus wall clock
        if not slots:
            return
        headers = _RESPONSE_HEADERS.get()
        for slot in slots:
            rate = slot.rate
            count = header_number(headers, rate.header) if isinstance(rate, OrderWindows) else None
            rate.answered(slot, now, reached=headers is not None, venue_ms=stamp, count=count)

    def _read_used_weight(self, headers: Any) -> None:
        if not self._binance:
            return
        sent_at = _SENT_AT.get()
        used = header_number(headers, USED_WEIGHT_HEADER)
        if used is not None and sent_at is not None:
            self._window.report(used, sent_at)

    def _learn_limits(self, rate_limits: list[Any]) -> None:
        """The venue's ORDERS and REQUEST_WEIGHT limits from Binance's exchangeInfo `rateLimits`."""
        orders: list[tuple[int, float]] = []
        weights: list[tuple[float, float]] = []
        for kind, seconds, limit in limit_entries(rate_limits, "limit"):
            if limit <= 0 or seconds <= 0:
                continue
            if kind == "ORDERS":
                orders.append((int(limit), seconds))
            elif kind == "REQUEST_WEIGHT":
                weights.append((limit, seconds))
        if orders and tuple(orders) != self._order_limits:
            log.info("%s order-rate limit: %s", self.name, ", ".join(f"{n} per {w:g}s" for n, w in orders))
            self._set_order_limits(tuple(orders))
        if weights:
            # The strictest per second, if a venue ever announces several windows.
            weight = min(weights, key=lambda w: w[0] / w[1])
            if weight != self._weight_limit:
                log.info("%s request-weight limit: %g per %gs", self.name, *weight)
                self._weight_limit = weight
                self._pace()

    def _pace(self) -> None:
        """Pace ccxt's bucket to PACE_SHARE of the venue's weight limit, and size the window check."""
        if self._weight_limit is None:
            return
        limit, seconds = self._weight_limit
        self._window.limit, self._window.seconds = limit, seconds
        units_per_ms = PACE_SHARE * limit / (seconds * 1000) / self._weight_per_cost
        ex = self._ex
        ex.rateLimit = 1 / units_per_ms
        for config in (getattr(ex, "tokenBucket", None), getattr(getattr(ex, "throttler", None), "config", None)):
            if isinstance(config, dict):
                config["refillRate"] = units_per_ms
                config["rateLimit"] = ex.rateLimit

    # -- requests -------------------------------------------------------------------------------

    async def _request(self, operation: str, call: Callable[[], Awaitable[T]], *, resync: bool = True) -> T:
        """Make one call of the port method `operation`; any failure leaves as the port's class.
        `resync`: a timestamp refusal has the venue's clock read again (else the next one's does)."""
        await self.cooldown.wait()
        try:
            return await call()
        except Exception as exc:
            error = classify(exc, self._secrets)
            if isinstance(error, NotPlaced) and error.rate_limited:
                wait = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
                if is_order_count_limit(exc):
                    self.order_cooldown.trip(wait)
                    for rate in self._order_rates:
                        rate.refused()
                    log.warning("%s %s: order-count limit, new orders wait %.2fs", self.name, operation, wait)
                else:
                    self.cooldown.trip(wait)
                    log.warning("%s %s: rate limited, every request waits %.2fs", self.name, operation, wait)
            elif resync and isinstance(error, NotPlaced) and isinstance(exc, ccxt_async().InvalidNonce):
                await self._resync_clock()
        raise error from None

    async def _resync_clock(self) -> None:
        """After a timestamp refusal (Binance -1021): learn the venue's clock, so that the retry
        the executor makes carries a timestamp the venue accepts."""
        if not self._binance or self._resyncing:
            return
        self._resyncing = True
        try:
            with _apart():  # not the answer to the order request whose refusal sent us here
                difference = await self._ex.load_time_difference()  # local minus venue, ms
            self._window.offset = -float(difference) / 1000
            log.warning("%s: clock differs from the venue's by %d ms; corrected", self.name, difference)
        except Exception as exc:  # the next request will tell again
            log.warning("%s: could not read the venue's clock (%s)", self.name, scrub(str(exc), self._secrets))
        finally:
            self._resyncing = False

    async def _ask_order_counts(self) -> bool:
        """Ask the venue what each of its order-count windows holds now (Binance's
        `GET /api/v3/rateLimit/order`, weight 40, which places nothing) and tell each limiter of
        that window; False: not told (the venue does not serve it, or the request failed)."""
        if not self._counts_served:
            return False
        async with self._counts_asked:
            sent = time.monotonic()
            try:
                with _apart():
                    answer = await self._request("order_counts", self._ex.privateGetRateLimitOrder, resync=False)
            except Rejected as exc:  # 4xx: this venue (or key) does not serve it; orders ask instead
                self._counts_served = False
                log.info("%s: no order counts to ask for (%s)", self.name, scrub(str(exc), self._secrets))
                return False
            except Exception:  # the window's first order asks
                return False
            answered = time.monotonic()
        told = False
        for kind, seconds, count in limit_entries(answer, "count"):
            for rate in self._order_rates:
                if kind == "ORDERS" and isinstance(rate, OrderWindows) and rate.seconds == seconds:
                    rate.heard(count, sent, answered)
                    told = True
        return told

    @contextlib.asynccontextmanager
    async def _order_slot(self, *, sending: bool = True, before_wait: BeforeWait | None = None) -> AsyncIterator[None]:
        """Hold one admission of the venue's order-rate limit (reusing the caller's unused one).

        `sending`: the order request is made inside; `fetch` stamps the slots when it leaves.
        Else (`admit`) the bucket's admission of the create is asked for at once (`bucket.Grant`).
        """
        held = _ORDER_SLOTS.get()
        reuse = held is not None and held[0] == id(self) and all(s.sent_at is None for s in held[1])
        with contextlib.ExitStack() as undo:  # undone last first
            if not reuse:
                slots = await self._acquire_slots(before_wait)
                undo.callback(lambda: [slot.rate.release(slot) for slot in slots])
                undo.callback(_ORDER_SLOTS.reset, _ORDER_SLOTS.set((id(self), slots)))
                if not sending and (grant := self._expected_grant()) is not None:
                    undo.callback(grant.drop)  # the create never came: withdrawn
                    undo.callback(_GRANT.reset, _GRANT.set(grant))
            if sending:
                undo.callback(_ORDER_REQUEST.reset, _ORDER_REQUEST.set(True))
            yield

    async def _acquire_slots(self, before_wait: BeforeWait | None = None) -> tuple[Slot, ...]:
        """The cooldowns waited out, then one slot of each order-rate limit (all or none);
        `before_wait` awaited once before the first wait (`ExchangePort.admit`)."""
        if before_wait is not None:
            before_wait = _once(before_wait)
            if self.order_cooldown.remaining > 0 or self.cooldown.remaining > 0:
                await before_wait()
        await self.order_cooldown.wait()
        await self.cooldown.wait()
        slots: list[Slot] = []
        try:
            for rate in list(self._order_rates):
                slots.append(await rate.acquire(before_wait))
        except BaseException:
            for slot in slots:
                slot.rate.release(slot)
            raise
        return tuple(slots)

    def admit(self, before_wait: BeforeWait | None = None) -> contextlib.AbstractAsyncContextManager[object]:
        """Wait until one more order may go: the cooldowns, then the venue's order-rate limit. A
        create inside the block uses this admission instead of waiting for another, and the
        place in ccxt's bucket asked for on admission (what the caller journals meanwhile costs
        no time on the way to the venue)."""
        return self._order_slot(sending=False, before_wait=before_wait)

    def expect_order(self) -> None:
        """A create may follow (`ExchangePort.expect_order`): its place in ccxt's bucket is asked
        for now, and the next admission (`admit`) takes it, so that the signal's checks and
        journal write run while the bucket refills. At most one such place is ever held: a
        signal that never becomes an order leaves it to the next create, so however many of
        those arrive, one create's place is the most ever spent on them."""
        if self._expected is None:
            self._expected = Grant.ask(id(self), self._ex, self._create_units)

    def _expected_grant(self) -> Grant | None:
        """The admission's place in the bucket: the one `expect_order` asked for, else one asked
        now (None: no bucket, or no known cost).

        A place given before is checked again as it is taken, because what the adapter learned
        since (the signal's own ticker read may have said the venue's weight window is full)
        would now hold the create: then it is withdrawn and the admission queues for a new one,
        behind the hold. One given more than EXPECTED_FRESH ago has its weight counted again
        (the window it was counted in may be over; counted twice is only stricter)."""
        held, self._expected = self._expected, None
        if held is not None and held.future is not None and held.future.done() and not held.future.cancelled():
            weight = self._create_units * self._weight_per_cost if self._create_units is not None else 0.0
            if self._window.hold(weight) > 0:
                held.drop()
                held = None
            elif not held.fresh(EXPECTED_FRESH):
                self._window.admit(weight)
        return held if held is not None else Grant.ask(id(self), self._ex, self._create_units)

    def _drop_expected(self) -> None:
        if self._expected is not None:
            self._expected.drop()
            self._expected = None

    def admits_now(self, ahead: int = 0) -> bool:
        """Whether `admit` would return at once after `ahead` promised admissions: no cooldown
        running, and every order-rate limit has room now without a wait or a question to the
        venue first (a window's first order asks `GET /api/v3/rateLimit/order`)."""
        if self.order_cooldown.remaining > 0 or self.cooldown.remaining > 0:
            return False
        return all(rate.free(ahead) for rate in self._order_rates)

    # -- the request budget ---------------------------------------------------------------------

    def request_cost(self, operation: str) -> float:
        """The request weight of one call of the port method `operation` on this venue.

        Binance (and Binance-compatible venues): Binance weight, from ccxt's own cost table
        converted at `rateLimit * 6000 / 60000` weight per ccxt unit (5 for ccxt's 50 ms).
        `fetch_open_orders` is per symbol (a call without one asks market by market for up to
        PER_SYMBOL_OPEN_ORDERS_MAX markets); `fetch_orders_since` and `fetch_my_trades` are one
        page (1,000 orders or trades), `fetch_order` one lookup. OKX and Bybit: ccxt's own cost
        units, summed over the requests one call makes. Other venues: 1 ccxt unit per request.
        """
        total = units(self._ex, self._venue, operation)
        if total is None:
            return 1.0 * self._weight_per_cost if self._binance else 1.0
        return round(total * self._weight_per_cost, 6)

    @property
    def weight_per_minute(self) -> float | None:
        if self._weight_limit is not None:
            limit, seconds = self._weight_limit
            return limit * 60 / seconds
        return 60_000 / self._ccxt_rate_limit if self._ccxt_rate_limit > 0 else None

    def budget(self) -> RequestBudget:
        """`weight_per_minute`: Binance's announced REQUEST_WEIGHT (exchangeInfo, read by
        `load_markets`; Binance's 6,000 until then), elsewhere ccxt's own pace in its units.
        `used`: the venue's count in its current minute from the freshest `X-MBX-USED-WEIGHT-1M`
        header, or what we let out in that minute if that is more (or all there is), forgotten
        when the minute rolls over. `queued`: requests waiting in ccxt's throttle right now."""
        queue = getattr(getattr(self._ex, "throttler", None), "queue", ())
        return RequestBudget(weight_per_minute=self.weight_per_minute, used=self._window.used, queued=len(queue))

    def rate_limit_state(self) -> RateLimitState:
        queue = getattr(getattr(self._ex, "throttler", None), "queue", ())
        return RateLimitState(
            cooldown_remaining=self.cooldown.remaining,
            trips=self.cooldown.trips + self.order_cooldown.trips,
            throttled=len(queue) > 0 or self.order_cooldown.remaining > 0,
        )
