"""The operator's actions: which ones the console offers now, and each one sent to the core.

`check_action` and `can` decide which actions are enabled (the footer, `?` and the palette show
what they say): row actions act on the focused pane's selection only, inspect mode offers none,
and nothing is sent while a remote core is away. Each action becomes a command of the app's
`CoreClient`, run in a worker of the "commands" group by `send` (a failure is reported once, by
the app's worker handler); a command the core refuses as far from the market is asked about and
sent again with `confirm=True`. Confirmations, amend dialogs and the quit question are modal
screens (`console/screens/`). `ConsoleActions` is a part of `TradeConsole` (app.py), whose
`BINDINGS` name these actions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import CommandPalette
from textual.widget import Widget

from console import formatting as f
from executor.control.client import NeedsConfirmation
from executor.models import Order, OrderType, SignalRecord

if TYPE_CHECKING:
    from console.screens.amend import AmendTarget
    from executor.events import AmendCheck

# The modal screens are imported when first opened: the first frame needs none of them.

WRITE_ACTIONS = frozenset({"approve", "reject", "amend", "cancel_order", "kill_switch", "pause", "resume"})
# The main screen's actions: hidden and refused while a modal (other than the palette) is open.
MAIN_ACTIONS = WRITE_ACTIONS | {"history", "help", "quit", "command_palette"}


class ConsoleActions:
    """The actions half of `TradeConsole`: what is possible now, and the commands each action sends."""

    # -- which actions are possible -----------------------------------------------------------

    @property
    def selected_signal(self) -> SignalRecord | None:
        return self.signals.selected

    @property
    def selected_order(self) -> Order | None:
        return self.orders.selected

    @property
    def focused_pane(self) -> Widget | None:
        """The main screen's focused pane, whatever modal is on top of it."""
        return self.screen_stack[0].focused if self.screen_stack else None

    def _amend_kind(self) -> str | None:
        focused = self.focused_pane
        if focused is self.orders:
            order = self.selected_order
            return "order" if order is not None and order.status.is_live and order.price is not None else None
        if focused is self.signals and self.selected_signal is not None:
            return "signal"
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        stack = self.screen_stack
        if action in MAIN_ACTIONS and len(stack) > 1 and not isinstance(stack[-1], CommandPalette):
            return False  # a modal is open: its own bindings only
        return self.can(action)

    def can(self, action: str) -> bool | None:
        """On the main screen: True enabled, None shown but disabled, False not offered here.

        Row actions act on the focused pane's selection only: approve and reject on Signals, cancel
        on Orders, amend on either; with another pane focused they are not offered at all.
        """
        if action not in WRITE_ACTIONS:
            return True
        if self.read_only:
            return False  # hidden: inspect mode offers no action at all
        if not self.connected:
            return None  # the core is away: nothing can be sent until it is back
        if action == "pause":
            return False if self.state.paused else (True if self.ready else None)
        if action == "resume":
            return True if self.state.paused and self.ready else False
        focused = self.focused_pane
        if action in ("approve", "reject"):
            if focused is not self.signals:
                return False
            return True if self.ready and self.selected_signal is not None else None
        if action == "amend":
            if focused is not self.signals and focused is not self.orders:
                return False
            return True if self.ready and self._amend_kind() else None
        if action == "cancel_order":
            if focused is not self.orders:
                return False
            order = self.selected_order
            return True if self.ready and order is not None and order.status.is_live else None
        return True if self.ready else None  # kill_switch

    def _sync_bindings(self) -> None:
        """Refresh the footer only when something it shows changed (not on every flush)."""
        if not self.is_mounted or not self.screen_stack:
            return
        order = self.selected_order
        # What the footer shows, not which row: moving the cursor over rows alike rebuilds nothing.
        key = (self.ready, self.read_only, self.connected, self.state.paused, self.signals.selected_key is not None,
               order is not None and order.status.is_live, self._amend_kind(), self.focused_pane,
               len(self.screen_stack))
        if key != self._bindings_state:
            self._bindings_state = key
            self.refresh_bindings()

    # -- sending commands ---------------------------------------------------------------------

    def send(self, what: str, command: Callable[..., Awaitable[object]], *, confirmable: bool = False) -> None:
        """Run one operator command against the service; a failure is reported with `what`.

        `confirmable`: the core may refuse it as far from the market (`FarFromMarket`); the
        operator is then asked, and a yes sends it again with `confirm=True`."""
        if not confirmable:
            self.run_worker(command(), name=what, group="commands", exit_on_error=False)
            return

        async def run() -> None:
            try:
                await command()
            except NeedsConfirmation as refusal:
                self.call_later(self._confirm_far, what, command, refusal)

        self.run_worker(run(), name=what, group="commands", exit_on_error=False)

    def _confirm_far(self, what: str, command: Callable[..., Awaitable[object]], refusal: Exception) -> None:
        kind, _, key = getattr(refusal, "subject", " ").partition(" ")
        self._ask(f"{what.capitalize()}: far from the market?", str(refusal),
                  lambda ok: ok and self.send(what, partial(command, confirm=True)), confirm="Go ahead",
                  back_out="Back", danger=True, about=(kind, key) if key else None)

    def _ask(self, title: str, text: str, then: Callable[[bool | None], object], **options: object) -> None:
        """A yes-or-no question (`ConfirmScreen`), `then` called with the answer."""
        from console.screens.confirm import ConfirmScreen

        self.push_screen(ConfirmScreen(title, text, **options), callback=then)  # type: ignore[arg-type]

    # -- actions ------------------------------------------------------------------------------

    def action_approve(self) -> None:
        record, client = self.selected_signal, self.client
        if not self.can("approve") or record is None or record.id is None:
            return
        sid = record.id
        cap = self.settings.approval.confirm_notional
        if cap > 0 and (record.notional is None or record.notional > cap):
            notional = f.money(record.notional) if record.notional is not None else "unknown"
            self._ask(
                "Approve a large signal?",
                f"{sid}: {f.signal_summary(record)}\nnotional {notional} is above approval.confirm_notional "
                f"{f.money(cap)}.",
                lambda ok: ok and self.send(f"approve {sid}", partial(client.approve, sid), confirmable=True),
                confirm="Approve",
                about=("signal", sid),
            )
            return
        self.send(f"approve {sid}", partial(client.approve, sid), confirmable=True)

    def action_reject(self) -> None:
        record = self.selected_signal
        if self.can("reject") and record is not None and record.id is not None:
            self.send(f"reject {record.id}", partial(self.client.reject, record.id))

    def action_amend(self) -> None:
        kind = self._amend_kind()
        if not self.can("amend"):
            return
        if kind == "signal" and (record := self.selected_signal) is not None:
            self._amend_signal(record)
        elif kind == "order" and (order := self.selected_order) is not None:
            self._amend_order(order)

    def _amend_signal(self, record: SignalRecord) -> None:
        from console.screens.amend import AmendTarget

        assert record.id is not None
        approval, execution = self.settings.approval, self.settings.execution
        target = AmendTarget.for_signal(
            record, OrderType(execution.order_type), self.state.markets.get(record.signal.symbol) if record.signal
            else None, approval.far_from_market_pct, execution.slippage_tolerance_pct,
        )
        self._amend(target, "signal", record.id, self.client.check_signal_amend, self.client.amend_signal)

    def _amend_order(self, order: Order) -> None:
        from console.screens.amend import AmendTarget

        target = AmendTarget.for_order(order, self.state.signal_total(order), self.state.markets.get(order.symbol),
                                       self.settings.approval.far_from_market_pct)
        self._amend(target, "order", order.client_order_id, self.client.check_order_amend, self.client.amend_order)

    def _amend(self, target: AmendTarget, kind: str, key: str, check_amend: Callable[..., Awaitable[AmendCheck]],
               amend: Callable[..., Awaitable[object]]) -> None:
        """The amend modal on the signal or order `key`: checked as the operator types, sent on submit."""
        from console.screens.amend import AmendRequest, AmendScreen

        async def check(price: Decimal | None, amount: Decimal | None) -> AmendCheck:
            return await check_amend(key, price=price, amount=amount)

        def done(request: AmendRequest | None) -> None:
            if request is not None:
                self.send(f"amend {key}", partial(amend, key, price=request.price, amount=request.amount),
                          confirmable=True)

        self.push_screen(AmendScreen(target, check, about=(kind, key)), callback=done)

    def action_cancel_order(self) -> None:
        order = self.selected_order
        if self.can("cancel_order") and order is not None:
            self.send(f"cancel {order.client_order_id}", partial(self.client.cancel_order, order.client_order_id))

    def action_kill_switch(self) -> None:
        if not self.can("kill_switch"):
            return
        n = self.state.live_orders
        self._ask(
            "Kill switch",
            f"Pause intake and auto-approval, then cancel {n} open order{'s' if n != 1 else ''} on the exchange?",
            lambda ok: ok and self.send("kill switch", self.client.kill_switch),
            confirm="Kill",
            back_out="Back",
            danger=True,
        )

    def action_pause(self) -> None:
        if self.can("pause"):
            self.send("pause", self.client.pause)

    def action_resume(self) -> None:
        if self.can("resume"):
            self.send("resume", self.client.resume)

    def action_history(self) -> None:
        from console.screens.history import HistoryScreen

        markets = self.client.markets
        self.push_screen(HistoryScreen(self.state.history.values(), markets, self.state.history_limit))

    def action_help(self) -> None:
        from console.screens.help import HelpScreen

        rows = [(self.get_key_display(b), b.description, b.tooltip) for b in self.console_bindings()
                if not (self.read_only and b.action in WRITE_ACTIONS)]  # inspect lists what it has
        rows.append((self.get_key_display(Binding("ctrl+p", "")), "palette", "every action, and the themes"))
        note = "inspect mode is read-only: no action changes anything." if self.read_only else ""
        self.push_screen(HelpScreen(rows, note))

    async def action_quit(self) -> None:
        n = len(self.state.orders)
        if self.read_only:
            self.exit()
            return
        if not self.client.owns_core:
            self._quit_attached(n)
            return
        if n == 0:
            self.exit()
            return
        self._ask(
            "Quit?",
            f"{n} order{'s are' if n != 1 else ' is'} still open. Quitting leaves "
            f"{'them' if n != 1 else 'it'} on the exchange: nothing is canceled, and the next start "
            f"reconciles {'them' if n != 1 else 'it'}.",
            lambda ok: ok and self.exit(),
            confirm="Quit",
            back_out="Stay",
        )

    def _quit_attached(self, n: int) -> None:
        """Attached to a core in another process: detach (it goes on trading) or stop it."""
        from console.screens.confirm import DetachScreen

        open_words = f"{n} order{'s are' if n != 1 else ' is'} open. " if n else ""

        async def stop() -> None:
            await self.client.stop_core()
            self.stopping_core = True
            self.exit()

        def chosen(answer: bool | None) -> None:
            if answer is None:
                return  # stay
            if answer:
                self.run_worker(stop(), name="stop the core", group="commands", exit_on_error=False)
            else:
                self.exit()

        self.push_screen(
            DetachScreen(
                "Quit: leave the core running?",
                f"{open_words}Detaching leaves the core trading: `tradeconsole attach` comes back to it. "
                f"Stopping it stops intake and trading; open orders stay on the exchange and are reconciled "
                f"at its next start.",
                default_confirm=n == 0 and self.client.started_here,
            ),
            callback=chosen,
        )
