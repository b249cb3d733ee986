"""Helpers of the integration tests: timings, an emulator of a test's own, the ccxt adapter and a raw
ccxt binance on it, a TradeExecutor over the adapter."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from helpers import approved_signal, make_settings

from executor.clientid import client_order_id
from executor.config import Settings
from executor.events import Event, EventBus
from executor.exchanges.ccxt import CcxtExchange
from executor.executor import TradeExecutor
from executor.models import OrderType, Side, SignalRecord
from executor.store import Store
from executor.venue.emulator.app import DEMO_API_KEY, DEMO_API_SECRET, RunningEmulator, start_emulator
from executor.venue.emulator.record import Audit, signal_key
from executor.venue.faults import FaultPlan as EmulatorFaults
from executor.venue.faults import Limits
from executor.venue.orders import EngineOrder

MARKETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
# The client gives up after CLIENT_TIMEOUT_MS; a "timeout after accept" answer is held a bit longer.
CLIENT_TIMEOUT_MS = 600
HOLD_S = 0.9
INVISIBLE_MS = 300
RETRY_AFTER_S = 0.2
BAN_S = 0.5
# Lookups of a maybe-placed order outlast the emulator's visibility delay, just.
LOOKUP_WINDOW_S = INVISIBLE_MS / 1000 + 0.3
PREFIX = "tc"


def emulator_faults(**changes: Any) -> EmulatorFaults:
    limits = changes.pop("limits", Limits(ban_after=10, ban_seconds=BAN_S))
    return EmulatorFaults(
        seed=changes.pop("seed", 11),
        invisible_ms=INVISIBLE_MS,
        retry_after=RETRY_AFTER_S,
        timeout_hold_s=HOLD_S,
        limits=limits,
        **changes,
    )


@contextlib.asynccontextmanager
async def emulator_running(**options: Any) -> AsyncIterator[RunningEmulator]:
    """`start_emulator(**options)` on a free port of 127.0.0.1, stopped on the way out."""
    running = await start_emulator(**options)
    try:
        yield running
    finally:
        await running.stop()


def emulator_adapter(url: str, *, markets: Any = MARKETS, **options: Any) -> CcxtExchange:
    """The ccxt adapter on the emulator at `url`, with the demo keys (`options` go to `CcxtExchange`)."""
    keys = {"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
    return CcxtExchange("binance", **keys | {"api_url": url, "markets": list(markets)} | options)


async def buy(
    adapter: CcxtExchange, coid: str, amount: str = "0.001", price: str | None = None, symbol: str = "BTC/USDT"
):
    """A buy through the adapter: a limit order at `price`, or a market order without one."""
    return await adapter.create_order(
        client_order_id=coid,
        symbol=symbol,
        side=Side.BUY,
        type=OrderType.LIMIT if price else OrderType.MARKET,
        amount=Decimal(amount),
        price=Decimal(price) if price else None,
    )


def raw_binance(url: str, *, api_key: str = DEMO_API_KEY, api_secret: str = DEMO_API_SECRET) -> Any:
    """ccxt's binance pointed at the emulator by hand: the REST bases, spot only, no retries."""
    import ccxt.async_support as ccxt

    exchange = ccxt.binance(
        {"apiKey": api_key, "secret": api_secret, "enableRateLimit": False, "timeout": CLIENT_TIMEOUT_MS}
    )
    for name in ("public", "private"):
        exchange.urls["api"][name] = f"{url}/api/v3"
    exchange.urls["api"]["v1"] = f"{url}/api/v1"
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    exchange.options["fetchCurrencies"] = False
    exchange.options["fetchMargins"] = False
    return exchange


@contextlib.asynccontextmanager
async def own_venue(
    client: Callable[[str], Any] = raw_binance, *, load_markets: bool = True, **options: Any
) -> AsyncIterator[tuple[RunningEmulator, Any]]:
    """An emulator of a test's own (`start_emulator(**options)`) and a client on it, `client(url)`:
    ccxt's binance, or `emulator_adapter`. Both are closed on the way out; the markets are loaded
    unless `load_markets=False`."""
    async with emulator_running(**options) as running, client(running.url) as exchange:
        if load_markets:
            await exchange.load_markets()
        yield running, exchange


def rig_settings(**execution: Any) -> Settings:
    """Retries and an order timeout short enough for a test; `execution` changes them further."""
    quick = {"retry_delay_seconds": 0.02, "max_retries": 5, "order_timeout_seconds": 2.0}
    return make_settings(execution=quick | execution)


@dataclass
class Rig:
    """A TradeExecutor trading through the ccxt adapter against one emulator."""

    emulator: RunningEmulator
    exchange: CcxtExchange
    store: Store
    executor: TradeExecutor
    events: list[Event] = field(default_factory=list)
    amounts: dict[str, Decimal] = field(default_factory=dict)  # signal key -> amount asked

    @property
    def engine(self):
        return self.emulator.emulator.engine

    async def approved(self, **fields: Any) -> SignalRecord:
        """Store an approved signal (as intake and approval would) and return its record."""
        record = approved_signal(self.executor.markets, self.engine.ticker, **fields)
        self.amounts[signal_key(client_order_id(PREFIX, record.id, 0))] = record.amount
        return await self.store.insert_signal(record)

    def venue_orders(self, signal_id: str) -> list[EngineOrder]:
        """The emulator's orders of one signal (every replacement)."""
        key = signal_key(client_order_id(PREFIX, signal_id, 0))
        return [o for o in self.engine.all_orders() if signal_key(o.client_order_id) == key]

    def audit(self) -> Audit:
        return self.emulator.emulator.audit(self.amounts)

    async def close(self) -> None:
        try:
            await self.executor.stop()
        finally:
            try:
                await self.exchange.close()
            finally:
                await self.store.close()


async def make_rig(
    emulator: RunningEmulator,
    db: Path,
    *,
    settings: Settings | None = None,
    lookup_window: float = LOOKUP_WINDOW_S,
) -> Rig:
    settings = settings or rig_settings()
    exchange = emulator_adapter(emulator.url, timeout_ms=CLIENT_TIMEOUT_MS)
    store = await Store.open(db)
    bus = EventBus()
    executor = TradeExecutor(
        exchange,
        store,
        settings.execution,
        bus=bus,
        client_id_prefix=PREFIX,
        poll_interval=0.05,
        balance_interval=0.5,
        lookup_window=lookup_window,
    )
    rig = Rig(emulator, exchange, store, executor)
    bus.subscribe(rig.events.append)
    return rig
