"""The TradeExecutor: approved signals in, exchange orders out, every step journaled.

Owns the life of each order after approval: the intent committed (with the approval, in one
transaction) before anything is sent, `submitting` journaled only once the venue's pacer admitted
the request, the error policy of SPEC section 6 decided on the exchange port's three error
classes, maybe-placed requests resolved by looking the order up, a certainly absent order replaced
under the next replacement number, tracking within the venue's request budget, limit timeouts,
cancel, amend by cancel-and-replace, and the kill switch. Reconciliation lives in
`executor.reconcile`; it changes orders through the same two functions as everything here.

One function changes an order: `_commit` (and `_insert` for a new row). It starts from the
process's own current copy, never from a caller's, checks the transition table, and writes with a
compare-and-set on the row's version, so a stale copy can never overwrite a newer state.

Signals run concurrently: each approved signal is its own task, so a resting order, a slow
request or a back-off never holds up the next one; only the venue's rate limit brakes them.
Why this module is over 500 lines: placement, tracking, cancel and amend share the write path
and the locks, and splitting them would spread one lock discipline over several files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception_type
from tenacity import wait_exponential_jitter as _jitter

from executor.clientid import client_order_id
from executor.events import (  # AmendCheck, KillSwitchResult: the API's results, re-exported here
    AmendCheck,
    BalancesUpdated,
    ErrorOccurred,
    EventBus,
    KillSwitchResult,
    OrderUpdated,
    ReconcileResult,
    RetryScheduled,
    SignalDecided,
)
from executor.exchanges.base import (
    DuplicateOrder,
    ExchangeError,
    ExchangeOrder,
    ExchangePort,
    MaybePlaced,
    NotPlaced,
    OrderNotFound,
    Rejected,
    Ticker,
)
from executor.models import (
    ZERO,
    Balance,
    Fill,
    MarketInfo,
    Order,
    OrderStatus,
    OrderType,
    Side,
    SignalRecord,
    SignalStatus,
    to_decimal,
    utcnow,
)
from executor.signals import fmt
from executor.states import check_order_transition, check_signal_transition
from executor.store import StaleWrite, Statement, Store
from executor.tracking import apply_report, effect, states_fills

if TYPE_CHECKING:
    from executor.config import ExecutionConfig

log = logging.getLogger("tradeconsole.executor")

O = OrderStatus
RATE_LIMITED_ATTEMPTS = 50  # 429s in a row before a create gives up (they never count as retries)
# Certainly absent orders of one signal replaced before it goes back to the operator (crashes while
# submitting, a venue that keeps losing creates): never left approved without an order.
MAX_RESUBMISSIONS = 10
CANCEL_RESEND_AFTER = 10.0  # seconds a cancel may stay unconfirmed before it is sent again
# How long a "certainly absent" order is watched for a late original: well past any venue's
# visibility delay, short enough that the orders-since window it keeps open stays one page.
ABSENT_WATCH = timedelta(minutes=15)
# Shares of the venue's request-weight budget the periodic work may plan for (orders need the rest).
POLL_SHARE, BALANCE_SHARE, LOOKUP_SHARE = 0.30, 0.05, 0.30
POLL_SLICE = 200  # tracked orders folded between two yields to the event loop
STALE = "stale after restart"


class ExecutionError(Exception):
    """An operator-facing refusal (pre-trade check, wrong state). The message is the reason."""


class PriceMoved(ExecutionError):
    """A market order's live price left the slippage tolerance: back to the operator."""

    def __init__(self, message: str, live_price: Decimal) -> None:
        super().__init__(message)
        self.live_price = live_price


class _Unresolved(Exception):
    def __init__(self, order: Order, reason: str) -> None:
        super().__init__(reason)
        self.order = order


def _unchanged(order: Order, report: ExchangeOrder, now: datetime) -> bool:
    """A report that would change nothing of `order` (most of a poll's answers): no lock, no fold.
    The same pure fold `_fold` runs, so what it skips is exactly what `_fold` would return as is."""
    if order.status.is_terminal:
        return True
    applied = apply_report(order, report, now)
    return not applied.changed and applied.order.exchange_order_id == order.exchange_order_id


def quantize_price(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """Put a limit price on the grid without going past the tolerance: buy rounds down, sell up."""
    if tick <= 0:
        return price
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    return (price / tick).to_integral_value(rounding=rounding) * tick


def limit_price(reference: Decimal, pct: float, tick: Decimal, side: Side) -> Decimal:
    factor = to_decimal(pct) / 100
    raw = reference * (1 + factor) if side is Side.BUY else reference * (1 - factor)
    return quantize_price(raw, tick, side)


class KeyedLocks:
    """One asyncio lock per key, forgotten once nobody holds or waits for it (bounded memory)."""

    def __init__(self) -> None:
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, users]

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    def locked(self, key: str) -> bool:
        entry = self._locks.get(key)
        return entry is not None and entry[0].locked()

    def __len__(self) -> int:
        return len(self._locks)


class TradeExecutor:
    """Turns approved signals into exchange orders. See the module docstring."""

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
        self.pending_orders: dict[str, Order] = {}  # active (non-terminal) orders by client order id
        self.absent: dict[str, Order] = {}  # failed as certainly absent: watched for a late original
        self.fee_unknown: dict[str, Order] = {}  # filled, but the venue has not said what it charged
        self.balances: dict[str, Balance] = {}
        self.last_reconcile: ReconcileResult | None = None
        self.halted = False  # the kill switch: no create request leaves while set
        self.contested: set[str] = set()  # signals whose given-up order appeared after all
        self.redrive_due = False  # a restart re-drive could not finish: reconciliation tries again
        self.owned: set[str] = set()  # `new` intents a task of this process is (about to be) placing
        self.creating: Counter[str] = Counter()  # client order ids whose create may still go live
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
            self.pending_orders[order.client_order_id] = order
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
        return not self._tasks and not self.pending_orders and not self.fee_unknown

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
        return self.pending_orders.get(coid) or self.absent.get(coid) or self.fee_unknown.get(coid)

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
        changes.update(status=new_status, updated_at=self.clock(), version=current.version + 1)
        new = start.model_copy(update=changes)
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

    async def _insert(self, order: Order, *, source: str, detail: dict | None = None, extra=()) -> list[int | None]:
        """A new order row (an intent, an adopted order), with `extra` in the same transaction.
        Returns the rowids of the statements written."""
        if order.status is O.NEW:
            self.owned.add(order.client_order_id)  # its task is on its way: reconciliation leaves it alone
        try:
            ids = await self.store.transact(
                extra, self.store.order_write(order, old=None, expect_version=None, source=source, detail=detail)
            )
        except BaseException:
            self.owned.discard(order.client_order_id)
            raise
        self._track(None, order)
        return ids

    def _track(self, old: Order | None, new: Order, *, fills: tuple[Fill, ...] = (),
               fills_replaced: bool = False) -> None:
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
            self.pending_orders.pop(coid, None)
            self._keep_open.discard(coid)
            self._cancel_sent.pop(coid, None)
            self._missing.pop(coid, None)
            if new.status is O.FAILED and new.last_error.startswith("certainly absent"):
                self.absent[coid] = new
        else:
            self.pending_orders[coid] = new
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
            if not states_fills(report) or report.status not in (O.OPEN, O.PARTIALLY_FILLED, O.FILLED, O.CANCELED,
                                                                 O.EXPIRED):
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
            coid, new.status, source=source, fills=applied.fills, base=current, detail={"revived": True} if revive
            else None, **changes
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

    def _log_retry(self, operation: str, order: Order | None = None, max_attempts: int | None = None):
        max_attempts = max_attempts or self.execution_config.max_retries + 1

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            reason = f"{type(exc).__name__}: {exc}" if exc else "retry"
            limited = isinstance(exc, NotPlaced) and exc.rate_limited
            attempt = state.attempt_number
            log.warning("%s %s attempt %d/%d failed (%s); retrying in %.2fs", operation,
                        order.client_order_id if order else "", attempt, max_attempts, reason, delay)
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

    # -- requests -----------------------------------------------------------------------------

    def _wait(self, delay: float | None = None):
        delay = self.execution_config.retry_delay_seconds if delay is None else delay
        return _jitter(multiplier=delay, max=delay * 32, jitter=delay / 2)

    def _retrying(self, operation: str, retry_on, *, order: Order | None = None, reraise: bool = False,
                  attempts: int | None = None, wait_strategy=None) -> tuple[AsyncRetrying, dict[str, int]]:
        """SPEC 6's retry policy: exponential backoff with jitter over `max_retries`, where an
        attempt the venue's rate limit refused never counts (it never reached the matching engine;
        the adapter's shared cooldown holds the next one until the venue allows it)."""
        allowed = attempts if attempts is not None else self.execution_config.max_retries + 1
        counts = {"counted": 0, "limited": 0}
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

        retrying = AsyncRetrying(stop=stop, wait=wait, retry=retry_if_exception_type(retry_on), reraise=reraise,
                                 before_sleep=self._log_retry(operation, order, allowed))
        return retrying, counts

    async def _call(self, operation: str, fn, *args, **kwargs):
        """A read (or a cancel: idempotent), retried on every error class but `Rejected`."""
        retrying, _ = self._retrying(operation, (NotPlaced, MaybePlaced), reraise=True)
        async for attempt in retrying:
            with attempt:
                return await fn(*args, **kwargs)
        raise AssertionError("unreachable")

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

    # -- balances -----------------------------------------------------------------------------

    async def refresh_balances(self) -> dict[str, Balance]:
        balances = await self._call("fetch_balances", self.exchange.fetch_balances)
        self.balances = balances
        await self._publish_balances()
        return balances

    async def _publish_balances(self) -> None:
        quote = "USDT"
        if self.markets:
            quotes = [m.quote for m in self.markets.values()]
            quote = max(set(quotes), key=quotes.count)
        prices: dict[str, Decimal] = {quote: Decimal(1)}
        for currency in self.balances:
            symbol = f"{currency}/{quote}"
            if currency != quote and symbol in self.markets:
                try:
                    prices[currency] = (await self.ticker(symbol, max_age=5.0)).mid
                except ExchangeError:
                    pass  # valued later; a missing price is shown as such, not as zero
        self.bus.publish(BalancesUpdated(dict(self.balances), prices, quote))

    def free(self, currency: str) -> Decimal:
        balance = self.balances.get(currency)
        return balance.free if balance else ZERO

    def _reserve(self, currency: str, amount: Decimal) -> None:
        # Local reservation until the next balance refresh replaces the cache with the venue's truth.
        b = self.balances.get(currency)
        if b is not None:
            self.balances[currency] = Balance(currency, b.free - amount, b.used + amount)

    # -- checks -------------------------------------------------------------------------------

    def check_order(
        self,
        symbol: str,
        side: Side,
        type_: OrderType,
        amount: Decimal | None,
        price: Decimal | None,
        *,
        releasing: Decimal = ZERO,
    ) -> AmendCheck:
        """Pre-trade checks with reasons per field: precision, minimums, maximums, free balance.

        `releasing` is quote (buy) or base (sell) that a cancel-and-replace frees first.
        """
        try:
            return self._check_order(symbol, side, type_, amount, price, releasing)
        except (InvalidOperation, ArithmeticError):  # a magnitude no venue trades
            return AmendCheck({"amount": "amount or price is out of any market's range"}, amount, price, None, None)

    def _check_order(self, symbol, side, type_, amount, price, releasing) -> AmendCheck:
        errors: dict[str, str] = {}
        market = self.markets.get(symbol)
        if market is None:
            return AmendCheck(
                {"symbol": f"{symbol} is not a market on {self.exchange.name}"}, amount, price, None, None
            )
        if amount is None or amount <= 0:
            errors["amount"] = "must be greater than 0"
        elif amount < market.min_amount:
            errors["amount"] = f"{fmt(amount)} is below the minimum {fmt(market.min_amount)} {market.base}"
        elif market.max_amount and amount > market.max_amount:
            errors["amount"] = f"{fmt(amount)} is above the maximum {fmt(market.max_amount)} {market.base}"
        elif market.amount_step > 0 and amount % market.amount_step != 0:
            errors["amount"] = f"{fmt(amount)} is off the amount grid (step {fmt(market.amount_step)})"
        if type_ is OrderType.LIMIT:
            if price is None or price <= 0:
                errors["price"] = "a limit order needs a price greater than 0"
            elif market.price_tick > 0 and price % market.price_tick != 0:
                errors["price"] = f"{fmt(price)} is off the price grid (tick {fmt(market.price_tick)})"
        notional = fee = None
        if amount and amount > 0 and price and price > 0:
            notional = amount * price
            fee_rate = market.taker_fee if type_ is OrderType.MARKET else max(market.maker_fee, market.taker_fee)
            fee = notional * fee_rate
            if market.min_cost > 0 and notional < market.min_cost and "amount" not in errors:
                errors["amount"] = (
                    f"notional {fmt(notional.quantize(Decimal('0.01')))} {market.quote} is below the minimum "
                    f"{fmt(market.min_cost)} {market.quote}"
                )
            if self.balances and "amount" not in errors:
                if side is Side.BUY:
                    need, have, ccy = notional + fee, self.free(market.quote) + releasing, market.quote
                else:
                    need, have, ccy = amount, self.free(market.base) + releasing, market.base
                if need > have:
                    errors["amount"] = f"insufficient free {ccy}: needs {fmt(_round(need))}, free {fmt(_round(have))}"
        return AmendCheck(errors, amount, price, notional, fee)

    async def price_moved(self, record: SignalRecord, type_: OrderType) -> PriceMoved | None:
        """For a market order: the refusal when the live price left the tolerance, else None."""
        signal = record.signal
        assert signal is not None
        if type_ is not OrderType.MARKET or signal.symbol not in self.markets:
            return None
        cfg = self.execution_config
        live = (await self.ticker(signal.symbol)).touch(signal.side)
        ref = record.reference_price or live
        moved = abs(live - ref) / ref * 100
        if moved <= to_decimal(cfg.slippage_tolerance_pct):
            return None
        return PriceMoved(
            f"price moved: {signal.symbol} {fmt(live)} is {fmt(moved.quantize(Decimal('0.01')))}% from "
            f"the reference {fmt(ref)} (tolerance {cfg.slippage_tolerance_pct}%)",
            live,
        )

    # -- execution ----------------------------------------------------------------------------

    async def prepare(self, record: SignalRecord, *, replacement: int, amount: Decimal) -> Order:
        """The next order of an approved signal, not yet written: `new`, or `rejected` by a
        pre-trade check. Raises `PriceMoved` (nothing to write: back to the operator) and
        `ExchangeError` when the venue could not be asked for a price."""
        signal = record.signal
        assert signal is not None and record.id is not None
        cfg = self.execution_config
        market = self.markets.get(signal.symbol)
        type_ = OrderType(signal.order_type or cfg.order_type)
        price: Decimal | None = None
        if market is not None and type_ is OrderType.LIMIT:
            reference = (
                to_decimal(signal.price) if signal.price else (await self.ticker(signal.symbol)).touch(signal.side)
            )
            price = limit_price(reference, cfg.slippage_tolerance_pct, market.price_tick, signal.side)
        elif market is not None:
            if (moved := await self.price_moved(record, type_)) is not None:
                raise moved
            price = (await self.ticker(signal.symbol)).touch(signal.side)  # for the checks only
        now = self.clock()
        order = Order(
            client_order_id=client_order_id(self.client_id_prefix, record.id, replacement),
            signal_id=record.id,
            replacement=replacement,
            symbol=signal.symbol,
            side=signal.side,
            type=type_,
            amount=amount,
            price=price if type_ is OrderType.LIMIT else None,
            created_at=now,
            updated_at=now,
            timeout_at=now + timedelta(seconds=cfg.order_timeout_seconds) if type_ is OrderType.LIMIT else None,
        )
        if self.halted:
            return order.model_copy(update={"status": O.REJECTED, "last_error": "kill switch engaged: not sent"})
        check = self.check_order(signal.symbol, signal.side, type_, amount, price)
        if not check.ok:
            reason = "; ".join(f"{k}: {v}" for k, v in check.errors.items())
            return order.model_copy(update={"status": O.REJECTED, "last_error": f"pre-trade check: {reason}"})
        return order

    async def next_order(self, record: SignalRecord, *, allow_new: bool = True) -> tuple[Order | None, list[Order]]:
        """(the signal's next order prepared, or None when nothing remains; its orders so far)."""
        assert record.id is not None and record.amount is not None
        siblings = [self.current(o.client_order_id) or o for o in await self.store.orders_for_signal(record.id)]
        if siblings and not allow_new:
            return None, siblings
        filled = sum((o.filled for o in siblings), ZERO)
        remaining = record.amount - filled
        if remaining <= 0 or any(not o.status.is_terminal for o in siblings):
            return None, siblings
        replacement = max((o.replacement for o in siblings), default=-1) + 1
        return await self.prepare(record, replacement=replacement, amount=remaining), siblings

    async def commit_intent(self, record: SignalRecord, *, extra: list[Statement] | None = None,
                            allow_new: bool = True, launch: bool = True) -> tuple[Order | None, list[int | None]]:
        """Write the signal's next order (with `extra`, e.g. its approval, in the same
        transaction) and start placing it. Returns the order written (or the signal's latest
        order when it needs no new one) and the rowids of the statements written."""
        async with self.locks.hold(f"signal:{record.id}"):
            order, siblings = await self.next_order(record, allow_new=allow_new)
            if order is None:
                ids = await self.store.transact(extra) if extra else []
                return (siblings[-1] if siblings else None), ids
            detail = {"intent": True} if order.status is O.NEW else {"reason": order.last_error}
            ids = await self._insert(order, source="request", detail=detail, extra=extra or ())
        if order.status is O.REJECTED:
            self._error(f"{record.id}: {order.last_error}", order=order, level="warning")
            return order, ids
        market = self.markets[order.symbol]
        if order.side is Side.BUY:
            self._reserve(market.quote, order.amount * (order.price or ZERO) * (1 + market.taker_fee))
        else:
            self._reserve(market.base, order.amount)
        if launch:
            self.spawn(self.run(order.client_order_id), name=f"place:{order.client_order_id}")
        return order, ids

    async def execute_signal(self, record: SignalRecord) -> Order:
        """Place the order of an approved signal; returns it once placed or final.

        Raises `PriceMoved` (nothing sent, signal goes back to the operator). Every other
        outcome, including pre-trade refusals, is an order in the store with its reason.
        Approved twice (restart, race): never a second order.
        """
        order, _ = await self.commit_intent(record, allow_new=False, launch=False)
        assert order is not None
        if order.status is not O.NEW or self.current(order.client_order_id) is None:
            return self.current(order.client_order_id) or order
        return await self.run(order.client_order_id)

    async def run(self, coid: str) -> Order:
        """Place one intent; a certainly absent one is replaced under the next replacement number."""
        self.owned.add(coid)
        try:
            async with self.locks.hold(coid):
                order = await self._place(coid)
        finally:
            self.owned.discard(coid)
        if order.status is O.FAILED and coid in self.absent and order.signal_id:
            try:
                return await self.replace_absent(order) or order
            except ExchangeError as exc:
                self.redrive_due = True  # reconciliation gives the signal its order once the venue answers
                self._error(f"{coid} certainly absent; its replacement waits: {exc}", order=order, level="warning")
        return order

    async def _superseded(self, order: Order) -> str | None:
        """Why an intent of a signal whose late original appeared may no longer be sent."""
        assert order.signal_id is not None
        record = await self.store.get_signal(order.signal_id)
        siblings = [self.current(o.client_order_id) or o for o in await self.store.orders_for_signal(order.signal_id)]
        others = [o for o in siblings if o.client_order_id != order.client_order_id]
        filled = sum((o.filled for o in siblings), ZERO)
        active = sum((o.remaining for o in others if not o.status.is_terminal), ZERO)
        if record is None or record.amount is None or filled + active + order.amount > record.amount:
            return "superseded: a late original of its signal covers it"
        return None

    async def _place(self, coid: str) -> Order:
        """Get one order placed under the error policy (caller holds its lock)."""
        retrying, counts = self._retrying("create_order", NotPlaced, order=self.pending_orders.get(coid))
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._create_once(coid)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            order = await self._commit(coid, O.FAILED, source="request",
                                       last_error=f"not placed after {counts['counted']} attempts: {last}")
            self._error(f"{coid}: {order.last_error}", order=order)
            return order
        except Rejected as exc:
            order = await self._commit(coid, O.REJECTED, source="request", last_error=str(exc))
            self._error(f"{coid}: rejected: {exc}", order=order, level="warning")
            return order
        except _Unresolved as exc:
            self._error(f"{coid}: outcome unknown after lookups ({exc}); reconciliation will resolve it",
                        order=exc.order)
            return self.current(coid) or exc.order
        raise AssertionError("unreachable")

    async def _create_once(self, coid: str) -> Order:
        """One create attempt. Raises NotPlaced to retry, Rejected to stop, _Unresolved to leave it."""
        order = self.current(coid)
        assert order is not None
        if order.status is not O.NEW:  # the state a crash or an earlier attempt left it in
            return await self._resolve(coid) if order.status in (O.SUBMITTING, O.UNKNOWN) else order
        async with self.exchange.admit():
            with self.in_flight(coid):  # from here the kill switch waits for this create's outcome
                if self.halted:
                    return await self._commit(coid, O.FAILED, source="request", last_error="kill switch: not sent")
                if order.signal_id in self.contested and (reason := await self._superseded(order)):
                    return await self._commit(coid, O.FAILED, source="request", last_error=reason)
                order = await self._commit(coid, O.SUBMITTING, source="request", attempts=order.attempts + 1)
                try:
                    report = await self.exchange.create_order(
                        client_order_id=coid, symbol=order.symbol, side=order.side, type=order.type,
                        amount=order.amount, price=order.price,
                    )
                except DuplicateOrder:
                    # The venue already holds this client order id: it was placed. Find it; never re-send.
                    await self._commit(coid, O.UNKNOWN, source="request", last_error="duplicate client order id")
                    return await self._resolve(coid, duplicate=True)
                except NotPlaced as exc:
                    await self._commit(coid, O.NEW, source="request", last_error=str(exc))  # certainly not sent
                    raise
                except MaybePlaced as exc:
                    await self._commit(coid, O.UNKNOWN, source="request", last_error=f"maybe placed: {exc}")
                    return await self._resolve(coid)
                return await self._fold(coid, report, "request")

    @contextlib.contextmanager
    def in_flight(self, coid: str):
        """A create of `coid` may still go live until this block ends with its outcome journaled:
        the kill switch waits for every such block before it says that none is left open."""
        self.creating[coid] += 1
        self._settled.clear()
        try:
            yield
        finally:
            self.creating[coid] -= 1
            if self.creating[coid] <= 0:
                del self.creating[coid]
            if not self.creating:
                self._settled.set()

    async def _resolve(self, coid: str, *, duplicate: bool = False) -> Order:
        """Look a maybe-placed order up by client order id until found or certainly absent."""
        order = self.current(coid)
        assert order is not None
        with self.in_flight(coid):
            report = await self.lookup(order)
            if report is not None:
                found = await self._fold(coid, report, "request")
                if found.signal_id in self.contested:
                    self.spawn(self.reconciler.settle_signal(found), name=f"late-original:{coid}")
                return found
        if duplicate:
            # The venue said the id exists, then every lookup said it does not: nobody can tell.
            raise _Unresolved(order, "duplicate client order id, yet no lookup finds it")
        return await self._commit(coid, O.FAILED, source="request",
                                  last_error="certainly absent after lookups across the visibility window")

    async def lookup(self, order: Order) -> ExchangeOrder | None:
        """The venue's report for this order; None if it is certainly absent.

        Certainly absent: at least `lookup_attempts` answers "not found", spread over at least the
        visibility window. Raises `_Unresolved` when lookups kept failing so nobody can tell yet.
        """
        attempts, wait = self._lookup_schedule()
        first_absent: float | None = None
        absent_answers = 0
        last_error: Exception | None = None
        retrying, _ = self._retrying("lookup", (OrderNotFound, NotPlaced, MaybePlaced), order=order,
                                     attempts=attempts, wait_strategy=wait)
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        return await self.exchange.fetch_order(order.client_order_id, order.symbol)
                    except OrderNotFound:
                        now = time.monotonic()
                        first_absent = now if first_absent is None else first_absent
                        absent_answers += 1
                        if absent_answers >= self.lookup_attempts and now - first_absent >= self.lookup_window:
                            return None
                        raise
        except RetryError as exc:
            last_error = exc.last_attempt.exception()
        except Rejected as exc:
            last_error = exc
        if first_absent is not None and absent_answers >= 2 and time.monotonic() - first_absent >= self.lookup_window:
            return None  # "not found" answers spanned the window; a transient error at the end changes nothing
        raise _Unresolved(order, str(last_error))

    def _lookup_schedule(self):
        """How many lookups, and how far apart, so that together they outlast `lookup_window`:
        exponential from `retry_delay_seconds`, but never further apart than the window spread
        over the attempts (a venue hides an order for a moment, not for half a minute)."""
        delay = max(self.execution_config.retry_delay_seconds, 0.05)
        cap = max(delay, self.lookup_window / max(self.lookup_attempts - 1, 1))
        attempts, covered = self.lookup_attempts, 0.0
        for k in range(attempts - 1):
            covered += min(delay * 2**k, cap)
        while covered < self.lookup_window:
            covered += cap
            attempts += 1
        return attempts + 2, _jitter(multiplier=delay, max=cap, jitter=delay / 2)

    async def replace_absent(self, absent: Order, *, stale_check: bool = False) -> Order | None:
        """A certainly absent order's signal gets its next order (next replacement number), for
        what the signal still needs; with `stale_check` (after a restart) only if still valid."""
        record = await self.store.get_signal(absent.signal_id) if absent.signal_id else None
        if record is None or record.status is not SignalStatus.APPROVED or self.halted:
            return None
        siblings = await self.store.orders_for_signal(record.id or "")
        absent_orders = sum(1 for o in siblings if o.last_error.startswith("certainly absent"))
        if absent_orders > MAX_RESUBMISSIONS:
            reason = f"{absent_orders} orders certainly absent: back to the operator"
            await self.signal_back(record, SignalStatus.PENDING, reason)
            self._error(f"{record.id}: {reason}", order=absent)
            return None
        if stale_check and await self.stale_signal(record):
            return None
        try:
            order, _ = await self.commit_intent(record, launch=False)
        except PriceMoved as exc:
            await self.signal_back(record, SignalStatus.PENDING, f"{STALE}: {exc}", live_price=exc.live_price)
            return None
        if order is None or order.status is not O.NEW:
            return order
        self._error(f"{absent.client_order_id} certainly absent: resubmitted as {order.client_order_id}",
                    order=order, level="warning")
        return await self.run(order.client_order_id)

    # -- after a restart ----------------------------------------------------------------------

    async def stale_signal(self, record: SignalRecord, order: Order | None = None) -> str | None:
        """After a restart: why the signal's intent may no longer be sent (TTL, price moved, free
        balance), having ended the order `failed` and sent the signal back; None if it may."""
        reason: str | None = None
        status = SignalStatus.PENDING
        live: Decimal | None = None
        signal = record.signal
        if record.expires_at is not None and record.expires_at <= self.clock():
            reason, status = f"{STALE}: TTL passed", SignalStatus.EXPIRED
        elif signal is not None:
            type_ = order.type if order else OrderType(signal.order_type or self.execution_config.order_type)
            moved = await self.price_moved(record, type_)
            if moved is not None:
                reason, live = f"{STALE}: {moved}", moved.live_price
            elif order is not None:
                check = self.check_order(order.symbol, order.side, order.type, order.amount,
                                         order.price or (await self.ticker(order.symbol)).touch(order.side))
                if not check.ok:
                    reason = f"{STALE}: " + "; ".join(f"{k}: {v}" for k, v in check.errors.items())
        if reason is None:
            return None
        extra: list[Statement] = []
        if order is not None and order.status is O.NEW:
            async with self.locks.hold(order.client_order_id):
                mine = self.current(order.client_order_id)
                if mine is None or mine.status is not O.NEW:
                    return None  # someone sent or ended it meanwhile: nothing stale to give up
                extra = self._signal_back_statements(record, status, reason, live)
                await self._commit(order.client_order_id, O.FAILED, source="reconcile", last_error=reason,
                                   extra=extra)
            self._publish_signal(record, status, reason, live)
        else:
            await self.signal_back(record, status, reason, live_price=live)
        self._error(f"{record.id}: {reason}", signal_id=record.id, level="warning")
        return reason

    def _signal_back_statements(self, record, status, reason, live) -> list[Statement]:
        check_signal_transition(record.status, status, record.id)
        return self.store.signal_update(self._signal_copy(record, status, reason, live), record.status, "executor")

    def _signal_copy(self, record: SignalRecord, status, reason, live) -> SignalRecord:
        changes: dict[str, Any] = {"status": status, "reason": reason, "decided_at": self.clock(),
                                   "decided_by": "executor"}
        if live is not None and record.signal is not None and record.signal.price is None:
            changes["reference_price"] = live  # approving again means "at today's price"
        return record.model_copy(update=changes)

    def _publish_signal(self, record, status, reason, live) -> None:
        self.bus.publish(SignalDecided(self._signal_copy(record, status, reason, live)))

    async def signal_back(self, record: SignalRecord, status: SignalStatus, reason: str, *,
                          live_price: Decimal | None = None) -> None:
        """An approved signal back to the operator (or expired), nothing sent."""
        try:
            await self.store.transact(self._signal_back_statements(record, status, reason, live_price))
        except StaleWrite:
            return  # decided meanwhile by someone else: theirs stands
        self._publish_signal(record, status, reason, live_price)

    # -- tracking -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        last_balances = last_fees = time.monotonic()
        interval = self.poll_interval
        while True:
            await asyncio.sleep(interval)
            try:
                markets = await self.poll()
                fees_every = self.budget_interval("fetch_my_trades", BALANCE_SHARE, self.balance_interval)
                if self.fee_unknown and not self.pending_orders and time.monotonic() - last_fees >= fees_every:
                    last_fees = time.monotonic()  # nothing else to track: the fees need not wait a round
                    await self.reconciler.learn_fees()
                interval = self.budget_interval("fetch_open_orders", POLL_SHARE, self.poll_interval, markets)
                every = self.budget_interval("fetch_balances", BALANCE_SHARE, self.balance_interval)
                if time.monotonic() - last_balances >= every:
                    last_balances = time.monotonic()
                    await self.refresh_balances()
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                self._error(f"order tracking: {exc}", level="warning")
            except Exception as exc:  # never let tracking die silently
                log.exception("order tracking failed")
                self._error(f"order tracking failed: {exc}")

    async def poll(self) -> int:
        """One round of tracking: fills, final states, timeouts. Returns the markets it asked."""
        tracked = [o for o in self.pending_orders.values() if o.status.is_live or o.status is O.PENDING_CANCEL]
        if not tracked:
            return 0
        symbols = sorted({o.symbol for o in tracked})
        answers = await asyncio.gather(*(self.exchange.fetch_open_orders(s) for s in symbols), return_exceptions=True)
        open_reports: dict[str, ExchangeOrder] = {}
        asked: set[str] = set()
        for symbol, answer in zip(symbols, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, ExchangeError):
                    raise answer
                self._error(f"order tracking: {symbol} open orders: {answer}", level="warning")
                continue
            asked.add(symbol)
            open_reports.update((r.client_order_id, r) for r in answer)
        lookups = self.exchange.budget().affordable(self.exchange.request_cost("fetch_order"), LOOKUP_SHARE)
        now = self.clock()
        for i, order in enumerate(tracked):
            if i % POLL_SLICE == POLL_SLICE - 1:
                await asyncio.sleep(0)  # 10,000 tracked orders: commands and events are not held up
            coid = order.client_order_id
            if order.symbol not in asked or self.locks.locked(coid):
                continue  # no answer for its market this round, or a cancel or amend owns it right now
            report = open_reports.get(coid)
            if report is None and lookups > 0:
                lookups -= 1
                report = await self._fetch_missing(order)
            current = self.current(coid)
            if report is not None and current is not None and not _unchanged(current, report, now):
                async with self.locks.hold(coid):
                    if self.current(coid) is not None:
                        await self._fold(coid, report, "request")
            self._due(coid)
        return len(symbols)

    async def _fetch_missing(self, order: Order) -> ExchangeOrder | None:
        """A tracked order missing from the open orders: ended, invisible for a moment, or unknown
        to the venue (then it ends `expired` once that has held across the visibility window)."""
        coid = order.client_order_id
        try:
            report = await self.exchange.fetch_order(coid, order.symbol)
        except OrderNotFound:
            misses, first = self._missing.get(coid, (0, time.monotonic()))
            self._missing[coid] = (misses + 1, first)
            if misses + 1 >= self.lookup_attempts and time.monotonic() - first >= self.lookup_window:
                async with self.locks.hold(coid):
                    if (current := self.current(coid)) is not None and not current.status.is_terminal:
                        await self._commit(coid, O.EXPIRED, source="reconcile",
                                           last_error=f"{current.status} in the store but unknown to the venue")
                        self._error(f"{coid}: unknown to the venue; ended expired", order=current)
            return None
        except ExchangeError as exc:
            self._error(f"order tracking: {coid}: {exc}", level="warning", order=order)
            return None
        self._missing.pop(coid, None)
        return report

    def _due(self, coid: str) -> None:
        """Start what time makes due for a tracked order: its timeout, or a cancel sent again."""
        order = self.current(coid)
        if order is None or coid in self._timing_out:
            return
        now = self.clock()
        if order.status.is_live and order.timeout_at is not None and order.timeout_at <= now \
                and coid not in self._keep_open:
            self._timing_out.add(coid)
            self.spawn(self._on_timeout(coid), name=f"timeout:{coid}")
        elif order.status is O.PENDING_CANCEL and \
                time.monotonic() - self._cancel_sent.get(coid, 0.0) >= self.cancel_resend_after:
            self._timing_out.add(coid)
            self.spawn(self._on_timeout(coid, resend=True), name=f"cancel-again:{coid}")

    async def _on_timeout(self, coid: str, *, resend: bool = False) -> None:
        try:
            if resend:
                await self.cancel_order(coid, source="timer", reason="cancel not confirmed: sent again")
            else:
                await self._time_out(coid)
        except ExecutionError as exc:
            self._error(f"{coid}: timeout: {exc}", level="warning")
        finally:
            self._timing_out.discard(coid)

    async def _time_out(self, coid: str) -> None:
        timeout = self.execution_config.order_timeout_seconds
        async with self.locks.hold(coid):
            order = self.current(coid)
            if order is None or not order.status.is_live:
                return
            if order.filled > 0 and self.execution_config.partial_fill == "keep_open":
                order = await self._commit(coid, source="timer", detail={"timeout": timeout,
                                                                         "partial_fill": "keep_open"}, timeout_at=None)
                self._keep_open.add(coid)
                self._error(
                    f"{coid}: not filled after {timeout:g}s; {fmt(order.filled)} of {fmt(order.amount)} filled, "
                    "the rest stays open (partial_fill = keep_open)",
                    level="warning",
                    order=order,
                )
                return
        await self.cancel_order(coid, source="timer", reason=f"timeout after {timeout:g}s")

    # -- cancel, amend, kill switch -----------------------------------------------------------

    async def cancel_order(self, coid: str, *, source: str = "operator", reason: str = "canceled") -> Order:
        """Cancel one order and wait for its final state, with the fills that raced the cancel.

        A cancel that certainly did not reach the venue (or ran out of retries without ever maybe
        reaching it) puts the order back where it was, so timeouts, the operator and the kill
        switch can act on it again; one that may have landed stays `pending_cancel` and tracking
        sends it again after `CANCEL_RESEND_AFTER`.
        """
        async with self.locks.hold(coid):
            order = self.current(coid)
            if order is None or not (order.status.is_live or order.status is O.PENDING_CANCEL):
                state = order.status if order else "final or unknown"
                raise ExecutionError(f"{coid} cannot be canceled in state {state}")
            live_state = O.PARTIALLY_FILLED if order.filled > 0 else O.OPEN
            if order.status is not O.PENDING_CANCEL:
                order = await self._commit(coid, O.PENDING_CANCEL, source=source, detail={"reason": reason},
                                           last_error=reason)
            self._cancel_sent[coid] = time.monotonic()
            maybe_reached = False

            async def cancel() -> ExchangeOrder | None:
                nonlocal maybe_reached
                try:
                    return await self.exchange.cancel_order(coid, order.symbol)
                except MaybePlaced:
                    maybe_reached = True
                    raise

            try:
                report = await self._call("cancel_order", cancel)
            except OrderNotFound:
                report = None  # already final on the venue (filled, or canceled): look it up below
            except (NotPlaced, MaybePlaced, Rejected) as exc:
                if maybe_reached or isinstance(exc, MaybePlaced):
                    self._error(f"{coid}: cancel not confirmed ({exc}); sent again if it stays open",
                                order=order, level="warning")
                    return self.current(coid) or order
                self._error(f"{coid}: cancel did not reach the venue ({exc}); the order stays {live_state}",
                            order=order)
                return await self._commit(coid, live_state, source=source, last_error=f"cancel failed: {exc}")
            if report is None or report.status.is_live or not states_fills(report):
                # A cancel answer is a fact only for what it states: fetch the fills it leaves out.
                try:
                    report = await self._call("fetch_order", self.exchange.fetch_order, coid, order.symbol)
                except ExchangeError as exc:
                    self._error(f"{coid}: state after cancel unknown ({exc})", order=order, level="warning")
                    return self.current(coid) or order
            return await self._fold(coid, report, source)

    async def cancel_all(self, *, source: str = "operator", reason: str = "kill switch") -> KillSwitchResult:
        return await self.kill_switch(source=source, reason=reason)

    async def kill_switch(self, *, source: str = "operator", reason: str = "kill switch",
                          deadline: float = 60.0) -> KillSwitchResult:
        """Block every new create, wait for the creates in flight to settle, cancel every live
        order, and repeat until none is left (or `deadline` passes)."""
        self.halted = True
        canceled: list[Order] = []
        until = time.monotonic() + deadline
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), timeout=max(0.0, until - time.monotonic()))
            live = [c for c, o in self.pending_orders.items() if o.status.is_live or o.status is O.PENDING_CANCEL]
            if (not live and not self.creating) or time.monotonic() >= until:
                break
            results = await asyncio.gather(*(self.cancel_order(c, source=source, reason=reason) for c in live),
                                           return_exceptions=True)
            for coid, result in zip(live, results, strict=True):
                if isinstance(result, Order) and result.status is O.CANCELED:
                    canceled.append(result)
                elif isinstance(result, Exception):
                    self._error(f"{coid}: cancel failed: {result}")
            if not self.creating and all(isinstance(r, Order) and not r.status.is_live for r in results):
                await asyncio.sleep(0)
        # Unresolved creates count as open: nobody can say yet that they are not.
        left = {c for c, o in self.pending_orders.items() if o.status is not O.NEW} | set(self.creating)
        return KillSwitchResult(orders=tuple(canceled), left_open=len(left))

    def resume(self) -> None:
        self.halted = False

    async def check_amend(
        self, coid: str, *, price: Decimal | None = None, amount: Decimal | None = None
    ) -> AmendCheck:
        """Validate an amend of an open order without sending anything (the modal calls this).

        `amount` is the new total for the signal, its filled part included; the replacement
        trades `amount - filled`. It may not exceed what the signal asked for.
        """
        order = self.current(coid)
        if order is None or not order.status.is_live:
            state = order.status if order else "final"
            return AmendCheck({"order": f"{coid} cannot be amended ({state})"}, amount, price, None, None)
        signal_amount = await self._signal_amount(order)
        filled = await self._signal_filled(order)
        target = amount if amount is not None else signal_amount
        new_price = price if price is not None else order.price
        remaining = target - filled
        releasing = (
            order.remaining * (order.price or ZERO) * Decimal("1.001") if order.side is Side.BUY else (order.remaining)
        )
        check = self.check_order(order.symbol, order.side, order.type, remaining, new_price, releasing=releasing)
        errors = dict(check.errors)
        if target > signal_amount:
            errors["amount"] = f"at most {fmt(signal_amount)}, what the signal asked for"
        elif remaining <= 0:
            errors["amount"] = f"{fmt(filled)} is already filled; the new total must be larger"
        elif "amount" in errors:
            errors["amount"] = f"remaining {fmt(remaining)}: {errors['amount']}"
        return AmendCheck(errors, remaining, new_price, check.notional, check.fee)

    async def amend_order(
        self, coid: str, *, price: Decimal | None = None, amount: Decimal | None = None, source: str = "operator"
    ) -> Order | None:
        """Cancel-and-replace. `amount` is the new total for the signal (filled part included).

        The replacement is sized only after the cancel is final and its fills are known (fetched
        when the cancel answer does not state them), from every fill of the signal, so a fill that
        races the cancel can never make the signal fill past its amount.
        Returns the replacement, or None when nothing remains to trade.
        """
        check = await self.check_amend(coid, price=price, amount=amount)
        if not check.ok:
            raise ExecutionError("; ".join(f"{k}: {v}" for k, v in check.errors.items()))
        order = self.current(coid)
        if order is None:
            raise ExecutionError(f"{coid} ended while the amend was checked")
        signal_key = order.signal_id or coid
        async with self.locks.hold(f"signal:{signal_key}"):
            signal_amount = await self._signal_amount(order)
            target = min(amount, signal_amount) if amount is not None else signal_amount
            canceled = await self.cancel_order(coid, source=source, reason="amend: cancel-and-replace")
            if not canceled.status.is_terminal:
                raise ExecutionError(f"{coid}: cancel not confirmed; nothing replaced (try the amend again)")
            filled = await self._signal_filled(canceled)
            remaining = target - filled
            market = self.markets[order.symbol]
            if remaining < market.min_amount:
                self._error(
                    f"{coid}: amended; {fmt(filled)} filled of the new total {fmt(target)}, "
                    f"remaining {fmt(max(remaining, ZERO))} not replaced",
                    level="warning",
                    order=canceled,
                )
                return None
            if self.halted:
                raise ExecutionError("kill switch engaged: nothing replaced")
            siblings = await self.store.orders_for_signal(order.signal_id) if order.signal_id else [canceled]
            replacement_no = max(o.replacement for o in siblings) + 1
            now = self.clock()
            replacement = Order(
                client_order_id=client_order_id(self.client_id_prefix, signal_key, replacement_no),
                signal_id=order.signal_id,
                replacement=replacement_no,
                symbol=order.symbol,
                side=order.side,
                type=order.type,
                amount=remaining,
                price=check.price,
                created_at=now,
                updated_at=now,
                timeout_at=now + timedelta(seconds=self.execution_config.order_timeout_seconds)
                if order.type is OrderType.LIMIT
                else None,
            )
            await self._insert(replacement, source=source, detail={"intent": True, "replaces": coid})
        return await self.run(replacement.client_order_id)

    async def _signal_filled(self, order: Order) -> Decimal:
        """Base filled across every exchange order of the order's signal."""
        if not order.signal_id:
            return (self.current(order.client_order_id) or order).filled
        siblings = await self.store.orders_for_signal(order.signal_id)
        return sum(((self.current(o.client_order_id) or o).filled for o in siblings), ZERO)

    async def _signal_amount(self, order: Order) -> Decimal:
        if order.signal_id:
            record = await self.store.get_signal(order.signal_id)
            if record is not None and record.amount is not None:
                return record.amount
        return order.amount


def _round(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00000001")).normalize()
