"""The emulator's rate limits as Binance enforces them: request weight, order count, 429s and bans.

Owns `RateLimits`: the request-weight window (per minute), the order-count windows (per 10 s and
per day), all fixed windows aligned to the epoch; the back-off a request-weight 429 sets and the
418 ban that requests inside it earn; and Binance's *unfilled* order count, where an order's
first fill gives its count back. It answers with `BinanceError`s and header values; the request
pipeline in `app` decides when to ask.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from executor.venue.emulator.wire import BinanceError
from executor.venue.endpoints import CANCEL_REPLACE
from executor.venue.engine import PaperEngine
from executor.venue.faults import Limits

_WEIGHT_MSG = (
    "Too much request weight used; current limit is {} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)


@dataclass
class _Window:
    """A Binance limit counter: fixed windows aligned to the epoch, reset at each boundary."""

    limit: int
    seconds: float
    start: float = 0.0
    used: int = 0

    def roll(self, now: float) -> None:
        start = math.floor(now / self.seconds) * self.seconds
        if start != self.start:
            self.start, self.used = start, 0

    def full(self, now: float, cost: int) -> bool:
        self.roll(now)
        return self.limit > 0 and self.used + cost > self.limit

    def reset_in(self, now: float) -> float:
        return max(0.0, self.start + self.seconds - now)

    def give_back(self, now: float) -> None:
        self.roll(now)
        self.used = max(0, self.used - 1)


def seconds_header(value: float) -> str:
    """Retry-After as Binance sends it: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(value - 1e-9)))


class RateLimits:
    """One venue's limits (`Limits`) and everything counted against them."""

    def __init__(self, limits: Limits, engine: PaperEngine) -> None:
        self.limits = limits
        self.engine = engine
        self.weight = _Window(limits.weight_per_minute, 60.0)
        self.orders_10s = _Window(limits.orders_per_10s, 10.0)
        self.orders_day = _Window(limits.orders_per_day, 86_400.0)
        # Monotonic end of the last request-weight 429's Retry-After: requests inside it are the
        # violations that earn a 418. Order-count 429s (-1015) never set it.
        self._weight_backoff_until = 0.0
        self._banned_until = 0.0
        self._violations = 0
        # Unfilled order count: orders counted in the windows and not filled yet, and the engine's
        # trade id up to which fills were given back.
        self._unfilled: set[int] = set()
        past = engine.trades_after(0)
        self._fills_seen = past[-1].id if past else 0

    def ban(self, seconds: float) -> None:
        """Answer everything with 418 for `seconds`, as after repeated 429s."""
        self._banned_until = time.monotonic() + seconds

    def weight_header(self) -> dict[str, str]:
        self.weight.roll(time.time())
        return {"X-MBX-USED-WEIGHT-1M": str(self.weight.used)}

    def gate(self, weight: int) -> None:
        """Bans, the request-weight 429 back-off and the request-weight limit, before anything else.

        Only requests sent inside a request-weight 429's Retry-After count towards the 418, as on
        Binance: an exhausted order count refuses new orders and nothing else.
        """
        now = time.monotonic()
        limits = self.limits
        if now < self._banned_until:
            raise self._banned(now)
        if now < self._weight_backoff_until:
            self._violations += 1
            if limits.ban_after and self._violations >= limits.ban_after:
                self._violations = 0
                self._banned_until = now + limits.ban_seconds
                raise self._banned(now)
            raise self.weight_429(self._weight_backoff_until - now)
        self._violations = 0
        wall = time.time()
        if self.weight.full(wall, weight):
            raise self.weight_429(self.weight.reset_in(wall))
        self.weight.used += weight

    def count_order(self, endpoint: str, params: Mapping[str, str], headers: dict[str, str]) -> BinanceError | None:
        """Take one new order from the order-count windows; their counts go into `headers`.

        An exhausted window is a 429 -1015 with the window's Retry-After. A cancel-replace sent with
        `orderRateLimitExceededMode=CANCEL_ONLY` still cancels: the refusal is returned for its
        new-order leg instead of raised.
        """
        cancel_only = False
        if endpoint == CANCEL_REPLACE:
            mode = params.get("orderRateLimitExceededMode") or "DO_NOTHING"
            if mode not in ("DO_NOTHING", "CANCEL_ONLY"):
                raise BinanceError(400, -1100, "Illegal characters found in parameter 'orderRateLimitExceededMode'.")
            cancel_only = mode == "CANCEL_ONLY"
        wall = time.time()
        self._give_back_filled(wall)
        refusal = None
        for window, per in ((self.orders_10s, "10 SECOND"), (self.orders_day, "1 DAY")):
            if window.full(wall, 1):
                refusal = BinanceError(
                    429,
                    -1015,
                    f"Too many new orders; current limit is {window.limit} orders per {per}.",
                    headers={"Retry-After": seconds_header(window.reset_in(wall))},
                )
                break
        else:
            self.orders_10s.used += 1
            self.orders_day.used += 1
        self._order_headers(headers)
        if refusal is not None and not cancel_only:
            raise refusal
        return refusal

    def order_counts(self) -> list[dict[str, object]]:
        """GET /api/v3/rateLimit/order: each order-count window's limit and what it holds now."""
        wall = time.time()
        self._give_back_filled(wall)
        out: list[dict[str, object]] = []
        for window, interval, num in ((self.orders_10s, "SECOND", 10), (self.orders_day, "DAY", 1)):
            if window.limit > 0:
                window.roll(wall)
                entry = {"rateLimitType": "ORDERS", "interval": interval, "intervalNum": num, "limit": window.limit}
                out.append({**entry, "count": window.used})
        return out

    def await_fills(self, order_ids: list[int]) -> None:
        """Orders just counted whose first fill will give the count back (the ones that can still fill,
        or did already: an IOC or FOK order that expired untouched never will)."""
        for order_id in order_ids:
            order = self.engine.get_order(exchange_order_id=order_id)
            if order.is_open or order.filled:
                self._unfilled.add(order_id)

    def never_fills(self, order_id: int) -> None:
        """A counted order ended unfilled (canceled): it stays counted, and can never fill any more."""
        self._unfilled.discard(order_id)

    def uncount(self, headers: dict[str, str]) -> None:
        """Give back the count a refused new order took (Binance counts successful placements)."""
        wall = time.time()
        for window in (self.orders_10s, self.orders_day):
            window.give_back(wall)
        self._order_headers(headers)

    def _order_headers(self, headers: dict[str, str]) -> None:
        headers["X-MBX-ORDER-COUNT-10S"] = str(self.orders_10s.used)
        headers["X-MBX-ORDER-COUNT-1D"] = str(self.orders_day.used)

    def _give_back_filled(self, wall: float) -> None:
        """Binance's unfilled order count: each counted order's first fill since the last look gives
        one back to the current 10 s and day windows (never below zero)."""
        fills = self.engine.trades_after(self._fills_seen)
        if not fills:
            return
        self._fills_seen = fills[-1].id
        unfilled = self._unfilled
        for trade in fills:
            if trade.order_id in unfilled:
                unfilled.discard(trade.order_id)
                for window in (self.orders_10s, self.orders_day):
                    window.give_back(wall)

    def weight_429(self, retry_after: float) -> BinanceError:
        retry_after = max(retry_after, 0.001)
        self._weight_backoff_until = max(self._weight_backoff_until, time.monotonic() + retry_after)
        return BinanceError(
            429, -1003, _WEIGHT_MSG.format(self.weight.limit), headers={"Retry-After": seconds_header(retry_after)}
        )

    def _banned(self, now: float) -> BinanceError:
        left = self._banned_until - now
        until_ms = int((time.time() + left) * 1000)
        return BinanceError(
            418,
            -1003,
            f"Way too much request weight used; IP banned until {until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            headers={"Retry-After": seconds_header(left)},
        )
