"""Adversary review of the crash-safe core (issues 7 and 8): scenarios the new core still gets
wrong, each set up on the paper exchange as a crash or a venue would leave it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from conftest import eventually
from harness import make_harness

from executor.clientid import client_order_id
from executor.exchanges.base import ExchangeOrder
from executor.exchanges.paper import Fault, PaperExchange
from executor.models import Order, OrderStatus, OrderType, Side, SignalStatus, utcnow

O = OrderStatus
S = SignalStatus


def coid(signal_id: str, n: int = 0) -> str:
    return client_order_id("tc", signal_id, n)


async def _harness(settings, db_path, exchange_cls=PaperExchange, **kwargs):
    h = await make_harness(settings, db_path, **kwargs)
    if exchange_cls is not PaperExchange:
        exchange = exchange_cls(h.engine, faults=h.faults)
        h.exchange = exchange
        h.executor.exchange = exchange
    h.executor.markets = h.engine.markets()
    return h


async def _close(h) -> None:
    await h.executor.stop()
    await h.store.close()


async def _restart(h, settings, db_path, exchange_cls=PaperExchange):
    await _close(h)
    return await _harness(settings, db_path, exchange_cls, engine=h.engine)


def _row(signal_id: str, n: int, *, status, type_=OrderType.LIMIT, price=Decimal("30000"),
         amount=Decimal("0.01"), symbol="BTC/USDT", age: float = 0.0, last_error: str = "") -> Order:
    ts = utcnow() - timedelta(seconds=age)
    return Order(client_order_id=coid(signal_id, n), signal_id=signal_id, replacement=n, symbol=symbol,
                 side=Side.BUY, type=type_, amount=amount, price=price if type_ is OrderType.LIMIT else None,
                 status=status, created_at=ts, updated_at=ts, last_error=last_error)


ABSENT = "certainly absent after lookups across the visibility window"
