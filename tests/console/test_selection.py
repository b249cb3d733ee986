"""The selection is keyed and follows focus: pressed for real, against a real service and store."""

from __future__ import annotations

from console_harness import audit_actions, coid, lingered, opened, populated_console, shown, signal_status
from helpers import eventually
from textual.widgets import Button, Footer

from console.screens.amend import AmendScreen
from console.screens.confirm import ConfirmScreen
from console.screens.detail import DetailScreen
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from console.widgets.table.widget import KeyedTable
from executor.models import SignalStatus

ROW_ACTIONS = ("approve", "reject", "amend", "cancel_order")


def footer_actions(app) -> set[str]:
    """What the footer of the screen on top offers."""
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


async def test_the_cursor_stays_on_its_signal_while_signals_above_it_expire(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("down", "down")
        assert app.signals.selected_key == s.pending[2]
        await app.service.reject(s.pending[0])  # another client decides the rows above
        await app.service.reject(s.pending[1])
        await shown(app, pilot.pause, lambda: len(app.signals.items) == 1, "the rows above to leave")
        assert app.signals.selected_key == s.pending[2]
        assert app.signals.cursor_row == 0
        assert not app.signals.lost


async def test_the_cursor_stays_on_its_order_while_others_finish(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("tab", "down")
        assert app.orders.selected_key == coid(s.partial)
        await app.service.cancel_order(coid(s.resting))
        await shown(app, pilot.pause, lambda: coid(s.resting) in app.state.history, "the order above to finish")
        lingered(app)
        assert coid(s.resting) not in app.orders.items
        assert app.orders.selected_key == coid(s.partial) and app.orders.cursor_row == 0
        await pilot.press("c")
        await shown(app, pilot.pause, lambda: coid(s.partial) in app.state.history, "the chosen order canceled")
        assert ("cancel_order", coid(s.partial), app.service.actor) in await audit_actions(app)


async def test_after_the_selected_signal_leaves_a_x_e_do_nothing_until_the_operator_moves(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        assert app.signals.selected_key == s.pending[0]
        await app.service.reject(s.pending[0])
        await shown(app, pilot.pause, lambda: s.pending[0] not in app.signals.items, "the selected signal to leave")
        assert app.signals.selected_key is None
        assert f"{s.pending[0]} rejected" in str(app.signals.border_subtitle)
        for action in ("approve", "reject", "amend"):
            assert app.check_action(action, ()) is None  # shown, disabled
        await pilot.press("a", "x", "e")
        await pilot.pause()
        assert not isinstance(app.screen, AmendScreen | ConfirmScreen)
        assert await signal_status(app, s.pending[1]) is SignalStatus.PENDING
        assert [a for a in await audit_actions(app) if a[0] in ("approve", "reject")][-1][1] != s.pending[1]
        await pilot.press("up")  # the operator chooses again: the row now under the cursor
        assert app.signals.selected_key == s.pending[1] and not app.signals.lost
        await pilot.press("x")
        await eventually(lambda: signal_status(app, s.pending[1]), pause=pilot.pause)
        await eventually(lambda: app.service.store.get_signal(s.pending[1]), pause=pilot.pause)
        assert await signal_status(app, s.pending[1]) is SignalStatus.REJECTED


async def test_after_the_selected_order_leaves_c_and_e_do_nothing_until_the_operator_moves(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("tab")
        assert app.orders.selected_key == coid(s.resting)
        await app.service.cancel_order(coid(s.resting))
        await shown(app, pilot.pause, lambda: coid(s.resting) in app.state.history, "the selected order to finish")
        lingered(app)
        assert app.orders.selected_key is None
        assert "sig-0101 canceled" in str(app.orders.border_subtitle)
        assert app.check_action("cancel_order", ()) is None and app.check_action("amend", ()) is None
        await pilot.press("c", "e")
        await pilot.pause()
        assert not isinstance(app.screen, AmendScreen)
        assert not [a for a in await audit_actions(app) if a[0] == "cancel_order" and a[1] == coid(s.partial)]
        await pilot.press("down")
        assert app.orders.selected_key == coid(s.partial)
        assert app.check_action("cancel_order", ())


async def test_a_and_x_with_orders_focused_do_nothing_and_are_not_offered(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        await pilot.press("tab")
        assert app.focused is app.orders
        assert app.check_action("approve", ()) is False and app.check_action("reject", ()) is False
        assert not {"approve", "reject"} & footer_actions(app)
        assert {"cancel_order", "amend"} <= footer_actions(app)
        await pilot.press("a", "x")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        assert await signal_status(app, s.pending[0]) is SignalStatus.PENDING
        await pilot.press("shift+tab")
        assert app.check_action("cancel_order", ()) is False
        assert "cancel_order" not in footer_actions(app)


async def test_each_modal_shows_its_own_footer(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, _):
        for keys, screen_type, own in (
            (("down", "e"), AmendScreen, {"back", "submit"}),
            (("ctrl+k",), ConfirmScreen, {"confirm", "back_out"}),
            (("question_mark",), HelpScreen, {"dismiss"}),
            (("h",), HistoryScreen, {"close", "select_cursor"}),
        ):
            await pilot.press(*keys)
            await eventually(lambda t=screen_type: isinstance(app.screen, t), pause=pilot.pause, what=str(screen_type))
            assert app.screen.query_one(Footer)
            offered = footer_actions(app)
            assert own <= offered, (screen_type, offered)
            assert not offered & {*ROW_ACTIONS, "kill_switch", "pause", "history", "quit"}, (screen_type, offered)
            if screen_type is AmendScreen:
                assert str(app.screen.query_one("#back", Button).label) == "Back (esc)"
            await pilot.press("escape")
            await eventually(lambda t=screen_type: not isinstance(app.screen, t), pause=pilot.pause)


async def test_an_amend_whose_signal_leaves_while_open_cannot_be_submitted_and_says_why(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, s):
        modal = await opened(app, pilot, AmendScreen, "down", "e")
        await app.service.reject(s.pending[1])
        await shown(app, pilot.pause, lambda: bool(modal.gone), "the amend told its signal left")
        assert f"{s.pending[1]} rejected" in modal.gone
        await eventually(
            lambda: modal._request is None and modal.query_one("#submit", Button).disabled, pause=pilot.pause
        )
        assert modal.check_action("submit", ()) is None
        await pilot.press("home", "ctrl+k", *"1", "enter")
        await pilot.pause()
        assert app.screen is modal
        assert f"{s.pending[1]} rejected" in str(modal.query_one("#result").render())
        assert not [a for a in await audit_actions(app) if a[0] == "amend_signal"]


async def test_enter_opens_a_long_log_line_whole(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, _):
        log = app.log_pane
        key = next(k for k, e in log.items.items() if "cancel not confirmed" in e.reason)
        await pilot.press("tab", "tab")
        assert app.focused is log
        log.select(key)
        await opened(app, pilot, DetailScreen, "enter", what="the whole line")
        assert log.items[key].reason in app.screen.text
        assert app.screen.query_one(Footer)


async def test_many_rows_leaving_at_once_cost_one_pass_and_keep_the_cursor(tmp_path):
    async with populated_console(tmp_path) as (app, pilot, _):
        table: KeyedTable = app.log_pane
        removed: list[object] = []
        table.remove_row = removed.append  # type: ignore[method-assign]
        for i in range(200):
            table.upsert(f"x{i}", app.state.log[0])
        table.select("x150")
        table.discard_many([f"x{i}" for i in range(100)])
        assert not removed
        assert table.selected_key == "x150" and table.cursor_row == table.get_row_index("x150")
        rebuilt: list[object] = []
        table.add_row = lambda *a, **k: rebuilt.append(a)  # type: ignore[method-assign]
        app.theme = "tradeconsole-light"
        await pilot.pause()
        assert not rebuilt  # restyled, not rebuilt
