"""Helpers of the integration tests: timings, a raw ccxt binance, a TradeExecutor over the adapter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from executor.clientid import client_order_id
from executor.config import Settings, load_config
from executor.events import Event, EventBus
from executor.exchanges.ccxt import CcxtExchange
from executor.executor import TradeExecutor
from executor.models import Signal, SignalRecord, SignalStatus, to_decimal, utcnow
from executor.store import Store
from executor.venue.emulator.app import DEMO_API_KEY, DEMO_API_SECRET, RunningEmulator
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


async def eventually(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.01) -> None:
    """Wait for a condition with a generous deadline; fail loudly if it never holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}")
        await asyncio.sleep(interval)


def rig_settings(**execution: Any) -> Settings:
    settings = load_config(None, env={})
    values = {"retry_delay_seconds": 0.02, "max_retries": 5, "order_timeout_seconds": 2.0, **execution}
    return settings.model_copy(update={"execution": settings.execution.model_copy(update=values)})


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
        fields.setdefault("side", "buy")
        signal = Signal.model_validate(fields)
        market = self.executor.markets[signal.symbol]
        ticker = self.engine.ticker(signal.symbol)
        reference = to_decimal(signal.price) if signal.price else (ticker.ask if signal.side == "buy" else ticker.bid)
        amount = to_decimal(signal.amount) if signal.amount else to_decimal(signal.quote_amount) / reference
        amount = (amount / market.amount_step).to_integral_value() * market.amount_step
        record = SignalRecord(
            id=signal.id,
            status=SignalStatus.APPROVED,
            source="test",
            received_at=utcnow(),
            raw=signal.model_dump_json(),
            signal=signal,
            reference_price=reference,
            amount=amount,
        )
        self.amounts[signal_key(client_order_id(PREFIX, signal.id, 0))] = amount
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
    exchange = CcxtExchange(
        "binance",
        api_key=DEMO_API_KEY,
        api_secret=DEMO_API_SECRET,
        api_url=emulator.url,
        markets=list(MARKETS),
        timeout_ms=CLIENT_TIMEOUT_MS,
    )
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
