"""Every key leaves a trace: the core's Log line with its actor, in the Log pane (and journaled);
approving or amending beyond `[approval] far_from_market_pct` asks first."""

from __future__ import annotations

import json

from console_harness import ACTOR, Clock, coid, console_app, eventually, populate, ready, shown

from console.app import TradeConsole
from console.screens.amend import AmendScreen
from console.screens.confirm import ConfirmScreen
from executor.models import OrderStatus, SignalStatus

SIZE = (120, 36)


async def started(app: TradeConsole, pilot, clock):
    await ready(app, pilot.pause)
    scenario = await populate(app.service, clock)
    await shown(app, pilot.pause, lambda: len(app.signals.items) == 3 and len(app.state.orders) == 2,
                "the populated screen")
    app.tick()
    await pilot.press("tab", "ctrl+home", "shift+tab", "ctrl+home")
    return scenario


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


async def test_approve_and_its_outcome_leave_log_lines_with_the_actor(tmp_path):
    clock = Clock()
    app = console_app(tmp_path / "console.db", clock)
    async with app.run_test(size=SIZE) as pilot:
        s = await started(app, pilot, clock)
        await pilot.press("a")
        assert f"(by {ACTOR})" in await logged(app, pilot, f"{s.pending[0]} approved")
        await logged(app, pilot, f"{s.pending[0]} order", "filled", "(by exchange)")
        await eventually(lambda: journaled(app, f"{s.pending[0]} approved", ACTOR), pause=pilot.pause)


async def test_reject_leaves_its_log_line(tmp_path):
    clock = Clock()
    app = console_app(tmp_path / "console.db", clock)
    async with app.run_test(size=SIZE) as pilot:
        s = await started(app, pilot, clock)
        await pilot.press("x")
        await logged(app, pilot, f"{s.pending[0]} rejected", f"(by {ACTOR})")


async def test_cancel_leaves_the_request_and_the_outcome(tmp_path):
    clock = Clock()
    app = console_app(tmp_path / "console.db", clock)
    async with app.run_test(size=SIZE) as pilot:
        s = await started(app, pilot, clock)
        await pilot.press("tab", "c")
        await logged(app, pilot, coid(s.resting), "cancel requested", f"(by {ACTOR})")
        await logged(app, pilot, f"{s.resting} order canceled", f"(by {ACTOR})")


async def test_amend_of_a_signal_leaves_its_log_line(tmp_path):
    clock = Clock()
    app = console_app(tmp_path / "console.db", clock)
    async with app.run_test(size=SIZE) as pilot:
        s = await started(app, pilot, clock)
        await pilot.press("down", "e")
        await eventually(lambda: isinstance(app.screen, AmendScreen), pause=pilot.pause, what="the amend modal")
        modal = app.screen
        await pilot.press("home", "ctrl+k", *"1.5")
        await eventually(lambda: modal._request is not None, pause=pilot.pause, what="a valid amend")
        await pilot.press("enter")
        await logged(app, pilot, f"{s.pending[1]} amended: amount 1.5", f"(by {ACTOR})")


async def test_pause_resume_and_the_kill_switch_leave_their_log_lines(tmp_path):
    clock = Clock()
    app = console_app(tmp_path / "console.db", clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, clock)
        await pilot.press("p")
        await logged(app, pilot, "paused", f"(by {ACTOR})")
        await shown(app, pilot.pause, lambda: app.state.paused, "paused")
        await pilot.press("p")
        await logged(app, pilot, "resumed", f"(by {ACTOR})")
        await shown(app, pilot.pause, lambda: not app.state.paused, "resumed")
        await pilot.press("ctrl+k")
        await eventually(lambda: isinstance(app.screen, ConfirmScreen), pause=pilot.pause, what="the kill confirm")
        await pilot.press("y")
        await logged(app, pilot, "kill switch: canceled 2; none left open", f"(by {ACTOR})")


async def test_approving_far_from_the_market_asks_first(tmp_path):
    clock = Clock()
    app = console_app(tmp_path / "console.db", clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, clock)
        far = json.dumps({"id": "far-1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01,
                          "order_type": "limit", "price": 40000})
        await app.service.receive(far, source="test")
        await shown(app, pilot.pause, lambda: "far-1" in app.signals.items, "the far signal")
        await pilot.press("ctrl+end")
        assert app.signals.selected_key == "far-1"
        await pilot.press("a")
        await eventually(lambda: isinstance(app.screen, ConfirmScreen), pause=pilot.pause, what="the confirmation")
        assert "below the market" in app.screen.message
        assert (await app.service.store.get_signal("far-1")).status is SignalStatus.PENDING  # nothing sent
        await pilot.press("y")
        await logged(app, pilot, "far-1 approved", "confirmed", f"(by {ACTOR})")
        order = await app.service.store.get_order(coid("far-1"))
        assert order is not None and order.status in (OrderStatus.NEW, OrderStatus.SUBMITTING, OrderStatus.OPEN)


async def test_backing_out_of_the_far_from_market_question_approves_nothing(tmp_path):
    clock = Clock()
    app = console_app(tmp_path / "console.db", clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot, clock)
        far = json.dumps({"id": "far-2", "symbol": "ETH/USDT", "side": "sell", "amount": 0.1,
                          "order_type": "limit", "price": 4000})
        await app.service.receive(far, source="test")
        await shown(app, pilot.pause, lambda: "far-2" in app.signals.items, "the far signal")
        await pilot.press("ctrl+end", "a")
        await eventually(lambda: isinstance(app.screen, ConfirmScreen), pause=pilot.pause, what="the confirmation")
        await pilot.press("n")
        await pilot.pause()
        assert (await app.service.store.get_signal("far-2")).status is SignalStatus.PENDING
        assert await app.service.store.get_order(coid("far-2")) is None
