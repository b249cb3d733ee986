"""The cores the control-socket tests talk to, and the CLI run against them.

`Core` is `tradeconsole run --headless` in a subprocess (manual approval, the paper exchange, its
store and socket in a short temporary directory); `ctl`, `run_cli` and `exported` run the real CLI
against it. What a subprocess cannot fake (a peer of another uid, a watcher too slow to read, a
probe inside the shutdown) uses `local_core`: a started core in this process behind a `LocalClient`.
`attached` is the real console on a `RemoteClient` to a core; `pilot_until` waits for its screen.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from helpers import FakeClock, eventually, make_settings

from console.app import TradeConsole
from console.themes import THEMES_DIR
from executor.control.client import LocalClient
from executor.control.remote import RemoteClient
from executor.exchanges.paper import PaperExchange
from executor.service import TradingService
from executor.venue.engine import PaperEngine

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BASE = "http://tradeconsole"
DEADLINE = 60.0
NEAR = {"id": "c-1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "order_type": "limit", "price": 60000}
FAR = {"id": "c-2", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "order_type": "limit", "price": 30000}
OTHER = {"id": "c-3", "symbol": "ETH/USDT", "side": "buy", "amount": 0.1}
SIGNALS = (NEAR, FAR, OTHER)


def base_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("TRADECONSOLE_") and k not in ("XDG_RUNTIME_DIR", "SSH_CONNECTION")
    }
    return (
        env
        | {
            "XDG_CONFIG_HOME": str(workdir / "config"),  # no config file of the machine's user
            "TRADECONSOLE_EXCHANGE__ID": "paper",
            "TRADECONSOLE_APPROVAL__MODE": "manual",
            "TRADECONSOLE_RECONCILE__INTERVAL_SECONDS": "1",
        }
        | extra
    )


class Core:
    """`tradeconsole run --headless` in a subprocess, on a store and a socket in `workdir`."""

    def __init__(self, workdir: Path, *, socket_path: Path | None = None, **env: str) -> None:
        self.workdir = workdir
        self.db = workdir / "s.db"
        self.socket = socket_path or workdir / "c.sock"
        self.env = base_env(workdir, TRADECONSOLE_CONTROL__SOCKET=str(self.socket)) | env
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, signals=SIGNALS) -> Core:
        self.runs += 1
        lines = self.workdir / f"signals{self.runs}.jsonl"
        lines.write_text("".join(json.dumps(s) + "\n" for s in signals))
        self.log = self.workdir / f"core{self.runs}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "console", "run", "--headless", "--db", str(self.db), "--signals", str(lines)],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, pending: int = len(SIGNALS)) -> None:
        """Until the core answers `ctl status` with `pending` signals waiting for an operator."""
        assert self.process is not None
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the core exited {self.process.returncode}:\n{self.output()}")
            result = ctl(self, "status", "--json")
            if result.returncode == 0 and json.loads(result.stdout)["pending_signals"] >= pending:
                return
            time.sleep(0.05)
        raise AssertionError(f"the core did not get ready within {DEADLINE} s:\n{self.output()}")

    @contextlib.contextmanager
    def running(self, signals: Sequence[dict] = SIGNALS) -> Iterator[Core]:
        """Started on `signals` and ready (all of them pending), stopped on the way out."""
        self.start(signals)
        try:
            self.wait_ready(pending=len(signals))
            yield self
        finally:
            self.stop()

    def stop(self) -> int | None:
        """SIGTERM (after a SIGCONT: a test may have frozen it), then SIGKILL after 30 s; the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "console", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEADLINE
    )


def ctl(core: Core, *args: str, where: tuple[str, ...] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("ctl", *(where if where is not None else ("--socket", str(core.socket))), *args, env=core.env)


def exported(core: Core, what: str) -> list[dict]:
    extra = ("--all",) if what == "orders" else ()
    result = run_cli(what, "--db", str(core.db), "--json", *extra, env=core.env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def signals_taken(core: Core) -> int:
    """How many signals the core has recorded (0 while its store does not exist yet)."""
    result = run_cli("signals", "--db", str(core.db), "--json", env=core.env)
    return len(json.loads(result.stdout)) if result.returncode == 0 else 0


def orders_of(core: Core, signal_id: str, status: str | None = None) -> list[dict]:
    return [o for o in exported(core, "orders") if o["signal_id"] == signal_id and status in (None, o["status"])]


@contextlib.asynccontextmanager
async def local_core(workdir: Path) -> AsyncIterator[LocalClient]:
    """A started core in this process (paper exchange, frozen market) on a store in `workdir`."""
    settings = make_settings(execution={"retry_delay_seconds": 0.01})
    engine = PaperEngine(
        seed=3,
        markets=settings.exchange.markets,
        balances={"USDT": 100000, "BTC": 1, "ETH": 10, "SOL": 100},
        clock=FakeClock(),
    )

    async def open_service() -> TradingService:
        return await TradingService.open(
            settings, workdir / "s.db", exchange=PaperExchange(engine), actor="ops@desk", poll_interval=0.02
        )

    client = LocalClient(open_service)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def attached(core: Core, **options: Any) -> TradeConsole:
    """The real console on a `RemoteClient` to `core` (`options` for the client), the shipped themes only."""
    return TradeConsole(RemoteClient(core.socket, env={}, **options), settings=make_settings(), theme_dirs=[THEMES_DIR])


async def pilot_until(pilot: Any, predicate: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Wait until `predicate` holds, the console's pilot pausing 50 ms between looks."""
    await eventually(predicate, timeout, pause=lambda: pilot.pause(0.05), what=what)
