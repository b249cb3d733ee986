"""The exchange port: the one async interface the executor trades through, and its error taxonomy.

Adapters (paper, ccxt) classify every failure once, here, into three classes, and the executor
decides on the class only, never on message text:

- `NotPlaced`   the request certainly did not take effect: retry after backoff (or the cooldown).
- `Rejected`    the venue said no and will say no again: final.
- `MaybePlaced` nobody knows whether it took effect: resolve by looking the order up.

`OrderNotFound` and `DuplicateOrder` are definitive answers about one client order id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TypedDict, Unpack

from executor.models import Balance, ExchangeMode, MarketInfo, OrderStatus, OrderType, Side

# What `ExchangePort.admit` awaits before it would first wait (see there).
BeforeWait = Callable[[], Awaitable[object]]


class ExchangeError(Exception):
    """Base of the taxonomy. Messages never carry credentials."""


class NotPlaced(ExchangeError):
    def __init__(self, message: str, *, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class Rejected(ExchangeError):
    pass


class MaybePlaced(ExchangeError):
    pass


class OrderNotFound(Rejected):
    """The venue does not know this order (now). Across a visibility delay this is not yet 'absent'."""


class DuplicateOrder(Rejected):
    """The client order id is already in use on the venue: the order exists."""


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    ts: float

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    def touch(self, side: Side) -> Decimal:
        """The price a taker of `side` pays first."""
        return self.ask if side is Side.BUY else self.bid


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An order as the venue reports it. `status` uses our names (open, filled, canceled, ...)."""

    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    status: OrderStatus
    # None: the answer did not say (a bare cancel acknowledgement). Never read as zero: a venue's
    # answer is a fact only for what it states.
    filled: Decimal | None
    average: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    ts: datetime | None = None  # last update as the venue reports it
    created: datetime | None = None  # when the venue accepted it


class NewOrder(TypedDict):
    """What a create request asks the venue for: `ExchangePort.create_order`'s keywords."""

    client_order_id: str  # ours: deterministic from the signal id and the replacement number
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal  # base quantity, on the market's grid
    price: Decimal | None  # on the market's grid; None for a market order


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: str
    exchange_order_id: str | None
    client_order_id: str | None
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    ts: datetime | None = None


@dataclass
class Cooldown:
    """One cooldown shared by every request of an adapter after a 429/418 (Retry-After honoured)."""

    until: float = 0.0
    trips: int = 0
    clock: object = field(default=time.monotonic, repr=False)

    def trip(self, seconds: float) -> None:
        self.trips += 1
        self.until = max(self.until, self.clock() + max(seconds, 0.0))  # type: ignore[operator]

    @property
    def remaining(self) -> float:
        return max(0.0, self.until - self.clock())  # type: ignore[operator]

    async def wait(self) -> None:
        while (left := self.remaining) > 0:
            await asyncio.sleep(left)


@dataclass(frozen=True, slots=True)
class RequestBudget:
    """The venue's announced request-weight limit and how much of it is in use, as the adapter knows.

    `used` is the venue's own count for its current window when it reports one (Binance's
    `X-MBX-USED-WEIGHT-1M`), else the adapter's count of what it sent in the last minute.
    """

    weight_per_minute: float | None = None  # None: the venue announced no limit (or the paper exchange)
    used: float = 0.0
    queued: int = 0  # requests waiting in the throttle right now

    @property
    def headroom(self) -> float:
        """The share of the limit still free in this window, 0..1 (1 when there is no limit)."""
        if not self.weight_per_minute:
            return 1.0
        return max(0.0, 1.0 - self.used / self.weight_per_minute)

    def affordable(self, cost: float, share: float = 1.0) -> int:
        """How many requests of `cost` fit into `share` of what is left in this window."""
        if not self.weight_per_minute:
            return 1_000_000
        left = self.weight_per_minute * share - self.used
        return max(0, int(left // max(cost, 1e-9)))


@dataclass(frozen=True, slots=True)
class RateLimitState:
    cooldown_remaining: float = 0.0
    trips: int = 0
    throttled: bool = False

    def describe(self) -> str:
        if self.cooldown_remaining > 0:
            return f"cooldown {self.cooldown_remaining:.0f}s"
        return "ok"


class ExchangePort(ABC):
    """What the executor needs from a venue. Amounts and prices are Decimals on the venue's grid."""

    name: str = "exchange"
    mode: ExchangeMode = ExchangeMode.LIVE
    cooldown: Cooldown

    @abstractmethod
    async def load_markets(self) -> dict[str, MarketInfo]: ...

    @abstractmethod
    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    @abstractmethod
    async def fetch_balances(self) -> dict[str, Balance]: ...

    @abstractmethod
    async def create_order(self, **order: Unpack[NewOrder]) -> ExchangeOrder: ...

    @abstractmethod
    async def fetch_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """Raises `OrderNotFound` when the venue does not know the client order id."""

    @abstractmethod
    async def cancel_order(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        """Raises `OrderNotFound` when there is nothing to cancel (unknown, or already final)."""

    @abstractmethod
    async def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]: ...

    @abstractmethod
    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> list[Trade]:
        """Our fills in `symbol` since `since`, oldest first, every page of them."""

    @abstractmethod
    async def fetch_orders_since(self, symbol: str, since: datetime) -> list[ExchangeOrder]:
        """Every order in `symbol` (open and ended) created at or after `since`, oldest first.

        The bulk answer reconciliation relies on (Binance `allOrders` with `startTime`, 1,000 per
        page); the adapter pages until it has them all.
        """

    def admit(self, before_wait: BeforeWait | None = None) -> contextlib.AbstractAsyncContextManager[object]:
        """Wait until one more order may go (the venue's order-rate limit, any cooldown); the
        create request sent inside the block uses that admission. The executor journals
        `submitting` inside it, right before the request, so an order still waiting here after a
        crash is honestly `new`: certainly not sent.

        `before_wait`: awaited once, before the first moment the admission would suspend (and
        not at all when it is given at once). The executor writes an intent it meant to write
        with its `submitting` there, so that nothing of a signal is left unwritten during a wait
        (`admits_now` is a forecast, and another create may take the room meanwhile)."""
        return contextlib.nullcontext()

    def admits_now(self, ahead: int = 0) -> bool:
        """Whether `admit` would let one more order go right now without waiting, after `ahead`
        admissions already promised to creates that have not taken theirs yet. A cheap look at
        the pacer that changes nothing; the executor asks it to decide whether an intent and its
        `submitting` can be one transaction, and still sends every create inside `admit`. The
        default: yes exactly when the port keeps the default `admit` (no pacer: the paper
        exchange); a port with a pacer answers from its state."""
        return getattr(self.admit, "__func__", None) is ExchangePort.admit

    def expect_order(self) -> None:  # noqa: B027 - optional hook
        """A create may follow soon: a signal arrived that the approval policy may turn into an
        order. A port whose client paces its requests may take the create's place in that pace
        now, so that what the executor does before the create (checks, the journal write) runs
        while the pace allows the request instead of before it starts to wait. Never sends
        anything, never required: the default does nothing."""

    def request_cost(self, operation: str) -> float:
        """The request weight of one call of `operation` (a port method name) on this venue."""
        return 1.0

    def budget(self) -> RequestBudget:
        """The venue's request budget as known now (see `RequestBudget`)."""
        return RequestBudget()

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Always called, also on failure."""

    def rate_limit_state(self) -> RateLimitState:
        cd = getattr(self, "cooldown", None)
        if cd is None:
            return RateLimitState()
        return RateLimitState(cooldown_remaining=cd.remaining, trips=cd.trips)
