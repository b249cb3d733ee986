"""The operator's keys, pressed for real in a running console, against a real service and store."""

from __future__ import annotations

from decimal import Decimal

import pytest
from console_harness import (
    ACTOR,
    DB_NAME,
    SIZE,
    Clock,
    audit_actions,
    coid,
    console_app,
    console_settings,
    lingered,
    open_service,
    opened,
    order_status,
    populate,
    populated_console,
    populated_store,
    ready,
    shown,
    signal_status,
)
from helpers import eventually

from console.screens.amend import AmendScreen
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from executor.models import OrderStatus, SignalStatus
from executor.service import ReadOnlyError
from executor.store import Store


async def retype(pilot, text: str) -> None:
    """Replace the focused input's text: to the start, erase to the end (ctrl+k), type."""
    await pilot.press("home", "ctrl+k", *text)


async def test_a_approves_the_selected_signal(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        first = s.pending[0]
        assert app.signals.selected_key == first
        await pilot.press("a")
        await eventually(lambda: signal_status(app, first), pause=pilot.pause)
        await shown(
            app,
            pilot.pause,
            lambda: first not in app.signals.items and coid(first) in app.state.history,
            "the signal to leave Signals and its market order to fill",
        )
        assert await signal_status(app, first) is SignalStatus.APPROVED
        assert app.orders.items[coid(first)].status is OrderStatus.FILLED  # seen to fill, for a moment
        lingered(app)
        assert coid(first) not in app.orders.items
        assert app.state.history[coid(first)].status is OrderStatus.FILLED
        assert ("approve", first, ACTOR) in await audit_actions(app)


async def test_x_rejects_the_selected_signal(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        second = s.pending[1]
        await pilot.press("down", "x")
        await shown(app, pilot.pause, lambda: second not in app.signals.items, "the rejected signal to leave")
        assert await signal_status(app, second) is SignalStatus.REJECTED
        assert ("reject", second, ACTOR) in await audit_actions(app)
        assert not await app.service.store.orders_for_signal(second)


async def test_e_amends_the_selected_signal_before_approval(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        target = s.pending[1]  # ETH/USDT buy limit 2 @ 2990
        modal = await opened(app, pilot, AmendScreen, "down", "e", what="the amend modal")
        await eventually(lambda: modal.checks >= 1, pause=pilot.pause)
        await retype(pilot, "1.5")
        await eventually(lambda: modal._request is not None, pause=pilot.pause, what="a valid amend")
        assert "notional" in str(modal.query_one("#result").render())
        await pilot.press("enter")
        await shown(
            app, pilot.pause, lambda: app.state.signals[target].amount == Decimal("1.5"), "the amended amount on screen"
        )
        assert (await app.service.store.get_signal(target)).amount == Decimal("1.5")
        assert ("amend_signal", target, ACTOR) in await audit_actions(app)


async def test_amend_validates_as_you_type_and_refuses_to_submit_an_invalid_amount(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        modal = await opened(app, pilot, AmendScreen, "down", "e")
        await retype(pilot, "100")  # 100 ETH at 2990 needs far more USDT than the account has
        await eventually(
            lambda: "insufficient free USDT" in modal.errors.get("amount", ""),
            pause=pilot.pause,
            what="the balance error",
        )
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is modal  # still open: nothing was sent
        await retype(pilot, "0.00001")
        await eventually(
            lambda: "below the minimum" in modal.errors.get("amount", ""), pause=pilot.pause, what="the minimum error"
        )
        await pilot.press("escape")
        await eventually(lambda: not isinstance(app.screen, AmendScreen), pause=pilot.pause)
        assert (await app.service.store.get_signal(s.pending[1])).amount == Decimal(2)
        assert not [a for a in await audit_actions(app) if a[0] == "amend_signal"]


async def test_e_amends_the_selected_open_order_by_cancel_and_replace(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("tab")  # to Orders
        assert app.orders.selected_key == coid(s.resting)
        modal = await opened(app, pilot, AmendScreen, "e")
        await pilot.press("shift+tab")  # from amount to price
        await retype(pilot, "58100")
        await eventually(lambda: modal._request is not None, pause=pilot.pause, what="a valid amend")
        await pilot.press("enter")
        replacement = coid(s.resting, 1)
        await shown(
            app,
            pilot.pause,
            lambda: replacement in app.orders.items and coid(s.resting) not in app.state.orders,
            "the replacement in Orders",
        )
        assert app.state.orders[replacement].price == Decimal("58100")
        assert app.state.history[coid(s.resting)].status is OrderStatus.CANCELED
        assert ("amend_order", coid(s.resting), ACTOR) in await audit_actions(app)


async def test_c_cancels_the_selected_order_and_it_moves_to_history(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("tab", "down", "c")  # the partially filled ETH order
        await shown(app, pilot.pause, lambda: coid(s.partial) in app.state.history, "the canceled order in history")
        assert await order_status(app.service, s.partial) is OrderStatus.CANCELED
        assert app.state.history[coid(s.partial)].filled == Decimal("0.6")
        assert app.orders.items[coid(s.partial)].status is OrderStatus.CANCELED
        lingered(app)
        assert coid(s.partial) not in app.orders.items
        assert ("cancel_order", coid(s.partial), ACTOR) in await audit_actions(app)
        await opened(app, pilot, HistoryScreen, "h")
        assert coid(s.partial) in app.screen.query_one("#history-table").items


async def test_kill_switch_asks_then_pauses_and_cancels_every_open_order(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await opened(app, pilot, ConfirmScreen, "ctrl+k", what="the confirmation")
        assert "cancel 2 open orders" in app.screen.message
        await pilot.press("y")
        await shown(app, pilot.pause, lambda: not app.state.orders and app.state.paused, "an empty book, paused")
        lingered(app)
        assert not app.orders.items
        for signal_id in (s.resting, s.partial):
            assert await order_status(app.service, signal_id) is OrderStatus.CANCELED
        assert app.service.paused
        assert "PAUSED" in str(app.query_one("#intake").render())
        assert ("kill_switch", None, ACTOR) in await audit_actions(app)


async def test_kill_switch_backed_out_changes_nothing(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        for back_out in ("n", "escape"):
            await opened(app, pilot, ConfirmScreen, "ctrl+k")
            await pilot.press(back_out)
            await eventually(lambda: not isinstance(app.screen, ConfirmScreen), pause=pilot.pause)
        await pilot.pause(0.2)
        app.flush()
        assert await order_status(app.service, s.resting) is OrderStatus.OPEN
        assert len(app.orders.items) == 2
        assert not app.service.paused
        assert not [a for a in await audit_actions(app) if a[0] == "kill_switch"]


async def test_p_pauses_and_resumes_intake(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, _):
        assert app.check_action("pause", ()) and app.check_action("resume", ()) is False
        await pilot.press("p")
        await shown(app, pilot.pause, lambda: app.state.paused, "paused")
        assert app.service.paused
        assert app.check_action("resume", ()) and app.check_action("pause", ()) is False
        await pilot.press("p")
        await shown(app, pilot.pause, lambda: not app.state.paused, "resumed")
        assert not app.service.paused
        actions = [a[0] for a in await audit_actions(app)]
        assert actions[-2:] == ["pause", "resume"]


async def test_approving_above_confirm_notional_asks_first(tmp_path):
    settings = console_settings(approval={"confirm_notional": Decimal(1000)})
    async with populated_console(tmp_path, settings) as (app, pilot, s):
        await pilot.press("a")  # sig-0103: 1,199.84 USDT
        await eventually(lambda: isinstance(app.screen, ConfirmScreen), pause=pilot.pause, what="the confirmation")
        await pilot.press("n")
        await pilot.pause()
        assert await signal_status(app, s.pending[0]) is SignalStatus.PENDING
        await opened(app, pilot, ConfirmScreen, "a")
        await pilot.press("y")
        await eventually(lambda: signal_status(app, s.pending[0]), pause=pilot.pause)
        await shown(app, pilot.pause, lambda: s.pending[0] not in app.signals.items, "the approved signal to leave")
        assert await signal_status(app, s.pending[0]) is SignalStatus.APPROVED


async def test_q_with_open_orders_asks_and_quitting_never_cancels_them(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await opened(app, pilot, ConfirmScreen, "q", what="the question")
        assert "2 orders are still open" in app.screen.message
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running
        await opened(app, pilot, ConfirmScreen, "q")
        await pilot.press("y")
        await eventually(lambda: not app.is_running, pause=pilot.pause, what="the console to exit")
    store = await Store.open(tmp_path / DB_NAME, read_only=True)
    try:
        for signal_id in (s.resting, s.partial):
            order = await store.get_order(coid(signal_id))
            assert order.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
        assert not [row for row in await store.audit() if row["action"] in ("cancel_order", "kill_switch")]
    finally:
        await store.close()


async def test_q_without_open_orders_quits_at_once(tmp_path):
    db, clock = tmp_path / "console.db", Clock()
    app = console_app(db, clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot.pause)
        await pilot.press("q")
        await eventually(lambda: not app.is_running, pause=pilot.pause, what="the console to exit")


async def test_question_mark_shows_every_binding(tmp_path):
    db, clock = tmp_path / "console.db", Clock()
    app = console_app(db, clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot.pause)
        await opened(app, pilot, HelpScreen, "question_mark")
        keys = [row[0] for row in app.screen.rows]
        for key in ("a", "x", "e", "c", "^k", "p", "h", "tab", "shift+tab", "?", "^p", "q"):
            assert any(k.lower() == key for k in keys), key
        await pilot.press("escape")
        await eventually(lambda: not isinstance(app.screen, HelpScreen), pause=pilot.pause)


async def test_palette_offers_the_actions_and_switches_theme(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, _):
        await pilot.press("ctrl+p")
        await pilot.press(*"contrast")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await eventually(lambda: app.theme == "tradeconsole-high-contrast", pause=pilot.pause, what="the theme")
        await pilot.press("ctrl+p")
        await pilot.press(*"approve")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await eventually(lambda: signal_status(app, "sig-0103"), pause=pilot.pause)
        assert await signal_status(app, "sig-0103") is SignalStatus.APPROVED


@pytest.mark.parametrize("key", ["a", "x", "e", "c", "ctrl+k", "p"])
async def test_inspect_mode_hides_and_refuses_every_action(tmp_path, key):
    db, clock = tmp_path / "console.db", Clock()
    s = await populated_store(db, clock)
    app = console_app(db, clock, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot.pause)
        await shown(
            app, pilot.pause, lambda: len(app.signals.items) == 3 and len(app.state.orders) == 2, "the store's state"
        )
        shown_keys = {b.binding.action for b in app.screen.active_bindings.values()}
        for action in ("approve", "reject", "amend", "cancel_order", "kill_switch", "pause", "resume"):
            assert app.check_action(action, ()) is False
            assert action not in shown_keys
        if key in ("e", "c"):
            await pilot.press("tab")
        await pilot.press(key)
        await pilot.pause(0.2)
        assert not isinstance(app.screen, AmendScreen | ConfirmScreen)
        assert "READ-ONLY" in str(app.query_one("#mode").render())
        service = app.service
        for command in (
            lambda: service.approve(s.pending[0]),
            lambda: service.reject(s.pending[0]),
            lambda: service.amend_signal(s.pending[0], amount=Decimal(1)),
            lambda: service.amend_order(coid(s.resting), price=Decimal(1)),
            lambda: service.cancel_order(coid(s.resting)),
            service.kill_switch,
            service.pause,
            service.resume,
        ):
            with pytest.raises(ReadOnlyError):
                await command()
    store = await Store.open(db, read_only=True)
    try:
        assert [row["action"] for row in await store.audit()] == ["approve", "approve", "approve"]
        assert (await store.get_signal(s.pending[0])).status is SignalStatus.PENDING
        assert (await store.get_order(coid(s.resting))).status is OrderStatus.OPEN
    finally:
        await store.close()


async def test_inspect_follows_a_store_another_process_writes(tmp_path):
    db, clock = tmp_path / "console.db", Clock()
    writer = await open_service(db, clock, console_settings())  # stands for the other process
    try:
        await writer.start()
        s = await populate(writer, clock)
        app = console_app(db, clock, read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            await ready(app, pilot.pause)
            await shown(app, pilot.pause, lambda: len(app.signals.items) == 3, "the pending signals")
            await writer.reject(s.pending[1])
            await writer.cancel_order(coid(s.resting))
            await shown(
                app,
                pilot.pause,
                lambda: s.pending[1] not in app.signals.items and coid(s.resting) not in app.state.orders,
                "the other process's changes",
            )
            assert app.state.history[coid(s.resting)].status is OrderStatus.CANCELED
    finally:
        await writer.close()
