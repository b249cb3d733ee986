"""The TradeExecutor: approved signals in, exchange orders out, every step journaled.

It owns the life of each order after approval, one job per module:
- `executor.placement`: the intent committed (with the approval, in one transaction) before
  anything is sent, `submitting` journaled only once the venue's pacer admitted the request,
  the error policy of SPEC section 6 decided on the exchange port's three error classes,
  maybe-placed creates resolved by looking the order up (never sent again), a certainly absent
  order replaced under the next replacement number, and the re-checks after a restart;
- `executor.following`: tracking within the venue's request budget, partial fills, limit
  timeouts, cancels sent again;
- `executor.commands`: cancel, amend by cancel-and-replace, the kill switch;
- `executor.pretrade`: the pre-trade checks, and the balances they check against;
- `executor.calls`: the retry policy, the ticker cache, the request-budget arithmetic.
Reconciliation lives in `executor.reconcile`; it changes orders through the same functions.

This module owns the state every job shares (markets, the active orders, the per-order locks),
the lifecycle (start, stop, the background tasks) and the one write path. One function changes
an order: `_commit` (and `_insert` for a new row; `_fold` turns a venue report into a
`_commit`). It starts from the process's own current copy, never from a caller's, checks the
transition table, and writes with a compare-and-set on the row's version, so a stale copy can
never overwrite a newer state.

Why the jobs are mixins of one class and not collaborators: each of them reads and changes the
same orders, under the same per-order locks, through this one write path, and reconciliation
and the tests reach the whole as one object. All the state is created in `__init__` below, so
one look there shows everything the jobs share; each mixin's docstring says which part it owns.

Signals run concurrently: each approved signal is its own task, so a resting order, a slow
request or a back-off never holds up the next one; only the venue's rate limit brakes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from executor.calls import VenueCalls
from executor.commands import Commands
from executor.errors import ExecutionError, PriceMoved
from executor.events import (  # AmendCheck, KillSwitchResult: the API's results, re-exported here
    AmendCheck,
    ErrorOccurred,
    EventBus,
    KillSwitchResult,
    OrderUpdated,
    ReconcileResult,
)
from executor.exchanges.base import ExchangeError, ExchangeOrder, ExchangePort, Ticker
from executor.following import CANCEL_RESEND_AFTER, Following
from executor.models import ORDER_FIXED, ZERO, Balance, Fill, MarketInfo, Order, OrderStatus, updated, utcnow
from executor.placement import Placement
from executor.pretrade import PreTrade
from executor.signals import fmt
from executor.states import check_order_transition
from executor.store import StaleWrite, Statement, Store
from executor.tracking import apply_report, effect, states_fills

if TYPE_CHECKING:
    from executor.config import ExecutionConfig

# The executor's public face: the class, its refusals and its results.
__all__ = ["AmendCheck", "ExecutionError", "KillSwitchResult", "PriceMoved", "TradeExecutor"]

log = logging.getLogger("tradeconsole.executor")

O = OrderStatus


class KeyedLocks:
    """One asyncio lock per key, forgotten once nobody holds or waits for it (bounded memory)."""

    def __init__(self) -> None:
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, users]

    def hold(self, key: str) -> _Held:
        """`async with locks.hold(key):` the block runs holding `key`'s lock."""
        return _Held(self._locks, key)

    def locked(self, key: str) -> bool:
        entry = self._locks.get(key)
        return entry is not None and entry[0].locked()

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    """One holding of a `KeyedLocks` key (a class, not a generator: every order change takes one)."""

    __slots__ = ("_entry", "_key", "_locks")

    def __init__(self, locks: dict[str, list[Any]], key: str) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        entry = self._locks.get(self._key)
        if entry is None:
            entry = self._locks[self._key] = [asyncio.Lock(), 0]
        entry[1] += 1
        self._entry = entry
        try:
            await entry[0].acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._entry[0].release()
        self._leave()

    def _leave(self) -> None:
        self._entry[1] -= 1
        if self._entry[1] == 0:
            del self._locks[self._key]


class TradeExecutor(Placement, Following, Commands, PreTrade, VenueCalls):
    """Turns approved signals into exchange orders. See the module docstring; each base is one job."""

    def __init__(
        self,
        exchange: ExchangePort,
        store: Store,
        execution_config: ExecutionConfig,
        *,
        bus: EventBus | None = None,
        client_id_prefix: str = "tc",
        poll_interval: float = 0.5,
        balance_interval: float = 2.0,
        lookup_attempts: int | None = None,
        lookup_window: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self.execution_config = execution_config
        self.bus = bus or EventBus()
        self.client_id_prefix = client_id_prefix
        self.poll_interval = poll_interval
        self.balance_interval = balance_interval
        # Lookups of a maybe-placed order must outlast the venue's visibility delay (an accepted
        # order can be invisible for a moment): an order counts as absent only after at least
        # `lookup_attempts` lookups spread over at least `lookup_window` seconds said so.
        self.lookup_attempts = lookup_attempts or max(3, execution_config.max_retries + 2)
        self.lookup_window = lookup_window
        self.clock = clock
        self.markets: dict[str, MarketInfo] = {}
        self.active_orders: dict[str, Order] = {}  # active (non-terminal) orders by client order id
        self.absent: dict[str, Order] = {}  # failed as certainly absent: watched for a late original
        self.fee_unknown: dict[str, Order] = {}  # filled, but the venue has not said what it charged
        self.balances: dict[str, Balance] = {}
        self.last_reconcile: ReconcileResult | None = None
        self.halted = False  # the kill switch: no create request leaves while set
        self.contested: set[str] = set()  # signals whose given-up order appeared after all
        self.redrive_due = False  # a restart re-drive could not finish: reconciliation tries again
        self.owned: set[str] = set()  # `new` intents a task of this process is (about to be) placing
        self.creating: Counter[str] = Counter()  # client order ids whose create may still go live
        self._promised: set[str] = set()  # intents told the pacer admits them at once, not admitted yet
        self.locks = KeyedLocks()
        self.effect: dict[str, Decimal] = {}  # cumulative balance effect of every fill in the store
        self._tickers: dict[str, tuple[float, Ticker]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None
        self._keep_open: set[str] = set()
        self._timing_out: set[str] = set()
        self._cancel_sent: dict[str, float] = {}  # coid -> monotonic time of its last cancel request
        self.cancel_resend_after = CANCEL_RESEND_AFTER
        self._missing: dict[str, tuple[int, float]] = {}  # live coid -> (misses, first miss) on the venue
        self._polled_unchanged: dict[str, tuple[Order, ExchangeOrder]] = {}  # last poll: unchanged pairs (following.py)
        self._settled = asyncio.Event()  # set whenever no create is in flight
        self._settled.set()
        from executor.reconcile import Reconciler

        self.reconciler = Reconciler(self)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, watch: bool = True) -> ReconcileResult:
        """Load markets and the store's active orders, reconcile (re-driving what a crash left),
        then start tracking."""
        self.markets = await self._call("load_markets", self.exchange.load_markets)
        for order in await self.store.orders(include_terminal=False):
            self.active_orders[order.client_order_id] = order
        await self.reconciler.load()
        result = await self.reconcile(startup=True)
        if watch:
            self._watcher = asyncio.create_task(self._watch(), name="order-watcher")
        return result

    async def stop(self) -> None:
        """Stop tracking; requests in flight finish and are journaled. Open orders stay open."""
        if self._watcher:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def idle(self) -> bool:
        """No order in a non-terminal state, no request in flight, and no fill whose fee the
        venue has yet to state (a run that ends must leave the store agreeing with the venue)."""
        return not self._tasks and not self.active_orders and not self.fee_unknown

    def _admits_now(self, order: Order) -> bool:
        """Whether the venue's pacer admits `order`'s create at once (`ExchangePort.admits_now`),
        counting the admissions already promised to creates whose tasks have not taken theirs:
        then its task may write the intent with its `submitting`, and the admission is promised
        to it until its intent is written (inside `admit`) or its task ends."""
        if not self.exchange.admits_now(len(self._promised)):
            return False
        self._promised.add(order.client_order_id)
        return True

    def tasks_named(self, prefix: str) -> list[str]:
        """The names of this executor's running tasks that start with `prefix` (e.g. "place")."""
        return [t.get_name() for t in self._tasks if t.get_name().startswith(prefix)]

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self._promised:
            self._promised.discard(task.get_name().removeprefix("place:"))
        if not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, ExecutionError | ExchangeError):
                self._error(f"{task.get_name()}: {exc}", level="warning")
            else:
                log.error("task %s failed: %s", task.get_name(), exc, exc_info=exc)
                self._error(f"internal error in {task.get_name()}: {exc}")

    async def reconcile(self, *, startup: bool = False) -> ReconcileResult:
        return await self.reconciler.run(startup=startup)

    # -- the one way an order changes ---------------------------------------------------------

    def current(self, coid: str) -> Order | None:
        """The process's own latest copy of an order it may still change."""
        return self.active_orders.get(coid) or self.absent.get(coid) or self.fee_unknown.get(coid)

    async def _commit(
        self,
        coid: str,
        status: OrderStatus | None = None,
        *,
        source: str,
        detail: dict | None = None,
        fills=(),
        replace_fills: Sequence[Fill] | None = None,
        base: Order | None = None,
        extra: tuple[Statement, ...] | list[Statement] = (),
        **changes: Any,
    ) -> Order:
        """Change order `coid` from its current copy (or `base`, a fold of it): checked against the
        table, written with a compare-and-set on its version, then tracked and published.
        `fills` are added to the order's fills; `replace_fills`, when given, replace all of them."""
        current = self.current(coid)
        if current is None:
            raise ExecutionError(f"{coid} is not an order this process can change")
        start = base if base is not None else current
        assert start.version == current.version, f"{coid}: folding a stale copy"
        new_status = status if status is not None else start.status
        if new_status != current.status:
            check_order_transition(current.status, new_status, coid)
        elif current.status.is_terminal and current.status is not O.FAILED and set(changes) - {"fee", "fee_currency"}:
            raise ExecutionError(f"{coid} is {current.status}: only its fee can still be learned")
        if not ORDER_FIXED.isdisjoint(changes):
            raise ExecutionError(f"{coid}: {', '.join(sorted(ORDER_FIXED & changes.keys()))} never change")
        changes.update(status=new_status, updated_at=self.clock(), version=current.version + 1)
        new = updated(start, changes)
        write = self.store.order_write(
            new, old=current.status, expect_version=current.version, source=source, detail=detail, fills=fills
        )
        if replace_fills is not None:
            extra = [*extra, *self.store.fills_replace(coid, replace_fills)]
        try:
            await self.store.transact(extra, write)
        except StaleWrite:
            log.error("%s: the store changed under this process (version %d)", coid, current.version)
            raise
        if replace_fills is not None:
            self._track(current, new, fills=(*replace_fills, *fills), fills_replaced=True)
        else:
            self._track(current, new, fills=tuple(fills))
        return new

    async def _insert(
        self, order: Order, *, source: str, detail: dict | None = None, extra=(), sending: bool = False
    ) -> list[int | None]:
        """A new order row (an intent, an adopted order), with `extra` in the same transaction.
        With `sending`, an intent whose create leaves at once (no pacer to wait for) goes in as
        `submitting` already, checked against the table, with both journal entries. Returns the
        rowids of the statements written."""
        new = order
        self._promised.discard(order.client_order_id)  # written inside its admission (or never sent)
        if sending:
            check_order_transition(order.status, O.SUBMITTING, order.client_order_id)
            sent = {"status": O.SUBMITTING, "attempts": order.attempts + 1, "version": order.version + 1}
            new = updated(order, sent | {"updated_at": self.clock()})
            write = self.store.intent_sent_write(order, new, source=source, detail=detail)
        else:
            write = self.store.order_write(order, old=None, expect_version=None, source=source, detail=detail)
        if new.status is O.NEW:
            self.owned.add(order.client_order_id)  # its task is on its way: reconciliation leaves it alone
        try:
            ids = await self.store.transact(extra, write)
        except BaseException:
            self.owned.discard(order.client_order_id)
            raise
        self._track(None, new)
        return ids

    def _track(
        self, old: Order | None, new: Order, *, fills: tuple[Fill, ...] = (), fills_replaced: bool = False
    ) -> None:
        coid = new.client_order_id
        market = self.markets.get(new.symbol)
        before = effect(old, market) if old is not None else {}
        for ccy, value in effect(new, market).items():
            delta = value - before.pop(ccy, ZERO)
            if delta:
                self.effect[ccy] = self.effect.get(ccy, ZERO) + delta
        for ccy, value in before.items():
            self.effect[ccy] = self.effect.get(ccy, ZERO) - value
        self.absent.pop(coid, None)
        if new.status.is_terminal:
            self.active_orders.pop(coid, None)
            self._keep_open.discard(coid)
            self._cancel_sent.pop(coid, None)
            self._missing.pop(coid, None)
            if new.status is O.FAILED and new.last_error.startswith("certainly absent"):
                self.absent[coid] = new
        else:
            self.active_orders[coid] = new
        if coid in self.fee_unknown:
            self.fee_unknown[coid] = new  # kept current: a terminal order's fee is still to be learned
        self.bus.publish(OrderUpdated(new, fills, fills_replaced))

    async def _fold(self, coid: str, report: ExchangeOrder, source: str, *, revive: bool = False) -> Order:
        """Fold a venue report into the current copy of `coid` (under its lock). Returns the order."""
        current = self.current(coid)
        if current is None:
            raise ExecutionError(f"{coid} is not an order this process can change")
        if current.status.is_terminal and not (revive and current.status is O.FAILED):
            return current
        base = current
        if revive:
            if not states_fills(report) or report.status not in (
                O.OPEN,
                O.PARTIALLY_FILLED,
                O.FILLED,
                O.CANCELED,
                O.EXPIRED,
            ):
                return current  # not a placed order's full report: nothing to adopt on it
            # A late original: the venue has it after all. Fold from the state it was given up in.
            base = current.model_copy(update={"status": O.UNKNOWN})
        applied = apply_report(base, report, self.clock())
        if applied.overfill > 0:
            self._error(
                f"{coid}: venue reports {fmt(report.filled or 0)} filled of {fmt(current.amount)}; "
                "capped at the order amount",
                order=current,
                level="critical",
            )
        new = applied.order
        if not applied.changed and new.exchange_order_id == current.exchange_order_id and not revive:
            return current
        if revive and new.status is O.UNKNOWN:
            new = new.model_copy(update={"status": O.OPEN})
        changes = {k: getattr(new, k) for k in ("exchange_order_id", "filled", "average", "fee", "fee_currency")}
        changes["last_error"] = "late original: on the venue after all" if revive else current.last_error
        if current.status in (O.UNKNOWN, O.SUBMITTING) and new.status not in (O.UNKNOWN, O.SUBMITTING):
            changes["last_error"] = ""
        folded = await self._commit(
            coid,
            new.status,
            source=source,
            fills=applied.fills,
            base=current,
            detail={"revived": True} if revive else None,
            **changes,
        )
        if applied.fills:
            # A fill the answer did not price the fee of (Binance's order answers carry none): the
            # fee, and the fills as the venue made them, come from our trades in reconciliation.
            if report.fee_currency is None:
                self.fee_unknown[coid] = folded
            else:
                self.fee_unknown.pop(coid, None)
        return folded

    # -- events -------------------------------------------------------------------------------

    def _error(self, message: str, *, level: str = "error", order: Order | None = None, signal_id=None) -> None:
        log.log(logging.WARNING if level == "warning" else logging.ERROR, "%s", message)
        self.bus.publish(
            ErrorOccurred(
                message=message,
                level=level,
                client_order_id=order.client_order_id if order else None,
                signal_id=signal_id or (order.signal_id if order else None),
                ts=self.clock(),
            )
        )
