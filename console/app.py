"""The trading console: a thin Textual `App` over the core's public API, through a `CoreClient`.

The app holds one client (`executor/control/client.py`): a core in this process (`LocalClient`)
or one behind its control socket (`RemoteClient`); it never touches the executor, the exchanges
or the store. It takes one `snapshot()` at start and from then on follows the client's event
stream through a single `EventBuffer`. The first event after a flush schedules the next one, at
most every `flush_interval` seconds, inside `batch_update()`; `ConsoleState` says which keys
changed, so a burst of events costs one repaint of the cells that really changed. The Log pane
takes new lines at most every `LOG_INTERVAL` seconds: faster than anyone reads is only work.
Operator keys become client commands run in workers (`ConsoleActions`, console/actions.py,
which also decides which actions are offered); worker errors are reported in one place
(`on_worker_state_changed`: a notification and a line in the Log pane). A remote core that
goes away is said in the status bar, and its state is reloaded from a fresh snapshot when it
is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Resize
from textual.reactive import reactive
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from console import formatting as f
from console.actions import ConsoleActions
from console.commands import ConsoleCommands
from console.state import Changes, ConsoleState, EventBuffer, LogEntry
from console.themes import THEMES_DIR, ThemeDir, choose, load_themes, variable_defaults
from console.widgets.balances import BalancesPane, PositionsTable
from console.widgets.footer import ConsoleFooter
from console.widgets.log import LogTable
from console.widgets.markets import MarketsStrip
from console.widgets.orders import OrdersTable
from console.widgets.signals import SignalsTable
from console.widgets.statusbar import StatusBar
from console.widgets.table.widget import KeyedTable
from executor.config import Settings, default_config_path, load_config
from executor.control.client import ConnectionChanged, CoreClient, LocalClient, Refused
from executor.models import ExchangeMode, utcnow

log = logging.getLogger("tradeconsole.console")

ServiceFactory = Callable[[], Awaitable[Any]]  # a TradingService, opened by the wiring (or a test)
Clock = Callable[[], datetime]
SourceStarter = Callable[[Any], object]

FLUSH_INTERVAL = 0.01  # seconds between two flushes (two repaints) under a stream of events
LOG_INTERVAL = 0.25  # seconds between two updates of the Log pane under a stream of lines
FINISHED_LINGER = 5.0  # seconds of the clock a finished order stays in Orders, showing how it ended
FIRST_FRAME_WITHIN = 0.5  # seconds the first frame waits for the core's state, at most


def default_theme_dirs() -> list[ThemeDir]:
    """The shipped themes, then the user's (`<config dir>/themes`), which may add to them (never replace)."""
    return [THEMES_DIR, default_config_path().parent / "themes"]


class TradeConsole(ConsoleActions, App[None]):
    # Package data beside this module (pyproject's package-data). Textual resolves a relative path
    # against the file that defines the class, so it is found in a checkout and an installed wheel
    # alike; `importlib.resources.files("console")` is not: under pytest `console` also names the
    # tests/console folder (a namespace package), which it would search instead.
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
        core: CoreClient | ServiceFactory,
        *,
        settings: Settings | None = None,
        clock: Clock = utcnow,
        start_sources: SourceStarter | None = None,
        flush_interval: float | None = FLUSH_INTERVAL,
        theme_dirs: Sequence[ThemeDir] | None = None,
        read_only: bool = False,
        on_shown: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self._on_shown = on_shown  # called once the first full screen (the core's state) is drawn
        self.settings = settings or load_config(None, env={})
        self.clock = clock
        self.flush_interval = flush_interval
        # The one way to the core: a client, whether the core runs here or behind its socket.
        # A bare service factory (tests, benchmarks) is a core in this process.
        self.client: CoreClient = core if isinstance(core, CoreClient) else LocalClient(core, on_started=start_sources)
        self.connected = True
        self.stopping_core = False  # the operator chose to stop a core in another process on quitting
        self.buffer: EventBuffer | None = None
        self._flush_timer: object | None = None  # the flush the first buffered event asked for
        self._flushed = 0.0  # time.monotonic() of the last flush
        self._log_pending: list[LogEntry] = []  # lines for the Log pane, in order, not shown yet
        self._log_shown = float("-inf")  # time.monotonic() of the Log pane's last update
        self._log_timer: object | None = None
        self.state = ConsoleState()
        self.ready = False
        # The panes, kept by reference: the app updates them (never the other way round).
        self.markets_strip = MarketsStrip(id="markets")
        self.signals = SignalsTable(id="signals")
        self.orders = OrdersTable(id="orders")
        self.log_pane = LogTable(id="log", limit=self.state.log.maxlen or 500)
        self.balances = BalancesPane(id="balances")
        self.status_bar = StatusBar(id="status")
        self.footer = ConsoleFooter()
        self._holding = False  # the first frame waits for the core's state (`FIRST_FRAME_WITHIN` at most)
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
        if isinstance(self.client, LocalClient):
            # A core in this process opens on the same CPU: the screen is drawn once, with its state
            # in it. The frames of an empty console, redrawn as the panes settle and the core opens,
            # would only hold that up (they cost about what the opening does). A core that takes
            # longer gets the panes drawn first. A remote core's console draws while it waits.
            self._begin_batch()
            self._holding = True
            self.set_timer(FIRST_FRAME_WITHIN, self._draw, name="first frame")
        for problem in self._startup_problems:
            self.report(problem, level="warning")
        self.signals.default_type = self.settings.execution.order_type
        self.signals.far = self.settings.approval.far_from_market_pct
        self.markets_strip.symbols = list(self.settings.exchange.markets)
        self.signals.focus()
        self._show_status()
        self.set_interval(1.0, self.tick)
        if not self.is_headless:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.exit)
        # At once, not after the first frame: the core's state is what makes the screen full (its
        # imports and the snapshot run while the panes are laid out; the frames come as it yields).
        self.open_service()

    @property
    def service(self) -> Any:
        """The in-process core's service, for tests; None when attached to another process."""
        return getattr(self.client, "service", None)

    @work(group="service", exclusive=True, exit_on_error=False)
    async def open_service(self) -> None:
        client = self.client
        if isinstance(client, LocalClient):
            await client.open()  # its bus is the service's from here on
        # Subscribe before start(): whatever happens between the start and the snapshot is kept.
        self.buffer = EventBuffer(client.bus, self._events_waiting)
        client.bus.subscribe(self._connection)
        await client.start()
        self.read_only = client.read_only
        snapshot = await client.snapshot(history=self.state.history_limit)
        markets = client.markets
        self.signals.markets = self.orders.markets = self.markets_strip.markets = self.balances.markets = markets
        places = {m.base: f.decimals(m.amount_step) for m in markets.values()}
        self.balances.table.places = {k: v for k, v in places.items() if v is not None} | {
            m.quote: 2 for m in markets.values()
        }
        changes = self.state.load(snapshot, self.clock())
        if client.read_only:
            where = "the store, refreshed as another process writes it" if client.owns_core else \
                f"the core at {client.where}, live"
            self.state.add_log(LogEntry(self.clock(), "info", f"inspect mode: a read-only view of {where}; "
                                        "no action changes anything"), changes)
        elif not client.owns_core:
            self.state.add_log(LogEntry(self.clock(), "info", f"attached to the core at {client.where}: "
                                        "quitting detaches, trading goes on"), changes)
        self._show(changes)
        self.ready = True
        self.flush()
        self._draw()
        self.call_after_refresh(self._settled)
        if isinstance(client, LocalClient) and not client.read_only:
            self._watch_stop(client)

    def _draw(self) -> None:
        """The first frame waited long enough, or the core's state is in: draw."""
        if self._holding:
            self._holding = False
            self._end_batch()
            self.screen.refresh()

    def _settled(self) -> None:
        """The first full screen is drawn. What is loaded by now (the core's orders, the widgets)
        lives as long as the console: the collector's full passes skip it from here on, instead of
        walking it for 0.1 s at a time in the middle of a stream (given back to it when the console
        goes). Then the collector, paused by the CLI for the start-up, runs again."""
        gc.freeze()
        gc.enable()
        if self._on_shown is not None:
            self._on_shown()

    @work(group="stop", exit_on_error=False)
    async def _watch_stop(self, client: LocalClient) -> None:
        """A core in this process asked to stop from elsewhere (`ctl`, an attached console): quit."""
        await client.stopped()
        self.exit()

    def _connection(self, event: object) -> None:
        """A remote core went away or came back (published by its client, on the event loop)."""
        if isinstance(event, ConnectionChanged):
            self.call_later(self._connection_changed, event)

    def _connection_changed(self, event: ConnectionChanged) -> None:
        self.connected = event.connected
        if event.connected:
            self.report(event.detail or f"core reconnected at {self.client.where}", level="info")
            self._reload()
        else:
            self.report(event.detail or "core disconnected, reconnecting…", level="warning")
        self._show_status()
        self._sync_bindings()

    @work(group="reload", exclusive=True, exit_on_error=False)
    async def _reload(self) -> None:
        """Back on a core after a disconnection: the state is what its snapshot says now."""
        snapshot = await self.client.snapshot(history=self.state.history_limit)
        if self.buffer is not None:
            self.flush()
        self._show(self.state.reload(snapshot, self.clock()))

    async def on_unmount(self) -> None:
        gc.unfreeze()
        if self.buffer is not None:
            self.buffer.close()
        # A core in this process stops (intake stops, requests in flight finish, open orders stay
        # on the exchange); a remote one is left running, detached.
        await self.client.close()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker errors are reported."""
        if event.state is not WorkerState.ERROR:
            return
        worker, error = event.worker, event.worker.error
        if worker.group == "service":
            self._draw()
            log.error("could not start: %s", error, exc_info=error)
            self.exit(return_code=1, message=f"tradeconsole: could not start: {error}")
            return
        known = isinstance(error, Refused)
        self.report(f"{worker.name}: {error if known else f'{type(error).__name__}: {error}'}", level="error")

    def report(self, message: str, *, level: str = "error") -> None:
        """Tell the operator: a notification, a line in the Log pane, and the Python log."""
        log.log({"error": logging.ERROR, "warning": logging.WARNING}.get(level, logging.INFO), "%s", message)
        self.notify(message, severity={"error": "error", "warning": "warning"}.get(level, "information"),
                    timeout=8)
        entry = LogEntry(self.clock(), level, message)
        self.state.add_log(entry)
        self._log_pending.append(entry)
        self._show_log(paced=False)

    # -- the event stream ---------------------------------------------------------------------

    def flush(self) -> None:
        """Fold everything buffered into the state and repaint what changed, the Log pane too, now."""
        self._flush_events(paced=False)

    def _events_waiting(self) -> None:
        """The first event since the last flush: the next flush comes `flush_interval` after that one."""
        if self._flush_timer is None and self.flush_interval and self.ready:
            wait = self._flushed + self.flush_interval - time.monotonic()
            self._flush_timer = self._after(wait, self._flush_due, "flush")

    def _after(self, wait: float, callback: Callable[[], None], name: str) -> object:
        """`callback` in `wait` seconds, or as soon as the app's queue gets to it (a timer needs time)."""
        if wait > 0.001:
            return self.set_timer(wait, callback, name=name)
        self.call_later(callback)
        return name

    def _flush_due(self) -> None:
        self._flush_timer = None
        self._flush_events(paced=True)

    def _flush_events(self, *, paced: bool) -> None:
        self._flushed = time.monotonic()
        if not self.ready or self.buffer is None:
            return
        if len(self.buffer):
            changes = self.state.apply(self.buffer.drain(), self.clock())
            if changes:
                self._show(changes, paced=paced)
                return
        if self._log_pending and not paced:
            with self.batch_update():
                self._show_log(paced=False)

    def _show_log(self, *, paced: bool) -> None:
        """The pending Log lines into the pane; `paced`: not before `LOG_INTERVAL` since the last time."""
        if not self._log_pending:
            return
        wait = self._log_shown + LOG_INTERVAL - time.monotonic()
        if paced and wait > 0:
            if self._log_timer is None:
                self._log_timer = self._after(wait, self._log_due, "log")
            return
        entries, self._log_pending = self._log_pending, []
        self._log_shown = time.monotonic()
        self.log_pane.append(entries)

    def _log_due(self) -> None:
        self._log_timer = None
        with self.batch_update():
            self._show_log(paced=False)

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

    def _show(self, changes: Changes, *, paced: bool = False) -> None:
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
            orders.upsert_many((key, state.orders[key]) for key in changes.orders)
            signals.show_count()
            orders.show_count(len(state.orders), len(state.history))
            if changes.balances:
                pane = self.balances
                pane.show([(b, state.value(c, b.total)) for c, b in state.balances.items()], state.quote)
                pane.show_equity([v for _, v in state.equity], state.quote)
            if changes.positions:
                self.balances.show_positions(state.positions)
            if changes.log:
                self._log_pending.extend(changes.log)
            self._show_log(paced=paced)
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
        state = self.state
        self.status_bar.show(
            mode=ExchangeMode.READ_ONLY if self.read_only else state.mode,  # inspect, also attached to a live core
            exchange=state.exchange or self.settings.exchange.id,
            reconcile=state.reconcile,
            open_orders=state.open_orders,
            unknown=state.unknown_orders,
            now=self.clock(),
            paused=state.paused,
            intake_done=state.intake_done,
            rate_limit=self.client.rate_limit() if self.connected else None,
            read_only=self.read_only,
            disconnected=None if self.connected else "core disconnected, reconnecting…",
        )

    # -- what the footer follows: the selection, the focus, the mode --------------------------

    @on(DataTable.RowHighlighted)
    @on(KeyedTable.SelectionMoved)
    def _row_highlighted(self) -> None:
        self._sync_bindings()

    @on(LogTable.Opened)
    @on(PositionsTable.Opened)
    def _open_log_line(self, event: LogTable.Opened | PositionsTable.Opened) -> None:
        from console.screens.detail import DetailScreen

        self.push_screen(DetailScreen(event.title, event.text))

    def on_descendant_focus(self) -> None:
        self._sync_bindings()

    def watch_read_only(self) -> None:
        self._sync_bindings()
