"""A TradeExecutor on the paper exchange with a fault plan, a real store and a recorded event stream."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from executor.config import Settings
from executor.events import Event, EventBus
from executor.exchanges.base import ExchangeOrder
from executor.exchanges.paper import PaperExchange
from executor.executor import TradeExecutor
from executor.models import Signal, SignalRecord, SignalStatus, to_decimal, utcnow
from executor.store import Store
from executor.venue.engine import PaperEngine
from executor.venue.faults import FaultPlan


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
        fields.setdefault("side", "buy")
        signal = Signal.model_validate(fields)
        market = self.executor.markets[signal.symbol]
        ticker = self.engine.ticker(signal.symbol)
        reference = to_decimal(signal.price) if signal.price else (ticker.ask if signal.side == "buy" else ticker.bid)
        amount = to_decimal(signal.amount) if signal.amount else (to_decimal(signal.quote_amount) / reference)
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
        return await self.store.insert_signal(record)

    def engine_orders(self, coid_prefix: str = "") -> list:
        return [o for o in self.engine.all_orders() if o.client_order_id.startswith(coid_prefix)]

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


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
) -> Harness:
    engine = engine or PaperEngine(
        seed=seed,
        markets=list(settings.exchange.markets),
        balances=balances or {"USDT": Decimal(100000), "BTC": Decimal(1), "ETH": Decimal(10), "SOL": Decimal(100)},
        fee_pct=settings.paper.fee_pct,
        clock=clock,
    )
    faults = faults or FaultPlan(seed=seed, invisible_ms=200, retry_after=0.05)
    exchange = PaperExchange(engine, faults=faults)
    store = store or await Store.open(db)
    bus = EventBus()
    executor = TradeExecutor(
        exchange,
        store,
        settings.execution,
        bus=bus,
        client_id_prefix=settings.exchange.client_id_prefix,
        poll_interval=poll_interval,
        balance_interval=0.2,
        lookup_window=0.5,
    )
    harness = Harness(engine, exchange, faults, store, executor)
    bus.subscribe(harness.events.append)
    return harness


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
    def _strip(report):
        return ExchangeOrder(report.client_order_id, report.exchange_order_id, report.symbol, report.side,
                             report.type, report.amount, report.price, report.status, report.filled, report.average)

    async def create_order(self, **kw):
        return self._strip(await super().create_order(**kw))

    async def fetch_order(self, client_order_id, symbol):
        return self._strip(await super().fetch_order(client_order_id, symbol))

    async def fetch_open_orders(self, symbol=None):
        return [self._strip(r) for r in await super().fetch_open_orders(symbol)]

    async def fetch_orders_since(self, symbol, since):
        return [self._strip(r) for r in await super().fetch_orders_since(symbol, since)]
