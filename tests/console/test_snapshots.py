"""What the console looks like: plain `def` snapshot tests with a fixed seed, clock and size.

Each test starts a console on a fresh store, drives the service into the shared scenario of
`console_harness.populate` and compares the screen with the SVG in `__snapshots__`. Update them
with `pytest tests/console/test_snapshots.py --snapshot-update`, then look at every picture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest
from console_harness import (
    DB_NAME,
    Clock,
    Scenario,
    approve_and_wait,
    coid,
    console_app,
    console_settings,
    populate,
    populated_store,
    ready,
    shown,
)
from helpers import eventually
from textual.pilot import Pilot
from textual.widgets import Input

from console.screens.amend import AmendScreen
from console.screens.confirm import ConfirmScreen
from console.screens.detail import DetailScreen
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from executor.config import Settings
from executor.models import OrderStatus

SIZES = pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=["120x36", "80x24"])
Step = Callable[[Pilot], Awaitable[None]]


def populated(clock: Clock, then: Step | None = None, *, read_only: bool = False) -> Step:
    """`run_before` for snap_compare: the shared scenario on screen, then `then`, then a final flush."""

    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        await ready(app, pilot.pause)
        if not read_only:
            await populate(app.service, clock)
        await shown(
            app,
            pilot.pause,
            lambda: len(app.signals.items) == 3 and len(app.state.orders) == 2 and bool(app.state.balances),
            "the populated screen",
        )
        app.tick()  # countdowns, and the scenario's filled order leaves Orders for the history
        if not read_only:
            # The operator chooses the first rows: what passed under the cursor meanwhile depends on timing.
            await pilot.press("tab", "ctrl+home", "shift+tab", "ctrl+home")
        if then is not None:
            await then(pilot)
        app.flush()
        await pilot.pause()

    return run_before


@pytest.fixture
def screen(snap_compare, tmp_path) -> Callable[..., bool]:
    """`screen(then, size=, settings=, read_only=)`: whether a console on a fresh store, the shared
    scenario on screen and then `then`, looks like its SVG. Read-only: a console looking at the
    store the scenario left behind."""

    def compare(
        then: Step | None = None,
        *,
        size: tuple[int, int] = (120, 36),
        settings: Settings | None = None,
        read_only: bool = False,
    ) -> bool:
        clock, db = Clock(), tmp_path / DB_NAME
        if read_only:
            asyncio.run(populated_store(db, clock))
        app = console_app(db, clock, settings, read_only=read_only)
        return snap_compare(app, terminal_size=size, run_before=populated(clock, then, read_only=read_only))

    return compare


async def steady_inputs(pilot: Pilot) -> None:
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # a blinking cursor would make the picture depend on timing
    await pilot.pause()


def opens(screen_type: type, *keys: str) -> Step:
    async def step(pilot: Pilot) -> None:
        await pilot.press(*keys)
        await eventually(
            lambda: isinstance(pilot.app.screen, screen_type), pause=pilot.pause, what=screen_type.__name__
        )
        await pilot.pause()

    return step


async def amend_signal_with_an_error(pilot: Pilot) -> None:
    await opens(AmendScreen, "down", "e")(pilot)
    modal = pilot.app.screen
    await pilot.press("home", "ctrl+k", *"100")
    await eventually(
        lambda: "insufficient" in modal.errors.get("amount", ""), pause=pilot.pause, what="the balance error"
    )
    await steady_inputs(pilot)


def price_amended(keys: tuple[str, ...], price: str) -> Step:
    """The amend modal opened by `keys`, its price (the second field) retyped, the amend valid."""

    async def step(pilot: Pilot) -> None:
        await opens(AmendScreen, *keys)(pilot)
        modal = pilot.app.screen
        await pilot.press("shift+tab", "home", "ctrl+k", *price)
        await eventually(lambda: modal._request is not None, pause=pilot.pause, what="a valid amend")
        await steady_inputs(pilot)

    return step


amend_order = price_amended(("tab", "e"), "58250")


@SIZES
def test_main_screen(screen, size):
    assert screen(size=size)


@pytest.mark.parametrize("size", [(200, 50)], ids=["200x50"])
def test_main_screen_large(screen, size):
    """200x50: the panes grow with the terminal."""
    assert screen(size=size)


async def selected_signal_left(pilot: Pilot) -> None:
    """The selected signal is rejected by another client: nothing is selected, the pane says why."""
    app = pilot.app
    await app.service.reject(app.signals.selected_key)
    await shown(app, pilot.pause, lambda: bool(app.signals.lost), "the selected signal to leave")


def test_selected_signal_left(screen):
    assert screen(selected_signal_left)


async def open_log_line(pilot: Pilot) -> None:
    app = pilot.app
    key = next(k for k, e in app.log_pane.items.items() if "cancel not confirmed" in e.reason)
    await pilot.press("tab", "tab")
    app.log_pane.select(key)
    await opens(DetailScreen, "enter")(pilot)


def test_a_long_log_reason_opened_whole(screen):
    assert screen(open_log_line)


@SIZES
def test_amend_signal_shows_a_validation_error(screen, size):
    assert screen(amend_signal_with_an_error, size=size)


# A limit signal's reference price changed: the market, the order price after the slippage rule.
amend_signal_price = price_amended(("down", "e"), "3010")


def test_amend_signal_shows_the_market_and_the_order_price(screen):
    assert screen(amend_signal_price)


def test_amend_open_order_shows_notional_and_fee(screen):
    assert screen(amend_order)


async def positions_with_pnl(pilot: Pilot) -> None:
    """The resting BTC buy fills (its fee in BTC) and the pending BTC market sell of 0.02 is
    approved and fills (its fee in USDT): a position partly closed, beside the scenario's SOL buy and
    its ETH sale of a balance held before the fills. The positions focused."""
    app, s = pilot.app, Scenario()
    service = app.service
    service.exchange.engine.force_fill(coid(s.resting), Decimal("0.05"))
    await service.executor.poll()
    await approve_and_wait(service, s.pending[0], OrderStatus.FILLED)
    await service.market_view.refresh(max_age=0)  # the market as the fills left it (its last trade)
    await service.reconcile()  # the balances after the fills
    await shown(
        app,
        pilot.pause,
        lambda: (
            app.balances.positions.items.get("BTC/USDT") is not None
            and app.balances.positions.items["BTC/USDT"].sold > 0
        ),
        "the BTC position, partly closed",
    )
    await pilot.press("tab", "tab", "tab", "tab", "ctrl+home")  # the operator chooses the first row
    await eventually(lambda: app.focused is app.balances.positions, pause=pilot.pause, what="the positions focused")


def test_positions_with_pnl(screen):
    assert screen(positions_with_pnl)


@SIZES
def test_kill_switch_confirmation(screen, size):
    assert screen(opens(ConfirmScreen, "ctrl+k"), size=size)


@SIZES
def test_help(screen, size):
    assert screen(opens(HelpScreen, "question_mark"), size=size)


@SIZES
def test_order_history(screen, size):
    assert screen(opens(HistoryScreen, "h"), size=size)


@SIZES
def test_inspect_mode(screen, size):
    assert screen(size=size, read_only=True)


@pytest.mark.parametrize("theme", ["tradeconsole-light", "tradeconsole-high-contrast"])
def test_theme(screen, theme):
    assert screen(settings=console_settings(ui={"theme": theme}))
