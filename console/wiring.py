"""The CLI's wiring of the console: which core, where, and how the console reaches it.

The app (`console/app.py`) knows only a `CoreClient`. This module decides which one:

- `demo`: a core in this process (paper exchange, demo strategy) serving its control socket too,
  so `attach` and `ctl` work on a demo; it stops when the console quits.
- `run` with the UI: the core runs in a process of its own (`run --headless`, in a new session,
  detached from the terminal, logging to `<store>.core.log`), and the console attaches to it over
  its control socket. Closing the terminal, a lost SSH connection or a killed console leave the
  core trading; `q` asks whether to stop it.
- `attach`: the console on a core that runs already.
- `inspect`: read-only; attached to the core when one answers on the store's socket, else
  following the store file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from console.state import HISTORY_LIMIT
from executor.config import ApprovalMode, Settings
from executor.control.paths import default_socket_path

log = logging.getLogger("tradeconsole")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NO_CORE = 0, 1, 2, 3
CORE_START_SECONDS = 60.0  # how long `run` waits for the core it started to answer on its socket
PROBE_WITHIN = 5.0  # seconds a core has to answer the probe of `attach`, `inspect` and `run`
SERVE_AFTER = 0.5  # seconds after an in-process core started that its control socket is served, with no console
SERVE_WITHIN = 5.0  # at the latest, with a console that has not drawn its first full screen by then


def _demo_settings(settings: Settings, seed: int | None) -> Settings:
    """Whatever the config says: the paper exchange, manual approval, the demo strategy."""
    update = {
        "exchange": settings.exchange.model_copy(update={"id": "paper"}),
        "approval": settings.approval.model_copy(update={"mode": ApprovalMode.MANUAL}),
        "signals": settings.signals.model_copy(update={"demo": True, "jsonl": ""}),
    }
    if seed is not None:
        update["paper"] = settings.paper.model_copy(update={"seed": seed})
    return settings.model_copy(update=update)


def _err(message: str) -> None:
    print(f"tradeconsole: {message}", file=sys.stderr)


def run_console(
    settings: Settings,
    mode: str = "run",
    *,
    db: str | Path | None = None,
    seed: int | None = None,
    via_emulator: bool = False,
    signals: str | None = None,
    config: str | None = None,
    socket: str | None = None,
) -> int:
    """`demo`, `run` (with the UI), `attach` and `inspect`. Returns the process exit code."""
    if via_emulator and mode != "demo":
        _err("--via-emulator is a demo option")
        return EXIT_USAGE
    if mode == "demo":
        settings = _demo_settings(settings, seed)
        if db is None:
            db = Path(tempfile.mkdtemp(prefix="tradeconsole-demo-")) / "demo.db"
    if db is None:
        db = settings.db_path()
    db = Path(db)
    if mode == "attach":
        return _attach(settings, db, socket)
    read_only = mode == "inspect"
    path = signals or (settings.signals.jsonl if mode == "run" else "")
    if path == "-":
        _err("--signals - needs --headless (the console reads the keyboard)")
        return EXIT_USAGE
    if path and not Path(path).exists():
        _err(f"--signals {path}: no such file")
        return EXIT_USAGE
    # Before the UI is drawn: a path that is no store fails with one line, and a core (`run`,
    # `demo`) takes the store's lock before the store is opened for writing. `inspect` never locks.
    from executor.storelock import StoreLock, StoreLocked, StorePathError, check_store

    if read_only:
        app = _attached(default_socket_path(db, settings), settings, read_only=True)
        if app is not None:
            return app.return_code or 0
    try:
        check_store(db, must_exist=read_only, writable=not read_only)
        if mode == "run":
            held = StoreLock.holder_of(db)
            if held is not None:
                raise StoreLocked(db, held)
            return _run_detached(settings, db, signals=signals, config=config)
        lock = None if read_only else StoreLock.acquire(db)
    except StoreLocked as exc:
        from console.cli import store_in_use

        _err(store_in_use(exc))
        return EXIT_USAGE
    except StorePathError as exc:
        _err(str(exc))
        return EXIT_USAGE
    try:
        shown = asyncio.Event()  # the console's first full screen is drawn
        client = _local_client(settings, db, seed=seed, via_emulator=via_emulator, signals=signals,
                               read_only=read_only, shown=shown)
        code = _app(client, settings, on_shown=shown.set).return_code or 0
    finally:
        if lock is not None:
            lock.release()
    if mode == "demo":
        print(f"demo store: {db}\nlook at it again with: tradeconsole inspect --db {db}")
    return code


def _app(client, settings: Settings, loop: asyncio.AbstractEventLoop | None = None, on_shown=None):
    from console.app import TradeConsole

    app = TradeConsole(client, settings=settings, read_only=client.read_only, on_shown=on_shown)
    if loop is None:
        app.run()
    else:
        app.run(loop=loop)
    return app


def _local_client(settings: Settings, db: Path, *, seed: int | None, via_emulator: bool, signals: str | None,
                  read_only: bool, shown: asyncio.Event | None = None):
    """A core in this process (`demo`, `inspect` without a core): it serves its control socket,
    once `shown` is set (the console's first full screen is drawn), or `SERVE_AFTER` seconds after
    it started without one."""
    from executor.control.client import LocalClient

    async def open_service():
        from executor.service import TradingService

        if not via_emulator:
            return await TradingService.open(settings, db, read_only=read_only)
        # The same demo, but through the real ccxt client against a Binance-compatible emulator
        # on 127.0.0.1 that this process serves and stops when the service closes.
        from console.emulator_cli import start_demo_emulator

        running, exchange = await start_demo_emulator(settings, seed=seed)
        try:
            service = await TradingService.open(settings, db, exchange=exchange)
        except BaseException:
            await exchange.close()
            await running.stop()
            raise
        service.on_close(running.stop)
        return service

    def started(service) -> None:
        from executor.sources import attach

        attach(service, settings, signals)
        closing = asyncio.Event()
        task = asyncio.get_running_loop().create_task(_serve(service, settings, db, closing, shown),
                                                      name="control socket")

        async def stop_serving() -> None:
            # Registered before anything is served, so no socket or webhook made while the
            # service closes can outlive its store (it is made, seen closing, and closed).
            closing.set()
            await asyncio.gather(task, return_exceptions=True)

        service.on_close(stop_serving, first=True)

    return LocalClient(open_service, on_started=None if read_only else started)


async def _serve(service, settings: Settings, db: Path, closing: asyncio.Event,
                 shown: asyncio.Event | None = None) -> None:
    """The in-process core's control socket (so `attach`/`ctl` reach a demo too) and its webhook,
    served until `closing` is set, then closed by this task; a socket or port that cannot be made
    is said in the Log and never stops the core."""
    from executor.events import ErrorOccurred

    # After the first full screen: importing the server (aiohttp) would hold the loop before it.
    waits = [asyncio.ensure_future(closing.wait())]
    if shown is not None:
        waits.append(asyncio.ensure_future(shown.wait()))
    try:
        await asyncio.wait(waits, timeout=SERVE_AFTER if shown is None else SERVE_WITHIN,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    closers: list[tuple[str, object]] = []
    try:
        if closing.is_set():
            return
        try:
            from executor.control.server import serve

            server = await serve(service, settings, db)
        except Exception as exc:  # a socket problem must not stop trading
            service.bus.publish(ErrorOccurred(f"control socket: {exc}", level="warning"))
        else:
            closers.append(("control socket", server.close))
        if not closing.is_set():
            hook = await _webhook(service, settings)
            if hook is not None:
                closers.append(("webhook", hook.close))
        await closing.wait()
    finally:
        for what, close in reversed(closers):  # also when cancelled: no client meets a closed store
            try:
                await close()
            except Exception:
                log.exception("closing the in-process core's %s failed", what)


async def _webhook(service, settings: Settings):
    """The in-process core's webhook when `[signals] webhook_port` asks for one (None when not);
    a port that is taken is said in the Log (the console is there to show it), never stops the core."""
    if not settings.signals.webhook_port:
        return None
    from executor.config import secrets_from_env
    from executor.events import ErrorOccurred
    from executor.sources.webhook import WebhookError, start_webhook

    try:
        hook = await start_webhook(service, settings, secrets_from_env().webhook_token)
    except WebhookError as exc:
        service.bus.publish(ErrorOccurred(f"{exc}: no signal arrives by the webhook", level="error"))
        return None
    if hook is not None:
        service.trace(f"webhook listening on {hook.url}", actor="core")
    return hook


def _attached(path: Path, settings: Settings, *, read_only: bool, started_here: bool = False):
    """The console attached to the core answering at `path`, run until it quits; None when no
    core answers there within `PROBE_WITHIN` seconds (then nothing was drawn).

    The event stream is opened first, and that is the probe: the core builds and sends its
    snapshot (10,000 orders take it a while) while this process imports and starts the UI."""
    if not path.exists():
        return None
    from executor.control.remote import RemoteClient

    loop = asyncio.new_event_loop()
    try:
        client = RemoteClient(path, read_only=read_only, history=HISTORY_LIMIT)
        client.started_here = started_here
        try:
            # A wedged core (accepting connections, answering nothing) is no core to attach to.
            loop.run_until_complete(asyncio.wait_for(client.open_stream(), PROBE_WITHIN))
        except Exception:
            loop.run_until_complete(client.close())
            return None
        return _app(client, settings, loop=loop)
    finally:
        _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """What `asyncio.run` does after its coroutine: the tasks left cancelled, then the loop closed."""
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _attach(settings: Settings, db: Path, socket: str | None) -> int:
    path = Path(socket) if socket else default_socket_path(db, settings)
    app = _attached(path, settings, read_only=False)
    if app is None:
        _err(f"no core answers at {path} (the store {db}); start one with "
             f"'tradeconsole run --headless --db {db}'")
        return EXIT_NO_CORE
    return app.return_code or 0


def _run_detached(settings: Settings, db: Path, *, signals: str | None, config: str | None) -> int:
    """`run` with the UI: start the core in its own session (it outlives this terminal), then attach."""
    argv = [sys.executable, "-m", "console", "run", "--headless", "--db", str(db)]
    if config:
        argv += ["--config", config]
    if signals:
        argv += ["--signals", str(Path(signals).resolve())]
    log_path = db.with_name(db.name + ".core.log")
    with open(log_path, "ab") as log:
        core = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True, cwd=os.getcwd())
    path = default_socket_path(db, settings)
    deadline = time.monotonic() + CORE_START_SECONDS
    app = None
    while time.monotonic() < deadline:
        if core.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] if log_path.exists() else []
            _err(f"the core exited with {core.returncode} before it answered"
                 f"{': ' + tail[0] if tail else ''} (its log: {log_path})")
            return EXIT_FAILURE
        app = _attached(path, settings, read_only=False, started_here=True)
        if app is not None:
            break
        time.sleep(0.1)
    if app is None:
        _err(f"the core (pid {core.pid}) did not answer at {path} within {CORE_START_SECONDS:g} s; "
             f"its log: {log_path}")
        return EXIT_FAILURE
    try:
        core.wait(timeout=30 if app.stopping_core else 0.5)
        print(f"the core (pid {core.pid}) stopped with exit code {core.returncode}; its log: {log_path}")
    except subprocess.TimeoutExpired:
        print(f"the core (pid {core.pid}) goes on trading on {db}; its log: {log_path}\n"
              f"attach again with: tradeconsole attach --db {db}")
    return app.return_code or 0


__all__ = ["run_console"]
