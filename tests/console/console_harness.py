"""Shared pieces for the console tests: a frozen market, a hand-moved clock, a populated service.

(Not a `conftest.py`: the unit tests import the top-level `tests/conftest.py` by the bare name
`conftest`, and a second `conftest.py` here would shadow it.)

`open_service` builds a `TradingService` on the paper exchange whose engine clock never moves
(prices stay put, resting orders rest) and whose service clock moves only when a test says so.
`populate` then drives it through the service's public API, as a strategy and an operator would:
a filled market order, two resting limit orders (one partially filled), three pending signals, an
invalid signal and a retry and a warning in the log. Everything is seeded and clocked, so the
same run draws the same screen. `populated_console` is a running console (Pilot) on that scenario,
the first rows chosen: where every key test starts. The waiting and the settings are the shared
`helpers`; `console_settings` only moves reconciliation out of the way.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from helpers import eventually, make_settings
from textual.pilot import Pilot
from textual.screen import Screen

from console.app import FINISHED_LINGER, TradeConsole
from console.themes import THEMES_DIR
from executor.clientid import client_order_id
from executor.config import Settings
from executor.events import ErrorOccurred, RetryScheduled
from executor.exchanges.paper import PaperExchange
from executor.models import OrderStatus, SignalStatus
from executor.service import TradingService
from executor.venue.engine import PaperEngine

S = TypeVar("S", bound=Screen)
T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
ACTOR = "tester@console"
SIZE = (120, 36)
DB_NAME = "console.db"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def console_settings(**sections: dict) -> Settings:
    """`make_settings`, reconciliation out of the way (hourly) unless a test sets it."""
    return make_settings(**{"reconcile": {"interval_seconds": 3600}} | sections)


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

    async def signal(sid: str, symbol: str, side: str, **fields: object) -> None:
        await service.receive(line(id=sid, symbol=symbol, side=side, **fields), source="test")

    await signal(s.filled, "SOL/USDT", "buy", amount=12, order_type="market", strategy="breakout")
    await approve_and_wait(service, s.filled, OrderStatus.FILLED)
    await signal(s.resting, "BTC/USDT", "buy", amount=0.05, order_type="limit", price=58000, strategy="mean-revert")
    await approve_and_wait(service, s.resting, OrderStatus.OPEN)
    await signal(s.partial, "ETH/USDT", "sell", amount=1.5, order_type="limit", price=3150, strategy="momentum")
    await approve_and_wait(service, s.partial, OrderStatus.OPEN)
    engine.force_fill(coid(s.partial), Decimal("0.6"))
    await service.executor.poll()
    assert await order_status(service, s.partial) is OrderStatus.PARTIALLY_FILLED
    reason = "NotPlaced: 429 Too Many Requests (retry after 1s)"
    service.bus.publish(
        RetryScheduled(
            operation="create_order",
            attempt=1,
            max_attempts=4,
            delay=1.37,
            reason=reason,
            client_order_id=coid(s.resting),
            signal_id=s.resting,
            ts=clock(),
        )
    )
    clock.advance(1)
    await signal(s.pending[0], "BTC/USDT", "sell", amount=0.02, order_type="market", strategy="momentum")
    await signal("sig-0099", "DOGE/USDT", "buy", amount=100)
    clock.advance(1)
    await signal(s.pending[1], "ETH/USDT", "buy", amount=2, order_type="limit", price=2990, strategy="mean-revert")
    await signal(s.pending[2], "SOL/USDT", "buy", quote_amount=500, strategy="breakout", ttl_seconds=12)
    service.bus.publish(
        ErrorOccurred(
            f"{coid(s.resting)}: cancel not confirmed (503 Service Unavailable); tracking continues",
            level="warning",
            client_order_id=coid(s.resting),
            ts=clock(),
        )
    )
    # The market view as the fills left it (the last trade moved ETH's last price): a round now, so
    # that the view's own rounds (every few seconds of real time) find nothing new to show.
    await service.market_view.refresh(max_age=0)
    await service.reconcile()  # balances after the fills, and "reconciled 4s ago" once the clock moves on
    clock.advance(4)
    return s


async def populated_store(db: Path, clock: Clock, settings: Settings | None = None) -> Scenario:
    """A store left behind by another process: populated, then closed with its orders open."""
    service = await open_service(db, clock, settings or console_settings())
    try:
        await service.start()
        return await populate(service, clock)
    finally:
        await service.close()


def console_app(
    db: Path, clock: Clock, settings: Settings | None = None, *, read_only: bool = False, **kwargs
) -> TradeConsole:
    settings = settings or console_settings()
    kwargs.setdefault("theme_dirs", [THEMES_DIR])  # the shipped themes only, whatever the user has
    return TradeConsole(
        lambda: open_service(db, clock, settings, read_only=read_only),
        settings=settings,
        clock=clock,
        read_only=read_only,
        **kwargs,
    )


async def ready(app: TradeConsole, pause) -> None:
    await eventually(lambda: app.ready, pause=pause, what="the console to start")


async def opened(app: TradeConsole, pilot: Pilot, screen_type: type[S], *keys: str, what: str | None = None) -> S:
    """Press `keys` and wait until a `screen_type` is on top; return it."""
    await pilot.press(*keys)
    await eventually(lambda: isinstance(app.screen, screen_type), pause=pilot.pause, what=what or screen_type.__name__)
    return app.screen  # type: ignore[return-value]


async def shown(app: TradeConsole, pause, predicate: Callable[[], bool], what: str) -> None:
    """Wait until the screen shows what `predicate` checks, flushing the event buffer on demand."""

    def check() -> bool:
        app.flush()
        return predicate()

    await eventually(check, pause=pause, what=what)


async def started(app: TradeConsole, pilot: Pilot, clock: Clock) -> Scenario:
    """The console ready, its service driven into the scenario, the first rows chosen."""
    await ready(app, pilot.pause)
    scenario = await populate(app.service, clock)
    await shown(
        app, pilot.pause, lambda: len(app.signals.items) == 3 and len(app.state.orders) == 2, "the populated screen"
    )
    app.tick()  # the filled market order of the scenario has lingered long enough: only the open two
    assert len(app.orders.items) == 2
    await choose_first_rows(pilot)
    return scenario


async def choose_first_rows(pilot: Pilot) -> None:
    """The operator puts the cursor on the first order and the first signal (ctrl+home), Signals focused.

    The scenario's filled order, and any signal shown before it was approved, left while under the
    cursor: until the operator moves, nothing is selected.
    """
    await pilot.press("tab", "ctrl+home", "shift+tab", "ctrl+home")


@contextlib.asynccontextmanager
async def populated_console(
    tmp_path: Path, settings: Settings | None = None
) -> AsyncIterator[tuple[TradeConsole, Pilot, Scenario]]:
    """A console on a fresh store in `tmp_path` (`DB_NAME`), `started`: the app, its pilot, the scenario."""
    clock = Clock()
    app = console_app(tmp_path / DB_NAME, clock, settings)
    async with app.run_test(size=SIZE) as pilot:
        yield app, pilot, await started(app, pilot, clock)


def lingered(app: TradeConsole) -> None:
    """Let finished orders leave Orders: the console's clock moves past the moment they stay."""
    app.clock.advance(FINISHED_LINGER)  # type: ignore[attr-defined]  (the harness's `Clock`)
    app.tick()


async def signal_status(app: TradeConsole, signal_id: str) -> SignalStatus | None:
    record = await app.service.store.get_signal(signal_id)
    return record.status if record else None


async def audit_actions(app: TradeConsole) -> list[tuple[str, str | None, str]]:
    return [(row["action"], row["target"], row["actor"]) for row in await app.service.store.audit()]
