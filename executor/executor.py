"""The TradeExecutor: approved signals in, exchange orders out, every step journaled.

Owns the life of each order after approval: pre-trade checks, the order's intent committed
before its create request, the error policy of SPEC section 6 (decided on the exchange port's
three error classes only), resolution of maybe-placed requests by looking the order up by its
client order id, pending-order tracking, limit-order timeouts, cancel, amend by
cancel-and-replace, and `reconcile()` against the venue.

Signals run concurrently: each approved signal is its own task, so a resting order, a slow
request or a back-off never holds up the next one; only the venue's rate limit brakes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from executor.clientid import client_order_id, has_prefix
from executor.events import (
    BalancesUpdated,
    ErrorOccurred,
    EventBus,
    OrderUpdated,
    Reconciled,
    ReconcileResult,
    RetryScheduled,
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
    MarketInfo,
    Order,
    OrderStatus,
    OrderType,
    Side,
    SignalRecord,
    to_decimal,
    utcnow,
)
from executor.signals import fmt
from executor.states import check_order_transition
from executor.store import Store
from executor.tracking import apply_report

if TYPE_CHECKING:
    from executor.config import ExecutionConfig

log = logging.getLogger("tradeconsole.executor")

O = OrderStatus


class ExecutionError(Exception):
    """An operator-facing refusal (pre-trade check, wrong state). The message is the reason."""


class PriceMoved(ExecutionError):
    """A market order's live price left the slippage tolerance: back to the operator."""

    def __init__(self, message: str, live_price: Decimal) -> None:
        super().__init__(message)
        self.live_price = live_price


class _CertainlyAbsent(NotPlaced):
    """Every lookup across the visibility window said the venue has no such order."""


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
        # Resubmitting too early is how a venue that forgets filled client ids gets two orders.
        self.lookup_attempts = lookup_attempts or max(3, execution_config.max_retries + 2)
        self.lookup_window = lookup_window
        self.clock = clock
        self.markets: dict[str, MarketInfo] = {}
        self.pending_orders: dict[str, Order] = {}  # non-terminal orders by client order id
        self.balances: dict[str, Balance] = {}
        self.external_orders: list[ExchangeOrder] = []
        self.last_reconcile: ReconcileResult | None = None
        self._tickers: dict[str, tuple[float, Ticker]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None
        self._fill_deltas: dict[str, Decimal] = {}
        self._keep_open: set[str] = set()
        self._timing_out: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, watch: bool = True) -> ReconcileResult:
        """Load markets and the store's open orders, reconcile, then start tracking."""
        self.markets = await self._call("load_markets", self.exchange.load_markets)
        for order in await self.store.orders(include_terminal=False):
            self.pending_orders[order.client_order_id] = order
        await self.refresh_balances()
        result = await self.reconcile()
        if watch:
            self._watcher = asyncio.create_task(self._watch(), name="order-watcher")
        return result

    async def stop(self) -> None:
        """Stop tracking; requests in flight finish and are journaled. Open orders stay open."""
        if self._watcher:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def idle(self) -> bool:
        """No order in a non-terminal state and no request in flight."""
        return not self._tasks and not self.pending_orders

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s failed: %s", task.get_name(), exc, exc_info=exc)
            self._error(f"internal error in {task.get_name()}: {exc}")

    # -- helpers ------------------------------------------------------------------------------

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _error(self, message: str, *, level: str = "error", order: Order | None = None, signal_id=None) -> None:
        log.log(logging.ERROR if level == "error" else logging.WARNING, "%s", message)
        self.bus.publish(
            ErrorOccurred(
                message=message,
                level=level,
                client_order_id=order.client_order_id if order else None,
                signal_id=signal_id or (order.signal_id if order else None),
                ts=self.clock(),
            )
        )

    async def _call(self, operation: str, fn, *args, **kwargs):
        """A read-only request, retried on every error class but `Rejected` (reads are idempotent)."""
        cfg = self.execution_config
        retrying = AsyncRetrying(
            stop=stop_after_attempt(cfg.max_retries + 1),
            wait=self._wait(),
            retry=retry_if_exception_type((NotPlaced, MaybePlaced)),
            before_sleep=self._log_retry(operation),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await fn(*args, **kwargs)
        raise AssertionError("unreachable")

    def _wait(self, delay: float | None = None):
        delay = self.execution_config.retry_delay_seconds if delay is None else delay
        return wait_exponential_jitter(multiplier=delay, max=delay * 32, jitter=delay / 2)

    def _lookup_schedule(self):
        """How many lookups, and how far apart, so that together they outlast `lookup_window`."""
        delay = max(self.execution_config.retry_delay_seconds, 0.05)
        attempts, covered = self.lookup_attempts, 0.0
        for k in range(attempts - 1):
            covered += min(delay * 2**k, delay * 32)
        while covered < self.lookup_window:
            covered += min(delay * 2 ** (attempts - 1), delay * 32)
            attempts += 1
        return attempts, self._wait(delay)

    def _log_retry(self, operation: str, order: Order | None = None, max_attempts: int | None = None):
        max_attempts = max_attempts or self.execution_config.max_retries + 1

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            reason = f"{type(exc).__name__}: {exc}" if exc else "retry"
            log.warning(
                "%s %s attempt %d/%d failed (%s); retrying in %.2fs",
                operation,
                order.client_order_id if order else "",
                state.attempt_number,
                max_attempts,
                reason,
                delay,
            )
            self.bus.publish(
                RetryScheduled(
                    operation=operation,
                    attempt=state.attempt_number,
                    max_attempts=max_attempts,
                    delay=delay,
                    reason=reason,
                    client_order_id=order.client_order_id if order else None,
                    signal_id=order.signal_id if order else None,
                    ts=self.clock(),
                )
            )

        return before_sleep

    async def _set(
        self,
        order: Order,
        status: OrderStatus | None = None,
        *,
        source: str,
        detail: dict | None = None,
        fills=(),
        **changes,
    ) -> Order:
        """The one way an order changes: checked against the table, journaled, then published."""
        old = self.pending_orders.get(order.client_order_id, order).status
        if status is not None and status != old:
            check_order_transition(old, status, order.client_order_id)
            changes["status"] = status
        changes["updated_at"] = self.clock()
        new = order.model_copy(update=changes)
        await self.store.save_order(new, old=old, source=source, detail=detail, fills=fills)
        self._track(new)
        self.bus.publish(OrderUpdated(new))
        return new

    def _track(self, order: Order) -> None:
        if order.status.is_terminal:
            self.pending_orders.pop(order.client_order_id, None)
            self._keep_open.discard(order.client_order_id)
        else:
            self.pending_orders[order.client_order_id] = order

    async def _apply(self, order: Order, report: ExchangeOrder, source: str) -> Order:
        applied = apply_report(order, report, self.clock())
        if applied.overfill > 0:
            self._error(
                f"{order.client_order_id}: venue reports {fmt(report.filled)} filled of {fmt(order.amount)}; "
                "capped at the order amount",
                order=order,
            )
        if not applied.changed and applied.order == order:
            return order
        new = applied.order
        for fill in applied.fills:
            self._note_fill(fill.symbol, fill.side, fill.amount, fill.price, fill.fee, fill.fee_currency)
        await self.store.save_order(new, old=applied.old, source=source, fills=applied.fills)
        self._track(new)
        self.bus.publish(OrderUpdated(new))
        return new

    def _note_fill(self, symbol, side, amount, price, fee, fee_currency) -> None:
        market = self.markets.get(symbol)
        if market is None:
            return
        sign = 1 if side is Side.BUY else -1
        d = self._fill_deltas
        d[market.base] = d.get(market.base, ZERO) + sign * amount
        d[market.quote] = d.get(market.quote, ZERO) - sign * amount * price
        if fee and fee_currency:
            d[fee_currency] = d.get(fee_currency, ZERO) - fee

    async def ticker(self, symbol: str, max_age: float = 1.0) -> Ticker:
        cached = self._tickers.get(symbol)
        now = time.monotonic()
        if cached and now - cached[0] <= max_age:
            return cached[1]
        ticker = await self._call("fetch_ticker", self.exchange.fetch_ticker, symbol)
        self._tickers[symbol] = (now, ticker)
        return ticker

    # -- balances -----------------------------------------------------------------------------

    async def refresh_balances(self) -> dict[str, Balance]:
        balances = await self._call("fetch_balances", self.exchange.fetch_balances)
        self.balances = balances
        self._fill_deltas = {}
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
                    prices[currency] = (await self.ticker(symbol, max_age=2.0)).mid
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
        """Pre-trade checks with reasons per field: precision, minimums, free balance.

        `releasing` is quote (buy) or base (sell) that a cancel-and-replace frees first.
        """
        errors: dict[str, str] = {}
        market = self.markets.get(symbol)
        if market is None:
            return AmendCheck(
                {"symbol": f"{symbol} is not a market on {self.exchange.name}"}, amount, price, None, None
            )
        if amount is None or amount <= 0:
            errors["amount"] = "must be greater than 0"
        else:
            if amount < market.min_amount:
                errors["amount"] = f"{fmt(amount)} is below the minimum {fmt(market.min_amount)} {market.base}"
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

    # -- execution ----------------------------------------------------------------------------

    async def execute_signal(self, record: SignalRecord) -> Order:
        """Place the order of an approved signal; returns it once placed or final.

        Raises `PriceMoved` (nothing sent, signal goes back to the operator). Every other
        outcome, including pre-trade refusals, is an order in the store with its reason.
        """
        signal = record.signal
        assert signal is not None and record.amount is not None and record.id is not None
        cfg = self.execution_config
        market = self.markets.get(signal.symbol)
        type_ = OrderType(signal.order_type or cfg.order_type)
        coid = client_order_id(self.client_id_prefix, record.id, 0)
        # The client order id's lock is held from the intent to the venue's answer, so no other
        # path (reconcile, a second approval) can ever send the same order concurrently.
        async with self._lock(f"signal:{record.id}"), self._lock(coid):
            existing = await self.store.get_order(coid)
            if existing is not None:  # approved twice (restart, race): never a second order
                return existing
            price: Decimal | None = None
            if market is not None and type_ is OrderType.LIMIT:
                reference = (
                    to_decimal(signal.price) if signal.price else (await self.ticker(signal.symbol)).touch(signal.side)
                )
                price = limit_price(reference, cfg.slippage_tolerance_pct, market.price_tick, signal.side)
            elif market is not None:
                live = (await self.ticker(signal.symbol)).touch(signal.side)
                ref = record.reference_price or live
                moved = abs(live - ref) / ref * 100
                if moved > to_decimal(cfg.slippage_tolerance_pct):
                    raise PriceMoved(
                        f"price moved: {signal.symbol} {fmt(live)} is {fmt(moved.quantize(Decimal('0.01')))}% from "
                        f"the reference {fmt(ref)} (tolerance {cfg.slippage_tolerance_pct}%)",
                        live,
                    )
                price = live  # for the checks only; a market order is sent without a price
            now = self.clock()
            order = Order(
                client_order_id=coid,
                signal_id=record.id,
                symbol=signal.symbol,
                side=signal.side,
                type=type_,
                amount=record.amount,
                price=price if type_ is OrderType.LIMIT else None,
                created_at=now,
                updated_at=now,
                timeout_at=now + timedelta(seconds=cfg.order_timeout_seconds) if type_ is OrderType.LIMIT else None,
            )
            check = self.check_order(signal.symbol, signal.side, type_, record.amount, price)
            if not check.ok:
                reason = "; ".join(f"{k}: {v}" for k, v in check.errors.items())
                order = order.model_copy(update={"status": O.REJECTED, "last_error": f"pre-trade check: {reason}"})
                await self.store.save_order(order, old=None, source="request", detail={"reason": order.last_error})
                self.bus.publish(OrderUpdated(order))
                self._error(f"{record.id}: {order.last_error}", order=order, level="warning")
                return order
            # The intent, with its client order id, is durable before anything leaves the process.
            await self.store.save_order(order, old=None, source="request", detail={"intent": True})
            self._track(order)
            self.bus.publish(OrderUpdated(order))
            if signal.side is Side.BUY:
                self._reserve(market.quote, (check.notional or ZERO) + (check.fee or ZERO))
            else:
                self._reserve(market.base, record.amount)
            return await self._place_locked(order)

    async def _place_locked(self, order: Order) -> Order:
        """Get one order placed under the error policy (caller holds its lock). Returns it."""
        coid = order.client_order_id
        assert self._lock(coid).locked(), "placing an order without holding its lock"
        cfg = self.execution_config
        retrying = AsyncRetrying(
            stop=stop_after_attempt(cfg.max_retries + 1),
            wait=self._wait(),
            retry=retry_if_exception_type(NotPlaced),
            before_sleep=self._log_retry("create_order", order),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._create_once(coid)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            order = await self._set(
                self.pending_orders[coid],
                O.FAILED,
                source="request",
                last_error=f"not placed after {cfg.max_retries + 1} attempts: {last}",
            )
            self._error(f"{coid}: {order.last_error}", order=order)
        except Rejected as exc:
            order = await self._set(self.pending_orders[coid], O.REJECTED, source="request", last_error=str(exc))
            self._error(f"{coid}: rejected: {exc}", order=order, level="warning")
        except _Unresolved as exc:
            order = self.pending_orders.get(coid, exc.order)
            self._error(f"{coid}: outcome unknown after lookups ({exc}); reconciliation will resolve it", order=order)
        return order

    async def _create_once(self, coid: str) -> Order:
        """One create attempt. Raises NotPlaced to retry, Rejected to stop, _Unresolved to leave it."""
        order = self.pending_orders[coid]
        order = await self._set(order, O.SUBMITTING, source="request", attempts=order.attempts + 1)
        try:
            report = await self.exchange.create_order(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                type=order.type,
                amount=order.amount,
                price=order.price,
            )
        except DuplicateOrder:
            # The venue already holds this client order id: it was placed. Find it; never re-send.
            order = await self._set(order, O.UNKNOWN, source="request", last_error="duplicate client order id")
            return await self._resolve(order)
        except NotPlaced as exc:
            order = order.model_copy(update={"last_error": str(exc)})
            self.pending_orders[order.client_order_id] = order
            raise
        except MaybePlaced as exc:
            order = await self._set(order, O.UNKNOWN, source="request", last_error=f"maybe placed: {exc}")
            return await self._resolve(order)
        return await self._apply(order.model_copy(update={"last_error": ""}), report, "request")

    async def _resolve(self, order: Order) -> Order:
        """Look a maybe-placed order up by client order id until found or certainly absent."""
        report = await self.lookup(order)
        if report is None:
            # Certainly absent: resubmitting with the same client order id is safe; the outer
            # retry loop does it after its back-off (and counts it as an attempt).
            raise _CertainlyAbsent(f"{order.client_order_id} not on the venue after lookups")
        return await self._apply(order.model_copy(update={"last_error": ""}), report, "request")

    async def lookup(self, order: Order) -> ExchangeOrder | None:
        """The venue's report for this order; None if it is certainly absent.

        Raises `_Unresolved` when lookups kept failing so nobody can tell yet.
        """
        last_error: Exception | None = None
        attempts, wait = self._lookup_schedule()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait,
            retry=retry_if_exception_type((OrderNotFound, NotPlaced, MaybePlaced)),
            before_sleep=self._log_retry("lookup", order, attempts),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self.exchange.fetch_order(order.client_order_id, order.symbol)
        except RetryError as exc:
            last_error = exc.last_attempt.exception()
        except Rejected as exc:
            last_error = exc
        if isinstance(last_error, OrderNotFound):
            return None
        raise _Unresolved(order, str(last_error))

    # -- tracking -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        last_balances = time.monotonic()
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.poll()
                if time.monotonic() - last_balances >= self.balance_interval:
                    last_balances = time.monotonic()
                    await self.refresh_balances()
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                self._error(f"order tracking: {exc}", level="warning")
            except Exception as exc:  # never let tracking die silently
                log.exception("order tracking failed")
                self._error(f"order tracking failed: {exc}")

    async def poll(self) -> None:
        """One round of pending-order tracking: fills, final states, timeouts."""
        live = [o for o in self.pending_orders.values() if o.status in (O.OPEN, O.PARTIALLY_FILLED, O.PENDING_CANCEL)]
        if not live:
            return
        open_reports = {r.client_order_id: r for r in await self.exchange.fetch_open_orders()}
        now = self.clock()
        for order in live:
            coid = order.client_order_id
            if self._lock(coid).locked():
                continue  # a cancel or amend owns it right now
            report = open_reports.get(coid)
            if report is None:
                try:
                    report = await self.exchange.fetch_order(coid, order.symbol)
                except OrderNotFound:
                    continue  # not visible yet; reconciliation flags it if it stays away
            async with self._lock(coid):
                current = self.pending_orders.get(coid)
                if current is None:
                    continue
                current = await self._apply(current, report, "request")
            if (
                current.status.is_live
                and current.timeout_at is not None
                and current.timeout_at <= now
                and coid not in self._keep_open
                and coid not in self._timing_out
            ):
                self._timing_out.add(coid)
                self.spawn(self._on_timeout(coid), name=f"timeout:{coid}")

    async def _on_timeout(self, coid: str) -> None:
        try:
            await self._time_out(coid)
        finally:
            self._timing_out.discard(coid)

    async def _time_out(self, coid: str) -> None:
        timeout = self.execution_config.order_timeout_seconds
        async with self._lock(coid):
            order = self.pending_orders.get(coid)
            if order is None or not order.status.is_live:
                return
            if order.filled > 0 and self.execution_config.partial_fill == "keep_open":
                order = await self._set(
                    order, source="timer", detail={"timeout": timeout, "partial_fill": "keep_open"}, timeout_at=None
                )
                self._keep_open.add(coid)
                self._error(
                    f"{coid}: not filled after {timeout:g}s; {fmt(order.filled)} of {fmt(order.amount)} filled, "
                    "the rest stays open (partial_fill = keep_open)",
                    level="warning",
                    order=order,
                )
                return
        await self.cancel_order(coid, source="timer", reason=f"timeout after {timeout:g}s")

    async def cancel_order(self, coid: str, *, source: str = "operator", reason: str = "canceled") -> Order:
        """Cancel one order and wait for its final state (with the fills that raced the cancel)."""
        async with self._lock(coid):
            order = self.pending_orders.get(coid)
            if order is None or not order.status.is_live:
                state = order.status if order else "final or unknown"
                raise ExecutionError(f"{coid} cannot be canceled in state {state}")
            order = await self._set(order, O.PENDING_CANCEL, source=source, detail={"reason": reason})
            try:
                report = await self._call("cancel_order", self.exchange.cancel_order, coid, order.symbol)
            except OrderNotFound:
                report = None  # already final on the venue (filled, or canceled): look it up below
            except (NotPlaced, MaybePlaced) as exc:
                # Nobody knows whether the cancel landed; the next poll settles the state.
                self._error(f"{coid}: cancel not confirmed ({exc}); tracking continues", order=order, level="warning")
                return order
            if report is None or report.status.is_live:
                try:
                    report = await self._call("fetch_order", self.exchange.fetch_order, coid, order.symbol)
                except ExchangeError as exc:
                    self._error(f"{coid}: state after cancel unknown ({exc})", order=order, level="warning")
                    return order
            order = await self._apply(order.model_copy(update={"last_error": reason}), report, source)
            if order.status is O.PENDING_CANCEL and not report.status.is_live:
                order = await self._set(order, report.status, source=source)
            return order

    async def cancel_all(self, *, source: str = "operator", reason: str = "kill switch") -> list[Order]:
        coids = [c for c, o in self.pending_orders.items() if o.status.is_live]
        results = await asyncio.gather(
            *(self.cancel_order(c, source=source, reason=reason) for c in coids), return_exceptions=True
        )
        for coid, result in zip(coids, results, strict=True):
            if isinstance(result, Exception):
                self._error(f"{coid}: cancel failed: {result}")
        return [r for r in results if isinstance(r, Order)]

    async def check_amend(
        self, coid: str, *, price: Decimal | None = None, amount: Decimal | None = None
    ) -> AmendCheck:
        """Validate an amend of an open order without sending anything (the modal calls this).

        `amount` is the new total for the signal, its filled part included; the replacement
        trades `amount - filled`. It may not exceed what the signal asked for.
        """
        order = self.pending_orders.get(coid)
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

        The replacement is sized only after the cancel is final, from every fill of the signal,
        so a fill that races the cancel can never make the signal fill past its amount.
        Returns the replacement, or None when nothing remains to trade.
        """
        check = await self.check_amend(coid, price=price, amount=amount)
        if not check.ok:
            raise ExecutionError("; ".join(f"{k}: {v}" for k, v in check.errors.items()))
        order = self.pending_orders[coid]
        signal_key = order.signal_id or coid
        async with self._lock(f"signal:{signal_key}"):
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
            async with self._lock(replacement.client_order_id):
                await self.store.save_order(
                    replacement, old=None, source=source, detail={"intent": True, "replaces": coid}
                )
                self._track(replacement)
                self.bus.publish(OrderUpdated(replacement))
                return await self._place_locked(replacement)

    async def _signal_filled(self, order: Order) -> Decimal:
        """Base filled across every exchange order of the order's signal."""
        if not order.signal_id:
            return self.pending_orders.get(order.client_order_id, order).filled
        siblings = await self.store.orders_for_signal(order.signal_id)
        return sum((self.pending_orders.get(o.client_order_id, o).filled for o in siblings), ZERO)

    async def _signal_amount(self, order: Order) -> Decimal:
        if order.signal_id:
            record = await self.store.get_signal(order.signal_id)
            if record is not None and record.amount is not None:
                return record.amount
        return order.amount

    # -- reconciliation -----------------------------------------------------------------------

    async def reconcile(self) -> ReconcileResult:
        """Check every non-terminal order against the venue and adopt what it says (SPEC 7)."""
        started = self.clock()
        errors: list[str] = []
        checked = updated = resolved = adopted = 0
        try:
            open_reports = await self._call("fetch_open_orders", self.exchange.fetch_open_orders)
        except ExchangeError as exc:
            open_reports = None
            errors.append(f"open orders: {exc}")
        by_coid = {r.client_order_id: r for r in open_reports or []}
        stored = {o.client_order_id: o for o in await self.store.orders(include_terminal=False)}
        stored.update(self.pending_orders)
        resubmit: list[Order] = []
        for coid, order in list(stored.items()):
            if self._lock(coid).locked():
                continue  # a request of this process owns it right now
            checked += 1
            async with self._lock(coid):
                order = self.pending_orders.get(coid, order)
                before = order.status
                try:
                    report = by_coid.get(coid) or await self.exchange.fetch_order(coid, order.symbol)
                except OrderNotFound:
                    report = None
                except ExchangeError as exc:
                    errors.append(f"{coid}: {exc}")
                    continue
                if report is None:
                    if order.status in (O.NEW, O.SUBMITTING, O.UNKNOWN):
                        resubmit.append(order)  # resolved below, across the visibility window
                    else:
                        errors.append(f"{coid}: {order.status} in the store but unknown to the venue")
                    continue
                if order.status is O.NEW:
                    order = await self._set(order, O.SUBMITTING, source="reconcile")
                order = await self._apply(order, report, "reconcile")
                if before in (O.UNKNOWN, O.NEW, O.SUBMITTING) and order.status not in (O.UNKNOWN, O.SUBMITTING):
                    resolved += 1
                if order.status != before:
                    updated += 1
        for order in resubmit:
            # A create that may or may not have left before the crash: resolve it exactly like a
            # maybe-placed request (lookups across the window, then the same client order id).
            self.spawn(self._recover(order), name=f"recover:{order.client_order_id}")
        external: list[ExchangeOrder] = []
        for report in open_reports or []:
            coid = report.client_order_id
            if coid in stored or coid in self.pending_orders:
                continue
            if coid and has_prefix(coid, self.client_id_prefix):
                now = self.clock()
                order = Order(
                    client_order_id=coid,
                    signal_id=None,
                    exchange_order_id=report.exchange_order_id,
                    symbol=report.symbol,
                    side=report.side,
                    type=report.type,
                    amount=report.amount,
                    price=report.price,
                    status=O.OPEN,
                    created_at=report.ts or now,
                    updated_at=now,
                    origin="adopted",
                    last_error="adopted: on the venue with our prefix but not in the store",
                )
                await self.store.save_order(order, old=None, source="reconcile", detail={"adopted": True})
                self._track(order)
                order = await self._apply(order, report, "reconcile")
                self.bus.publish(OrderUpdated(order))
                adopted += 1
                self._error(f"{coid}: adopted an open order the store did not know", level="warning", order=order)
            else:
                external.append(report)
        self.external_orders = external
        drift: dict[str, Decimal] = {}
        try:
            expected = {c: b.total for c, b in self.balances.items()}
            for ccy, delta in self._fill_deltas.items():
                expected[ccy] = expected.get(ccy, ZERO) + delta
            fresh = await self.refresh_balances()
            if expected:
                for ccy in set(expected) | set(fresh):
                    diff = (fresh[ccy].total if ccy in fresh else ZERO) - expected.get(ccy, ZERO)
                    if abs(diff) > Decimal("1e-8"):
                        drift[ccy] = diff
        except ExchangeError as exc:
            errors.append(f"balances: {exc}")
        statuses = [o.status for o in self.pending_orders.values()]
        result = ReconcileResult(
            at=started,
            checked=checked,
            updated=updated,
            resolved_unknown=resolved,
            adopted=adopted,
            external=len(external),
            open=sum(1 for s in statuses if s.is_live or s is O.PENDING_CANCEL),
            unknown=sum(1 for s in statuses if s is O.UNKNOWN),
            drift=drift,
            errors=errors,
        )
        self.last_reconcile = result
        self.bus.publish(Reconciled(result))
        if errors:
            for message in errors:
                self._error(f"reconcile: {message}", level="warning")
        return result

    async def _recover(self, order: Order) -> None:
        coid = order.client_order_id
        async with self._lock(coid):
            order = self.pending_orders.get(coid, order)
            if order.status is O.NEW:
                # Never sent: the intent is journaled before `submitting`. Place it normally.
                await self._place_locked(order)
                return
            if order.status is O.SUBMITTING:
                order = await self._set(order, O.UNKNOWN, source="reconcile", last_error="interrupted while submitting")
            try:
                report = await self.lookup(order)
            except _Unresolved as exc:
                self._error(f"{coid}: still unknown ({exc})", order=order)
                return
            if report is not None:
                await self._apply(order, report, "reconcile")
                return
            await self._place_locked(order)


class _Unresolved(Exception):
    def __init__(self, order: Order, reason: str) -> None:
        super().__init__(reason)
        self.order = order


def _round(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00000001")).normalize()
