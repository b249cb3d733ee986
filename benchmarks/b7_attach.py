"""B7: `tradeconsole attach` start to first full screen, core already running with 10,000 open
orders (goal <= 0.5 s), median of 5.

The core: a process of its own (`python -m benchmarks.b7_attach --core DB`, below) that
opens a `TradingService` on the paper exchange the way `run --headless` does and serves its control
socket with `executor.control.server.serve`. Before the service opens, 10,000 resting limit orders
are seeded the way B5 seeds them: into the paper engine (`PaperEngine.place_resting`, far from the
market so they never fill) and into the store (approved signals, `open` orders with their exchange
ids and a timeout a day away; `[execution] order_timeout_seconds` is a day too). `service.start()`
reconciles them (10,000 checked, 0 unknown, no drift: real open orders the core tracks, polls and
would time out) before the socket answers. The core is started once; the 5 attaches (and one
warm-up) go to it, each one a console that is killed afterwards while the core goes on.

The console: `tradeconsole attach --socket PATH` in a real pseudo-terminal, as in B4: a detached
`tmux` session of 120x36 on a private tmux server (`-L`), a fresh config dir, the pane's command
`sh -c 'date +%s.%N > started; exec tradeconsole attach --socket PATH'`: the time stamped just
before `exec` is the process start (the interpreter's start-up, the imports, the CLI's probe of the
socket with a `status` command, the WebSocket connection, the core's snapshot of 10,000 orders
(read from its store, encoded, sent), its decoding and loading into the console all count). The
pane is read with `tmux capture-pane` every 5 ms; the first full screen is the first capture that
shows every pane's border title (Signals, Orders, Log, Balances) and the Orders pane's border
subtitle with the core's count ("10000 active"): the snapshot is on screen, not only the empty frame
drawn before it comes (that one's time is reported as "first paint"). Counted: tmux reading what
the console wrote (it is before the capture). Not counted: a terminal emulator drawing it in
pixels. The polling adds up to 5 ms plus one capture (a few ms) to each figure. An attach that
fails (the console exits: the tmux pane is kept with its exit status) or shows no full screen
within 20 s is charged 20 s and said in the detail; the attaches stop when 95 s are spent (the
core's start-up aside).

B8 (`b8_attached_latency.py`) runs the same core with its update generator switched on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_ORDERS = 10_000
RUNS = 5
SIZE = (120, 36)
GOAL = 0.5
TITLES = ("Signals", "Orders", "Log", "Balances")
TIMEOUT = 20.0  # seconds an attach may take before it counts as failed
BUDGET = 95.0  # seconds for the warm-up and the measured attaches together (the core's start-up aside)
CORE_READY = 90.0  # seconds for the core to seed, reconcile and serve
AMOUNTS = {"BTC/USDT": Decimal("0.01"), "ETH/USDT": Decimal("0.1"), "SOL/USDT": Decimal("1")}
BALANCES = {"USDT": 10**9, "BTC": 10**5, "ETH": 10**6, "SOL": 10**7}
DAY = 86_400


def full_marker(n: int = N_ORDERS) -> str:
    """What the Orders pane's border subtitle shows once the snapshot's orders are loaded."""
    return f"{n} active"


# -- the core (runs in its own process) --------------------------------------------------------


def core_env(workdir: Path, socket_path: Path) -> dict[str, str]:
    """The core's environment: the paper exchange, manual approval, nothing times out in a run."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("TRADECONSOLE_") and k not in ("XDG_RUNTIME_DIR", "SSH_CONNECTION")}
    return env | {
        "XDG_CONFIG_HOME": str(workdir / "core-config"),  # no config file of the machine's user
        "TRADECONSOLE_EXCHANGE__ID": "paper",
        "TRADECONSOLE_APPROVAL__MODE": "manual",
        "TRADECONSOLE_APPROVAL__FAR_FROM_MARKET_PCT": "0",
        "TRADECONSOLE_EXECUTION__ORDER_TIMEOUT_SECONDS": str(DAY),
        "TRADECONSOLE_PAPER__BALANCES": json.dumps(BALANCES),
        "TRADECONSOLE_CONTROL__SOCKET": str(socket_path),
    }


async def seed(store, engine, n: int) -> None:
    """`n` resting limit orders in the engine and in the store, as a running core leaves them."""
    from executor.clientid import client_order_id
    from executor.models import Order, OrderStatus, OrderType, Side, Signal, SignalRecord, SignalStatus, utcnow

    now = utcnow()
    symbols = sorted(AMOUNTS)
    writes = []
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        side = Side.BUY if i % 2 == 0 else Side.SELL
        sid = f"bench-{i:05d}"
        coid = client_order_id("tc", sid, 0)
        amount = AMOUNTS[symbol]
        placed = engine.place_resting(symbol, side, amount, client_order_id=coid)
        signal_ = Signal(id=sid, symbol=symbol, side=side, amount=float(amount), price=float(placed.price))
        writes.append(store.insert_signal(
            SignalRecord(id=sid, status=SignalStatus.APPROVED, source="bench", received_at=now,
                         raw=signal_.model_dump_json(), signal=signal_, amount=amount, reference_price=placed.price,
                         decided_at=now, decided_by="bench")))
        writes.append(store.save_order(
            Order(client_order_id=coid, signal_id=sid, exchange_order_id=placed.exchange_order_id, symbol=symbol,
                  side=side, type=OrderType.LIMIT, amount=amount, price=placed.price, status=OrderStatus.OPEN,
                  attempts=1, created_at=now + timedelta(microseconds=i), updated_at=now,
                  timeout_at=now + timedelta(seconds=DAY)),
            old=None, source="request"))
        if len(writes) >= 2000:  # the store's group commit makes each chunk one transaction or a few
            await asyncio.gather(*writes)
            writes = []
    await asyncio.gather(*writes)


class Generator:
    """Order updates published on the core's bus at `rate` per second, as the executor publishes
    them: `OrderUpdated` of a tracked order, one version up, `updated_at` the time of publishing.

    Each update is a new fill level of its order (1 % to 99 % of its amount, a step further each
    time, so two consecutive versions of a row never look alike on screen). A share `hot_share` of
    the updates goes to the "hot" orders (the rows a console has on screen: the signal ids listed in
    `hot_file` when the generator starts), the rest to orders drawn uniformly from all of them.
    """

    def __init__(self, service, orders, rate: int, hot_file: Path | None, hot_share: float) -> None:
        self.service = service
        self.book = {o.client_order_id: o for o in orders}
        self.keys = list(self.book)
        self.hot_file = hot_file
        self.hot: list[str] = []
        self.rate = rate
        self.hot_share = hot_share
        self.steps: dict[str, int] = {}
        self.published = 0
        self.started = 0.0
        self.ended = 0.0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        if self.hot_file is not None and self.hot_file.exists():
            wanted = set(self.hot_file.read_text().split())
            self.hot = [k for k, o in self.book.items() if o.signal_id in wanted]
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name="bench-updates")

    async def stop(self) -> dict:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        seconds = (self.ended or time.perf_counter()) - self.started if self.started else 0.0
        return {"published": self.published, "seconds": seconds}

    async def _run(self) -> None:
        from executor.events import OrderUpdated
        from executor.models import OrderStatus, utcnow

        rng = random.Random(8)
        bus = self.service.bus
        self.started = time.perf_counter()
        try:
            while True:
                due = int((time.perf_counter() - self.started) * self.rate) - self.published
                for _ in range(max(0, due)):
                    hot = self.hot and rng.random() < self.hot_share
                    key = rng.choice(self.hot) if hot else rng.choice(self.keys)
                    old = self.book[key]
                    step = self.steps.get(key, 0)
                    self.steps[key] = step + 1
                    filled = old.amount * (step % 99 + 1) / 100
                    new = old.model_copy(update={"filled": filled, "status": OrderStatus.PARTIALLY_FILLED,
                                                 "version": old.version + 1, "updated_at": utcnow()})
                    self.book[key] = new
                    bus.publish(OrderUpdated(new))
                    self.published += 1
                await asyncio.sleep(0.01)
        finally:
            self.ended = time.perf_counter()


async def core_main(db: Path, rate: int, hot_file: Path | None, hot_share: float) -> int:
    """Seed, open, reconcile and serve; print one JSON line when the socket answers, then run
    until SIGTERM. With `rate`: SIGUSR1 starts the update generator, SIGUSR2 stops it and prints
    what it published as one JSON line."""
    from executor.config import load_config
    from executor.control.server import serve
    from executor.service import TradingService, build_exchange
    from executor.store import Store

    settings = load_config(None)
    began = time.perf_counter()
    exchange = build_exchange(settings)
    store = await Store.open(db)
    try:
        await seed(store, exchange.engine, N_ORDERS)
    finally:
        await store.close()
    seeded = time.perf_counter() - began
    service = await TradingService.open(settings, db, exchange=exchange)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.request_stop)
    server = generator = None
    try:
        result = await service.start()
        server = await serve(service, settings, db)
        if rate:
            orders = await service.store.orders(include_terminal=False)  # the console's display order
            generator = Generator(service, orders, rate, hot_file, hot_share)
            loop.add_signal_handler(signal.SIGUSR1, generator.start)

            reports: set[asyncio.Task] = set()

            def report() -> None:
                async def stopped() -> None:
                    print(json.dumps({"generator": await generator.stop()}), flush=True)

                task = loop.create_task(stopped())
                reports.add(task)
                task.add_done_callback(reports.discard)

            loop.add_signal_handler(signal.SIGUSR2, report)
        print(json.dumps({
            "ready": True, "socket": str(server.path), "seed_s": round(seeded, 2),
            "start_s": round(time.perf_counter() - began, 2), "checked": result.checked if result else None,
            "open": result.open if result else None, "unknown": result.unknown if result else None,
            "drift": {k: str(v) for k, v in result.drift.items()} if result else None,
            "tracked": sum(1 for o in service.executor.active_orders.values() if o.status.is_live),
            "pid": os.getpid(),
        }), flush=True)
        await service.wait_stopped()
        return 0
    finally:
        if generator is not None:
            await generator.stop()
        if server is not None:
            await server.close()
        await service.close()


class BenchCore:
    """The benchmark core in a subprocess, on a store and a socket in a short temporary directory."""

    def __init__(self, *, rate: int = 0, hot_share: float = 0.0) -> None:
        self.rate, self.hot_share = rate, hot_share
        self.workdir = Path(tempfile.mkdtemp(prefix="tcb", dir="/tmp"))  # a socket path has ~100 bytes
        self.db = self.workdir / "core.db"
        self.socket = self.workdir / "c.sock"
        self.hot_file = self.workdir / "hot"  # signal ids of the rows a console shows: the generator's hot set
        self.process: subprocess.Popen[str] | None = None
        self.info: dict = {}
        self._lines = ""

    def start(self) -> BenchCore:
        argv = [sys.executable, "-m", "benchmarks.b7_attach", "--core", str(self.db), "--rate", str(self.rate),
                "--hot-file", str(self.hot_file), "--hot-share", str(self.hot_share)]
        with (self.workdir / "core.log").open("wb") as log:
            self.process = subprocess.Popen(argv, cwd=ROOT, env=core_env(self.workdir, self.socket),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        self.info = self.read(CORE_READY)
        if not self.info.get("ready"):
            raise RuntimeError(f"the benchmark core did not get ready: {self.info}\n{self.log()}")
        return self

    def log(self) -> str:
        path = self.workdir / "core.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def read(self, timeout: float) -> dict:
        """The core's next JSON line on stdout."""
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        out = self.process.stdout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = out.readline()
            if not line:
                raise RuntimeError(f"the benchmark core exited ({self.process.poll()}):\n{self.log()}")
            if line.strip().startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"no word from the benchmark core within {timeout:g} s:\n{self.log()}")

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self) -> None:
        process, self.process = self.process, None
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process is not None and process.stdout is not None:
                process.stdout.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BenchCore:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the measurement ---------------------------------------------------------------------------


def _tmux(socket: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10)


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc), NaN when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return float("nan")


def once(core: BenchCore, index: int, timeout: float = TIMEOUT) -> dict:
    """One `attach`: {"paint", "full"} seconds from its process start, or {"failed": why}."""
    exe = Path(sys.executable).with_name("tradeconsole")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "console"]
    marker = full_marker()
    with tempfile.TemporaryDirectory(prefix="tcb7") as tmp:
        stamp = Path(tmp) / "started"
        env = {"XDG_CONFIG_HOME": str(Path(tmp) / "config"), "TERM": "xterm-256color"}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        attach = shlex.join([*command, "attach", "--socket", str(core.socket)])
        script = f"date +%s.%N > {shlex.quote(str(stamp))}; {exports} exec {attach}"
        socket = f"tcb7-{os.getpid()}-{index}"
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("TRADECONSOLE_", "TMUX")) and k != "SSH_CONNECTION"}
        conf = Path(tmp) / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\n")  # a console that exits: the pane says so, with its status
        subprocess.run(["tmux", "-L", socket, "-f", str(conf), "new-session", "-d", "-s", "b7", "-x",
                        str(SIZE[0]), "-y", str(SIZE[1]), "sh", "-c", script], check=True, env=clean, timeout=10,
                       cwd=ROOT)
        server = _tmux(socket, "display-message", "-p", "#{socket_path}").stdout.strip()
        try:
            pane = _tmux(socket, "list-panes", "-t", "b7", "-F", "#{pane_pid}").stdout.strip()
            core_cpu = _cpu_seconds(core.process.pid if core.process else None)
            painted = full = None
            console_cpu = None
            deadline = time.time() + timeout
            screen = ""
            while time.time() < deadline:
                screen = _tmux(socket, "capture-pane", "-p", "-t", "b7").stdout
                seen = time.time()
                if painted is None and all(t in screen for t in TITLES):
                    painted = seen
                if painted is not None and marker in screen:
                    full = seen
                    console_cpu = _cpu_seconds(int(pane) if pane.isdigit() else None)
                    core_cpu = _cpu_seconds(core.process.pid if core.process else None) - core_cpu
                    break
                if "Pane is dead" in screen:
                    break
                time.sleep(0.005)
            started = float(stamp.read_text().strip())
            if full is None:
                dead = [line.strip() for line in screen.splitlines() if "Pane is dead" in line]
                why = f"the console exited ({dead[0]})" if dead else f"no full screen within {timeout:g} s"
                return {"failed": why, "paint": None if painted is None else painted - started}
            return {"paint": painted - started, "full": full - started, "console_cpu": console_cpu,
                    "core_cpu": core_cpu}
        finally:
            _tmux(socket, "kill-server")  # the console dies with its terminal; the core goes on
            if server.endswith(socket):
                Path(server).unlink(missing_ok=True)  # kill-server leaves its socket file behind


def measure(runs: int = RUNS, budget: float = BUDGET) -> dict:
    """A warm-up attach, then `runs` measured ones, all to one core, as long as `budget` lasts."""
    with BenchCore() as core:
        began = time.monotonic()
        info = core.info
        warm = once(core, -1)  # the interpreter's bytecode caches and the page cache, as on a second start
        results = []
        for i in range(runs):
            left = budget - (time.monotonic() - began)
            if left < 5.0:
                break
            results.append(once(core, i, min(TIMEOUT, left)))
        alive = core.process is not None and core.process.poll() is None
        log = core.log() if any("failed" in r for r in [warm, *results]) else ""
    return {"runs": results, "warm_up": warm, "core": info, "core_alive": alive, "core_log": log}


def run() -> dict:
    if shutil.which("tmux") is None:
        return {"value": None, "unit": "s", "goal": f"<= {GOAL:g} s", "met": False,
                "detail": "tmux is not installed: not measured"}
    r = measure()
    runs, info = r["runs"], r["core"]
    # A failed attach (the console gave up, or no full screen in time) is charged TIMEOUT seconds.
    full = [x.get("full", TIMEOUT) for x in runs]
    paints = [x["paint"] for x in runs if x.get("paint") is not None]
    failed = [x["failed"] for x in runs if "failed" in x]
    sound = info.get("unknown") == 0 and not info.get("drift") and info.get("tracked") == N_ORDERS
    if not runs:
        return {"value": None, "unit": "s", "goal": f"<= {GOAL:g} s", "met": False,
                "detail": f"no attach fitted in the {BUDGET:g} s budget (warm-up: {r['warm_up']})"}
    median = statistics.median(full)
    words = ", ".join(f"{x['full']:.3f}" if "full" in x else "failed" for x in runs)
    done = [x for x in runs if "full" in x]
    cpu = (f"CPU time until then, median: the console {statistics.median(x['console_cpu'] for x in done):.2f} s, "
           f"the core {statistics.median(x['core_cpu'] for x in done):.2f} s; ") if done else ""
    return {
        "value": round(median, 3),
        "unit": "s",
        "goal": f"<= {GOAL:g} s",
        "met": median <= GOAL and sound and not failed,
        "detail": f"median of {len(runs)} in tmux {SIZE[0]}x{SIZE[1]} (runs: {words} s) until the Orders pane "
        f"shows '{full_marker()}'; first paint (titles, before the snapshot) median "
        f"{statistics.median(paints) if paints else float('nan'):.3f} s; {cpu}"
        + (f"{len(failed)} failed, charged {TIMEOUT:g} s: {'; '.join(sorted(set(failed)))}; " if failed else "")
        + (f"the warm-up attach failed too: {r['warm_up']['failed']}; " if "failed" in r["warm_up"] else "")
        + f"the core: {info.get('tracked'):,} open orders tracked, reconciled {info.get('checked')} checked / "
        f"{info.get('unknown')} unknown / drift {info.get('drift') or 'none'}",
    }


def _main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.b7_attach")
    parser.add_argument("--core", metavar="DB", help="run the benchmark core on a new store DB (internal)")
    parser.add_argument("--rate", type=int, default=0)
    parser.add_argument("--hot-file", type=Path, default=None)
    parser.add_argument("--hot-share", type=float, default=0.0)
    args = parser.parse_args()
    if args.core:
        return asyncio.run(core_main(Path(args.core), args.rate, args.hot_file, args.hot_share))
    print(run())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
