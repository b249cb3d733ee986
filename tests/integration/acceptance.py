"""The acceptance run of the ccxt issue, as processes: `tradeconsole emulator --faults` and
`tradeconsole run --headless --until-idle` against it, then the emulator's record audited.

Used by `test_cli_acceptance.py` at a small scale, and by hand at full scale:

    .venv/bin/python -m tests.integration.acceptance --signals 500 --probability 0.1

Checks, from the emulator's side and the store's: the run exits 0; no signal is filled past its
amount; never two live orders for one signal; every signal has exactly one order on the venue
unless the store says it was refused or failed (and then none); the store and the venue agree on
every order's fill; no order is left non-terminal; and the canary keys appear in no output, log
line or store row.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from executor.clientid import client_order_id
from executor.venue.emulator.record import audit_orders, signal_key
from executor.venue.faults import EMULATOR_FAULTS, RESPONSE_FAULTS, Fault

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"filled", "canceled", "expired", "rejected", "failed"}
START_PRICES = {"BTC/USDT": 60000, "ETH/USDT": 3000, "SOL/USDT": 150}


def write_faults(
    path: Path,
    probability: float,
    *,
    hold_s: float = 10.5,
    retry_after: float = 1.0,
    seed: int = 7,
    creates_only: bool = False,
) -> dict[str, Any]:
    """`probability` of each fault on the order endpoints: the create, and unless `creates_only`
    the lookups and cancels around it too."""
    every = {f.value: probability for f in EMULATOR_FAULTS if f is not Fault.NONE}
    responses = {f.value: probability for f in RESPONSE_FAULTS}
    endpoints: dict[str, Any] = {"POST /api/v3/order": every}
    if not creates_only:
        endpoints.update({"GET /api/v3/order": responses, "DELETE /api/v3/order": responses})
    plan = {
        "seed": seed,
        "invisible_ms": 300,
        "retry_after": retry_after,
        "timeout_hold_s": hold_s,  # past the adapter's 10 s ccxt timeout
        "endpoints": endpoints,
    }
    path.write_text(json.dumps(plan, indent=2))
    return plan


def write_signals(path: Path, count: int, *, seed: int = 1) -> list[dict[str, Any]]:
    """A third market orders, a third marketable limits, a third limits that rest and time out."""
    rng = random.Random(seed)
    signals = []
    for n in range(count):
        symbol = rng.choice(list(START_PRICES))
        side = rng.choice(["buy", "sell"])
        s: dict[str, Any] = {"id": f"acc-{n:04d}", "symbol": symbol, "side": side}
        s["quote_amount"] = rng.choice([20, 30, 40, 60])
        kind = n % 3
        if kind == 0:
            s["order_type"] = "market"
        elif kind == 2:
            away = 0.85 if side == "buy" else 1.15
            s["order_type"] = "limit"
            s["price"] = round(START_PRICES[symbol] * away, 2)
        signals.append(s)
    path.write_text("".join(json.dumps(s) + "\n" for s in signals))
    return signals


def base_env(home: Path, api_key: str, api_secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TRADECONSOLE_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        TRADECONSOLE_API_KEY=api_key,
        TRADECONSOLE_API_SECRET=api_secret,
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Outcome:
    seconds: float
    run_exit: int
    emulator_exit: int
    record: dict[str, Any]
    store: dict[str, list[dict[str, Any]]]
    outputs: dict[str, str]
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        orders = self.store.get("orders", [])
        statuses: dict[str, int] = {}
        for o in orders:
            statuses[o["status"]] = statuses.get(o["status"], 0) + 1
        return {
            "seconds": round(self.seconds, 1),
            "run_exit": self.run_exit,
            "emulator_exit": self.emulator_exit,
            "signals": len(self.store.get("signals", [])),
            "store_orders": statuses,
            "venue_orders": len(self.record["orders"]),
            "faults_injected": self.record["faults"],
            "http_statuses": self.record["statuses"],
            "audit": self.record["audit"],
            "problems": self.problems,
        }


def run(
    workdir: Path,
    *,
    signals: int,
    probability: float,
    retry_after: float = 1.0,
    creates_only: bool = False,
    timeout: float = 900.0,
    extra_env: dict[str, str] | None = None,
) -> Outcome:
    workdir.mkdir(parents=True, exist_ok=True)
    api_key = f"CANARYKEY{uuid.uuid4().hex}"
    api_secret = f"CANARYSECRET{uuid.uuid4().hex}"
    env = base_env(workdir, api_key, api_secret)
    faults, record_path, db = workdir / "faults.json", workdir / "record.json", workdir / "store.db"
    write_faults(faults, probability, retry_after=retry_after, creates_only=creates_only)
    sent = write_signals(workdir / "signals.jsonl", signals)
    python = [sys.executable, "-m", "console"]
    emulator = subprocess.Popen(
        [*python, "emulator", "--port", "0", "--faults", str(faults), "--record", str(record_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    outputs: dict[str, str] = {}
    run_exit = -1
    started = time.monotonic()
    try:
        url = _read_url(emulator)
        run_env = {
            **env,
            "TRADECONSOLE_EXCHANGE__ID": "binance",
            "TRADECONSOLE_EXCHANGE__API_URL": url,
            "TRADECONSOLE_APPROVAL__MODE": "auto",
            # limit orders resting far from the market are part of the scenario: no operator to confirm them
            "TRADECONSOLE_APPROVAL__FAR_FROM_MARKET_PCT": "0",
            "TRADECONSOLE_EXECUTION__MAX_RETRIES": "6",
            "TRADECONSOLE_EXECUTION__RETRY_DELAY_SECONDS": "0.1",
            "TRADECONSOLE_EXECUTION__ORDER_TIMEOUT_SECONDS": "4",
            "TRADECONSOLE_RECONCILE__INTERVAL_SECONDS": "2",
            **(extra_env or {}),
        }
        signals_file = str(workdir / "signals.jsonl")
        try:
            result = subprocess.run(
                [*python, "run", "--headless", "--until-idle", "--signals", signals_file, "--db", str(db)],
                cwd=ROOT,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:  # killed: keep what it said for the post-mortem
            outputs["run stdout"], outputs["run stderr"] = _text(exc.stdout), _text(exc.stderr)
        else:
            run_exit = result.returncode
            outputs["run stdout"], outputs["run stderr"] = result.stdout, result.stderr
    finally:
        seconds = time.monotonic() - started
        emulator.send_signal(signal.SIGTERM)
        try:
            out, err = emulator.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            emulator.kill()
            out, err = emulator.communicate()
        outputs["emulator stdout"], outputs["emulator stderr"] = out, err
    for name, text in outputs.items():
        (workdir / (name.replace(" ", ".") + ".txt")).write_text(text)
    record = json.loads(record_path.read_text()) if record_path.exists() else {"orders": []}
    store = _dump(db)
    outcome = Outcome(seconds, run_exit, emulator.returncode, record, store, outputs)
    outcome.problems = check(outcome, sent, secrets=(api_key, api_secret))
    return outcome


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output or ""


def _read_url(process: subprocess.Popen[str], deadline_s: float = 30.0) -> str:
    deadline = time.monotonic() + deadline_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise RuntimeError(f"the emulator exited {process.returncode}: {process.stderr.read()}")
            continue
        if "http://127.0.0.1:" in line:
            return line.rsplit(" ", 1)[-1].strip()
    raise RuntimeError("the emulator printed no URL")


def _dump(db: Path) -> dict[str, list[dict[str, Any]]]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [dict(r) for r in conn.execute(f'SELECT * FROM "{t}"')] for t in tables}
    finally:
        conn.close()


def check(outcome: Outcome, sent: list[dict[str, Any]], *, secrets: tuple[str, ...]) -> list[str]:
    problems: list[str] = []
    if outcome.run_exit != 0:
        problems.append(f"run exited {outcome.run_exit}: {outcome.outputs.get('run stderr', '')[-2000:]}")
    if outcome.emulator_exit != 0:
        problems.append(f"emulator exited {outcome.emulator_exit}")
    signals = {s["id"]: s for s in outcome.store.get("signals", []) if s["status"] == "approved"}
    orders = outcome.store.get("orders", [])
    venue = {o["client_order_id"]: o for o in outcome.record["orders"]}
    expected = {signal_key(client_order_id("tc", sid, 0)): Decimal(s["amount"]) for sid, s in signals.items()}
    audit = audit_orders(outcome.record["orders"], expected)
    if not audit.ok:
        problems.append(f"audit: {audit.to_json()}")
    by_signal: dict[str, list[dict[str, Any]]] = {}
    for o in orders:
        by_signal.setdefault(o["signal_id"], []).append(o)
        if o["status"] not in TERMINAL:
            problems.append(f"{o['client_order_id']} left {o['status']}")
    for sid in signals:
        # One logical order: a second exchange order only after the first was certainly absent
        # (SPEC 6: the next replacement number), and the venue never saw the ones given up.
        mine = sorted(by_signal.get(sid, []), key=lambda o: o["replacement"])
        if not mine:
            problems.append(f"signal {sid}: no order in the store")
            continue
        for given_up in mine[:-1]:
            if given_up["status"] != "failed" or not given_up["last_error"].startswith("certainly absent"):
                problems.append(f"signal {sid}: {given_up['client_order_id']} replaced while {given_up['status']}")
            elif given_up["client_order_id"] in venue:
                problems.append(f"{given_up['client_order_id']} given up as absent but on the venue")
        order = mine[-1]
        on_venue = [v for k, v in venue.items() if signal_key(k) == signal_key(order["client_order_id"])]
        if order["status"] in ("rejected", "failed"):
            if on_venue:
                problems.append(f"{order['client_order_id']} is {order['status']} but on the venue")
        elif len(on_venue) != 1:
            problems.append(f"signal {sid}: {len(on_venue)} orders on the venue")
        elif Decimal(on_venue[0]["filled"]) != Decimal(order["filled"]):
            problems.append(
                f"{order['client_order_id']}: store filled {order['filled']}, venue {on_venue[0]['filled']}"
            )
    mine = {o["client_order_id"] for o in orders}
    orphans = sorted(set(venue) - mine)
    if orphans:
        problems.append(f"orders on the venue the store does not know: {orphans[:5]}")
    if len(outcome.store.get("signals", [])) != len(sent):
        problems.append(f"{len(sent)} signals sent, {len(outcome.store.get('signals', []))} recorded")
    texts = dict(outcome.outputs)
    texts["store"] = json.dumps(outcome.store, default=str)
    texts["record"] = json.dumps(outcome.record)
    for where, text in texts.items():
        for secret in secrets:
            if secret in text:
                problems.append(f"a canary key is in the {where}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=500)
    parser.add_argument("--probability", type=float, default=0.1)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--creates-only", action="store_true", help="faults on order creates only")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds the run may take")
    args = parser.parse_args()
    workdir = Path(args.workdir or f"/tmp/tradeconsole-acceptance-{os.getpid()}")
    outcome = run(
        workdir,
        signals=args.signals,
        probability=args.probability,
        retry_after=args.retry_after,
        creates_only=args.creates_only,
        timeout=args.timeout,
    )
    print(json.dumps(outcome.summary(), indent=2))
    print(f"workdir: {workdir}")
    return 0 if not outcome.problems else 1


if __name__ == "__main__":
    sys.exit(main())
