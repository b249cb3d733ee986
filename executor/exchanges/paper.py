"""The built-in paper exchange: `PaperEngine` behind the async exchange port, with injected faults.

Owns the translation from engine records and `EngineError` kinds to the port's dataclasses and
error taxonomy, and what each `Fault` of its `FaultPlan` (`executor.venue.faults`: refused
connections, 429s, 5xx before or after acting, timeouts and resets after the venue accepted,
orders that stay invisible for a while) does to a call, so the executor's error policy can be
exercised without a network. Each port call draws for the endpoint it would request on Binance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from executor.exchanges.base import (
    Cooldown,
    DuplicateOrder,
    ExchangeError,
    ExchangeOrder,
    ExchangePort,
    MaybePlaced,
    NotPlaced,
    OrderNotFound,
    Rejected,
    Ticker,
    Trade,
)
from executor.models import Balance, ExchangeMode, MarketInfo, OrderType, Side
from executor.venue.engine import PaperEngine
from executor.venue.faults import Fault, FaultPlan
from executor.venue.orders import EngineError, EngineOrder, EngineTrade, ErrorKind

T = TypeVar("T")


_AFTER_MESSAGES = {
    Fault.ERROR_AFTER: "502 Bad Gateway (the venue may have acted)",
    Fault.TIMEOUT_AFTER_ACCEPT: "request timed out",
    Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE: "request timed out",
    Fault.RESET_AFTER_ACCEPT: "connection reset",
}


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _order(o: EngineOrder) -> ExchangeOrder:
    return ExchangeOrder(
        client_order_id=o.client_order_id,
        exchange_order_id=o.exchange_order_id,
        symbol=o.symbol,
        side=o.side,
        type=o.type,
        amount=o.amount,
        price=o.price,
        status=o.status,
        filled=o.filled,
        average=o.average,
        fee=o.fee,
        fee_currency=o.fee_currency or None,
        ts=_dt(o.updated_at),
        created=_dt(o.created_at),
    )


def _trade(t: EngineTrade) -> Trade:
    return Trade(
        trade_id=str(t.id),
        exchange_order_id=t.exchange_order_id,
        client_order_id=t.client_order_id,
        symbol=t.symbol,
        side=t.side,
        amount=t.amount,
        price=t.price,
        fee=t.fee,
        fee_currency=t.fee_currency,
        ts=_dt(t.ts),
    )


def _port_error(exc: EngineError) -> ExchangeError:
    if exc.kind is ErrorKind.DUPLICATE_ORDER:
        return DuplicateOrder(exc.message)
    if exc.kind is ErrorKind.UNKNOWN_ORDER:
        return OrderNotFound(exc.message)
    return Rejected(exc.message)


class PaperExchange(ExchangePort):
    """The port over a `PaperEngine`, in-process, with optional latency and faults."""

    name = "paper"
    mode = ExchangeMode.PAPER

    def __init__(self, engine: PaperEngine, latency_ms: float = 0, faults: FaultPlan | None = None) -> None:
        self.engine = engine
        self.latency_ms = latency_ms
        self.faults = faults
        # The engine's clock, so a test's fake clock drives the cooldown and visibility windows too.
        self.cooldown = Cooldown(clock=engine.clock)
        self._hidden_until: dict[str, float] = {}  # client order id -> clock time it becomes visible
        # Per market asked (None: all): open order's engine id -> (its version, its answer).
        self._answers: dict[str | None, dict[int, tuple[int, ExchangeOrder]]] = {}

    async def _call(self, operation: str, op: Callable[[Fault], T]) -> T:
        """One request: cooldown, latency, the fault plan's verdict, then the engine (or not)."""
        await self.cooldown.wait()
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        fault = self.faults.next(operation) if self.faults is not None else Fault.NONE
        if fault is Fault.REFUSED:
            raise NotPlaced("connection refused")
        if fault is Fault.RATE_LIMIT:
            assert self.faults is not None
            retry_after = self.faults.retry_after
            self.cooldown.trip(retry_after)
            raise NotPlaced(
                f"429 Too Many Requests (retry after {retry_after:g}s)",
                rate_limited=True,
                retry_after=retry_after,
            )
        if fault is Fault.ERROR_BEFORE:
            raise MaybePlaced("503 Service Unavailable")
        if fault is Fault.REJECT:
            raise Rejected("rejected by the venue (injected fault)")
        self.engine.sync()
        try:
            result = op(fault)
        except EngineError as exc:
            if fault in _AFTER_MESSAGES:
                # The venue answered, but the answer was lost: the client cannot tell it was a refusal.
                raise MaybePlaced(_AFTER_MESSAGES[fault]) from None
            raise _port_error(exc) from None
        if fault in _AFTER_MESSAGES:
            raise MaybePlaced(_AFTER_MESSAGES[fault])
        # This answer reaches the client: the ended orders it tells of may be forgotten in their
        # turn (an order whose answer was lost above is kept until one does reach it).
        if isinstance(result, EngineOrder):
            self.engine.told(result)
        return result

    def _visible(self, client_order_id: str) -> bool:
        until = self._hidden_until.get(client_order_id)
        if until is None:
            return True
        if self.engine.clock() >= until:
            del self._hidden_until[client_order_id]
            return True
        return False

    def _hide(self, client_order_id: str) -> None:
        assert self.faults is not None
        self._hidden_until[client_order_id] = self.engine.clock() + self.faults.invisible_ms / 1000

    async def load_markets(self) -> dict[str, MarketInfo]:
        return await self._call("load_markets", lambda _: self.engine.markets())

    async def fetch_ticker(self, symbol: str) -> Ticker:
        t = await self._call("fetch_ticker", lambda _: self.engine.ticker(symbol))
        return Ticker(symbol=t.symbol, bid=t.bid, ask=t.ask, last=t.last, ts=t.ts)

    async def fetch_balances(self) -> dict[str, Balance]:
        return await self._call("fetch_balances", lambda _: self.engine.balances())

    async def create_order(
        self,
        *,
        client_order_id: str,
        symbol: str,
        side: Side,
        type: OrderType,
        amount: Decimal,
        price: Decimal | None,
    ) -> ExchangeOrder:
        def create(fault: Fault) -> EngineOrder:
            order = self.engine.create_order(client_order_id, symbol, side, type, amount, price)
            if fault.invisible:
                self._hide(client_order_id)
            return order

        return _order(await self._call("create_order", create))

    async def fetch_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        def fetch(_: Fault) -> EngineOrder:
            order = self.engine.get_order(client_order_id=client_order_id)
            if order.symbol != symbol or not self._visible(client_order_id):
                raise EngineError(ErrorKind.UNKNOWN_ORDER, f"Order does not exist: no order {client_order_id!r}.")
            return order

        return _order(await self._call("fetch_order", fetch))

    async def cancel_order(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        def cancel(_: Fault) -> EngineOrder:
            order = self.engine.get_order(client_order_id=client_order_id)
            if order.symbol != symbol or not self._visible(client_order_id):
                raise EngineError(ErrorKind.UNKNOWN_ORDER, f"Unknown order sent: no order {client_order_id!r}.")
            return self.engine.cancel_order(client_order_id=client_order_id)

        return _order(await self._call("cancel_order", cancel))

    async def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        # Each open order converted once per version of it (the answers are frozen, so the same
        # one serves again): a poll of 10,000 resting orders converts those that changed, copies none.
        memo = self._answers.setdefault(symbol, {})
        orders = await self._call("fetch_open_orders", lambda _: self.engine.open_orders_as(_order, memo, symbol))
        if not self._hidden_until:
            return orders
        return [o for o in orders if self._visible(o.client_order_id)]

    async def fetch_orders_since(self, symbol: str, since: datetime) -> list[ExchangeOrder]:
        start = since.timestamp()
        orders = await self._call("fetch_orders_since", lambda _: self.engine.all_orders(symbol))
        # Oldest first (a seeded order may be backdated); a venue that cannot show an order yet does not list it.
        wanted = [o for o in orders if o.created_at >= start and self._visible(o.client_order_id)]
        self.engine.told(*wanted)
        return [_order(o) for o in sorted(wanted, key=lambda o: (o.created_at, o.id))]

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> list[Trade]:
        start = None if since is None else since.timestamp()
        trades = await self._call("fetch_my_trades", lambda _: self.engine.trades(symbol, start))
        # A venue that cannot show an order yet cannot show its fills either.
        return [_trade(t) for t in trades if self._visible(t.client_order_id)]
