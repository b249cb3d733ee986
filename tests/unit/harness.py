"""The unit tests' builders: a TradeExecutor on the paper exchange with a fault plan, a real store and
a recorded event stream (`make_harness`), and the paper engine on a clock that moves only when told
(`make_engine`, for the venue's own tests)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import FakeClock, approved_signal, make_settings, recorded_executor
from hypothesis import strategies as st

from executor.clientid import client_order_id
from executor.config import Settings
from executor.events import Event, ReconcileResult
from executor.exchanges.base import ExchangeOrder
from executor.exchanges.paper import PaperExchange
from executor.executor import TradeExecutor
from executor.models import Fill, Order, OrderType, Side, SignalRecord, SignalStatus, utcnow
from executor.service import TradingService
from executor.store import Store
from executor.venue.engine import PaperEngine
from executor.venue.faults import FaultPlan
from executor.venue.orders import EngineError

BTC = "BTC/USDT"
MARKETS = (BTC, "ETH/USDT", "SOL/USDT")
EPOCH = 1_700_000_000.0  # the engine's wall clock at its monotonic zero
ENGINE_T0 = 500.0  # where `make_engine`'s own clock starts
ENGINE_BALANCES = {"USDT": 100_000, "BTC": 1, "ETH": 10, "SOL": 100}


def make_engine(seed: int = 7, markets=MARKETS, clock=None, *, balances: dict | None = None, **kwargs) -> PaperEngine:
    """A paper engine with a still clock (at ENGINE_T0 unless given), the three markets and their coins."""
    balances = dict(ENGINE_BALANCES) if balances is None else balances
    return PaperEngine(seed, list(markets), balances, clock=clock or FakeClock(ENGINE_T0), epoch=EPOCH, **kwargs)


def paper_engine(settings: Settings, clock=None) -> PaperEngine:
    """The paper engine under a core's tests: seed 3, the settings' markets and ENGINE_BALANCES, a still clock."""
    return PaperEngine(seed=3, markets=settings.exchange.markets, balances=ENGINE_BALANCES, clock=clock or FakeClock())


async def open_service(db: Path, *, clock=None, **sections) -> TradingService:
    """A started core on the paper exchange of `paper_engine`, for the operator "ops@desk": the
    default settings with `sections` changed, retries 10 ms apart."""
    sections["execution"] = {"retry_delay_seconds": 0.01, **sections.get("execution", {})}
    settings = make_settings(**sections)
    exchange = PaperExchange(paper_engine(settings, clock))
    service = await TradingService.open(settings, db, exchange=exchange, actor="ops@desk", poll_interval=0.02)
    await service.start()
    return service


def order_row(signal_id: str | None = "a", replacement: int = 0, *, age: float = 0.0, **fields) -> Order:
    """An order row as the executor (or a crash) leaves it in the store: a buy limit of 0.01 BTC/USDT
    at 30,000 for `signal_id`, its client order id made from it and `replacement`, written `age`
    seconds ago; any other field given replaces the default."""
    ts = utcnow() - timedelta(seconds=age)
    coid = client_order_id("tc", signal_id or "none", replacement)
    base = dict(
        client_order_id=coid,
        signal_id=signal_id,
        replacement=replacement,
        symbol="BTC/USDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        amount=Decimal("0.01"),
        price=Decimal("30000"),
        created_at=ts,
        updated_at=ts,
    )
    return Order(**(base | fields))


def signal_row(
    signal_id: str | None, status=SignalStatus.PENDING, *, at: datetime | None = None, **fields
) -> SignalRecord:
    """A received signal's row: raw "{}" from source "test", received `at` (now); fields replace the defaults."""
    base = dict(id=signal_id, status=status, source="test", received_at=at or utcnow(), raw="{}")
    return SignalRecord(**(base | fields))


def fill_row(client_order_id: str = "tc-a-0", **fields) -> Fill:
    """A fill of 0.01 BTC/USDT bought at 60,000 by signal "a"'s order; fields replace the defaults."""
    base = dict(
        fill_id=f"{client_order_id}:0.01",
        client_order_id=client_order_id,
        signal_id="a",
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=Decimal("0.01"),
        price=Decimal(60000),
    )
    return Fill(**(base | fields))


def refusal(call, *args, **kwargs) -> EngineError:
    """The EngineError that `call(*args, **kwargs)` raises; the test fails if it raises none."""
    with pytest.raises(EngineError) as info:
        call(*args, **kwargs)
    return info.value


def order_op(max_units: int, *more: st.SearchStrategy) -> st.SearchStrategy:
    """An ("order", symbol, side, type, units, offset_bp, *more) draw of the engine's property tests:
    `units` amount steps, priced `offset_bp` basis points from the touch (see `place_drawn`)."""
    return st.tuples(
        st.just("order"),
        st.sampled_from(MARKETS),
        st.sampled_from(list(Side)),
        st.sampled_from(list(OrderType)),
        st.integers(1, max_units),  # amount in steps of the market
        st.integers(-10, 10),  # limit price offset from the touch, in basis points
        *more,
    )


def place_drawn(engine: PaperEngine, cid: str, symbol: str, side: Side, type: OrderType, units: int, offset_bp: int):
    """Place the order an `order_op` drew (the engine may refuse it: EngineError)."""
    market = engine.market(symbol)
    touch = engine.ticker(symbol).bid if side is Side.BUY else engine.ticker(symbol).ask
    price = (touch * (1 + Decimal(offset_bp) / 10_000)).quantize(market.price_tick)
    return engine.create_order(cid, symbol, side, type, market.amount_step * units, price)


@dataclass
class Harness:
    engine: PaperEngine
    exchange: PaperExchange
    faults: FaultPlan
    store: Store
    executor: TradeExecutor
    events: list[Event] = field(default_factory=list)

    async def approved(self, **fields) -> SignalRecord:
        """Store an approved signal (as intake + approval would) and return its record."""
        return await self.store.insert_signal(approved_signal(self.executor.markets, self.engine.ticker, **fields))

    async def placed(self, *, fill: Decimal | None = None, **fields) -> Order:
        """Approve a signal and execute it; the venue then fills `fill` of its order (seen by nobody yet)."""
        order = await self.executor.execute_signal(await self.approved(**fields))
        if fill is not None:
            self.engine.force_fill(order.client_order_id, fill)
        return order

    async def left(self, *orders: Order) -> None:
        """Write order rows straight into the store, as a crash left them (no request to the venue)."""
        for order in orders:
            await self.store.save_order(order, old=None, source="request")

    def engine_orders(self, coid_prefix: str = "") -> list:
        return [o for o in self.engine.all_orders() if o.client_order_id.startswith(coid_prefix)]

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    async def close(self) -> None:
        """Stop the executor and close the store (what a crash leaves: open orders stay open)."""
        await self.executor.stop()
        await self.store.close()


async def make_harness(
    settings: Settings,
    db: Path,
    *,
    clock=time.monotonic,
    faults: FaultPlan | None = None,
    balances: dict | None = None,
    poll_interval: float = 0.02,
    seed: int = 7,
    store: Store | None = None,
    engine: PaperEngine | None = None,
    exchange_cls: type[PaperExchange] = PaperExchange,
) -> Harness:
    """A harness not started yet; `exchange_cls` is the paper exchange (or a subclass of it) to trade on."""
    engine = engine or PaperEngine(
        seed=seed,
        markets=list(settings.exchange.markets),
        balances=balances or {"USDT": Decimal(100000), "BTC": Decimal(1), "ETH": Decimal(10), "SOL": Decimal(100)},
        fee_pct=settings.paper.fee_pct,
        clock=clock,
    )
    faults = faults or FaultPlan(seed=seed, invisible_ms=200, retry_after=0.05)
    exchange = exchange_cls(engine, faults=faults)
    store = store or await Store.open(db)
    executor, events = recorded_executor(
        exchange,
        store,
        settings.execution,
        prefix=settings.exchange.client_id_prefix,
        poll_interval=poll_interval,
        balance_interval=0.2,
        lookup_window=0.5,
    )
    harness = Harness(engine, exchange, faults, store, executor, events)
    return harness


async def offline_harness(settings: Settings, db: Path, exchange_cls=PaperExchange, **options) -> Harness:
    """A harness not started that knows its markets already (`approved` sizes signals by them)."""
    harness = await make_harness(settings, db, exchange_cls=exchange_cls, **options)
    harness.executor.markets = harness.engine.markets()
    return harness


async def restart(harness: Harness, settings: Settings, db: Path, exchange_cls=PaperExchange) -> Harness:
    """Stop `harness` and open an offline one on the same engine and store file, as a restart would."""
    await harness.close()
    return await offline_harness(settings, db, exchange_cls, engine=harness.engine)


@contextlib.asynccontextmanager
async def running(harness: Harness, *, watch: bool = True) -> AsyncIterator[ReconcileResult]:
    """Start the harness's executor (tracking the venue unless watch=False) and give what its start
    reconciled; stop it and close the store after."""
    result = await harness.executor.start(watch=watch)
    try:
        yield result
    finally:
        await harness.close()


class GatedPaper(PaperExchange):
    """The paper exchange whose order-rate pacer admits an order only when the test says so."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.waiting = 0

    def admit(self):
        exchange = self

        class _Admission:
            async def __aenter__(self):
                exchange.waiting += 1
                await exchange.gate.wait()
                exchange.waiting -= 1

            async def __aexit__(self, *exc):
                return False

        return _Admission()


class NoFeesInOrders(PaperExchange):
    """A venue whose order answers carry no fee (Binance's order endpoints): fees only in the trades."""

    @staticmethod
    def _strip(report: ExchangeOrder) -> ExchangeOrder:
        """The report as such an answer states it: no fee, no timestamps."""
        return dataclasses.replace(report, fee=Decimal(0), fee_currency=None, ts=None, created=None)

    async def create_order(self, **kw):
        return self._strip(await super().create_order(**kw))

    async def fetch_order(self, client_order_id, symbol):
        return self._strip(await super().fetch_order(client_order_id, symbol))

    async def fetch_open_orders(self, symbol=None):
        return [self._strip(r) for r in await super().fetch_open_orders(symbol)]

    async def fetch_orders_since(self, symbol, since):
        return [self._strip(r) for r in await super().fetch_orders_since(symbol, since)]
