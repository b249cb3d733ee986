"""Consoles attached to a core in another process (issue 10): the core is a real `run --headless`
subprocess, the consoles are the real `TradeConsole` on a `RemoteClient` (Pilot), or the real
`tradeconsole attach` / `run` in a pseudo-terminal, killed the way terminals die.

Invariants: an action in one console is carried out by the core and seen in every console; a
console that quits, crashes or is killed never affects the core; a core that goes away is said in
the status bar and the console resumes on its own when it is back.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from console_harness import console_settings
from helpers import wait_for
from integration.cores import DEADLINE, PYTHON, ROOT, Core, attached, ctl, exported, orders_of, pilot_until

from console.app import TradeConsole
from console.themes import THEMES_DIR
from executor.control.remote import RemoteClient

# A limit buy 1.5 % under the paper market (about 60,000): it rests, well inside far_from_market_pct.
RESTING = {"id": "rest-1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "order_type": "limit", "price": 59100}
WAITING = {"id": "wait-1", "symbol": "ETH/USDT", "side": "buy", "amount": 0.1}
LATER = {"id": "later-1", "symbol": "SOL/USDT", "side": "buy", "amount": 1}


@pytest.fixture
def core(workdir: Path) -> Iterator[Core]:
    with Core(
        workdir, TRADECONSOLE_EXECUTION__ORDER_TIMEOUT_SECONDS="3", TRADECONSOLE_EXECUTION__SLIPPAGE_TOLERANCE_PCT="0"
    ).running([RESTING, WAITING]) as core:
        yield core


def status_text(app: TradeConsole) -> str:
    return str(app.status_bar.reconcile.render())


async def test_an_approval_in_one_console_shows_in_the_other_and_executes(core: Core) -> None:
    one, two = attached(core), attached(core)
    async with one.run_test(size=(120, 36)) as p1, two.run_test(size=(120, 36)) as p2:
        await pilot_until(p1, lambda: one.ready and "rest-1" in one.signals.items, "console one shows rest-1")
        await pilot_until(p2, lambda: two.ready and "rest-1" in two.signals.items, "console two shows rest-1")
        one.signals.focus()
        one.signals.select("rest-1")
        await p1.press("a")
        await pilot_until(p2, lambda: "rest-1" not in two.signals.items, "console two sees rest-1 leave Signals")
        await pilot_until(
            p2,
            lambda: any(o.signal_id == "rest-1" for o in two.state.orders.values()),
            "console two sees rest-1's order",
        )
        assert wait_for(lambda: orders_of(core, "rest-1"), "the core placed rest-1", DEADLINE)
        audit = json.loads(ctl(core, "status", "--json").stdout)
        assert audit["open"] >= 0  # the core answers as before: neither console disturbed it
        log = [e.reason for e in two.state.log]
        assert any("rest-1 approved" in line for line in log), log  # with who approved it, from console one


async def test_quitting_an_attached_console_detaches_and_the_core_trades_on(core: Core) -> None:
    app = attached(core)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot_until(pilot, lambda: app.ready, "attached")
        await pilot.press("q")
        await pilot_until(pilot, lambda: type(app.screen).__name__ == "DetachScreen", "the detach question")
        await pilot.press("n")  # detach
    assert core.process is not None and core.process.poll() is None
    assert ctl(core, "approve", "wait-1").returncode == 0  # still taking commands
    assert wait_for(lambda: orders_of(core, "wait-1"), "wait-1 placed after the console left", DEADLINE)


async def test_a_restarted_core_is_said_and_the_console_resumes_with_its_new_state(core: Core) -> None:
    app = attached(core)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot_until(pilot, lambda: app.ready and "wait-1" in app.signals.items, "attached")
        assert core.stop() == 0
        await pilot_until(
            pilot,
            lambda: not app.connected and "core disconnected" in status_text(app),
            "the status bar says the core is away",
        )
        assert app.can("approve") is None  # shown, not sendable while the core is away
        core.start([LATER])
        await pilot_until(pilot, lambda: app.connected and "later-1" in app.state.signals, "reconnected, new state")
        await pilot_until(pilot, lambda: "later-1" in app.signals.items, "the new signal on screen")
        assert "core disconnected" not in status_text(app)


def spawn_in_pty(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """A console in a real pseudo-terminal (its own session, the pty its controlling terminal)."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    env = env | {"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "36"}
    process = subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, close_fds=True
    )
    os.close(slave)
    return process, master


def drain(master: int) -> bytes:
    chunks = b""
    while True:
        try:
            data = os.read(master, 65536)
        except (BlockingIOError, OSError):
            return chunks
        if not data:
            return chunks
        chunks += data


def wait_screen(process: subprocess.Popen[bytes], master: int, text: bytes) -> None:
    seen = b""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        seen += drain(master)
        if text in seen:
            return
        if process.poll() is not None:
            raise AssertionError(f"the console exited {process.returncode}: {seen[-2000:]!r}")
        time.sleep(0.05)
    raise AssertionError(f"the console never drew {text!r}")


def test_kill_9_of_an_attached_console_leaves_the_core_timing_out_and_canceling(core: Core) -> None:
    console, master = spawn_in_pty([PYTHON, "-m", "console", "attach", "--socket", str(core.socket)], core.env)
    try:
        wait_screen(console, master, b"Signals")
        assert ctl(core, "approve", "rest-1").returncode == 0
        wait_for(lambda: orders_of(core, "rest-1", "open"), "rest-1 resting", DEADLINE)
        os.killpg(console.pid, signal.SIGKILL)
        console.wait(timeout=10)
        # The core goes on: the order times out after 3 s and is canceled, as configured.
        canceled = wait_for(lambda: orders_of(core, "rest-1", "canceled"), "rest-1 canceled at its timeout", DEADLINE)
        order = canceled[0]
        lived = datetime.fromisoformat(order["updated_at"]) - datetime.fromisoformat(order["created_at"])
        assert lived.total_seconds() >= 3, order  # not before its timeout
        assert not [a for a in exported(core, "audit") if a["action"] == "cancel_order"]  # nobody canceled it
        assert core.process is not None and core.process.poll() is None
    finally:
        if console.poll() is None:
            console.kill()
        os.close(master)


def test_run_with_the_ui_survives_sighup_of_its_terminal(workdir: Path) -> None:
    helper = Core(workdir)  # only for its environment, store and socket paths
    signals = workdir / "run.jsonl"
    signals.write_text(json.dumps(WAITING) + "\n")
    console, master = spawn_in_pty(
        [PYTHON, "-m", "console", "run", "--db", str(helper.db), "--signals", str(signals)], helper.env
    )
    core_pid = None
    try:
        wait_screen(console, master, b"Signals")
        status = wait_for(
            lambda: (r := ctl(helper, "status", "--json")).returncode == 0 and json.loads(r.stdout),
            "the core started by run answers",
            DEADLINE,
        )
        core_pid = status["pid"]
        assert core_pid != console.pid  # a process of its own
        os.close(master)  # the terminal goes away: the console gets SIGHUP
        master = -1
        os.killpg(console.pid, signal.SIGHUP)
        console.wait(timeout=30)
        assert ctl(helper, "approve", "wait-1").returncode == 0  # the core still trades
        wait_for(lambda: orders_of(helper, "wait-1"), "wait-1 placed after the terminal closed", DEADLINE)
        assert next(s for s in exported(helper, "signals") if s["id"] == "wait-1")["status"] != "pending"
    finally:
        if console.poll() is None:
            console.kill()
        if master >= 0:
            os.close(master)
        if core_pid is not None:
            with_timeout_kill(core_pid)


def with_timeout_kill(pid: int) -> None:
    """Stop the core `run` left behind: SIGTERM, then SIGKILL after a deadline."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


async def test_a_demo_serves_its_control_socket_and_stops_when_asked(workdir: Path) -> None:
    """Every core serves the socket, the demo's in-process one too: a second console attaches to
    it, and a stop sent over the socket (ctl, another console) quits the demo's own console."""
    from console.wiring import _demo_settings, _local_client

    sock = workdir / "d.sock"
    settings = _demo_settings(console_settings(control={"socket": str(sock)}), seed=7)
    demo = TradeConsole(
        _local_client(settings, workdir / "d.db", seed=7, via_emulator=False, signals=None, read_only=False),
        settings=settings,
        theme_dirs=[THEMES_DIR],
    )
    async with demo.run_test(size=(120, 36)) as pilot:
        await pilot_until(pilot, lambda: demo.ready and sock.exists(), "the demo serves its socket")
        other = TradeConsole(RemoteClient(sock, env={}), settings=settings, theme_dirs=[THEMES_DIR])
        async with other.run_test(size=(120, 36)) as p2:
            await pilot_until(p2, lambda: other.ready, "attached to the demo")
            await pilot_until(p2, lambda: bool(other.signals.items), "the demo strategy's signals in the other console")
            sid = next(iter(other.signals.items))
            other.signals.select(sid)
            other.signals.focus()
            await p2.press("a")
            await pilot_until(
                pilot,
                lambda: any(o.signal_id == sid for o in [*demo.state.orders.values(), *demo.state.history.values()]),
                "the approval from the other console executed in the demo",
            )
            await other.client.stop_core()
        await pilot_until(pilot, lambda: not demo.is_running, "the demo quit when its core was asked to stop")
