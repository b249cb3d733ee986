"""The core's public API: commands in, events out. The console and the headless runner use only this.

`TradingService` wires the store, the exchange port and the `TradeExecutor` together. Its jobs,
one per module:
- `executor.intake`: signals in from sources and submitted lines (schema, duplicates, semantic
  checks, TTL), the approval policy, pending signals expired past their TTL;
- `executor.operator`: the operator's commands (approve, reject, amend, cancel, pause, resume,
  kill switch), each written to the audit log with its actor, and the far-from-market rule;
- `executor.trace`: every action and outcome as a Log line with its actor, journaled.
This module owns the state they share (created in `__init__` below), opening and closing, the
periodic loops (reconciliation, TTL expiry, the market view), the snapshot, and the state a
writing core saves for readers in other processes (`executor.store.state`).

Why the jobs are mixins of one class, as the executor's are: they read and change the same state
(the pause, the accepted ids, the bus, the store) and the console, the control socket and the
tests reach the whole as one object, whose public methods are the API.

Opened read-only (`inspect`) it holds no exchange and no keys: it follows a store another
process writes (`executor.follower`), republishes what changed, and refuses every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from executor.config import Settings
from executor.events import (
    BalancesUpdated,
    ErrorOccurred,
    EventBus,
    MarketQuote,
    MarketsUpdated,
    Reconciled,
    ReconcileResult,
    Snapshot,
    StateChanged,
)
from executor.exchanges.base import ExchangePort
from executor.executor import ExecutionError, TradeExecutor
from executor.intake import Intake
from executor.markets import MarketView
from executor.models import Balance, ExchangeMode, MarketInfo, OrderStatus, SignalStatus, utcnow
from executor.operator import OperatorCommands, ReadOnlyError
from executor.seen import SeenIds
from executor.store import Store
from executor.store.state import BALANCES, LAST_RECONCILE, MARKET_INFO, MARKETS, SavedBalances
from executor.trace import TRACED, Trace

# The service's public face: the class, its refusal of commands when read-only, and how it is built.
__all__ = ["ReadOnlyError", "TradingService", "build_exchange", "operator_actor"]

log = logging.getLogger("tradeconsole.service")

S = SignalStatus
GC_YOUNG = 50_000  # allocations between young-generation collections in a writing core (default 700)


def operator_actor(env: dict[str, str] | None = None) -> str:
    """user@host, plus the SSH client's address when the operator came in over SSH."""
    env = dict(os.environ if env is None else env)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = env.get("USER", "unknown")
    actor = f"{user}@{socket.gethostname()}"
    ssh = env.get("SSH_CONNECTION", "").split()
    if ssh:
        actor += f" from {ssh[0]}"
    return actor


def build_exchange(settings: Settings) -> ExchangePort:
    """The exchange port for `[exchange] id`: the paper exchange, or a ccxt venue."""
    if settings.exchange.id == "paper":
        from executor.exchanges.paper import PaperExchange
        from executor.venue.engine import PaperEngine

        engine = PaperEngine(
            seed=settings.paper.seed,
            markets=list(settings.exchange.markets),
            balances=dict(settings.paper.balances),
            fee_pct=settings.paper.fee_pct,
        )
        return PaperExchange(engine, latency_ms=settings.paper.latency_ms)
    try:
        from executor.exchanges.ccxt import CcxtExchange
    except ImportError as exc:  # pragma: no cover - until the ccxt adapter lands
        raise ExecutionError(
            f"exchange.id {settings.exchange.id!r}: the ccxt adapter is not available ({exc})"
        ) from None
    return CcxtExchange.from_settings(settings)


class TradingService(Intake, OperatorCommands, Trace):
    """Signals in, orders out, commands carried out. See the module docstring; each base is one job."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        exchange: ExchangePort | None,
        *,
        read_only: bool = False,
        actor: str | None = None,
        bus: EventBus | None = None,
        clock: Callable[[], datetime] = utcnow,
        poll_interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.exchange = exchange
        self.read_only = read_only or exchange is None
        self.actor = actor or operator_actor()
        self.bus = bus or EventBus()
        self.clock = clock
        self.executor: TradeExecutor | None = None
        if exchange is not None and not self.read_only:
            self.executor = TradeExecutor(
                exchange,
                store,
                settings.execution,
                bus=self.bus,
                client_id_prefix=settings.exchange.client_id_prefix,
                poll_interval=poll_interval if poll_interval is not None else 0.5,
                clock=clock,
            )
        self.paused = False
        self.intake_done = False
        self._sources: list[asyncio.Task] = []
        self._loops: list[asyncio.Task] = []
        self._resume = asyncio.Event()
        self._resume.set()
        self._stopping = asyncio.Event()
        self._reconcile_lock = asyncio.Lock()
        self._seen = SeenIds()  # accepted signal ids in fixed memory (the store's unique index is the backstop)
        self._balances: tuple[dict[str, Balance], dict[str, Decimal], str] = ({}, {}, "USDT")
        self._last_reconcile: ReconcileResult | None = None
        self._log_buffer: list[dict[str, Any]] = []
        self._closers: list[Callable[[], Awaitable[object]]] = []
        self._first_closers: list[Callable[[], Awaitable[object]]] = []
        self._persisting: set[asyncio.Task] = set()
        self._balances_saved = datetime.min.replace(tzinfo=UTC)
        self._poll_interval = poll_interval  # read-only: how often the follower looks for commits
        self.follower = None  # read-only: the StoreFollower (executor/follower.py), once started
        # The trace: the last status each active order was seen in, so that an outcome line is
        # written once per status change (never one per partial fill).
        self._order_seen: dict[str, OrderStatus] = {}
        self.market_view: MarketView | None = None
        if self.executor is not None:
            self.market_view = MarketView(self.executor, list(settings.exchange.markets), bus=self.bus, clock=clock)
        self._markets_saved = datetime.min.replace(tzinfo=UTC)
        self._market_info: dict[str, MarketInfo] = {}  # read-only: the writer's markets, from the store
        self.bus.subscribe(self._remember)

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        settings: Settings,
        db_path: str | Path,
        *,
        exchange: ExchangePort | None = None,
        read_only: bool = False,
        **kwargs: Any,
    ) -> TradingService:
        store = await Store.open(db_path, read_only=read_only)
        try:
            if not read_only and exchange is None:
                exchange = build_exchange(settings)
        except BaseException:
            await store.close()
            raise
        return cls(settings, store, None if read_only else exchange, read_only=read_only, **kwargs)

    @property
    def mode(self) -> ExchangeMode:
        if self.read_only or self.exchange is None:
            return ExchangeMode.READ_ONLY
        return self.exchange.mode

    @property
    def exchange_name(self) -> str:
        if self.exchange is not None:
            return self.exchange.name
        return self.settings.exchange.id

    def _remember(self, event: Any) -> None:
        """Every event, as the service keeps it: for the snapshot, saved for readers, traced."""
        if type(event) in TRACED and not self.read_only:  # most events: an order's or a signal's step
            self._trace_event(event)
        elif isinstance(event, BalancesUpdated):
            self._balances = (event.balances, event.prices, event.quote)
            if not self.read_only and self.clock() - self._balances_saved >= timedelta(seconds=2):
                self._balances_saved = self.clock()
                self._background(self._persist_balances())
        elif isinstance(event, Reconciled):
            self._last_reconcile = event.result
        elif self.read_only:
            return  # a reader saves nothing and traces nothing: the writer did both
        elif isinstance(event, MarketsUpdated):
            if self.clock() - self._markets_saved >= timedelta(seconds=2):
                self._markets_saved = self.clock()
                self._background(self._persist_markets(event.quotes))
        else:
            self._trace_event(event)

    def _background(self, coro) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()  # no loop (a synchronous caller): nothing to persist into
            return
        self._persisting.add(task)
        task.add_done_callback(self._persisting.discard)

    async def start(self) -> ReconcileResult | None:
        """Reconcile with the venue (before any intake), then start the periodic loops."""
        if self.read_only:
            from executor.follower import StoreFollower  # the whole read-only path lives there

            self._market_info = await self._load_market_info()
            self.follower = StoreFollower(self, interval=self._poll_interval or 0.5)
            await self.follower.start()  # the journal position first: nothing after it is missed
            self._loops.append(asyncio.create_task(self.follower.run(), name="follow-store"))
            return self._last_reconcile
        assert self.executor is not None
        self.paused = (await self.store.get_flag("paused")) == "1"
        if self.paused:
            self._resume.clear()
        self._seen = SeenIds(await self.store.accepted_signal_ids())
        # Orders from before this start: their next status change is an outcome, not a placement.
        self._order_seen = {o.client_order_id: o.status for o in await self.store.orders(include_terminal=False)}
        result = await self.executor.start()
        await self._persist_reconcile(result)
        await self.store.save_state(MARKET_INFO, self.executor.markets)
        if self.market_view is not None:
            await self.market_view.refresh()
            self._loops.append(asyncio.create_task(self.market_view.run(), name="markets"))
        self._loops.append(asyncio.create_task(self._reconcile_loop(), name="reconcile"))
        self._loops.append(asyncio.create_task(self._expire_loop(), name="expire"))
        self._publish_state()
        # A writing core allocates in bursts, nearly all of it freed by refcounting, and the
        # collector's young generation, scanned every 700 allocations, took about 15% of B2's CPU.
        gc.set_threshold(GC_YOUNG, 20, 100)
        return result

    async def stop(self) -> None:
        """Stop intake, finish requests in flight, persist. Open orders stay on the exchange."""
        self._stopping.set()
        for task in self._sources + self._loops:
            task.cancel()
        await asyncio.gather(*self._sources, *self._loops, return_exceptions=True)
        if self.executor is not None:
            await self.executor.stop()
        if self._log_buffer:
            self._background(self._persist_log())
        if self._persisting:
            await asyncio.gather(*list(self._persisting), return_exceptions=True)

    def on_close(self, callback: Callable[[], Awaitable[object]], *, first: bool = False) -> None:
        """Run `callback` once the service is closed (e.g. stop an emulator this process serves);
        `first`: before anything closes (e.g. stop serving the control socket while the store is open)."""
        (self._first_closers if first else self._closers).append(callback)

    async def close(self) -> None:
        for callback in self._first_closers:
            try:
                await callback()
            except Exception:
                log.exception("a close callback failed")
        self._first_closers.clear()
        try:
            await self.stop()
        finally:
            try:
                if self.exchange is not None:
                    await self.exchange.close()
            finally:
                await self.store.close()
                for callback in self._closers:
                    try:
                        await callback()
                    except Exception:
                        log.exception("a close callback failed")

    # -- snapshots ----------------------------------------------------------------------------

    async def snapshot(self, *, history: int = 200) -> Snapshot:
        signals = await self.store.signals(limit=history)
        if signals:  # every pending signal, also those older than the recent `history`
            signals = [r for r in await self.store.signals([S.PENDING]) if r.seq < signals[0].seq] + signals
        if self.executor is not None:
            # The active orders as this core holds them (the store's copy, without re-reading 10,000 rows).
            orders = [o for o in self.executor.active_orders.values() if o.status.is_active]
        else:
            orders = await self.store.orders(include_terminal=False)
        orders += [o for o in await self.store.orders(limit=history) if o.status.is_terminal]
        balances, prices, quote = self._balances
        return Snapshot(
            signals=signals,
            orders=orders,
            balances=balances,
            prices=prices,
            quote=quote,
            reconcile=self._last_reconcile,
            paused=self.paused,
            mode=self.mode,
            exchange=self.exchange_name,
            markets=dict(self.market_view.quotes) if self.market_view is not None else {},
            fills=await self.store.fills(),  # a view folds positions from these, then from OrderUpdated
        )

    @property
    def markets(self) -> dict:
        return self.executor.markets if self.executor else self._market_info

    def idle(self) -> bool:
        """No order in a non-terminal state and nothing of the executor in flight (see TradeExecutor.idle)."""
        if self.executor is None:
            return True
        return self.executor.idle

    def _publish_state(self) -> None:
        self.bus.publish(StateChanged(paused=self.paused, intake_done=self.intake_done, mode=self.mode))

    # -- saved state --------------------------------------------------------------------------
    # `inspect` runs in another process: it reads the last reconciliation, the balances, the
    # market view and the markets' precision from the store (executor/store/state.py).

    async def _persist_reconcile(self, result: ReconcileResult) -> None:
        await self.store.save_state(LAST_RECONCILE, result)
        await self._persist_balances()

    async def _persist_balances(self) -> None:
        await self.store.save_state(BALANCES, SavedBalances.of(*self._balances))

    async def _persist_markets(self, quotes: dict[str, MarketQuote]) -> None:
        await self.store.save_state(MARKETS, quotes)

    async def _load_market_info(self) -> dict[str, MarketInfo]:
        """The writer's markets, so that amounts and prices are shown as it rounds them; {} when unreadable."""
        try:
            return await self.store.load_state(MARKET_INFO) or {}
        except ValueError:
            log.warning("the store's market_info flag is unreadable: amounts are shown unrounded")
            return {}

    # -- loops --------------------------------------------------------------------------------

    async def reconcile(self) -> ReconcileResult:
        assert self.executor is not None
        async with self._reconcile_lock:
            result = await self.executor.reconcile()
        await self._persist_reconcile(result)
        return result

    async def _reconcile_loop(self) -> None:
        interval = self.settings.reconcile.interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile()
            except Exception as exc:
                log.exception("reconciliation failed")
                self.bus.publish(ErrorOccurred(f"reconciliation failed: {exc}"))

    async def run_until_idle(self, *, settle: float = 0.05) -> None:
        """Return once every source is exhausted and no order is in a non-terminal state."""
        await self.sources_done()
        while not self._stopping.is_set():
            if self.idle():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=settle)

    @property
    def stopping(self) -> bool:
        """Asked to stop (or stopped): nothing new should be started on it."""
        return self._stopping.is_set()

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()
