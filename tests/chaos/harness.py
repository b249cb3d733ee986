"""The kill -9 soak of SPEC section 7: crash safety proven against the emulator, as processes.

One soak (`run_soak`):

1. The venue: `tradeconsole emulator` (through `tests.chaos.venue`, which adds the venue's fills
   and the cause of every 429 to its record) in a process of its own on a free port of 127.0.0.1,
   with a few percent of every fault class (timeout after accepting, 5xx before and after acting,
   429, reset after accepting, invisible orders) and the scenario's rate limits.
2. The trader: `tradeconsole run --headless` on one store and one signal file, configured by the
   environment alone, SIGKILLed at seeded random moments (right after it started, while creates
   are in flight, while orders rest on the venue) and started again on the same store and file.
   Before each start the file grows by a wave of new signals: the lines already read come again
   and must be recorded as duplicates. The last run is `run --headless --until-idle`, which must
   exit 0 within a deadline.
3. The checks (one function each, `CHECKS`), from the venue's record and the store read read-only:
   nothing executed twice, nothing over-filled, every signal recorded once and settled, store and
   venue agreeing on every order (status, filled), every fill and every fee, and no 429 or 418
   the fault plan did not inject.

Every random choice is seeded (`Scenario.seed`): the signals, the waves, the kill moments and
delays, the fault draws and the synthetic market. Timing is not: a kill lands where the child
happens to be, which is the point. Nothing waits on a bare sleep: a kill waits for its moment (a
line on the child's output, open orders in the venue's record) with a generous deadline, then
for its random delay as a timeout on the child's exit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from executor.clientid import client_order_id
from executor.venue.emulator.app import DEMO_API_KEY, DEMO_API_SECRET
from executor.venue.emulator.record import audit_orders, replacement_number, signal_key
from executor.venue.faults import EMULATOR_FAULTS, RESPONSE_FAULTS, Fault

from .venue import BANNED, INJECTED, INSIDE_INJECTED

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "tc"  # [exchange] client_id_prefix's default
TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "failed"})
NEVER_PLACED = frozenset({"rejected", "failed"})  # the store says the venue never took the order
ACCEPTED = frozenset({"pending", "approved", "rejected", "expired"})  # not "invalid", not "duplicate"
START_PRICES = {"BTC/USDT": 60000, "ETH/USDT": 3000, "SOL/USDT": 150}
FEE_STEP = Decimal("0.00000001")  # the venue answers fees with eight decimals, trade by trade

# Binance spot's announced limits, and the emulator's defaults.
BINANCE_LIMITS = {"weight_per_minute": 1200, "orders_per_10s": 50}
DEFAULT_LIMITS = {"weight_per_minute": 6000, "orders_per_10s": 100}

# 429s the fault plan is responsible for (see `venue.RateLimits.cause`); any other 429, and any 418, fails.
INJECTED_CAUSES = frozenset({INJECTED, INSIDE_INJECTED})


# -- the scenario and its plan ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    limits: Mapping[str, int]
    kills: int = 20
    signals: int = 100
    seed: int = 1
    create_fault_pct: float = 3.0  # each fault class on order creates
    other_fault_pct: float = 1.0  # each response fault on every other endpoint
    invisible_ms: int = 300
    retry_after_s: float = 0.5  # Retry-After of an injected 429
    timeout_hold_s: float = 10.5  # a held answer outlasts the ccxt adapter's 10 s timeout
    order_timeout_s: float = 2.5
    reconcile_interval_s: float = 1.5
    moment_deadline_s: float = 20.0  # how long a kill waits for its moment before it strikes anyway
    final_deadline_s: float = 180.0  # how long the last run (`--until-idle`) may take

    @property
    def limits_label(self) -> str:
        return f"{self.limits['weight_per_minute']} w/min, {self.limits['orders_per_10s']} orders/10s"


class Moment(StrEnum):
    AFTER_START = "after start"
    CREATES = "creates in flight"
    RESTING = "orders resting"


class Kind(StrEnum):
    MARKET = "market"
    MARKETABLE = "marketable limit"  # no price: the ticker moved against us by the slippage
    NEAR = "near limit"  # at the start price: may fill, partly, as the market walks
    RESTING = "resting limit"  # 10 % away: rests until its timeout cancels it


@dataclass(frozen=True)
class Kill:
    moment: Moment
    delay_s: float  # after the moment was reached


@dataclass(frozen=True)
class Plan:
    kills: list[Kill]
    waves: list[list[dict[str, Any]]]  # the new signals before each run; the last is the final run's

    @property
    def signals(self) -> list[dict[str, Any]]:
        return [s for wave in self.waves for s in wave]


def plan_soak(scenario: Scenario) -> Plan:
    """The seeded plan: every moment at least once, then at random; waves of random size."""
    rng = random.Random(f"chaos:{scenario.seed}")
    moments = list(Moment)[: scenario.kills]
    moments += rng.choices(list(Moment), weights=(3, 4, 3), k=scenario.kills - len(moments))
    rng.shuffle(moments)
    delays = {
        Moment.AFTER_START: (0.0, 2.0),  # from the spawn: imports, reconciliation, intake
        Moment.CREATES: (0.0, 0.3),
        Moment.RESTING: (0.1, 1.5),
    }
    kills = [Kill(m, round(rng.uniform(*delays[m]), 3)) for m in moments]
    runs = scenario.kills + 1
    cuts = sorted(rng.sample(range(1, scenario.signals), min(runs - 1, scenario.signals - 1)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, scenario.signals], strict=True)]
    sizes += [0] * (runs - len(sizes))
    waves: list[list[dict[str, Any]]] = []
    n = 0
    for run, size in enumerate(sizes):
        wave = []
        for i in range(size):
            kind = rng.choice(list(Kind))
            if i == 0 and run < len(kills) and kills[run].moment is Moment.RESTING:
                kind = Kind.RESTING  # something to rest when the kill comes
            wave.append(make_signal(n, kind, rng))
            n += 1
        waves.append(wave)
    return Plan(kills, waves)


def make_signal(n: int, kind: Kind, rng: random.Random) -> dict[str, Any]:
    symbol = rng.choice(list(START_PRICES))
    side = rng.choice(["buy", "sell"])
    s: dict[str, Any] = {"id": f"chaos-{n:04d}", "symbol": symbol, "side": side}
    s["quote_amount"] = rng.choice([20, 30, 40, 60])
    if kind is Kind.MARKET:
        s["order_type"] = "market"
    else:
        s["order_type"] = "limit"
    start = START_PRICES[symbol]
    if kind is Kind.NEAR:
        s["price"] = round(start * (0.999 if side == "buy" else 1.001), 2)
    elif kind is Kind.RESTING:
        s["price"] = round(start * (0.9 if side == "buy" else 1.1), 2)
    return s


def fault_plan(scenario: Scenario) -> dict[str, Any]:
    """The faults file: every fault class on creates, every response fault on everything else."""
    creates = {f.value: scenario.create_fault_pct / 100 for f in EMULATOR_FAULTS if f is not Fault.NONE}
    others = {f.value: scenario.other_fault_pct / 100 for f in RESPONSE_FAULTS}
    return {
        "seed": scenario.seed,
        "invisible_ms": scenario.invisible_ms,
        "retry_after": scenario.retry_after_s,
        "timeout_hold_s": scenario.timeout_hold_s,
        "limits": dict(scenario.limits),
        "endpoints": {"POST /api/v3/order": creates, "*": others},
    }


# -- processes --------------------------------------------------------------------------------------


def clean_env(home: Path) -> dict[str, str]:
    """This environment without any TRADECONSOLE_ key, with a home of its own (no user config)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TRADECONSOLE_")}
    runtime = home / "runtime"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_RUNTIME_DIR=str(runtime),
        PYTHONUNBUFFERED="1",
        PYTHONHASHSEED="0",
    )
    return env


def trader_env(home: Path, url: str, scenario: Scenario) -> dict[str, str]:
    return {
        **clean_env(home),
        "TRADECONSOLE_API_KEY": DEMO_API_KEY,
        "TRADECONSOLE_API_SECRET": DEMO_API_SECRET,
        "TRADECONSOLE_EXCHANGE__ID": "binance",
        "TRADECONSOLE_EXCHANGE__API_URL": url,
        "TRADECONSOLE_APPROVAL__MODE": "auto",
        # limit orders resting far from the market are part of the scenario: no operator to confirm them
        "TRADECONSOLE_APPROVAL__FAR_FROM_MARKET_PCT": "0",
        "TRADECONSOLE_EXECUTION__ORDER_TIMEOUT_SECONDS": str(scenario.order_timeout_s),
        "TRADECONSOLE_EXECUTION__MAX_RETRIES": "6",
        "TRADECONSOLE_EXECUTION__RETRY_DELAY_SECONDS": "0.1",
        "TRADECONSOLE_RECONCILE__INTERVAL_SECONDS": str(scenario.reconcile_interval_s),
    }


class Output:
    """A child's merged stdout and stderr, collected line by line by a thread, copied to a file."""

    def __init__(self, stream: TextIO, path: Path) -> None:
        self.lines: list[str] = []
        self.path = path
        self._done = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: TextIO) -> None:
        with self.path.open("a", encoding="utf-8") as log:
            for line in stream:
                log.write(line)
                log.flush()
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str | None:
        """The first line (so far or to come) that satisfies `predicate`, or None at the deadline or EOF."""
        seen = 0
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    return None
                self._changed.wait(left)

    def close(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    def tail(self, n: int = 15) -> str:
        with self._changed:
            return "\n".join(self.lines[-n:])


class Venue:
    """The emulator in its own process; its record live over HTTP, and in full once stopped."""

    def __init__(self, workdir: Path, scenario: Scenario) -> None:
        self.faults_path = workdir / "faults.json"
        self.record_path = workdir / "record.json"
        self.faults_path.write_text(json.dumps(fault_plan(scenario), indent=2))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.chaos.venue",
                "--port",
                "0",
                "--seed",
                str(scenario.seed),
                "--faults",
                str(self.faults_path),
                "--record",
                str(self.record_path),
            ],
            cwd=ROOT,
            env=clean_env(workdir / "venue-home"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.output = Output(self.process.stdout, workdir / "venue.log")
        line = self.output.wait_for(lambda text: "http://127.0.0.1:" in text, timeout=60)
        if line is None:
            self.process.kill()
            raise RuntimeError(f"the emulator printed no URL:\n{self.output.tail()}")
        self.url = line.rsplit(" ", 1)[-1].strip()

    def record(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_emulator/record", timeout=30) as response:
            return json.load(response)

    def open_orders(self) -> int:
        return sum(1 for o in self.record()["orders"] if o["status"] in ("open", "partially_filled"))

    def stop(self) -> tuple[int, dict[str, Any]]:
        """SIGTERM, then the record it wrote on its way out."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.output.close()
        record = json.loads(self.record_path.read_text()) if self.record_path.exists() else {"orders": []}
        return code, record


@dataclass
class Run:
    """One `tradeconsole run` process, and what became of it."""

    number: int
    final: bool
    kill: Kill | None
    new_signals: int
    log: Path
    reached: bool = False  # the kill's moment came before its deadline
    killed: bool = False
    exit_code: int | None = None
    seconds: float = 0.0
    last_lines: str = ""


class Trader:
    """`tradeconsole run --headless` (with `--until-idle` for the final run) as a child process."""

    def __init__(self, run: Run, *, signals: Path, db: Path, env: Mapping[str, str]) -> None:
        self.run = run
        args = [sys.executable, "-m", "console", "run", "--headless", "--signals", str(signals), "--db", str(db)]
        if run.final:
            args.append("--until-idle")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        self.output = Output(self.process.stdout, run.log)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return None

    def sigkill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def finish(self) -> Run:
        self.output.close()
        self.run.seconds = time.monotonic() - self.started
        self.run.exit_code = None if self.run.killed else self.process.returncode
        self.run.last_lines = self.output.tail()
        with self.run.log.open("a", encoding="utf-8") as log:
            log.write(f"### chaos harness: run {self.run.number}: {_run_line(self.run)}\n")
        return self.run


def wait_for_moment(trader: Trader, venue: Venue, moment: Moment, deadline_s: float) -> bool:
    """Block until `moment` has come in this run (True), or the deadline passed or the child died."""
    if moment is Moment.AFTER_START:
        return True
    if moment is Moment.CREATES:
        return trader.output.wait_for(lambda line: line.endswith(" submitting"), deadline_s) is not None
    deadline = time.monotonic() + deadline_s
    if trader.output.wait_for(lambda line: "reconciled" in line, deadline_s) is None:
        return False
    while time.monotonic() < deadline:
        if venue.open_orders() > 0:
            return True
        if trader.wait_exit(0.1) is not None:
            return False
    return False


# -- the soak ----------------------------------------------------------------------------------------


@dataclass
class Problem:
    check: str  # the invariant
    subject: str  # a signal id, a client order id, a run
    detail: str


@dataclass
class Counts:
    scenario: str
    limits: str
    kills: int = 0
    restarts: int = 0
    signals: int = 0  # distinct signals sent
    orders: int = 0  # exchange orders the venue accepted
    duplicates: int = 0  # signals executed twice (two live orders at once, or fills of two past the amount)
    overfills: int = 0  # signals filled past their amount
    disagreements: int = 0  # orders, fills or fees on which store and venue differ
    unsettled: int = 0  # signals lost, recorded twice, or left non-terminal
    http_429: int = 0  # 429s the fault plan did not inject
    http_418: int = 0
    run_failures: int = 0  # runs that exited on their own, a final run that did not exit 0 in time
    faults_injected: int = 0
    injected_429: int = 0  # 429s of the fault plan: injected, and answered inside their Retry-After
    duplicate_rows: int = 0  # re-read signal lines recorded as duplicates
    pending: int = 0  # signals correctly left pending (price moved, stale after restart)
    moments_missed: int = 0  # kills that struck at their deadline, their moment never came
    seconds: float = 0.0


@dataclass
class StoreRows:
    signals: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, db: Path) -> StoreRows:
        """The store, opened read-only with sqlite3 (another process wrote it)."""
        if not db.exists():
            return cls()
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            rows = {
                t: [dict(r) for r in conn.execute(f'SELECT * FROM "{t}"')]
                for t in cls.__dataclass_fields__
                if t in tables
            }
        finally:
            conn.close()
        return cls(**rows)


@dataclass
class Outcome:
    """What a soak left behind: the signals sent, the runs, the venue's record and the store."""

    scenario: Scenario
    sent: list[dict[str, Any]]
    runs: list[Run]
    record: dict[str, Any]
    store: StoreRows
    venue_exit: int

    # -- indexes the checks share ----------------------------------------------------------------

    def accepted(self) -> dict[str, dict[str, Any]]:
        """Signal id -> its accepted row (the last, should there be more than one)."""
        return {s["id"]: s for s in self.store.signals if s["status"] in ACCEPTED}

    def amounts(self) -> dict[str, Decimal]:
        """Signal key (see `signal_key`) -> the amount its signal asked for."""
        return {
            signal_key(client_order_id(PREFIX, sid, 0)): Decimal(s["amount"])
            for sid, s in self.accepted().items()
            if s.get("amount") is not None
        }

    def signal_of(self, coid: str) -> str:
        by_key = {signal_key(client_order_id(PREFIX, s["id"], 0)): s["id"] for s in self.sent}
        return by_key.get(signal_key(coid), coid)

    def venue_orders(self) -> dict[str, list[dict[str, Any]]]:
        """Client order id -> the venue's orders under it (more than one if an id was reused)."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for o in self.record.get("orders", []):
            out[o["client_order_id"]].append(o)
        return out

    def audited(self, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The venue orders an `audit_orders` entry names: by venue order id when it gives them."""
        orders = self.record.get("orders", [])
        if entry.get("order_ids"):
            by_id = {v["order_id"]: v for v in orders}
            return [by_id[i] for i in entry["order_ids"]]
        by_coid = {v["client_order_id"]: v for v in orders}
        return [by_coid[c] for c in entry["client_order_ids"]]

    def venue_fills(self, venue_order: Mapping[str, Any]) -> dict[str, Any] | None:
        """The venue's own trades of one order (None if the record lacks them)."""
        fills = self.record.get("fills")
        if fills is None:
            return None
        return fills.get(str(venue_order["order_id"]), {"trades": 0, "amount": "0", "fees": {}})

    def store_fills(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for f in self.store.fills:
            out[f["client_order_id"]].append(f)
        return out

    def store_orders_by_signal(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for o in self.store.orders:
            out[o["signal_id"] or self.signal_of(o["client_order_id"])].append(o)
        return out

    def matched(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(store order, venue order) pairs: same client order id (and venue id, when the store has it)."""
        venue = self.venue_orders()
        pairs = []
        for order in self.store.orders:
            candidates = venue.get(order["client_order_id"], [])
            if order["exchange_order_id"]:
                candidates = [v for v in candidates if str(v["order_id"]) == str(order["exchange_order_id"])]
            if len(candidates) == 1:
                pairs.append((order, candidates[0]))
        return pairs


def run_soak(scenario: Scenario, workdir: Path, *, log: Callable[[str], None] | None = None) -> Soak:
    """Run one soak in `workdir` (kept: faults, signals, store, record, one log per run)."""
    say = log or (lambda _text: None)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    plan = plan_soak(scenario)
    signals, db = workdir / "signals.jsonl", workdir / "store.db"
    signals.write_text("")
    runs: list[Run] = []
    venue = Venue(workdir, scenario)
    trader: Trader | None = None
    try:
        env = trader_env(workdir / "trader-home", venue.url, scenario)
        say(f"{scenario.name}: venue {venue.url}, {scenario.kills} kills, {scenario.signals} signals, {workdir}")
        for number, wave in enumerate(plan.waves, 1):
            with signals.open("a", encoding="utf-8") as out:
                out.writelines(json.dumps(s) + "\n" for s in wave)
            final = number == len(plan.waves)
            kill = None if final else plan.kills[number - 1]
            run = Run(number, final, kill, len(wave), workdir / f"run-{number:03d}.log")
            trader = Trader(run, signals=signals, db=db, env=env)
            if kill is None:
                trader.run.exit_code = trader.wait_exit(scenario.final_deadline_s)
                if trader.run.exit_code is None:  # past its deadline: stopped, and reported
                    trader.sigkill()
                    run.killed = True
            else:
                run.reached = wait_for_moment(trader, venue, kill.moment, scenario.moment_deadline_s)
                if trader.wait_exit(kill.delay_s) is None:  # the random delay, unless it died first
                    trader.sigkill()
                    run.killed = True
            runs.append(trader.finish())
            trader = None
            say(f"{scenario.name}: run {number}: {_run_line(run)}")
    finally:
        if trader is not None and trader.process.poll() is None:
            trader.sigkill()
        venue_exit, record = venue.stop()
    seconds = time.monotonic() - started
    save_runs(workdir, scenario, runs, venue_exit, seconds)
    return judge(Outcome(scenario, plan.signals, runs, record, StoreRows.read(db), venue_exit), workdir, seconds)


def judge(outcome: Outcome, workdir: Path, seconds: float) -> Soak:
    problems = {check.__name__: check(outcome) for check in CHECKS}
    return Soak(outcome, problems, count(outcome, problems, seconds), workdir)


def save_runs(workdir: Path, scenario: Scenario, runs: list[Run], venue_exit: int, seconds: float) -> None:
    """`soak.json`: what `recheck` needs besides the store, the venue's record and the signal file."""
    rows = [{**asdict(r), "log": r.log.name} for r in runs]
    data = {"scenario": asdict(scenario), "runs": rows, "venue_exit": venue_exit, "seconds": seconds}
    (workdir / "soak.json").write_text(json.dumps(data, indent=1))


def recheck(workdir: Path) -> Soak:
    """The checks again, on what a finished soak left in `workdir` (after changing a check, say)."""
    data = json.loads((workdir / "soak.json").read_text())
    scenario = Scenario(**data["scenario"])
    runs = []
    for row in data["runs"]:
        kill = row.pop("kill")
        kill = None if kill is None else Kill(Moment(kill["moment"]), kill["delay_s"])
        runs.append(Run(**{**row, "kill": kill, "log": workdir / row["log"]}))
    sent = [json.loads(line) for line in (workdir / "signals.jsonl").read_text().splitlines() if line.strip()]
    record = json.loads((workdir / "record.json").read_text())
    outcome = Outcome(scenario, sent, runs, record, StoreRows.read(workdir / "store.db"), data["venue_exit"])
    return judge(outcome, workdir, data["seconds"])


def run_soaks(plans: list[Scenario], workdir: Path, *, jobs: int = 2, quiet: bool = False) -> list[Soak]:
    """Run the soaks, `jobs` at a time (each is processes of its own: they only share the CPU)."""
    lock = threading.Lock()

    def say(text: str) -> None:
        if not quiet:
            with lock:
                print(text, flush=True)

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        futures = [pool.submit(run_soak, s, workdir / s.name, log=say) for s in plans]
        return [f.result() for f in futures]


def _run_line(run: Run) -> str:
    if run.final:
        if run.killed:
            return f"final run still running at its deadline: SIGKILL after {run.seconds:.1f}s"
        return f"final run exited {run.exit_code} after {run.seconds:.1f}s"
    if not run.killed:
        return f"exited {run.exit_code} by itself after {run.seconds:.1f}s (kill planned: {run.kill.moment})"
    reached = "" if run.reached else " (moment not reached)"
    return f"SIGKILL {run.kill.moment}{reached} +{run.kill.delay_s}s, at {run.seconds:.2f}s, +{run.new_signals} signals"


# -- the checks ---------------------------------------------------------------------------------------


def check_runs(o: Outcome) -> list[Problem]:
    """Killed runs never exit by themselves; the final run exits 0 before its deadline."""
    problems = []
    for run in o.runs:
        if run.final and (run.killed or run.exit_code != 0):
            verdict = f"did not exit within {o.scenario.final_deadline_s}s" if run.killed else f"exited {run.exit_code}"
            problems.append(Problem("runs", f"run {run.number}", f"final run {verdict}:\n{run.last_lines}"))
        elif not run.final and not run.killed:
            problems.append(
                Problem("runs", f"run {run.number}", f"exited {run.exit_code} before its kill:\n{run.last_lines}")
            )
    if o.venue_exit != 0:
        problems.append(Problem("runs", "emulator", f"the emulator exited {o.venue_exit}"))
    return problems


def check_signals_recorded(o: Outcome) -> list[Problem]:
    """Every signal sent is recorded exactly once as accepted; its re-reads only as duplicates."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in o.store.signals:
        rows[s["id"]].append(s)
    problems = []
    for sent in o.sent:
        mine = rows.get(sent["id"], [])
        accepted = [r for r in mine if r["status"] in ACCEPTED]
        if len(accepted) != 1:
            seen = ", ".join(f"{r['status']} ({r['reason']})" for r in mine) or "nothing"
            problems.append(Problem("signals", sent["id"], f"{len(accepted)} accepted rows; the store has: {seen}"))
    return problems


def check_signals_settled(o: Outcome) -> list[Problem]:
    """An approved signal was placed (or refused by the venue) and every order of it ended; a pending
    one says why it waits."""
    orders = o.store_orders_by_signal()
    problems = []
    for sid, s in o.accepted().items():
        mine = sorted(orders.get(sid, []), key=_replacement)
        if s["status"] == "pending" and not s["reason"]:
            problems.append(Problem("signals", sid, "left pending without a reason"))
        problems += [
            Problem("signals", sid, f"{order['client_order_id']} left {order['status']}")
            for order in mine
            if order["status"] not in TERMINAL
        ]
        if s["status"] != "approved":
            continue
        if not mine:
            problems.append(Problem("signals", sid, "approved, but no order in the store: the approval was lost"))
        elif mine[-1]["status"] == "failed" and all(order["status"] in NEVER_PLACED for order in mine):
            last = mine[-1]
            problems.append(
                Problem(
                    "signals",
                    sid,
                    f"approved, never placed: its last order {last['client_order_id']} failed "
                    f"({last['last_error']}) and nothing replaced it",
                )
            )
    return problems


def _replacement(order: Mapping[str, Any]) -> tuple[int, str]:
    number = order.get("replacement")
    if number is None:
        number = replacement_number(order["client_order_id"]) or 0
    return int(number), order["created_at"]


def check_no_double_execution(o: Outcome) -> list[Problem]:
    """Never two live orders of one signal at a time; never two orders of one filling past its amount."""
    audit = audit_orders(o.record.get("orders", []), o.amounts())
    found: dict[str, list[str]] = defaultdict(list)
    for pair in audit.concurrent:
        a, b = o.audited(pair)
        found[pair["signal"]].append(f"live at once: {_venue_line(a)} and {_venue_line(b)}")
    for over in audit.overfilled:
        filled = [v["client_order_id"] for v in o.audited(over) if Decimal(v["filled"]) > 0]
        if len(filled) > 1:
            found[over["signal"]].append(f"{len(filled)} orders filled {over['filled']} of {over['limit']}: {filled}")
    return [Problem("double execution", o.signal_of(key), "; ".join(lines)) for key, lines in sorted(found.items())]


def check_no_overfill(o: Outcome) -> list[Problem]:
    """No signal filled past its amount, on the venue or in the store; no order past its own amount."""
    amounts = o.amounts()
    venue_filled: dict[str, Decimal] = defaultdict(Decimal)
    problems = []
    for v in o.record.get("orders", []):
        venue_filled[signal_key(v["client_order_id"])] += Decimal(v["filled"])
        if Decimal(v["filled"]) > Decimal(v["amount"]):
            problems.append(Problem("over-fill", o.signal_of(v["client_order_id"]), f"venue {_venue_line(v)}"))
    store_filled: dict[str, Decimal] = defaultdict(Decimal)
    for order in o.store.orders:
        store_filled[signal_key(order["client_order_id"])] += Decimal(order["filled"])
    for key, limit in sorted(amounts.items()):
        for where, filled in (
            ("venue", venue_filled.get(key, Decimal(0))),
            ("store", store_filled.get(key, Decimal(0))),
        ):
            if filled > limit:
                problems.append(Problem("over-fill", o.signal_of(key), f"{where} filled {filled} of {limit}"))
    return problems


def check_orders_agree(o: Outcome) -> list[Problem]:
    """Every store order is on the venue, or certainly not; same status, filled and venue id; no orphans."""
    venue = o.venue_orders()
    problems = []
    explained: set[str] = set()  # venue orders (by venue id) a store row accounts for, rightly or not
    for order in o.store.orders:
        coid = order["client_order_id"]
        sid = order["signal_id"] or o.signal_of(coid)
        on_venue = venue.get(coid, [])
        explained |= {str(v["order_id"]) for v in on_venue}
        if order["status"] in NEVER_PLACED:
            problems += [
                Problem("agreement", sid, f"store {_store_line(order)}, but venue {_venue_line(v)}") for v in on_venue
            ]
            continue
        if order["exchange_order_id"]:
            on_venue = [v for v in on_venue if str(v["order_id"]) == str(order["exchange_order_id"])]
        if len(on_venue) != 1:
            mine = [_venue_line(v) for v in venue.get(coid, [])]
            problems.append(
                Problem(
                    "agreement", sid, f"store {_store_line(order)}, {len(on_venue)} such orders on the venue {mine}"
                )
            )
        elif on_venue[0]["status"] != order["status"] or Decimal(on_venue[0]["filled"]) != Decimal(order["filled"]):
            problems.append(Problem("agreement", sid, f"store {_store_line(order)}, venue {_venue_line(on_venue[0])}"))
    for orders in venue.values():
        problems += [
            Problem("agreement", o.signal_of(v["client_order_id"]), f"venue {_venue_line(v)}: not in the store")
            for v in orders
            if str(v["order_id"]) not in explained
        ]
    return problems


def check_fills_agree(o: Outcome) -> list[Problem]:
    """Per order: the store's fills add up to what the venue executed, and its fees to the venue's."""
    fills = o.store_fills()
    problems = []
    for order, v in o.matched():
        coid = order["client_order_id"]
        sid = order["signal_id"] or o.signal_of(coid)
        mine = fills.get(coid, [])
        amount = sum((Decimal(f["amount"]) for f in mine), Decimal(0))
        fees = _by_asset((f["fee_currency"], f["fee"]) for f in mine)
        order_fees = _by_asset([(order["fee_currency"], order["fee"])])
        theirs = o.venue_fills(v)
        executed = Decimal(theirs["amount"]) if theirs else Decimal(v["filled"])
        if amount != executed:
            problems.append(
                Problem(
                    "fills",
                    sid,
                    f"{coid}: store fills add up to {amount} ({len(mine)} rows), the venue executed {executed}",
                )
            )
        if theirs is None:
            continue
        venue_fees = _by_asset(theirs["fees"].items())
        slack = FEE_STEP * max(theirs["trades"], 1)
        for what, got in (("fills", fees), ("order row", order_fees)):
            if not _fees_match(got, venue_fees, slack):
                problems.append(
                    Problem(
                        "fees",
                        sid,
                        f"{coid}: store {what} fee {_fmt_fees(got)}, venue {_fmt_fees(venue_fees)} "
                        f"({theirs['trades']} trades)",
                    )
                )
    return problems


def check_rate_limits(o: Outcome) -> list[Problem]:
    """No 429 the fault plan did not inject (nor answered inside an injected one's Retry-After), no 418."""
    return [
        Problem("rate limits", path, f"{n} answered: {cause}")
        for path, causes in sorted(rate_limited(o.record).items())
        for cause, n in sorted(causes.items())
        if cause not in INJECTED_CAUSES
    ]


CHECKS = (
    check_runs,
    check_signals_recorded,
    check_signals_settled,
    check_no_double_execution,
    check_no_overfill,
    check_orders_agree,
    check_fills_agree,
    check_rate_limits,
)


def rate_limited(record: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per path, the 429 and 418 answers by cause: the venue runner's count (see `venue.RateLimits`),
    else, from a plain emulator record, its answers less the 429s its fault plan injected."""
    if "rate_limited" in record:
        return record["rate_limited"]["by_path"]
    injected = {path: per.get(Fault.RATE_LIMIT.value, 0) for path, per in record.get("faults", {}).items()}
    if "statuses_by_path" in record:
        by_path = record["statuses_by_path"]
    else:
        by_path = {"every path": record.get("statuses", {})}
        injected = {"every path": sum(injected.values())}
    out = {}
    for path, statuses in by_path.items():
        n429, n418 = int(statuses.get("429", 0)), int(statuses.get("418", 0))
        ours = min(n429, injected.get(path, 0))
        causes = {INJECTED: ours, "429 not injected": n429 - ours, BANNED: n418}
        out[path] = {cause: n for cause, n in causes.items() if n}
    return out


def _by_asset(pairs: Iterable[tuple[str | None, Any]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for asset, fee in pairs:
        out[asset or "?"] += Decimal(str(fee))
    return {asset: fee for asset, fee in out.items() if fee != 0}


def _fees_match(got: Mapping[str, Decimal], want: Mapping[str, Decimal], slack: Decimal) -> bool:
    return set(got) == set(want) and all(abs(got[a] - want[a]) <= slack for a in want)


def _fmt_fees(fees: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{fee:f} {asset}" for asset, fee in sorted(fees.items())) or "0"


def _venue_line(v: Mapping[str, Any]) -> str:
    ended = "live" if v["ended_at"] is None else f"ended {v['ended_at']:.3f}"
    return (
        f"{v['client_order_id']} #{v['order_id']} {v['type']} {v['side']} {v['status']} "
        f"{v['filled']}/{v['amount']} (created {v['created_at']:.3f}, {ended})"
    )


def _store_line(order: Mapping[str, Any]) -> str:
    return (
        f"{order['client_order_id']} #{order['exchange_order_id']} {order['status']} "
        f"{order['filled']}/{order['amount']} fee {order['fee']} {order['fee_currency'] or ''}".rstrip()
    )


# -- counts and the report ----------------------------------------------------------------------------


def count(o: Outcome, problems: Mapping[str, list[Problem]], seconds: float) -> Counts:
    def signals(check) -> int:
        return len({p.subject for p in problems[check.__name__]})

    causes: dict[str, int] = defaultdict(int)
    for per_path in rate_limited(o.record).values():
        for cause, n in per_path.items():
            causes[cause] += n
    kills = sum(1 for r in o.runs if r.killed and not r.final)
    return Counts(
        scenario=o.scenario.name,
        limits=o.scenario.limits_label,
        kills=kills,
        restarts=len(o.runs) - 1,
        signals=len(o.sent),
        orders=len(o.record.get("orders", [])),
        duplicates=signals(check_no_double_execution),
        overfills=signals(check_no_overfill),
        disagreements=len(problems["check_orders_agree"]) + len(problems["check_fills_agree"]),
        unsettled=signals(check_signals_recorded) + signals(check_signals_settled),
        http_429=sum(n for cause, n in causes.items() if cause not in INJECTED_CAUSES and cause != BANNED),
        http_418=causes[BANNED],
        run_failures=len(problems["check_runs"]),
        faults_injected=sum(sum(per.values()) for per in o.record.get("faults", {}).values()),
        injected_429=sum(n for cause, n in causes.items() if cause in INJECTED_CAUSES),
        duplicate_rows=sum(1 for s in o.store.signals if s["status"] == "duplicate"),
        pending=sum(1 for s in o.accepted().values() if s["status"] == "pending"),
        moments_missed=sum(1 for r in o.runs if not r.final and r.killed and not r.reached),
        seconds=round(seconds, 1),
    )


@dataclass
class Soak:
    outcome: Outcome
    problems: dict[str, list[Problem]]  # check name -> what it found
    counts: Counts
    workdir: Path

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def report(self, *, evidence: int = 2, per_check: int = 5) -> str:
        """The counts, every failed invariant (a few examples each) and the evidence of the first ones."""
        lines = [format_table([self.counts]), f"workdir: {self.workdir}"]
        for check in CHECKS:
            found = self.problems[check.__name__]
            if not found:
                continue
            lines.append(f"\nFAILED {check.__name__} ({len(found)}): {' '.join(check.__doc__.split())}")
            lines += [f"  {p.subject}: {p.detail}" for p in found[:per_check]]
            if len(found) > per_check:
                lines.append(f"  ... and {len(found) - per_check} more")
            subjects = dict.fromkeys(p.subject for p in found if p.check not in ("runs", "rate limits"))
            lines += [self.evidence(subject) for subject in list(subjects)[:evidence]]
        return "\n".join(lines)

    def evidence(self, subject: str) -> str:
        """A signal's rows in the store, its orders and fills on the venue, the log lines naming it."""
        o = self.outcome
        sid = o.signal_of(subject)
        key = signal_key(client_order_id(PREFIX, sid, 0))
        coids = {r["client_order_id"] for r in o.store.orders if signal_key(r["client_order_id"]) == key}
        coids |= {v["client_order_id"] for v in o.record.get("orders", []) if signal_key(v["client_order_id"]) == key}
        sent = next((s for s in o.sent if s["id"] == sid), None)
        out = [f"\n  -- evidence for {sid}: sent {json.dumps(sent)}"]
        out += [
            f"  store signal: {s['status']} amount {s['amount']} ({s['reason']})"
            for s in o.store.signals
            if s["id"] == sid and s["status"] in ACCEPTED
        ]
        out += [
            f"  store order:  {_store_line(r)} origin {r['origin']} attempts {r['attempts']} {r['last_error']}"
            for r in o.store.orders
            if r["client_order_id"] in coids
        ]
        out += [
            f"  store fill:   {f['client_order_id']} {f['amount']} @ {f['price']} fee {f['fee']} {f['fee_currency']}"
            for f in o.store.fills
            if f["client_order_id"] in coids
        ]
        events = [e for e in o.store.events if e["entity_id"] in coids | {sid}]
        rereads = [e for e in events if e["to_state"] == "duplicate"]
        out += [
            f"  store event:  {e['ts']} {e['entity_id']} {e['from_state']} -> {e['to_state']} ({e['source']}) "
            f"{e['detail']}"
            for e in events
            if e not in rereads
        ]
        out.append(f"  ({len(rereads)} re-reads of the signal recorded as duplicate)")
        for v in o.record.get("orders", []):
            if v["client_order_id"] in coids:
                out.append(f"  venue order:  {_venue_line(v)}; trades {o.venue_fills(v)}")
        needles = coids | {sid}
        for run in o.runs:
            if not run.log.exists():
                continue
            hits = [
                line.rstrip()
                for line in run.log.read_text(errors="replace").splitlines()
                if (any(n in line for n in needles) and "seen before" not in line)
                or line.startswith("### chaos harness")
            ]
            if len(hits) > 1:
                out.append(f"  log {run.log.name}:")
                out += [f"    {line}" for line in hits[:30]]
        return "\n".join(out)


ROWS = (
    ("limits", "limits"),
    ("kills", "kills"),
    ("restarts", "restarts"),
    ("signals", "signals"),
    ("orders", "orders on the venue"),
    ("duplicates", "duplicates (executed twice)"),
    ("overfills", "over-fills"),
    ("disagreements", "disagreements store/venue"),
    ("unsettled", "signals lost or unsettled"),
    ("http_429", "HTTP 429 (not injected)"),
    ("http_418", "HTTP 418"),
    ("run_failures", "run failures"),
    ("faults_injected", "faults injected"),
    ("injected_429", "429s of the fault plan"),
    ("duplicate_rows", "re-read lines -> duplicate"),
    ("pending", "signals left pending"),
    ("moments_missed", "kill moments missed"),
    ("seconds", "wall time (s)"),
)


def format_table(counts: list[Counts]) -> str:
    """One column per soak, one row per count."""
    header = ["", *(c.scenario for c in counts)]
    body = [[label, *(str(getattr(c, name)) for c in counts)] for name, label in ROWS]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *body]
    )
