"""The core's public API: commands in, events out. The console and the headless runner use only this.

`TradingService` wires the store, the exchange port and the `TradeExecutor` together, takes
signals from sources through intake (schema, duplicates, semantic checks), applies the approval
policy, expires signals past their TTL, and carries out operator commands (approve, reject,
amend, cancel, kill switch, pause), each written to the audit log with its actor.

Opened read-only (`inspect`) it holds no exchange and no keys: it follows a store another
process writes, republishes what changed, and refuses every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from executor.config import Settings
from executor.events import (
    BalancesUpdated,
    ErrorOccurred,
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
    Snapshot,
    StateChanged,
)
from executor.exchanges.base import ExchangeError, ExchangePort
from executor.executor import AmendCheck, ExecutionError, KillSwitchResult, PriceMoved, TradeExecutor
from executor.markets import FarFromMarket, MarketView, distance_pct
from executor.models import (
    Balance,
    MarketInfo,
    Order,
    OrderStatus,
    OrderType,
    Signal,
    SignalRecord,
    SignalStatus,
    to_decimal,
    utcnow,
)
from executor.signals import SignalError, fmt, parse_signal, size_signal
from executor.sources.lines import Line
from executor.states import check_signal_transition
from executor.store import StaleWrite, Store

log = logging.getLogger("tradeconsole.service")

S = SignalStatus
O = OrderStatus


def _note(reason: str, plain: str) -> str:
    """A decision's reason, unless it only says what the line says anyway ("approved by ann")."""
    return f"; {reason.removeprefix(plain + '; ')}" if reason and reason != plain else ""


def _signal_words(record: SignalRecord) -> str:
    signal = record.signal
    if signal is None:
        return ""
    at = f" at {fmt(record.reference_price)}" if record.reference_price is not None else ""
    kind = signal.order_type.value if signal.order_type else "order"
    return f"{signal.side.value} {fmt(record.amount or 0)} {signal.symbol} {kind}{at}"


def _order_name(order: Order) -> str:
    """An order by its signal (the id an operator knows), its replacement number after an amend."""
    if order.signal_id is None:
        return order.client_order_id
    return f"{order.signal_id} order" + (f" #{order.replacement + 1}" if order.replacement else "")


def _order_words(order: Order) -> str:
    at = f" at {fmt(order.price)}" if order.price is not None else ""
    return f"{order.side.value} {fmt(order.amount)} {order.symbol} {order.type.value}{at}"


class ReadOnlyError(ExecutionError):
    """A command sent to a read-only (inspect) service."""


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


def _log_row(event: ErrorOccurred | RetryScheduled | LogLine) -> dict[str, Any]:
    if isinstance(event, RetryScheduled):
        return {
            "ts": event.ts,
            "level": "retry",
            "message": event.reason,
            "operation": event.operation,
            "attempt": event.attempt,
            "max_attempts": event.max_attempts,
            "delay": event.delay,
            "client_order_id": event.client_order_id,
            "signal_id": event.signal_id,
        }
    return {
        "ts": event.ts,
        "level": event.level,
        "message": event.message,
        "client_order_id": event.client_order_id,
        "signal_id": event.signal_id,
    }


def parse_market_info(raw: str | None) -> dict[str, MarketInfo]:
    """The `market_info` flag a writing core leaves for readers; {} when absent or unreadable."""
    try:
        data = json.loads(raw) if raw else {}
        return {s: MarketInfo(**{k: v if k in ("symbol", "base", "quote") else Decimal(v) for k, v in m.items()})
                for s, m in data.items()}
    except (ValueError, TypeError, ArithmeticError):
        log.warning("the store's market_info flag is unreadable: amounts are shown unrounded")
        return {}


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


class TradingService:
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
        self._seen: set[str] = set()  # accepted signal ids (the store's unique index is the backstop)
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
    def mode(self) -> str:
        if self.read_only:
            return "READ-ONLY"
        return self.exchange.mode if self.exchange else "READ-ONLY"

    @property
    def exchange_name(self) -> str:
        if self.exchange is not None:
            return self.exchange.name
        return self.settings.exchange.id

    def _remember(self, event: Any) -> None:
        if isinstance(event, BalancesUpdated):
            self._balances = (event.balances, event.prices, event.quote)
            if not self.read_only and self.clock() - self._balances_saved >= timedelta(seconds=2):
                self._balances_saved = self.clock()
                self._background(self._persist_balances())
        elif isinstance(event, Reconciled):
            self._last_reconcile = event.result
        elif isinstance(event, OrderUpdated | SignalDecided) and not self.read_only:
            self._trace_outcome(event)
        elif isinstance(event, MarketsUpdated) and not self.read_only:
            if self.clock() - self._markets_saved >= timedelta(seconds=2):
                self._markets_saved = self.clock()
                self._background(self._persist_markets(event.quotes))
        if isinstance(event, ErrorOccurred | RetryScheduled | LogLine) and not self.read_only:
            # Journaled so that `inspect` (another process, maybe hours later) shows the Log too.
            self._log_buffer.append(_log_row(event))
            if len(self._log_buffer) == 1:
                self._background(self._persist_log())

    def _background(self, coro) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()  # no loop (a synchronous caller): nothing to persist into
            return
        self._persisting.add(task)
        task.add_done_callback(self._persisting.discard)

    async def _persist_log(self) -> None:
        await asyncio.sleep(0)  # let a burst gather into one write
        rows, self._log_buffer = self._log_buffer, []
        if rows:
            try:
                await self.store.append_log(rows)
            except Exception:
                log.exception("could not journal %d log lines", len(rows))

    async def _persist_markets(self, quotes: dict[str, MarketQuote]) -> None:
        # For `inspect`: the market as this core last saw it.
        await self.store.set_flag("markets", json.dumps({
            s: {"last": str(q.last), "bid": str(q.bid), "ask": str(q.ask),
                "change_pct": None if q.change_pct is None else str(q.change_pct), "ts": q.ts.isoformat(),
                "change_since": q.change_since.isoformat() if q.change_since else None}
            for s, q in quotes.items()
        }))

    # -- the trace ----------------------------------------------------------------------------
    # Every operator action and every outcome becomes one Log line with its actor, journaled
    # through `_remember` like errors and retries. Outcomes are derived here, in one place, from
    # the events the core publishes anyway; the executor knows nothing about the trace.

    def trace(self, message: str, *, actor: str, level: str = "info", signal_id: str | None = None,
              client_order_id: str | None = None) -> None:
        self.bus.publish(LogLine(f"{message} (by {actor})", actor, level, client_order_id, signal_id, self.clock()))

    def _trace_outcome(self, event: OrderUpdated | SignalDecided) -> None:
        if isinstance(event, SignalDecided):
            self._trace_signal(event.record)
        else:
            self._trace_order(event.order)

    def _trace_signal(self, record: SignalRecord) -> None:
        sid, reason, who = record.id or "(no id)", record.reason, record.decided_by or "executor"
        if record.status is S.APPROVED:
            self.trace(f"{sid} approved: {_signal_words(record)}{_note(reason, f'approved by {who}')}", actor=who,
                       signal_id=record.id)
        elif record.status is S.REJECTED:
            self.trace(f"{sid} rejected{_note(reason, f'rejected by {who}')}", actor=who, signal_id=record.id)
        elif record.status is S.EXPIRED:
            self.trace(f"{sid} expired: {reason}", actor=who, signal_id=record.id)
        elif record.status is S.PENDING and not reason.startswith("amended by "):
            if who == "executor":
                self.trace(f"{sid} back to pending: {reason}", actor=who, level="warning", signal_id=record.id)
            elif who == "auto":
                self.trace(f"{sid} waits for an operator: {reason}", actor=who, signal_id=record.id)

    def _trace_order(self, order: Order) -> None:
        coid, status = order.client_order_id, order.status
        before = self._order_seen.get(coid)
        if status.is_terminal:
            self._order_seen.pop(coid, None)
        else:
            self._order_seen[coid] = status
        if status is before:
            return  # more fills of a partially filled order: one line per status, not per fill
        was_placed = before in (O.OPEN, O.PARTIALLY_FILLED, O.PENDING_CANCEL)
        what, actor, level = "", "exchange", "info"
        filled = f"{fmt(order.filled)} of {fmt(order.amount)} filled"
        if status is O.OPEN and before is not O.PENDING_CANCEL:
            what = "placed"
        elif status is O.PARTIALLY_FILLED and before is not O.PENDING_CANCEL:
            what = f"{'partially filled' if was_placed else 'placed, partially filled'}: {filled}"
        elif status is O.FILLED:
            at = f" at {fmt(order.average)}" if order.average is not None else ""
            what = f"{'filled' if was_placed else 'placed and filled'}: {fmt(order.filled)}{at}"
        elif status is O.CANCELED:
            reason = order.last_error
            if reason.startswith("timeout"):
                what, actor = f"timed out ({reason}), canceled: {filled}", "timer"
            else:
                what = f"canceled: {filled}"
                actor = reason.rsplit(" by ", 1)[1] if " by " in reason else "exchange"
        elif status is O.EXPIRED:
            what = f"expired on the venue: {filled}"
        elif status in (O.REJECTED, O.FAILED):
            actor = "exchange" if was_placed or before in (O.SUBMITTING, O.UNKNOWN) else "executor"
            what, level = f"{status.value}: {order.last_error or 'no reason given'}", "warning"
        if what:
            self.trace(f"{_order_name(order)} {what} ({_order_words(order)})", actor=actor, level=level,
                       signal_id=order.signal_id, client_order_id=coid)

    def far_from_market(self, symbol: str, price: Decimal | None, subject: str) -> FarFromMarket | None:
        """The refusal an approval or amend at order price `price` earns, or None: within
        `[approval] far_from_market_pct` of the market (or the rule is off, or no market known)."""
        limit = to_decimal(self.settings.approval.far_from_market_pct)
        market = self.market_view.price(symbol) if self.market_view is not None else None
        if not limit or price is None or not market:
            return None
        distance = distance_pct(price, market)
        return FarFromMarket(subject, price, market, distance, limit) if abs(distance) > limit else None

    async def _market_price(self, symbol: str) -> None:
        """Make sure the market view knows `symbol` (a quote at most a few seconds old)."""
        view = self.market_view
        if view is not None and symbol not in view.quotes and self.executor is not None \
                and symbol in self.executor.markets:
            await view.refresh()

    def order_price(self, record: SignalRecord, price: Decimal | None = None,
                    order_type: OrderType | None = None) -> Decimal | None:
        """The limit price a signal's order gets (the slippage rule applied to its reference), or
        None for a market order."""
        signal = record.signal
        if signal is None or self.executor is None:
            return None
        type_ = order_type or OrderType(signal.order_type or self.settings.execution.order_type)
        ref = price if price is not None else record.reference_price
        market = self.executor.markets.get(signal.symbol)
        if type_ is not OrderType.LIMIT or ref is None or market is None:
            return None
        from executor.pretrade import limit_price

        return limit_price(ref, self.settings.execution.slippage_tolerance_pct, market.price_tick, signal.side)

    async def start(self) -> ReconcileResult | None:
        """Reconcile with the venue (before any intake), then start the periodic loops."""
        if self.read_only:
            from executor.follower import StoreFollower  # the whole read-only path lives there

            self._market_info = parse_market_info(await self.store.get_flag("market_info"))
            self.follower = StoreFollower(self, interval=self._poll_interval or 0.5)
            await self.follower.start()  # the journal position first: nothing after it is missed
            self._loops.append(asyncio.create_task(self.follower.run(), name="follow-store"))
            return self._last_reconcile
        assert self.executor is not None
        self.paused = (await self.store.get_flag("paused")) == "1"
        if self.paused:
            self._resume.clear()
        self._seen = await self.store.accepted_signal_ids()
        # Orders from before this start: their next status change is an outcome, not a placement.
        self._order_seen = {o.client_order_id: o.status for o in await self.store.orders(include_terminal=False)}
        result = await self.executor.start()
        await self._persist_reconcile(result)
        # For `inspect`: the markets' precision, so a reader shows amounts and prices as this core does.
        await self.store.set_flag("market_info", json.dumps({
            s: {f.name: str(getattr(m, f.name)) for f in dataclasses.fields(m)
                if f.name != "extra" and getattr(m, f.name) is not None}
            for s, m in self.executor.markets.items()
        }))
        if self.market_view is not None:
            await self.market_view.refresh()
            self._loops.append(asyncio.create_task(self.market_view.run(), name="markets"))
        self._loops.append(asyncio.create_task(self._reconcile_loop(), name="reconcile"))
        self._loops.append(asyncio.create_task(self._expire_loop(), name="expire"))
        self._publish_state()
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
            # The live orders as this core holds them (the store's copy, without re-reading 10,000 rows).
            orders = [o for o in self.executor.pending_orders.values() if not o.status.is_terminal]
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

    # -- intake -------------------------------------------------------------------------------

    def add_source(self, lines: AsyncIterator[str] | AsyncIterator[Line], name: str) -> asyncio.Task:
        task = asyncio.create_task(self._consume(lines, name), name=f"source:{name}")
        self._sources.append(task)
        self.intake_done = False
        return task

    async def _consume(self, lines: AsyncIterator[str], name: str, window: int = 256) -> None:
        """Read a source to its end. Lines are checked and journaled concurrently (up to `window`
        at a time) so that one commit carries many signals; duplicates are still decided in
        arrival order, synchronously, before any line yields."""
        slots = asyncio.Semaphore(window)
        inflight: set[asyncio.Task] = set()

        def done(task: asyncio.Task) -> None:
            inflight.discard(task)
            slots.release()

        try:
            async for line in lines:
                await self._resume.wait()
                if isinstance(line, Line):
                    if not line.text.strip() and line.error is None:
                        line.recorded()  # nothing to record: the source may move past it
                        continue
                elif not line.strip():
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._receive_line(line, name))
                inflight.add(task)
                task.add_done_callback(done)
        except Exception as exc:
            log.exception("signal source %s failed", name)
            self.bus.publish(ErrorOccurred(f"signal source {name} failed: {exc}"))
        finally:
            if inflight:
                await asyncio.gather(*list(inflight), return_exceptions=True)
            close = getattr(lines, "aclose", None)
            if close is not None:  # a followed file journals its last place once its lines are in
                with contextlib.suppress(Exception):
                    await close()
            if all(t.done() or t is asyncio.current_task() for t in self._sources):
                self.intake_done = True
                self._publish_state()

    async def _receive_line(self, line: str | Line, name: str) -> SignalRecord:
        """Record one line, whatever it holds: its record, never an exception for bad input. A
        `Line` is told once it is recorded, so that its source may journal its place."""
        text = line.text if isinstance(line, Line) else line
        try:
            if isinstance(line, Line) and line.error is not None:
                record = await self._record(text, name, S.INVALID, line.error)
            else:
                record = await self.receive(text, source=name)
        except ExchangeError as exc:
            # The venue could not be asked for a reference price: record the signal as
            # invalid with that reason rather than dropping it.
            record = await self._record(text, name, S.INVALID, f"could not check against the exchange: {exc}")
        except ReadOnlyError:
            raise
        except Exception as exc:  # bad input never stops intake; the line is kept with the reason
            log.exception("intake of a line from %s failed", name)
            record = await self._record(text, name, S.INVALID, f"internal error while checking: {exc}")
        if isinstance(line, Line):
            line.recorded()
        return record

    async def submit(self, lines: Sequence[str | Line], *, source: str) -> list[SignalRecord]:
        """Record signals handed over in one piece (the webhook, `ctl submit`), in order, each
        decided before the next is read: one record per line, blank lines included (invalid).
        Bad input never raises; paused or not, every signal is recorded (paused, none is
        auto-approved), because a sender that is not a file cannot be made to wait."""
        self._writable()
        return [await self._receive_line(line, source) for line in lines]

    async def sources_done(self) -> None:
        if self._sources:
            await asyncio.gather(*self._sources, return_exceptions=True)
        self.intake_done = True

    async def receive(self, raw: str, *, source: str) -> SignalRecord:
        """Record one incoming signal: invalid, duplicate, or pending (then the approval policy)."""
        if self.read_only:
            raise ReadOnlyError("inspect mode is read-only")
        # A byte order mark (what some Windows editors write first in a file) is no part of the JSON.
        raw = raw.strip().removeprefix("\ufeff").strip()
        try:
            signal = parse_signal(raw)
        except SignalError as exc:
            return await self._record(raw, source, S.INVALID, exc.reason, signal_id=exc.signal_id)
        # The duplicate decision is taken and the id reserved before the first await, so two
        # copies of one id racing through intake can never both be accepted.
        if signal.id in self._seen:
            return await self._record(raw, source, S.DUPLICATE, f"id {signal.id} seen before", signal_id=signal.id)
        self._seen.add(signal.id)
        assert self.executor is not None
        try:
            reference: Decimal | None = to_decimal(signal.price) if signal.price else None
            if reference is None and signal.symbol in self.executor.markets:
                reference = (await self.executor.ticker(signal.symbol)).touch(signal.side)
            amount = size_signal(signal, self.executor.markets, reference)
        except SignalError as exc:
            self._seen.discard(signal.id)
            return await self._record(raw, source, S.INVALID, exc.reason, signal_id=signal.id, signal=signal)
        except BaseException:
            self._seen.discard(signal.id)
            raise
        try:
            return await self._admit(signal, raw, source, reference, amount)
        except BaseException:
            # Each way through `_admit` stores the signal in one transaction as its last await:
            # failing, nothing of it is stored, and the id must not stay taken.
            self._seen.discard(signal.id)
            raise

    async def _admit(self, signal: Signal, raw: str, source: str, reference: Decimal | None,
                     amount: Decimal) -> SignalRecord:
        """Store a checked signal as pending, or decided at once: expired on arrival, or by the policy."""
        assert self.executor is not None
        received = self.clock()
        ttl = signal.ttl_seconds or self.settings.approval.signal_ttl_seconds
        record = SignalRecord(
            id=signal.id,
            status=S.PENDING,
            source=source,
            received_at=received,
            raw=raw,
            signal=signal,
            reference_price=reference,
            amount=amount,
            expires_at=(signal.created_at or received) + timedelta(seconds=ttl),
        )
        by = "auto"
        if record.expires_at is not None and record.expires_at <= received:
            # Stale on arrival (an old created_at, a tiny ttl_seconds): no policy may approve it.
            decision: tuple[SignalStatus, str] | None = (S.EXPIRED, "its TTL had passed when it arrived")
            by = "ttl"
        else:
            decision = self._policy(record)
        if decision is not None and decision[0] is S.APPROVED and (far := await self._far(record)) is not None:
            decision = S.PENDING, far.reason  # auto-approval never confirms: an operator decides
        if decision is None:
            record = await self.store.insert_signal(record)
            self.bus.publish(SignalReceived(record))
            return record
        status, reason = decision
        decided = record.model_copy(
            update={"status": status, "reason": reason, "decided_at": received, "decided_by": by}
        )
        journal = [(None, S.PENDING, "intake", {}), (S.PENDING, status, by, {"reason": reason})]
        if status is not S.APPROVED:
            decided = await self.store.insert_signal(decided, journal=journal)
        else:
            # Arrival, approval and the order's intent: one transaction, so none is ever lost.
            try:
                _, ids = await self.executor.commit_intent(
                    decided, extra=self.store.signal_insert(decided, journal=journal)
                )
            except PriceMoved as exc:
                held = record.model_copy(update={"reason": str(exc), "reference_price": exc.live_price})
                decided = await self.store.insert_signal(held)
                self.bus.publish(SignalReceived(decided))
                self.trace(f"{record.id} back to pending: {exc}", actor="executor", level="warning",
                           signal_id=record.id)
                return decided
            decided = decided.model_copy(update={"seq": ids[0]})
        self.bus.publish(SignalReceived(record.model_copy(update={"seq": decided.seq})))
        self.bus.publish(SignalDecided(decided))
        return decided

    async def _record(
        self, raw: str, source: str, status: SignalStatus, reason: str, *, signal_id=None, signal=None
    ) -> SignalRecord:
        record = SignalRecord(
            id=signal_id,
            status=status,
            reason=reason,
            source=source,
            received_at=self.clock(),
            # What arrived, as far as text can hold it: a lone surrogate (from a client's JSON
            # string) is written as its escape, so that the row can be stored at all.
            raw=raw[:4096].encode("utf-8", "backslashreplace").decode("utf-8"),
            signal=signal,
        )
        record = await self.store.insert_signal(record)
        log.warning("signal %s from %s %s: %s", signal_id or "(no id)", source, status, reason)
        self.bus.publish(SignalReceived(record))
        return record

    def _policy(self, record: SignalRecord) -> tuple[SignalStatus, str] | None:
        """The approval policy's verdict on a new signal: approve, hold with a reason, or None."""
        approval = self.settings.approval
        if approval.mode != "auto" or self.paused:
            return None
        cap = to_decimal(approval.auto_max_notional)
        notional = record.notional
        if cap > 0 and (notional is None or notional > cap):
            return S.PENDING, f"notional {fmt(notional or 0)} above auto_max_notional {fmt(cap)}: waits for an operator"
        return S.APPROVED, "approved by auto"

    async def _far(self, record: SignalRecord, *, price: Decimal | None = None,
                   order_type: OrderType | None = None) -> FarFromMarket | None:
        """The far-from-market refusal for the order this signal would get (with an amended price)."""
        if record.signal is None or not self.settings.approval.far_from_market_pct:
            return None
        await self._market_price(record.signal.symbol)
        return self.far_from_market(record.signal.symbol, self.order_price(record, price, order_type),
                                    f"signal {record.id}")

    # -- commands -----------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError("inspect mode is read-only: no action is possible here")

    async def _audit(self, action: str, target: str | None, detail: dict | None = None, actor: str | None = None):
        await self.store.record_audit(actor or self.actor, action, target, detail, self.clock())

    async def _pending(self, signal_id: str) -> SignalRecord:
        record = await self.store.get_signal(signal_id)
        if record is None:
            raise ExecutionError(f"no signal {signal_id}")
        if record.status is not S.PENDING:
            raise ExecutionError(f"signal {signal_id} is {record.status}, not pending")
        if record.expires_at and record.expires_at <= self.clock():
            await self._decide(record, S.EXPIRED, actor="ttl", reason="TTL passed before approval")
            raise ExecutionError(f"signal {signal_id} expired")
        return record

    async def approve(self, signal_id: str, *, confirm: bool = False, actor: str | None = None) -> None:
        """Approve a pending signal. Its order price beyond `[approval] far_from_market_pct` from
        the market raises `FarFromMarket` unless `confirm` (the client asked its operator)."""
        self._writable()
        record = await self._pending(signal_id)
        far = await self._far(record)
        if far is not None and not confirm:
            raise far
        note = f"; confirmed {fmt(abs(far.distance).quantize(Decimal('0.01')))} % from the market" if far else ""
        await self._approve(record, actor=actor or self.actor, note=note)
        # Audited once it is done: of two operators approving at once, only the one that did is named.
        await self._audit("approve", signal_id, {"notional": str(record.notional), "confirmed": confirm}, actor)

    async def _approve(self, record: SignalRecord, *, actor: str, note: str = "") -> None:
        """The approval and the order's intent, in one transaction (SPEC 9)."""
        assert self.executor is not None
        approved = self._decided(record, S.APPROVED, actor=actor, reason=f"approved by {actor}{note}")
        try:
            await self.executor.commit_intent(approved, extra=self.store.signal_update(approved, record.status,
                                                                                       "operator"))
        except PriceMoved as exc:
            # Nothing was sent. Back to the operator, with the live price as the new reference
            # when the strategy gave none, so that approving again means "at today's price".
            changes: dict[str, Any] = {}
            if record.signal is not None and record.signal.price is None:
                changes["reference_price"] = exc.live_price
            await self._decide(record.model_copy(update=changes), S.PENDING, actor="executor", reason=str(exc))
            return
        except StaleWrite:
            raise ExecutionError(f"signal {record.id} was decided meanwhile") from None
        except ExchangeError as exc:
            self.bus.publish(ErrorOccurred(f"{record.id}: not approved: {exc}", signal_id=record.id))
            raise ExecutionError(f"{record.id}: could not be priced, not approved: {exc}") from None
        self.bus.publish(SignalDecided(approved))

    def _decided(self, record: SignalRecord, status: SignalStatus, *, actor: str, reason: str) -> SignalRecord:
        if status != record.status:
            check_signal_transition(record.status, status, record.id)
        return record.model_copy(
            update={"status": status, "reason": reason, "decided_at": self.clock(), "decided_by": actor}
        )

    async def _decide(self, record: SignalRecord, status: SignalStatus, *, actor: str, reason: str) -> SignalRecord:
        """Write a decision if the signal is still as read (else ExecutionError: decided meanwhile)."""
        decided = self._decided(record, status, actor=actor, reason=reason)
        try:
            await self.store.update_signal(
                decided, record.status, source="operator" if actor not in ("auto", "ttl", "executor") else actor
            )
        except StaleWrite:
            raise ExecutionError(f"signal {record.id} was decided meanwhile") from None
        self.bus.publish(SignalDecided(decided))
        return decided

    async def reject(self, signal_id: str, *, reason: str = "", actor: str | None = None) -> None:
        self._writable()
        record = await self._pending(signal_id)
        who = actor or self.actor
        await self._decide(record, S.REJECTED, actor=who, reason=reason or f"rejected by {who}")
        await self._audit("reject", signal_id, {"reason": reason}, actor)

    def check_signal_amend(
        self,
        record: SignalRecord,
        *,
        amount: Decimal | None = None,
        price: Decimal | None = None,
        order_type: OrderType | None = None,
    ) -> AmendCheck:
        """Validate an amended pending signal (precision, minimums, balance) without changing it."""
        assert record.signal is not None
        if self.executor is None:
            return AmendCheck({"signal": "read-only"}, amount, price, None, None)
        signal = record.signal
        type_ = order_type or OrderType(signal.order_type or self.settings.execution.order_type)
        amount = amount if amount is not None else record.amount
        ref = price if price is not None else record.reference_price
        check_price = ref
        if type_ is OrderType.LIMIT and ref is not None:
            from executor.pretrade import limit_price

            market = self.executor.markets.get(signal.symbol)
            if market is not None:
                check_price = limit_price(
                    ref, self.settings.execution.slippage_tolerance_pct, market.price_tick, signal.side
                )
        check = self.executor.check_order(signal.symbol, signal.side, type_, amount, check_price)
        errors = dict(check.errors)
        errors.pop("price", None) if type_ is OrderType.MARKET else None
        if price is not None and price <= 0:
            errors["price"] = "must be greater than 0"
        return AmendCheck(errors, amount, check_price, check.notional, check.fee)

    async def amend_signal(
        self,
        signal_id: str,
        *,
        amount: Decimal | None = None,
        price: Decimal | None = None,
        order_type: OrderType | None = None,
        confirm: bool = False,
        actor: str | None = None,
    ) -> SignalRecord:
        self._writable()
        record = await self._pending(signal_id)
        check = self.check_signal_amend(record, amount=amount, price=price, order_type=order_type)
        if not check.ok:
            raise ExecutionError("; ".join(f"{k}: {v}" for k, v in check.errors.items()))
        if (price is not None or order_type is not None) and not confirm and \
                (far := await self._far(record, price=price, order_type=order_type)) is not None:
            raise far
        assert record.signal is not None
        changes: dict[str, Any] = {}
        if amount is not None:
            changes["amount"] = float(amount)
            changes["quote_amount"] = None
        if price is not None:
            changes["price"] = float(price)
        if order_type is not None:
            changes["order_type"] = order_type
        signal = record.signal.model_copy(update=changes)
        who = actor or self.actor
        await self._audit(
            "amend_signal",
            signal_id,
            {
                k: (str(v) if v is not None else None)
                for k, v in {"amount": amount, "price": price, "order_type": order_type}.items()
                if v is not None
            },
            actor,
        )
        updated = record.model_copy(
            update={
                "signal": signal,
                "amount": amount if amount is not None else record.amount,
                "reference_price": price if price is not None else record.reference_price,
                "reason": f"amended by {who}",
            }
        )
        await self.store.update_signal(updated, record.status, source="operator")
        self.bus.publish(SignalDecided(updated))
        changed = ", ".join(f"{k} {fmt(v) if isinstance(v, Decimal) else v.value}"
                            for k, v in {"reference price": price, "amount": amount, "type": order_type}.items()
                            if v is not None)
        self.trace(f"{signal_id} amended: {changed}", actor=who, signal_id=signal_id)
        return updated

    async def check_order_amend(self, coid: str, *, price=None, amount=None) -> AmendCheck:
        if self.executor is None:
            return AmendCheck({"order": "read-only"}, amount, price, None, None)
        return await self.executor.check_amend(coid, price=price, amount=amount)

    async def amend_order(self, coid: str, *, price=None, amount=None, confirm: bool = False,
                          actor: str | None = None) -> Order | None:
        """Replace an open order. A new order price beyond `far_from_market_pct` raises
        `FarFromMarket` unless `confirm`."""
        self._writable()
        assert self.executor is not None
        order = self.executor.current(coid)
        if price is not None and order is not None and not confirm:
            await self._market_price(order.symbol)
            if (far := self.far_from_market(order.symbol, price, f"order {coid}")) is not None:
                raise far
        who = actor or self.actor
        await self._audit("amend_order", coid, {"price": str(price), "amount": str(amount)}, actor)
        changed = ", ".join(f"{k} {fmt(v)}" for k, v in {"order price": price, "total amount": amount}.items()
                            if v is not None)
        self.trace(f"{coid} amend requested: {changed}", actor=who, client_order_id=coid,
                   signal_id=order.signal_id if order else None)
        return await self.executor.amend_order(coid, price=price, amount=amount, source="operator")

    async def cancel_order(self, coid: str, *, actor: str | None = None) -> Order:
        self._writable()
        assert self.executor is not None
        who = actor or self.actor
        await self._audit("cancel_order", coid, None, actor)
        self.trace(f"{coid} cancel requested", actor=who, client_order_id=coid)
        return await self.executor.cancel_order(coid, source="operator", reason=f"canceled by {who}")

    async def pause(self, *, actor: str | None = None) -> None:
        self._writable()
        await self._audit("pause", None, None, actor)
        await self._set_paused(True)
        self.trace("paused: no intake, no auto-approval", actor=actor or self.actor)

    async def resume(self, *, actor: str | None = None) -> None:
        self._writable()
        await self._audit("resume", None, None, actor)
        if self.executor is not None:
            self.executor.resume()  # lifts the kill switch's block on new orders too
        await self._set_paused(False)
        self.trace("resumed: intake and auto-approval", actor=actor or self.actor)

    async def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        await self.store.set_flag("paused", "1" if paused else "0")
        (self._resume.clear if paused else self._resume.set)()
        self._publish_state()

    async def kill_switch(self, *, actor: str | None = None) -> KillSwitchResult:
        """Pause intake and auto-approval, block new orders, cancel every open order, and say how
        many it canceled and, only once it is true, that none is left open."""
        self._writable()
        assert self.executor is not None
        who = actor or self.actor
        await self._audit("kill_switch", None, {"open": len(self.executor.pending_orders)}, actor)
        live = sum(1 for o in self.executor.pending_orders.values() if o.status.is_live)
        self.trace(f"kill switch: pausing intake and auto-approval, canceling {live} open",
                   actor=who, level="warning")
        await self._set_paused(True)
        result = await self.executor.kill_switch(source="operator", reason=f"kill switch by {who}")
        self.trace(result.describe(), actor=who, level="error" if result.left_open else "warning")
        return result

    def _publish_state(self) -> None:
        self.bus.publish(StateChanged(paused=self.paused, intake_done=self.intake_done, mode=self.mode))

    # -- loops --------------------------------------------------------------------------------

    async def reconcile(self) -> ReconcileResult:
        assert self.executor is not None
        async with self._reconcile_lock:
            result = await self.executor.reconcile()
        await self._persist_reconcile(result)
        return result

    async def _persist_reconcile(self, result: ReconcileResult) -> None:
        # `inspect` runs in another process: it reads the last result and balances from here.
        await self.store.set_flag(
            "last_reconcile",
            json.dumps(
                {
                    "at": result.at.isoformat(),
                    "checked": result.checked,
                    "updated": result.updated,
                    "resolved_unknown": result.resolved_unknown,
                    "adopted": result.adopted,
                    "external": result.external,
                    "open": result.open,
                    "unknown": result.unknown,
                    "drift": {k: str(v) for k, v in result.drift.items()},
                    "errors": result.errors,
                    "exchange": self.exchange_name,
                    "mode": self.mode,
                }
            ),
        )
        await self._persist_balances()

    async def _persist_balances(self) -> None:
        balances, prices, quote = self._balances
        await self.store.set_flag(
            "balances",
            json.dumps(
                {
                    "quote": quote,
                    "balances": {c: [str(b.free), str(b.used)] for c, b in balances.items()},
                    "prices": {c: str(p) for c, p in prices.items()},
                }
            ),
        )

    async def _reconcile_loop(self) -> None:
        interval = self.settings.reconcile.interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile()
            except Exception as exc:
                log.exception("reconciliation failed")
                self.bus.publish(ErrorOccurred(f"reconciliation failed: {exc}"))

    async def expire_due(self) -> int:
        now = self.clock()
        expired = 0
        for record in await self.store.signals([S.PENDING]):
            if record.expires_at and record.expires_at <= now:
                with contextlib.suppress(ExecutionError):  # approved or rejected meanwhile: that stands
                    await self._decide(record, S.EXPIRED, actor="ttl", reason="TTL passed before approval")
                    expired += 1
        return expired

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.expire_due()
            except Exception as exc:
                log.exception("expiring signals failed")
                self.bus.publish(ErrorOccurred(f"expiring signals failed: {exc}"))

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
