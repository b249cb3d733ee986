"""The trading console: a thin Textual `App` over the executor's public API (`TradingService`).

The app opens its service inside its own event loop (from a factory, or one handed to it), takes
one `snapshot()` at start and from then on follows the service's event stream through a single
`EventBuffer`. The buffer is flushed every `flush_interval` seconds inside `batch_update()`, and
`ConsoleState` says which keys changed, so a burst of events costs one repaint of the cells that
really changed. Operator keys become service commands run in workers; worker errors are reported
in one place (`on_worker_state_changed`: a notification and a line in the Log pane).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import CommandPalette
from textual.containers import Horizontal
from textual.events import Resize
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Footer
from textual.worker import Worker, WorkerState

from console import formatting as f
from console.commands import ConsoleCommands
from console.screens.amend import AmendRequest, AmendScreen, AmendTarget
from console.screens.confirm import ConfirmScreen
from console.screens.detail import DetailScreen
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from console.state import Changes, ConsoleState, EventBuffer, LogEntry
from console.themes import THEMES_DIR, choose, load_themes, variable_defaults
from console.widgets.balances import BalancesPane
from console.widgets.log import LogTable
from console.widgets.markets import MarketsStrip
from console.widgets.orders import OrdersTable
from console.widgets.signals import SignalsTable
from console.widgets.statusbar import StatusBar
from console.widgets.table import KeyedTable
from executor.config import Settings, default_config_path, load_config
from executor.models import Order, OrderType, SignalRecord, utcnow
from executor.sources import attach as attach_sources

if TYPE_CHECKING:
    # The service stack (executor, store, exchanges) is imported once the first screen is up.
    from executor.executor import AmendCheck
    from executor.service import TradingService

log = logging.getLogger("tradeconsole.console")

ServiceFactory = Callable[[], Awaitable["TradingService"]]
Clock = Callable[[], datetime]
SourceStarter = Callable[["TradingService"], None]

FLUSH_INTERVAL = 0.08  # seconds between two repaints under a burst of events
FINISHED_LINGER = 5.0  # seconds of the clock a finished order stays in Orders, showing how it ended
WRITE_ACTIONS = frozenset({"approve", "reject", "amend", "cancel_order", "kill_switch", "pause", "resume"})
# The main screen's actions: hidden and refused while a modal (other than the palette) is open.
MAIN_ACTIONS = WRITE_ACTIONS | {"history", "help", "quit", "command_palette"}


def default_theme_dirs() -> list[Path]:
    """The shipped themes, then the user's (`<config dir>/themes`), which may add to them (never replace)."""
    return [THEMES_DIR, default_config_path().parent / "themes"]


class TradeConsole(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "tradeconsole"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall"), (44, "-huge")]
    BINDINGS = [
        Binding("a", "approve", "approve", id="approve", tooltip="approve the selected signal"),
        Binding("x", "reject", "reject", id="reject", tooltip="reject the selected signal"),
        Binding("e", "amend", "amend", id="amend",
                tooltip="amend the selected signal (before approval) or the selected open order: price, amount"),
        Binding("c", "cancel_order", "cancel", id="cancel", tooltip="cancel the selected order"),
        Binding("ctrl+k", "kill_switch", "kill", id="kill_switch",
                tooltip="kill switch: pause intake and auto-approval, cancel every open order (asks first)"),
        Binding("p", "pause", "pause", id="pause", tooltip="pause intake and auto-approval"),
        Binding("p", "resume", "resume", id="resume", tooltip="resume intake and auto-approval"),
        Binding("h", "history", "history", id="history", tooltip="finished orders, newest first"),
        Binding("tab", "focus_next", "next pane", id="focus_next", show=False, tooltip="move to the next pane"),
        Binding("shift+tab", "focus_previous", "previous pane", id="focus_previous", show=False,
                tooltip="move to the previous pane"),
        Binding("question_mark", "help", "help", id="help", key_display="?", tooltip="every key binding"),
        Binding("ctrl+p", "command_palette", "palette", id="command_palette", show=False,
                tooltip="every action, and the themes"),
        Binding("q", "quit", "quit", id="quit",
                tooltip="quit (asks when orders are open; quitting never cancels them)"),
    ]

    read_only: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        service: TradingService | ServiceFactory,
        *,
        settings: Settings | None = None,
        clock: Clock = utcnow,
        start_sources: SourceStarter | None = None,
        flush_interval: float | None = FLUSH_INTERVAL,
        theme_dirs: Sequence[Path] | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings or load_config(None, env={})
        self.clock = clock
        self.flush_interval = flush_interval
        self._service_source = service
        self._start_sources = start_sources
        self.service: TradingService | None = None
        self.buffer: EventBuffer | None = None
        self.state = ConsoleState()
        self.ready = False
        # The panes, kept by reference: the app updates them (never the other way round).
        self.markets_strip = MarketsStrip(id="markets")
        self.signals = SignalsTable(id="signals")
        self.orders = OrdersTable(id="orders")
        self.log_pane = LogTable(id="log", limit=self.state.log.maxlen or 500)
        self.balances = BalancesPane(id="balances")
        self.status_bar = StatusBar(id="status")
        self.footer = Footer()
        self.set_reactive(TradeConsole.read_only, read_only)
        self._bindings_state: tuple | None = None
        self._finished: dict[str, datetime] = {}  # finished orders still shown in Orders: when they ended
        loaded = load_themes(*(default_theme_dirs() if theme_dirs is None else theme_dirs))
        for theme in loaded.themes.values():
            self.register_theme(theme)
        self._themes = sorted(loaded.themes)
        self._startup_problems = loaded.problems
        self.theme = choose(self.settings.ui.theme, set(self.available_themes), self._startup_problems)

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.markets_strip
        yield self.signals
        yield self.orders
        with Horizontal(id="bottom"):
            yield self.log_pane
            yield self.balances
        yield self.status_bar
        yield self.footer

    def on_resize(self, event: Resize) -> None:
        footer = self.footer
        footer.compact = event.size.width < 110
        footer.show_command_palette = event.size.width >= 110  # ? lists it on small screens
        if self.markets_strip.full != (event.size.height >= 30):
            self.markets_strip.full = event.size.height >= 30  # on a short screen the panes need the rows
            self.markets_strip.refresh(layout=True)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return variable_defaults(self.current_theme)

    def console_themes(self) -> list[str]:
        return self._themes

    def console_bindings(self) -> list[Binding]:
        return [b for b in Binding.make_bindings(self.BINDINGS) if b.action not in ("command_palette",)]

    # -- start and stop -----------------------------------------------------------------------

    def on_mount(self) -> None:
        for problem in self._startup_problems:
            self.report(problem, level="warning")
        self.signals.default_type = self.settings.execution.order_type
        self.signals.far = self.settings.approval.far_from_market_pct
        self.markets_strip.symbols = list(self.settings.exchange.markets)
        self.signals.focus()
        self._show_status()
        self.set_interval(1.0, self.tick)
        if self.flush_interval:
            self.set_interval(self.flush_interval, self.flush)
        if not self.is_headless:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.exit)
        # Draw the empty screen first: importing and starting the service stack takes a moment.
        self.call_after_refresh(self.open_service)

    @work(group="service", exclusive=True, exit_on_error=False)
    async def open_service(self) -> None:
        source = self._service_source
        service = await source() if callable(source) else source
        self.service = service
        self.read_only = service.read_only
        # Subscribe before start(): whatever happens between the start and the snapshot is kept.
        self.buffer = EventBuffer(service.bus)
        await service.start()
        snapshot = await service.snapshot(history=self.state.history_limit)
        markets = service.markets
        self.signals.markets = self.orders.markets = self.markets_strip.markets = markets
        places = {m.base: f.decimals(m.amount_step) for m in markets.values()}
        self.balances.table.places = {k: v for k, v in places.items() if v is not None} | {
            m.quote: 2 for m in markets.values()
        }
        changes = self.state.load(snapshot, self.clock())
        if service.read_only:
            self.state.add_log(LogEntry(self.clock(), "info", "inspect mode: a read-only view of the store, "
                                        "refreshed as another process writes it; no action changes anything"),
                               changes)
        self._show(changes)
        self.ready = True
        self.flush()
        if self._start_sources is not None and not service.read_only:
            self._start_sources(service)

    async def on_unmount(self) -> None:
        if self.buffer is not None:
            self.buffer.close()
        if self.service is not None:
            # Stops intake and waits for requests in flight; open orders stay on the exchange.
            await self.service.close()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker errors are reported."""
        if event.state is not WorkerState.ERROR:
            return
        from executor.exchanges.base import ExchangeError
        from executor.executor import ExecutionError

        worker, error = event.worker, event.worker.error
        if worker.group == "service":
            log.error("could not start: %s", error, exc_info=error)
            self.exit(return_code=1, message=f"tradeconsole: could not start: {error}")
            return
        known = isinstance(error, ExecutionError | ExchangeError)
        self.report(f"{worker.name}: {error if known else f'{type(error).__name__}: {error}'}", level="error")

    def report(self, message: str, *, level: str = "error") -> None:
        """Tell the operator: a notification, a line in the Log pane, and the Python log."""
        log.log(logging.ERROR if level == "error" else logging.WARNING, "%s", message)
        self.notify(message, severity="error" if level == "error" else "warning", timeout=8)
        entry = LogEntry(self.clock(), level, message)
        self.state.add_log(entry)
        self.log_pane.append([entry])

    def send(self, what: str, command: Callable[..., Awaitable[object]], *, confirmable: bool = False) -> None:
        """Run one operator command against the service; a failure is reported with `what`.

        `confirmable`: the core may refuse it as far from the market (`FarFromMarket`); the
        operator is then asked, and a yes sends it again with `confirm=True`."""
        if not confirmable:
            self.run_worker(command(), name=what, group="commands", exit_on_error=False)
            return

        async def run() -> None:
            from executor.markets import FarFromMarket

            try:
                await command()
            except FarFromMarket as refusal:
                self.call_later(self._confirm_far, what, command, refusal)

        self.run_worker(run(), name=what, group="commands", exit_on_error=False)

    def _confirm_far(self, what: str, command: Callable[..., Awaitable[object]], refusal: Exception) -> None:
        kind, _, key = getattr(refusal, "subject", " ").partition(" ")
        self.push_screen(
            ConfirmScreen(f"{what.capitalize()}: far from the market?", str(refusal), confirm="Go ahead",
                          back_out="Back", danger=True, about=(kind, key) if key else None),
            callback=lambda ok: ok and self.send(what, partial(command, confirm=True)),
        )

    # -- the event stream ---------------------------------------------------------------------

    def flush(self) -> None:
        """Fold everything buffered since the last flush into the state, then repaint what changed."""
        if not self.ready or self.buffer is None or not len(self.buffer):
            return
        changes = self.state.apply(self.buffer.drain(), self.clock())
        if changes:
            self._show(changes)

    def tick(self) -> None:
        """Once a second: countdowns, "reconciled Ns ago", the rate-limit state."""
        now = self.clock()
        self.signals.tick(now)
        self.orders.tick(now)
        done = [k for k, at in self._finished.items() if (now - at).total_seconds() >= FINISHED_LINGER]
        for key in done:
            del self._finished[key]
        if done:
            self.orders.discard_many(done, {k: self._order_gone(k) for k in done})
            self._sync_bindings()  # the selected order may be among them: nothing is selected then
        if self.state.sample_equity(now):
            self.balances.show_equity([v for _, v in self.state.equity], self.state.quote)
        self._show_status()

    def _show(self, changes: Changes) -> None:
        state, now = self.state, self.clock()
        with self.batch_update():
            signals, orders = self.signals, self.orders
            signals.now = orders.now = now
            if changes.signals_gone:
                signals.discard_many(changes.signals_gone, changes.signals_gone)
            for key in changes.signals:
                signals.upsert(key, state.signals[key])
            dropped = []
            for key in changes.orders_done:
                # It stays a moment with its final state (an approved market order is seen to fill),
                # then the tick moves it out; the history keeps it.
                finished = state.history.get(key)
                if finished is None:
                    dropped.append(key)
                else:
                    orders.upsert(key, finished)
                    self._finished[key] = finished.updated_at
            if dropped:
                orders.discard_many(dropped, {k: self._order_gone(k) for k in dropped})
            for key in changes.orders:
                orders.upsert(key, state.orders[key])
            signals.show_count()
            orders.show_count(len(state.orders), len(state.history))
            if changes.balances:
                pane = self.balances
                pane.show([(b, state.value(c, b.total)) for c, b in state.balances.items()], state.quote)
                pane.show_equity([v for _, v in state.equity], state.quote)
            if changes.log:
                self.log_pane.append(changes.log)
            if changes.markets:
                self.markets_strip.show(state.markets)
                if signals.quotes != state.markets:
                    signals.quotes = dict(state.markets)
                    for key, record in state.signals.items():  # the distance from the market moved
                        signals.upsert(key, record)
            self._show_status()
        self._tell_modals(changes)
        if changes.alerts:
            last = changes.alerts[-1]
            more = f" (and {len(changes.alerts) - 1} more in the Log)" if len(changes.alerts) > 1 else ""
            self.notify(f"{last.reason}{more}", severity="error" if last.level == "error" else "warning", timeout=8)
        self._sync_bindings()

    def _order_gone(self, key: str) -> str:
        """What an order that left Orders was, and how it ended: "sig-0103 filled"."""
        order = self.state.history.get(key)
        if order is None:
            return f"{key} left"
        return f"{order.signal_id or key} {order.status.value}"

    def _tell_modals(self, changes: Changes) -> None:
        """A modal about a signal or order that just left (approved elsewhere, filled) is told why."""
        for screen in self.screen_stack[1:]:
            about = getattr(screen, "about", None)
            if about is None:
                continue
            kind, key = about
            if kind == "signal" and key in changes.signals_gone:
                screen.row_gone(changes.signals_gone[key])
            elif kind == "order" and key in changes.orders_done:
                screen.row_gone(self._order_gone(key))

    def _show_status(self) -> None:
        state, service = self.state, self.service
        exchange = service.exchange if service is not None else None
        self.status_bar.show(
            mode=state.mode or ("READ-ONLY" if self.read_only else ""),
            exchange=state.exchange or self.settings.exchange.id,
            reconcile=state.reconcile,
            open_orders=state.open_orders,
            unknown=state.unknown_orders,
            now=self.clock(),
            paused=state.paused,
            intake_done=state.intake_done,
            rate_limit=exchange.rate_limit_state().describe() if exchange is not None else None,
            read_only=self.read_only,
        )

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
        key = (self.ready, self.read_only, self.state.paused, self.signals.selected_key,
               order and (order.client_order_id, order.status), self._amend_kind(), self.focused_pane,
               len(self.screen_stack))
        if key != self._bindings_state:
            self._bindings_state = key
            self.refresh_bindings()

    @on(DataTable.RowHighlighted)
    @on(KeyedTable.SelectionMoved)
    def _row_highlighted(self) -> None:
        self._sync_bindings()

    @on(LogTable.Opened)
    def _open_log_line(self, event: LogTable.Opened) -> None:
        self.push_screen(DetailScreen(event.title, event.text))

    def on_descendant_focus(self) -> None:
        self._sync_bindings()

    def watch_read_only(self) -> None:
        self._sync_bindings()

    # -- actions ------------------------------------------------------------------------------

    def action_approve(self) -> None:
        record, service = self.selected_signal, self.service
        if not self.can("approve") or record is None or service is None or record.id is None:
            return
        sid = record.id
        cap = self.settings.approval.confirm_notional
        if cap > 0 and (record.notional is None or record.notional > cap):
            notional = f.money(record.notional) if record.notional is not None else "unknown"
            self.push_screen(
                ConfirmScreen(
                    "Approve a large signal?",
                    f"{sid}: {f.signal_summary(record)}\nnotional {notional} is above approval.confirm_notional "
                    f"{f.money(cap)}.",
                    confirm="Approve",
                    about=("signal", sid),
                ),
                callback=lambda ok: ok and self.send(f"approve {sid}", partial(service.approve, sid),
                                                     confirmable=True),
            )
            return
        self.send(f"approve {sid}", partial(service.approve, sid), confirmable=True)

    def action_reject(self) -> None:
        record, service = self.selected_signal, self.service
        if self.can("reject") and record is not None and record.id is not None and service is not None:
            self.send(f"reject {record.id}", partial(service.reject, record.id))

    def action_amend(self) -> None:
        kind, service = self._amend_kind(), self.service
        if service is None or not self.can("amend"):
            return
        if kind == "signal" and (record := self.selected_signal) is not None:
            self._amend_signal(service, record)
        elif kind == "order" and (order := self.selected_order) is not None:
            self._amend_order(service, order)

    def _amend_signal(self, service: TradingService, record: SignalRecord) -> None:
        sid = record.id
        assert sid is not None
        approval, execution = self.settings.approval, self.settings.execution
        target = AmendTarget.for_signal(
            record, OrderType(execution.order_type), self.state.markets.get(record.signal.symbol) if record.signal
            else None, approval.far_from_market_pct, execution.slippage_tolerance_pct,
        )

        async def check(price: Decimal | None, amount: Decimal | None) -> AmendCheck:
            return service.check_signal_amend(record, price=price, amount=amount)

        def done(request: AmendRequest | None) -> None:
            if request is not None:
                self.send(f"amend {sid}", partial(service.amend_signal, sid, price=request.price,
                                                  amount=request.amount), confirmable=True)

        self.push_screen(AmendScreen(target, check, about=("signal", sid)), callback=done)

    def _amend_order(self, service: TradingService, order: Order) -> None:
        coid = order.client_order_id
        target = AmendTarget.for_order(order, self.state.signal_total(order), self.state.markets.get(order.symbol),
                                       self.settings.approval.far_from_market_pct)

        async def check(price: Decimal | None, amount: Decimal | None) -> AmendCheck:
            return await service.check_order_amend(coid, price=price, amount=amount)

        def done(request: AmendRequest | None) -> None:
            if request is not None:
                self.send(f"amend {coid}", partial(service.amend_order, coid, price=request.price,
                                                   amount=request.amount), confirmable=True)

        self.push_screen(AmendScreen(target, check, about=("order", coid)), callback=done)

    def action_cancel_order(self) -> None:
        order, service = self.selected_order, self.service
        if self.can("cancel_order") and order is not None and service is not None:
            self.send(f"cancel {order.client_order_id}", partial(service.cancel_order, order.client_order_id))

    def action_kill_switch(self) -> None:
        service = self.service
        if service is None:
            return
        n = self.state.live_orders
        self.push_screen(
            ConfirmScreen(
                "Kill switch",
                f"Pause intake and auto-approval, then cancel {n} open order{'s' if n != 1 else ''} "
                "on the exchange?",
                confirm="Kill",
                back_out="Back",
                danger=True,
            ),
            callback=lambda ok: ok and self.send("kill switch", service.kill_switch),
        )

    def action_pause(self) -> None:
        if self.service is not None:
            self.send("pause", self.service.pause)

    def action_resume(self) -> None:
        if self.service is not None:
            self.send("resume", self.service.resume)

    def action_history(self) -> None:
        markets = self.service.markets if self.service is not None else {}
        self.push_screen(HistoryScreen(self.state.history.values(), markets, self.state.history_limit))

    def action_help(self) -> None:
        rows = [(self.get_key_display(b), b.description, b.tooltip) for b in self.console_bindings()]
        rows.append((self.get_key_display(Binding("ctrl+p", "")), "palette", "every action, and the themes"))
        note = "inspect mode is read-only: no action changes anything." if self.read_only else ""
        self.push_screen(HelpScreen(rows, note))

    async def action_quit(self) -> None:
        n = len(self.state.orders)
        if self.read_only or n == 0:
            self.exit()
            return
        self.push_screen(
            ConfirmScreen(
                "Quit?",
                f"{n} order{'s are' if n != 1 else ' is'} still open. Quitting leaves "
                f"{'them' if n != 1 else 'it'} on the exchange: nothing is canceled, and the next start "
                f"reconciles {'them' if n != 1 else 'it'}.",
                confirm="Quit",
                back_out="Stay",
            ),
            callback=lambda ok: ok and self.exit(),
        )


# -- the command line's entry point -----------------------------------------------------------


def _demo_settings(settings: Settings, seed: int | None) -> Settings:
    """Whatever the config says: the paper exchange, manual approval, the demo strategy."""
    update = {
        "exchange": settings.exchange.model_copy(update={"id": "paper"}),
        "approval": settings.approval.model_copy(update={"mode": "manual"}),
        "signals": settings.signals.model_copy(update={"demo": True, "jsonl": ""}),
    }
    if seed is not None:
        update["paper"] = settings.paper.model_copy(update={"seed": seed})
    return settings.model_copy(update=update)


def run_console(
    settings: Settings,
    mode: str = "run",
    *,
    db: str | Path | None = None,
    seed: int | None = None,
    via_emulator: bool = False,
    signals: str | None = None,
) -> int:
    """`demo`, `run` (with the UI) and `inspect`. Returns the process exit code."""
    if via_emulator and mode != "demo":
        print("tradeconsole: --via-emulator is a demo option", file=sys.stderr)
        return 2
    if mode == "demo":
        settings = _demo_settings(settings, seed)
        if db is None:
            db = Path(tempfile.mkdtemp(prefix="tradeconsole-demo-")) / "demo.db"
    if db is None:
        db = settings.db_path()
    db = Path(db)
    read_only = mode == "inspect"
    path = signals or (settings.signals.jsonl if mode == "run" else "")
    if path == "-":
        print("tradeconsole: --signals - needs --headless (the console reads the keyboard)", file=sys.stderr)
        return 2
    if path and not Path(path).exists():
        print(f"tradeconsole: --signals {path}: no such file", file=sys.stderr)
        return 2
    # Before the UI is drawn: a path that is no store fails with one line, and a core (`run`,
    # `demo`) takes the store's lock before the store is opened for writing. `inspect` never locks.
    from executor.storelock import StoreLock, StoreLocked, StorePathError, check_store

    lock: StoreLock | None = None
    try:
        check_store(db, must_exist=read_only, writable=not read_only)
        if not read_only:
            lock = StoreLock.acquire(db)
    except StoreLocked as exc:
        from console.cli import store_in_use

        print(f"tradeconsole: {store_in_use(exc)}", file=sys.stderr)
        return 2
    except StorePathError as exc:
        print(f"tradeconsole: {exc}", file=sys.stderr)
        return 2
    try:
        return _run_app(settings, mode, db, seed=seed, via_emulator=via_emulator, signals=signals,
                        read_only=read_only)
    finally:
        if lock is not None:
            lock.release()


def _run_app(
    settings: Settings,
    mode: str,
    db: Path,
    *,
    seed: int | None,
    via_emulator: bool,
    signals: str | None,
    read_only: bool,
) -> int:
    async def open_service() -> TradingService:
        from executor.service import TradingService

        if not via_emulator:
            return await TradingService.open(settings, db, read_only=read_only)
        # The same demo, but through the real ccxt client against a Binance-compatible emulator
        # on 127.0.0.1 that this process serves and stops when the service closes.
        from executor.exchanges.emulator import start_demo_emulator

        running, exchange = await start_demo_emulator(settings, seed=seed)
        try:
            service = await TradingService.open(settings, db, exchange=exchange)
        except BaseException:
            await exchange.close()
            await running.stop()
            raise
        service.on_close(running.stop)
        return service

    app = TradeConsole(
        open_service,
        settings=settings,
        start_sources=None if read_only else partial(attach_sources, settings=settings, signals=signals),
        read_only=read_only,
    )
    app.run()
    if mode == "demo":
        print(f"demo store: {db}\nlook at it again with: tradeconsole inspect --db {db}")
    return app.return_code or 0

