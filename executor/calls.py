"""How the executor asks the venue: SPEC 6's retry policy, the ticker cache, the request budget.

`_retrying` is the policy: exponential backoff with jitter over `max_retries`, where an attempt
the venue's rate limit refused never counts; each retry is published as `RetryScheduled`.
`_attempts` runs a call under it, its first attempt before any of tenacity's machinery is built
(nearly every call succeeds at once; one that fails is tenacity's first outcome). Placement runs
creates and lookups under it; `_call` runs a read (or a cancel: idempotent) under it, retried on
every error class but `Rejected`. `ticker` keeps each market's ticker for a
moment, so a signal, a balance valuation and the market view asking at once cost one request.
`budget_interval` spaces periodic work (tracking, balances, fees, the market view) so that it
uses at most a share of the venue's request weight.

A mixin of `TradeExecutor` (`executor.executor` says why the executor's jobs are mixins): it
reads `exchange`, `execution_config`, `bus` and `clock`, and is the only user of `_tickers`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity import wait_exponential_jitter as _jitter

from executor.events import RetryScheduled
from executor.exchanges.base import MaybePlaced, NotPlaced, Ticker
from executor.models import Order

log = logging.getLogger("tradeconsole.executor")

T = TypeVar("T")

RATE_LIMITED_ATTEMPTS = 50  # 429s in a row before a create gives up (they never count as retries)


class VenueCalls:
    """Requests to the venue under the retry policy, the ticker cache and the budget arithmetic."""

    def _log_retry(self, operation: str, order: Order | None = None, max_attempts: int | None = None):
        max_attempts = max_attempts or self.execution_config.max_retries + 1

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            reason = f"{type(exc).__name__}: {exc}" if exc else "retry"
            limited = isinstance(exc, NotPlaced) and exc.rate_limited
            attempt = state.attempt_number
            log.warning(
                "%s %s attempt %d/%d failed (%s); retrying in %.2fs",
                operation,
                order.client_order_id if order else "",
                attempt,
                max_attempts,
                reason,
                delay,
            )
            self.bus.publish(
                RetryScheduled(
                    operation=operation,
                    attempt=attempt,
                    max_attempts=max_attempts,
                    delay=delay,
                    reason=f"rate limited, not counted as a retry: {reason}" if limited else reason,
                    client_order_id=order.client_order_id if order else None,
                    signal_id=order.signal_id if order else None,
                    ts=self.clock(),
                )
            )

        return before_sleep

    def _wait(self, delay: float | None = None):
        delay = self.execution_config.retry_delay_seconds if delay is None else delay
        return _jitter(multiplier=delay, max=delay * 32, jitter=delay / 2)

    def _retrying(
        self,
        operation: str,
        retry_on,
        *,
        order: Order | None = None,
        reraise: bool = False,
        attempts: int | None = None,
        wait_strategy=None,
        counts: dict[str, int] | None = None,
    ) -> tuple[AsyncRetrying, dict[str, int]]:
        """SPEC 6's retry policy: exponential backoff with jitter over `max_retries`, where an
        attempt the venue's rate limit refused never counts (it never reached the matching engine;
        the adapter's shared cooldown holds the next one until the venue allows it). `counts`
        (counted and rate-limited attempts) is filled in as the attempts fail."""
        allowed = attempts if attempts is not None else self.execution_config.max_retries + 1
        counts = counts if counts is not None else {"counted": 0, "limited": 0}
        base_wait = wait_strategy or self._wait()

        def limited(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return isinstance(exc, NotPlaced) and exc.rate_limited

        def stop(state: RetryCallState) -> bool:
            if limited(state):
                counts["limited"] += 1
                return counts["limited"] >= RATE_LIMITED_ATTEMPTS
            counts["counted"] += 1
            return counts["counted"] >= allowed

        def wait(state: RetryCallState) -> float:
            return 0.0 if limited(state) else base_wait(state)

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(retry_on),
            reraise=reraise,
            before_sleep=self._log_retry(operation, order, allowed),
        )
        return retrying, counts

    async def _attempts(
        self,
        operation: str,
        attempt: Callable[[], Awaitable[T]],
        retry_on,
        *,
        order: Order | None = None,
        reraise: bool = False,
        counts: dict[str, int] | None = None,
    ) -> T:
        """`attempt()` under the retry policy (`_retrying`), exactly as tenacity runs it; only the
        first attempt runs before tenacity's machinery is built, since nearly every call succeeds
        at once. A first attempt that fails with `retry_on` is handed to tenacity as its first
        outcome: counted, logged and waited for as any failed attempt is."""
        try:
            return await attempt()
        except retry_on as exc:
            failed: BaseException | None = exc
        retrying, _ = self._retrying(operation, retry_on, order=order, reraise=reraise, counts=counts)
        async for state in retrying:
            with state:
                if failed is not None:
                    first, failed = failed, None
                    raise first
                return await attempt()
        raise AssertionError("unreachable")

    async def _call(self, operation: str, fn, *args, **kwargs):
        """A read (or a cancel: idempotent), retried on every error class but `Rejected`."""
        return await self._attempts(operation, lambda: fn(*args, **kwargs), (NotPlaced, MaybePlaced), reraise=True)

    async def ticker(self, symbol: str, max_age: float = 1.0) -> Ticker:
        cached = self._tickers.get(symbol)
        now = time.monotonic()
        if cached and now - cached[0] <= max_age:
            return cached[1]
        ticker = await self._call("fetch_ticker", self.exchange.fetch_ticker, symbol)
        self._tickers[symbol] = (now, ticker)
        return ticker

    def budget_interval(self, operation: str, share: float, floor: float, count: int = 1) -> float:
        """Seconds between rounds of `count` requests of `operation` so they use at most `share`
        of the venue's request weight (never less than `floor`)."""
        limit = self.exchange.budget().weight_per_minute
        if not limit:
            return floor
        cost = self.exchange.request_cost(operation) * max(count, 1)
        return max(floor, cost * 60.0 / (limit * share))
