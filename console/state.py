"""The console's view of the executor: one snapshot at start, then the event stream.

`EventBuffer` is the console's one subscription to the core's bus. It only appends, so a burst of
events costs the core next to nothing; the app drains it on a short interval. `ConsoleState`
folds a drained batch into plain dicts keyed by stable ids (signal id, client order id) and says
which keys changed, so a burst of 100 updates of one order repaints its row once. Neither class
knows about Textual; the widgets are views of this state, never the other way round.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from console.positions import FillBook, marks
from executor.events import (
    BalancesUpdated,
    ErrorOccurred,
    Event,
    EventBus,
    LogLine,
    MarketQuote,
    MarketsUpdated,
    OrderUpdated,
    Reconciled,
    ReconcileResult,
    RetryScheduled,
    SignalDecided,
    SignalReceived,
    StateChanged,
)
from executor.models import ZERO, Balance, Order, OrderStatus, SignalRecord, SignalStatus
from executor.positions import Position

S = SignalStatus
HISTORY_LIMIT = 500  # finished orders kept (and asked for in a snapshot)


@dataclass(frozen=True, slots=True)
class LogEntry:
    ts: datetime
    level: str  # info | warning | error | retry
    reason: str
    attempt: str = ""  # "n/max" for a retry
    delay: str = ""  # the back-off before the next attempt


@dataclass(slots=True)
class Changes:
    """What a batch changed, by key (`orders_done`: finished in this batch). Empty: nothing to repaint."""

    # dicts used as ordered sets: new rows are added in the order their events arrived
    signals: dict[str, None] = field(default_factory=dict)
    signals_gone: dict[str, str] = field(default_factory=dict)  # left Signals: "sig-7 approved"
    orders: dict[str, None] = field(default_factory=dict)
    orders_done: dict[str, None] = field(default_factory=dict)
    balances: bool = False
    status: bool = False
    markets: bool = False
    positions: bool = False
    log: list[LogEntry] = field(default_factory=list)
    alerts: list[LogEntry] = field(default_factory=list)  # failures: also a notification

    def __bool__(self) -> bool:
        return bool(
            self.signals or self.signals_gone or self.orders or self.orders_done or self.balances or self.status
            or self.log or self.markets or self.positions
        )


class EventBuffer:
    """The one subscription: events are appended as they come and taken in batches.

    `waiting` is called with the first event after a drain (never again until the next drain):
    the app schedules its next flush from there, so an idle console does no work at all."""

    def __init__(self, bus: EventBus, waiting: Callable[[], None] | None = None) -> None:
        self._events: list[Event] = []
        self._waiting = waiting
        self._unsubscribe: Callable[[], None] = bus.subscribe(self._push)

    def _push(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) == 1 and self._waiting is not None:
            self._waiting()

    def __len__(self) -> int:
        return len(self._events)

    def drain(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._unsubscribe()


class ConsoleState:
    """Pending signals, active orders, recent history, balances, status and the log."""

    def __init__(self, *, history_limit: int = HISTORY_LIMIT, log_limit: int = 500, equity_points: int = 120,
                 equity_bucket: float = 5.0) -> None:
        self.signals: dict[str, SignalRecord] = {}  # pending only, in arrival order
        self.orders: dict[str, Order] = {}  # non-terminal only (change it through _put/_drop: counted)
        self._statuses: Counter[OrderStatus] = Counter()  # of self.orders, kept as they change
        self.history: OrderedDict[str, Order] = OrderedDict()  # finished, newest last
        self.history_limit = history_limit
        self.balances: dict[str, Balance] = {}
        self.prices: dict[str, Decimal] = {}
        self.markets: dict[str, MarketQuote] = {}  # the core's market view
        self.quote = "USDT"
        self.reconcile: ReconcileResult | None = None
        self.paused = False
        self.intake_done = False
        self.mode = ""
        self.exchange = ""
        self.log: deque[LogEntry] = deque(maxlen=log_limit)
        self.equity: deque[tuple[int, Decimal]] = deque(maxlen=equity_points)
        self.equity_bucket = equity_bucket
        self.fills = FillBook()  # every fill the core told of: the positions are folded from it
        self.positions: dict[str, Position] = {}  # per market with fills, valued at `marks`
        self._position_problems: dict[str, str] = {}

    # -- folding ------------------------------------------------------------------------------

    def load(self, snapshot, now: datetime) -> Changes:
        """Start from `TradingService.snapshot()`: the only time the console reads stored rows."""
        changes = Changes(balances=True, status=True)
        for record in snapshot.signals:
            self._signal(record, changes, log=False)
        for order in sorted(snapshot.orders, key=lambda o: (o.created_at, o.client_order_id)):
            self._order(order, changes)
        self.balances, self.prices, self.quote = dict(snapshot.balances), dict(snapshot.prices), snapshot.quote
        self.reconcile = snapshot.reconcile
        self.paused, self.mode, self.exchange = snapshot.paused, snapshot.mode, snapshot.exchange
        self.markets = dict(getattr(snapshot, "markets", {}))
        changes.markets = True
        self.fills.load(getattr(snapshot, "fills", ()))  # a core without fills in its snapshot: none
        self._value_positions(changes, now)
        self.sample_equity(now)
        changes.orders_done.clear()  # the history as it was: nothing just finished
        return changes

    def reload(self, snapshot, now: datetime) -> Changes:
        """A fresh snapshot over what is shown (a remote core is back after a disconnection): rows
        the snapshot no longer has leave, the others are folded as events would be."""
        pending = {r.id for r in snapshot.signals if r.id is not None and r.status is S.PENDING}
        gone = {sid: f"{sid} decided while disconnected" for sid in self.signals if sid not in pending}
        for sid in gone:
            del self.signals[sid]
        live_before = set(self.orders)
        known = {o.client_order_id for o in snapshot.orders}
        for coid in live_before - known:
            self._drop(coid)  # ended while away, older than the snapshot's history
        changes = self.load(snapshot, now)
        changes.signals_gone.update(gone)
        changes.orders_done.update(dict.fromkeys(c for c in live_before if c not in self.orders))
        return changes

    def apply(self, events: Iterable[Event], now: datetime) -> Changes:
        changes = Changes()
        refold: set[str] = set()
        for event in events:
            if isinstance(event, OrderUpdated):
                self._order(event.order, changes)
                if event.fills or event.fills_replaced:
                    refold |= self.fills.add(event.fills, replacing=event.order.client_order_id
                                             if event.fills_replaced else None)
            elif isinstance(event, SignalReceived | SignalDecided):
                self._signal(event.record, changes)
            elif isinstance(event, BalancesUpdated):
                self.balances, self.prices, self.quote = dict(event.balances), dict(event.prices), event.quote
                changes.balances = True
            elif isinstance(event, Reconciled):
                self.reconcile = event.result
                changes.status = True
            elif isinstance(event, StateChanged):
                self.paused, self.intake_done, self.mode = event.paused, event.intake_done, event.mode
                changes.status = True
            elif isinstance(event, RetryScheduled):
                target = event.client_order_id or event.signal_id or ""
                self.add_log(
                    LogEntry(event.ts, "retry", f"{event.operation} {target}: {event.reason}".replace("  ", " "),
                             attempt=f"{event.attempt}/{event.max_attempts}", delay=f"{event.delay:.2f}s"),
                    changes,
                )
            elif isinstance(event, MarketsUpdated):
                self.markets.update(event.quotes)
                changes.markets = True
            elif isinstance(event, ErrorOccurred | LogLine):
                entry = LogEntry(event.ts, event.level, event.message)
                self.add_log(entry, changes)
                # The core's trace (LogLine) and its errors: a failure is also a notification.
                if event.level in ("error", "critical") or (isinstance(event, LogLine) and event.level == "warning"):
                    changes.alerts.append(entry)
        if refold or changes.balances or changes.markets:
            self.fills.refold(refold)
            self._value_positions(changes, now)
        if changes.balances:
            self.sample_equity(now)
        return changes

    def _value_positions(self, changes: Changes, now: datetime) -> None:
        """The positions at the current marks; `changes.positions` only if any of them moved."""
        for symbol, why in self.fills.problems.items():
            if self._position_problems.get(symbol) != why:  # said once, not at every price
                self.add_log(LogEntry(now, "warning", f"positions: the fills of {symbol} cannot be folded ({why})"),
                             changes)
        self._position_problems = dict(self.fills.problems)
        valued = self.fills.marked(marks(self.fills.symbols, self.markets, self.prices, self.quote))
        if valued != self.positions:
            self.positions = valued
            changes.positions = True

    def add_log(self, entry: LogEntry, changes: Changes | None = None) -> None:
        self.log.append(entry)
        if changes is not None:
            changes.log.append(entry)

    def _signal(self, record: SignalRecord, changes: Changes, *, log: bool = True) -> None:
        key = record.id
        if record.status in (S.INVALID, S.DUPLICATE):
            # Never a pending row (a duplicate shares the id of a real signal); the log says why.
            if log:
                self.add_log(LogEntry(record.received_at, "warning",
                                      f"signal {key or '(no id)'} {record.status}: {record.reason}"), changes)
            return
        if key is None:
            return
        if record.status is S.PENDING:
            self.signals[key] = record
            changes.signals[key] = None
            changes.signals_gone.pop(key, None)
        elif self.signals.pop(key, None) is not None:
            # Why it left is a Log line of the core's trace (approved, rejected, expired: by whom).
            changes.signals_gone[key] = f"{key} {record.status.value}"
            changes.signals.pop(key, None)

    def _order(self, order: Order, changes: Changes) -> None:
        coid = order.client_order_id
        if order.status.is_terminal:
            # Finished in this batch (also when its first event is already final, e.g. rejected).
            if self._drop(coid) is not None or coid not in self.history:
                changes.orders_done[coid] = None
            changes.orders.pop(coid, None)
            self.history.pop(coid, None)
            self.history[coid] = order
            while len(self.history) > self.history_limit:
                self.history.popitem(last=False)
        else:
            self._put(coid, order)
            changes.orders[coid] = None

    # -- derived ------------------------------------------------------------------------------

    def market_price(self, symbol: str) -> Decimal | None:
        """The market's price as the core's far-from-market rule sees it: the mid of bid and ask."""
        quote = self.markets.get(symbol)
        return quote.mid if quote is not None else None

    def value(self, currency: str, quantity: Decimal) -> Decimal | None:
        price = self.prices.get(currency)
        return None if price is None else quantity * price

    @property
    def equity_value(self) -> Decimal | None:
        values = [self.value(c, b.total) for c, b in self.balances.items()]
        known = [v for v in values if v is not None]
        return sum(known, ZERO) if known else None

    def sample_equity(self, now: datetime) -> bool:
        """One point per `equity_bucket` seconds of the clock: the equity when the bucket began.

        Called on every balance change and clock tick; only the first call in a bucket records,
        so the series is regular in time however bursty the updates are.
        """
        value = self.equity_value
        bucket = int(now.timestamp() // self.equity_bucket)
        if value is None or (self.equity and self.equity[-1][0] >= bucket):
            return False
        self.equity.append((bucket, value))
        return True

    def _put(self, coid: str, order: Order) -> None:
        old = self.orders.get(coid)
        if old is not None:
            self._statuses[old.status] -= 1
        self.orders[coid] = order
        self._statuses[order.status] += 1

    def _drop(self, coid: str) -> Order | None:
        old = self.orders.pop(coid, None)
        if old is not None:
            self._statuses[old.status] -= 1
        return old

    # Counted as orders change, not by a pass over 10,000 of them at every repaint.
    @property
    def live_orders(self) -> int:
        """Resting on the exchange: what a cancel or the kill switch can act on."""
        return sum(n for status, n in self._statuses.items() if status.is_live)

    @property
    def open_orders(self) -> int:
        """Open as the reconciler counts them: live, or with a cancel in flight."""
        return self.live_orders + self._statuses[OrderStatus.PENDING_CANCEL]

    @property
    def unknown_orders(self) -> int:
        return self._statuses[OrderStatus.UNKNOWN]

    def signal_total(self, order: Order) -> Decimal:
        """What the signal behind `order` asked for: filled parts of earlier replacements plus this order."""
        if order.signal_id is None:
            return order.amount
        earlier = sum(
            (o.filled for o in self.history.values()
             if o.signal_id == order.signal_id and o.replacement < order.replacement),
            ZERO,
        )
        return earlier + order.amount
