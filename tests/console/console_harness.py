"""Shared pieces for the console tests: a frozen market, a hand-moved clock, a populated service.

(Not a `conftest.py`: the unit tests import the top-level `tests/conftest.py` by the bare name
`conftest`, and a second `conftest.py` here would shadow it.)

`open_service` builds a `TradingService` on the paper exchange whose engine clock never moves
(prices stay put, resting orders rest) and whose service clock moves only when a test says so.
`populate` then drives it through the service's public API, as a strategy and an operator would:
a filled market order, two resting limit orders (one partially filled), three pending signals, an
invalid signal and a retry and a warning in the log. Everything is seeded and clocked, so the
same run draws the same screen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from console.app import TradeConsole
from console.themes import THEMES_DIR
from executor.clientid import client_order_id
from executor.config import Settings, load_config
from executor.events import ErrorOccurred, RetryScheduled
from executor.exchanges.paper import PaperExchange
from executor.models import OrderStatus
from executor.service import TradingService
from executor.venue.engine import PaperEngine

T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
ACTOR = "tester@console"
DEADLINE = 10.0


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_settings(**sections: dict) -> Settings:
    """Defaults (no file, no environment), reconciliation out of the way, sections overridden."""
    base = load_config(None, env={})
    update: dict = {"reconcile": base.reconcile.model_copy(update={"interval_seconds": 3600})}
    for name, values in sections.items():
        update[name] = getattr(base, name).model_copy(update=values)
    return base.model_copy(update=update)


def coid(signal_id: str, replacement: int = 0) -> str:
    return client_order_id("tc", signal_id, replacement)


def line(**fields) -> str:
    return json.dumps(fields)


async def open_service(db: Path, clock: Clock, settings: Settings, *, read_only: bool = False) -> TradingService:
    if read_only:
        return await TradingService.open(settings, db, read_only=True, clock=clock, actor=ACTOR)
    engine = PaperEngine(
        seed=settings.paper.seed,
        markets=list(settings.exchange.markets),
        balances=dict(settings.paper.balances),
        fee_pct=settings.paper.fee_pct,
        clock=lambda: 0.0,  # frozen: the synthetic market never moves
        epoch=T0.timestamp(),
    )
    return await TradingService.open(
        settings, db, exchange=PaperExchange(engine), clock=clock, actor=ACTOR, poll_interval=0.05
    )


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], *, timeout: float = DEADLINE,
                     pause: Callable[[], Awaitable[object]] | None = None, what: str = "condition") -> None:
    """Wait until `predicate` holds, giving the event loop (or a pilot) turns in between."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        if pause is not None:
            await pause()
        else:
            await asyncio.sleep(0.01)


async def order_status(service: TradingService, signal_id: str, replacement: int = 0) -> OrderStatus | None:
    order = await service.store.get_order(coid(signal_id, replacement))
    return order.status if order else None


async def approve_and_wait(service: TradingService, signal_id: str, *wanted: OrderStatus) -> None:
    await service.approve(signal_id)

    async def placed() -> bool:
        return await order_status(service, signal_id) in wanted

    await eventually(placed, what=f"{signal_id} to be {'/'.join(wanted)}")


@dataclass(frozen=True)
class Scenario:
    filled: str = "sig-0100"  # SOL market buy, filled: in the history
    resting: str = "sig-0101"  # BTC limit buy far below the market: open
    partial: str = "sig-0102"  # ETH limit sell far above the market: 40 % filled
    pending: tuple[str, ...] = ("sig-0103", "sig-0104", "sig-0105")


async def populate(service: TradingService, clock: Clock) -> Scenario:
    """Drive a started service into the state every console test starts from."""
    s = Scenario()
    assert service.executor is not None
    engine: PaperEngine = service.exchange.engine  # type: ignore[union-attr]
    clock.advance(1)
    await service.receive(line(id=s.filled, symbol="SOL/USDT", side="buy", amount=12, order_type="market",
                               strategy="breakout"), source="test")
    await approve_and_wait(service, s.filled, OrderStatus.FILLED)
    await service.receive(line(id=s.resting, symbol="BTC/USDT", side="buy", amount=0.05, order_type="limit",
                               price=58000, strategy="mean-revert"), source="test")
    await approve_and_wait(service, s.resting, OrderStatus.OPEN)
    await service.receive(line(id=s.partial, symbol="ETH/USDT", side="sell", amount=1.5, order_type="limit",
                               price=3150, strategy="momentum"), source="test")
    await approve_and_wait(service, s.partial, OrderStatus.OPEN)
    engine.force_fill(coid(s.partial), Decimal("0.6"))
    await service.executor.poll()
    assert await order_status(service, s.partial) is OrderStatus.PARTIALLY_FILLED
    service.bus.publish(RetryScheduled(
        operation="create_order", attempt=1, max_attempts=4, delay=1.37,
        reason="NotPlaced: 429 Too Many Requests (retry after 1s)", client_order_id=coid(s.resting),
        signal_id=s.resting, ts=clock(),
    ))
    clock.advance(1)
    await service.receive(line(id=s.pending[0], symbol="BTC/USDT", side="sell", amount=0.02, order_type="market",
                               strategy="momentum"), source="test")
    await service.receive(line(id="sig-0099", symbol="DOGE/USDT", side="buy", amount=100), source="test")
    clock.advance(1)
    await service.receive(line(id=s.pending[1], symbol="ETH/USDT", side="buy", amount=2, order_type="limit",
                               price=2990, strategy="mean-revert"), source="test")
    await service.receive(line(id=s.pending[2], symbol="SOL/USDT", side="buy", quote_amount=500,
                               strategy="breakout", ttl_seconds=12), source="test")
    service.bus.publish(ErrorOccurred(
        f"{coid(s.resting)}: cancel not confirmed (503 Service Unavailable); tracking continues",
        level="warning", client_order_id=coid(s.resting), ts=clock(),
    ))
    # The market view as the fills left it (the last trade moved ETH's last price): a round now, so
    # that the view's own rounds (every few seconds of real time) find nothing new to show.
    await service.market_view.refresh(max_age=0)
    await service.reconcile()  # balances after the fills, and "reconciled 4s ago" once the clock moves on
    clock.advance(4)
    return s


async def populated_store(db: Path, clock: Clock, settings: Settings | None = None) -> Scenario:
    """A store left behind by another process: populated, then closed with its orders open."""
    service = await open_service(db, clock, settings or make_settings())
    try:
        await service.start()
        return await populate(service, clock)
    finally:
        await service.close()


def console_app(db: Path, clock: Clock, settings: Settings | None = None, *, read_only: bool = False,
                **kwargs) -> TradeConsole:
    settings = settings or make_settings()
    kwargs.setdefault("theme_dirs", [THEMES_DIR])  # the shipped themes only, whatever the user has
    return TradeConsole(
        lambda: open_service(db, clock, settings, read_only=read_only),
        settings=settings, clock=clock, read_only=read_only, **kwargs,
    )


async def ready(app: TradeConsole, pause) -> None:
    await eventually(lambda: app.ready, pause=pause, what="the console to start")


async def shown(app: TradeConsole, pause, predicate: Callable[[], bool], what: str) -> None:
    """Wait until the screen shows what `predicate` checks, flushing the event buffer on demand."""

    def check() -> bool:
        app.flush()
        return predicate()

    await eventually(check, pause=pause, what=what)

