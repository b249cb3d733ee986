"""The executor's event stream: what happened, published to whoever subscribes (console, logs, tests).

Events are small frozen dataclasses carrying model snapshots keyed by stable ids (signal id, client
order id), so a view can be rebuilt from them alone. Subscribers are plain callables invoked
synchronously in publish order; a view that is slow buffers on its side (the console flushes on an
interval), and a subscriber that raises is isolated and never breaks the core.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from executor.models import Balance, ExchangeMode, Fill, Order, SignalRecord, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    pass


@dataclass(frozen=True, slots=True)
class SignalReceived(Event):
    """A signal arrived and is stored: pending, invalid, duplicate or decided at once (then a
    `SignalDecided` follows)."""

    record: SignalRecord


@dataclass(frozen=True, slots=True)
class SignalDecided(Event):
    """approved, rejected, expired, or back to pending (price moved); `record.reason` says why."""

    record: SignalRecord


@dataclass(frozen=True, slots=True)
class OrderUpdated(Event):
    """An order as one write left it, with the fills that write recorded (positions are folded
    from these). `fills_replaced`: `fills` are now all of the order's fills, replacing every one
    recorded before (the venue's own trades, once they add up to the filled amount)."""

    order: Order
    fills: tuple[Fill, ...] = ()
    fills_replaced: bool = False


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    operation: str
    attempt: int
    max_attempts: int
    delay: float
    reason: str
    client_order_id: str | None = None
    signal_id: str | None = None
    ts: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class ErrorOccurred(Event):
    message: str
    level: str = "error"  # warning | error
    client_order_id: str | None = None
    signal_id: str | None = None
    ts: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class LogLine(Event):
    """One line of the trace: an operator action or an outcome, with who did it (`actor`).

    `message` already names the actor ("sig-7 approved (by ann@desk)"), so a journaled line read
    back elsewhere says the same without the field."""

    message: str
    actor: str
    level: str = "info"  # info | warning | error
    client_order_id: str | None = None
    signal_id: str | None = None
    ts: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class MarketQuote:
    """One market as the market view last saw it. `change_pct` is the venue's 24h change, or, when
    the venue gives none, the change since `change_since` (the view's oldest quote in 24h)."""

    symbol: str
    last: Decimal
    bid: Decimal
    ask: Decimal
    change_pct: Decimal | None
    ts: datetime
    change_since: datetime | None = None  # None: the venue's own 24h change

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class MarketsUpdated(Event):
    """The market view's latest round: every configured market it has a quote for."""

    quotes: dict[str, MarketQuote]


@dataclass(frozen=True, slots=True)
class BalancesUpdated(Event):
    balances: dict[str, Balance]
    prices: dict[str, Decimal]  # currency -> price in the quote currency (quote itself: 1)
    quote: str


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    at: datetime
    checked: int = 0
    updated: int = 0
    resolved_unknown: int = 0
    adopted: int = 0
    external: int = 0
    open: int = 0
    unknown: int = 0
    drift: dict[str, Decimal] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.drift


@dataclass(frozen=True, slots=True)
class Reconciled(Event):
    result: ReconcileResult


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """Executor-wide state: paused (intake and auto-approval), intake exhausted, mode."""

    paused: bool
    intake_done: bool
    mode: ExchangeMode


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a view needs to draw itself from scratch."""

    signals: list[SignalRecord]
    orders: list[Order]
    balances: dict[str, Balance]
    prices: dict[str, Decimal]
    quote: str
    reconcile: ReconcileResult | None
    paused: bool
    mode: ExchangeMode
    exchange: str
    markets: dict[str, MarketQuote] = field(default_factory=dict)  # the market view's latest quotes
    fills: list[Fill] = field(default_factory=list)  # every fill in the store, by time: for positions


@dataclass(frozen=True, slots=True)
class AmendCheck:
    """The result of validating an amend before it is sent (the console validates as you type)."""

    errors: dict[str, str]
    amount: Decimal | None
    price: Decimal | None
    notional: Decimal | None
    fee: Decimal | None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class KillSwitchResult:
    orders: tuple[Order, ...]  # the orders this kill switch canceled, as they ended
    left_open: int  # live orders it could not cancel (0 once it is true that none is left)

    @property
    def canceled(self) -> int:
        return len(self.orders)

    def describe(self) -> str:
        if self.left_open:
            return f"kill switch: canceled {self.canceled}; {self.left_open} still open, cancel them by hand"
        return f"kill switch: canceled {self.canceled}; none left open"


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def publish(self, event: Event) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a broken view must never break trading
                log.exception("event subscriber failed on %s", type(event).__name__)

    def queue(self, maxsize: int = 0) -> tuple[asyncio.Queue[Event], Callable[[], None]]:
        """An asyncio queue fed with every event, for tests and async consumers."""
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        return q, self.subscribe(q.put_nowait)
