"""ccxt's leaky bucket: what a port call costs in it, its queue held around the venue's limits, and
an order request's place in it asked for ahead.

Owns, for `discipline`: the ccxt endpoints each port call requests (`ENDPOINTS`) and their cost in
ccxt's units (`units`); `cooldown_throttler`, ccxt's leaky bucket whose queue stands still while
the shared cooldown runs or while the venue's weight window (`throttle.WeightWindow`) is full; and
`Grant`, the bucket's admission of an order request asked for as soon as the order-rate limit
admitted it (`discipline`'s `admit`), so that the journal write the executor makes before sending
it runs while the bucket refills instead of before the request starts to wait: the same bucket,
the same cost, taken once, by that request only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from executor.exchanges.base import Cooldown
from executor.exchanges.ccxt.history import BINANCE_PAGE
from executor.exchanges.ccxt.throttle import WeightWindow

# One port call -> the ccxt endpoints it requests once each: (api, method, path, params for the cost).
Endpoint = tuple[str, str, str, dict[str, Any]]


def _on(method: str, *paths: str, params: dict[str, Any] | None = None) -> tuple[Endpoint, ...]:
    """The endpoints one port call requests: public GETs (`method` "public"), else private ones."""
    api, verb = ("public", "get") if method == "public" else ("private", method)
    return tuple((api, verb, path, params or {}) for path in paths)


_S = {"symbol": "BTCUSDT"}
_PAGE = {**_S, "limit": BINANCE_PAGE}
ENDPOINTS: dict[str, dict[str, tuple[Endpoint, ...]]] = {
    "binance": {
        "load_markets": _on("public", "exchangeInfo"),
        "fetch_ticker": _on("public", "ticker/24hr", params=_S),
        "fetch_balances": _on("get", "account"),
        "create_order": _on("post", "order", params=_S),
        "fetch_order": _on("get", "order", params=_S),
        "cancel_order": _on("delete", "order", params=_S),
        "fetch_open_orders": _on("get", "openOrders", params=_S),
        "fetch_orders_since": _on("get", "allOrders", params=_PAGE),
        "fetch_my_trades": _on("get", "myTrades", params=_PAGE),
    },
    "okx": {
        "load_markets": _on("public", "public/instruments"),
        "fetch_ticker": _on("public", "market/ticker"),
        "fetch_balances": _on("get", "account/balance"),
        # ccxt's okx sends a single create through the batch endpoint (options["createOrder"])
        "create_order": _on("post", "trade/batch-orders"),
        "fetch_order": _on("get", "trade/order"),
        "cancel_order": _on("post", "trade/cancel-order"),
        "fetch_open_orders": _on("get", "trade/orders-pending"),
        "fetch_orders_since": _on("get", "trade/orders-pending", "trade/orders-history"),
        "fetch_my_trades": _on("get", "trade/fills"),
    },
    "bybit": {
        "load_markets": _on("public", "v5/market/instruments-info"),
        "fetch_ticker": _on("public", "v5/market/tickers"),
        "fetch_balances": _on("get", "v5/account/wallet-balance"),
        "create_order": _on("post", "v5/order/create"),
        # open orders first, then the history: at most both
        "fetch_order": _on("get", "v5/order/realtime", "v5/order/history"),
        "cancel_order": _on("post", "v5/order/cancel"),
        "fetch_open_orders": _on("get", "v5/order/realtime"),
        "fetch_orders_since": _on("get", "v5/order/realtime", "v5/order/history"),
        "fetch_my_trades": _on("get", "v5/execution/list"),
    },
}


def units(ex: Any, venue: str, operation: str) -> float | None:
    """What one call of the port method `operation` costs in ccxt's units (ccxt's own cost table,
    summed over the requests it makes); None for a call the table does not know on `venue`."""
    endpoints = ENDPOINTS.get(venue, {}).get(operation)
    if not endpoints:
        return None
    total = 0.0
    for api, method, path, params in endpoints:
        config = ((ex.api or {}).get(api) or {}).get(method, {}).get(path)
        total += float(ex.calculate_rate_limiter_cost(api, method, path, params, config) if config else 1)
    return total


class Grant:
    """The bucket's admission of one order request, asked for ahead (`ask`): its request takes it
    (`take`) instead of queueing then; never taken, it is withdrawn (`drop`), and a withdrawn
    admission the bucket has not given yet costs nothing (the loop skips a done future)."""

    __slots__ = ("asked_at", "cost", "future", "owner")

    def __init__(self, owner: int, cost: float, future: asyncio.Future[Any]) -> None:
        self.owner, self.cost, self.future = owner, cost, future
        self.asked_at = time.monotonic()

    @classmethod
    def ask(cls, owner: int, ex: Any, cost: float | None) -> Grant | None:
        """Queue an admission of `cost` in `ex`'s bucket now (None: no bucket, or no known cost)."""
        throttler = getattr(ex, "throttler", None)
        if cost is None or throttler is None or not ex.enableRateLimit:
            return None
        return cls(owner, cost, asyncio.ensure_future(throttler(cost)))

    def take(self, owner: int, cost: Any) -> asyncio.Future[Any] | None:
        """The admission, once, for the request of `owner` costing what was asked; else None."""
        if self.future is None or owner != self.owner or cost != self.cost:
            return None
        future, self.future = self.future, None
        return future

    def fresh(self, within: float) -> bool:
        """Asked no more than `within` seconds ago and not taken or withdrawn yet."""
        return self.future is not None and time.monotonic() - self.asked_at <= within

    def drop(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.cancel()
        self.future = None


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
        # When the first request of a busy spell was queued: the refill runs from then. ccxt's
        # loop starts its clock when its task first runs, a loop turn later; on a core that turn
        # comes after the signal's checks (about a millisecond), which every create then waited
        # on top of its refill.
        queued_at: float | None = None

        def __call__(self, cost: Any = None) -> asyncio.Future[Any]:
            if not self.running:
                self.queued_at = time.time() * 1000
            return super().__call__(cost)

        async def leaky_bucket_loop(self) -> None:
            # ccxt's loop (async_support/base/throttler.py), plus the cooldown and the window check.
            last_timestamp = self.queued_at if self.queued_at is not None else time.time() * 1000
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
                # The refill since the last turn is settled before anything is given, so that the
                # cap applies in time order: time that passed while the bucket was full (a late
                # first turn, a grantee's work between two grants) is never credited after grants
                # that came before it. (ccxt's loop credits it only after a wait; an adversary
                # review measured 11 creates at one instant where the pace allows 6.) A wall clock
                # stepped back refills nothing, and takes nothing away either.
                now = time.time() * 1000
                refill = max(0.0, now - last_timestamp) * self.config["refillRate"]
                last_timestamp = now
                self.config["tokens"] = min(self.config["tokens"] + refill, self.config["capacity"])
                # The window is asked whether the bucket is short or not: a hold is never refill,
                # however it began (one that began while the bucket was short once let the whole
                # queue out at the window's rollover).
                weight = cost * weight_per_cost()
                held = window.hold(weight) if window is not None else 0.0
                if held > 0:
                    await asyncio.sleep(min(held, 0.5))
                    last_timestamp = time.time() * 1000
                    continue
                if self.config["tokens"] >= 0:
                    self.config["tokens"] -= cost
                    if window is not None:
                        window.admit(weight)
                    future.set_result(None)
                    self.queue.popleft()
                    await asyncio.sleep(0)
                    if len(self.queue) == 0:
                        self.running = False
                else:
                    await asyncio.sleep(self.config["delay"])  # refilled at the next turn's top

    return CooldownThrottler(config, loop)
