"""Every key leaves a trace: the core's Log line with its actor, in the Log pane (and journaled);
approving or amending beyond `[approval] far_from_market_pct` asks first."""

from __future__ import annotations

import json

from console_harness import ACTOR, coid, opened, populated_console, shown
from helpers import eventually

from console.app import TradeConsole
from console.screens.amend import AmendScreen
from console.screens.confirm import ConfirmScreen
from executor.models import OrderStatus, SignalStatus

# Limit orders beyond `[approval] far_from_market_pct`: a buy far below the market, a sell far above it.
FAR_BUY = {"id": "far-1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "order_type": "limit", "price": 40000}
FAR_SELL = {"id": "far-2", "symbol": "ETH/USDT", "side": "sell", "amount": 0.1, "order_type": "limit", "price": 4000}


async def logged(app: TradeConsole, pilot, *words: str) -> str:
    """Wait for a Log pane line with every word in it; it is the journaled one too."""

    def line() -> str | None:
        app.flush()
        return next((e.reason for e in app.state.log if all(w in e.reason for w in words)), None)

    await eventually(lambda: line() is not None, pause=pilot.pause, what=f"a Log line with {words}")
    found = line()
    assert found is not None
    return found


async def journaled(app: TradeConsole, *words: str) -> bool:
    rows = await app.service.store.log_entries(limit=1000)
    return any(all(w in r["message"] for w in words) for r in rows)


async def approving_far(app: TradeConsole, pilot, signal: dict) -> None:
    """A signal far from the market arrives; the operator goes to it (ctrl+end) and presses a: asked first."""
    await app.service.receive(json.dumps(signal), source="test")
    await shown(app, pilot.pause, lambda: signal["id"] in app.signals.items, "the far signal")
    await pilot.press("ctrl+end")
    assert app.signals.selected_key == signal["id"]
    await opened(app, pilot, ConfirmScreen, "a", what="the confirmation")


async def test_approve_and_its_outcome_leave_log_lines_with_the_actor(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("a")
        assert f"(by {ACTOR})" in await logged(app, pilot, f"{s.pending[0]} approved")
        await logged(app, pilot, f"{s.pending[0]} order", "filled", "(by exchange)")
        await eventually(lambda: journaled(app, f"{s.pending[0]} approved", ACTOR), pause=pilot.pause)


async def test_reject_leaves_its_log_line(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("x")
        await logged(app, pilot, f"{s.pending[0]} rejected", f"(by {ACTOR})")


async def test_cancel_leaves_the_request_and_the_outcome(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("tab", "c")
        await logged(app, pilot, coid(s.resting), "cancel requested", f"(by {ACTOR})")
        await logged(app, pilot, f"{s.resting} order canceled", f"(by {ACTOR})")


async def test_amend_of_a_signal_leaves_its_log_line(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        modal = await opened(app, pilot, AmendScreen, "down", "e", what="the amend modal")
        await pilot.press("home", "ctrl+k", *"1.5")
        await eventually(lambda: modal._request is not None, pause=pilot.pause, what="a valid amend")
        await pilot.press("enter")
        await logged(app, pilot, f"{s.pending[1]} amended: amount 1.5", f"(by {ACTOR})")


async def test_pause_resume_and_the_kill_switch_leave_their_log_lines(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, _):
        await pilot.press("p")
        await logged(app, pilot, "paused", f"(by {ACTOR})")
        await shown(app, pilot.pause, lambda: app.state.paused, "paused")
        await pilot.press("p")
        await logged(app, pilot, "resumed", f"(by {ACTOR})")
        await shown(app, pilot.pause, lambda: not app.state.paused, "resumed")
        await opened(app, pilot, ConfirmScreen, "ctrl+k", what="the kill confirm")
        await pilot.press("y")
        await logged(app, pilot, "kill switch: canceled 2; none left open", f"(by {ACTOR})")


async def test_approving_far_from_the_market_asks_first(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, _):
        await approving_far(app, pilot, FAR_BUY)
        assert "below the market" in app.screen.message
        assert (await app.service.store.get_signal("far-1")).status is SignalStatus.PENDING  # nothing sent
        await pilot.press("y")
        await logged(app, pilot, "far-1 approved", "confirmed", f"(by {ACTOR})")
        order = await app.service.store.get_order(coid("far-1"))
        assert order is not None and order.status in (OrderStatus.NEW, OrderStatus.SUBMITTING, OrderStatus.OPEN)


async def test_backing_out_of_the_far_from_market_question_approves_nothing(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, _):
        await approving_far(app, pilot, FAR_SELL)
        await pilot.press("n")
        await pilot.pause()
        assert (await app.service.store.get_signal("far-2")).status is SignalStatus.PENDING
        assert await app.service.store.get_order(coid("far-2")) is None
