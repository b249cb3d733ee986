"""The command line as a user runs it: real processes, real files, exit codes and output."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from harness import order_row, signal_row
from helpers import AUTO, DATA, clean_env, run_until_idle
from helpers import tradeconsole as tc

from executor.clientid import client_order_id

TERMINAL = {"filled", "canceled", "expired", "rejected", "failed"}


def test_headless_auto_run_places_one_terminal_order_per_valid_signal(tmp_path):
    db = tmp_path / "x.db"
    run = run_until_idle(db, env=AUTO)
    assert run.returncode == 0, run.stderr
    out = tc("orders", "--db", str(db), "--json", "--all")
    assert out.returncode == 0, out.stderr
    orders = json.loads(out.stdout)
    signals = {json.loads(line)["id"]: json.loads(line) for line in (DATA / "signals.valid.jsonl").open()}
    assert sorted(o["signal_id"] for o in orders) == sorted(signals)
    for o in orders:
        assert o["status"] in TERMINAL, o
        assert Decimal(o["filled"]) <= Decimal(o["amount"])
        for field in (
            "client_order_id",
            "exchange_order_id",
            "symbol",
            "side",
            "type",
            "price",
            "average",
            "fee",
            "created_at",
            "updated_at",
            "last_error",
        ):
            assert field in o


def test_signals_export_lists_every_line_with_its_reason(tmp_path):
    db = tmp_path / "x.db"
    assert run_until_idle(db, DATA / "signals.invalid.jsonl").returncode == 0
    rows = json.loads(tc("signals", "--db", str(db), "--json").stdout)
    assert len(rows) == 13
    assert all(r["status"] == "invalid" and r["reason"] for r in rows)
    assert {"id", "status", "reason", "received_at", "source"} <= set(rows[0])


def test_signals_from_stdin(tmp_path):
    db = tmp_path / "x.db"
    line = '{"id": "in-1", "symbol": "ETH/USDT", "side": "buy", "amount": 0.1, "order_type": "market"}\n'
    run = run_until_idle(db, "-", env=AUTO, input=line)
    assert run.returncode == 0, run.stderr
    orders = json.loads(tc("orders", "--db", str(db), "--json", "--all").stdout)
    assert [(o["signal_id"], o["status"]) for o in orders] == [("in-1", "filled")]


def test_json_exports_write_quantities_and_prices_as_decimal_strings(tmp_path):
    import asyncio
    from datetime import UTC, datetime

    from executor.models import SignalStatus
    from executor.store import Store

    async def fill_store() -> None:
        store = await Store.open(db)
        at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        await store.insert_signal(
            signal_row(
                "s-1",
                SignalStatus.APPROVED,
                at=at,
                source="t",
                amount=Decimal("0.0100"),
                reference_price=Decimal("1E+4"),
            )
        )
        await store.save_order(
            order_row(
                "s-1",
                client_order_id="tc-s-1-0",
                amount=Decimal("0.0100"),
                price=Decimal("60000.10"),
                filled=Decimal("0.00000001"),
                average=Decimal("60000.1"),
                fee=Decimal("1E-11"),
                created_at=at,
                updated_at=at,
            ),
            old=None,
            source="test",
        )
        await store.close()

    db = tmp_path / "x.db"
    asyncio.run(fill_store())
    [order] = json.loads(tc("orders", "--db", str(db), "--json").stdout)
    assert {k: order[k] for k in ("amount", "price", "filled", "average", "fee")} == {
        "amount": "0.01",
        "price": "60000.1",
        "filled": "0.00000001",
        "average": "60000.1",
        "fee": "0.00000000001",
    }
    [signal] = json.loads(tc("signals", "--db", str(db), "--json").stdout)
    assert (signal["amount"], signal["reference_price"]) == ("0.01", "10000")
    csv_lines = tc("orders", "--db", str(db), "--csv").stdout.splitlines()
    assert ",0.01,60000.1,new,1e-08,60000.1,1e-11," in csv_lines[1]  # the CSV keeps its numbers


def test_csv_export_has_a_header_and_a_row_per_order(tmp_path):
    db = tmp_path / "x.db"
    run_until_idle(db, env=AUTO)
    lines = tc("orders", "--db", str(db), "--csv", "--all").stdout.strip().splitlines()
    assert lines[0].startswith("signal_id,client_order_id,exchange_order_id")
    assert len(lines) == 5


def test_a_bad_config_value_exits_2_naming_file_key_and_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[execution]\norder_type = "limit"\nmax_retries = "three"\n')
    run = tc("run", "--headless", "--config", str(config), "--db", str(tmp_path / "x.db"))
    assert run.returncode == 2
    assert "config.toml:3" in run.stderr and "execution.max_retries" in run.stderr
    assert "Traceback" not in run.stderr


def test_an_unknown_key_exits_2(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[execution]\nslipage_tolerance_pct = 0.2\n")
    run = tc("orders", "--config", str(config), "--db", str(tmp_path / "x.db"))
    assert run.returncode == 2 and "execution.slipage_tolerance_pct" in run.stderr


def test_a_bad_environment_override_exits_2_naming_the_variable(tmp_path):
    run = tc("run", "--headless", "--db", str(tmp_path / "x.db"), env={"TRADECONSOLE_APPROVAL__MODE": "yolo"})
    assert run.returncode == 2 and "TRADECONSOLE_APPROVAL__MODE" in run.stderr


def test_a_missing_signals_file_exits_2(tmp_path):
    run = run_until_idle(tmp_path / "x.db", tmp_path / "nope.jsonl")
    assert run.returncode == 2 and "no such file" in run.stderr


def test_exports_of_a_missing_store_exit_2(tmp_path):
    run = tc("orders", "--db", str(tmp_path / "missing.db"))
    assert run.returncode == 2 and "no store" in run.stderr


def test_config_init_writes_a_template_that_loads_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "tc.toml"
    assert tc("config", "init", str(target)).returncode == 0
    assert "[execution]" in target.read_text()
    assert tc("orders", "--config", str(target), "--db", str(tmp_path / "none.db")).returncode == 2  # no store, but
    again = tc("config", "init", str(target))
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_a_run_gracefully_with_exit_0(tmp_path, sig):
    db = tmp_path / "x.db"
    env = clean_env(**AUTO, TRADECONSOLE_APPROVAL__FAR_FROM_MARKET_PCT="0")  # the order rests far below the market
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "run", "--headless", "--signals", "-", "--db", str(db)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin and proc.stderr
    proc.stdin.write('{"id": "live-1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "price": 30000}\n')
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    for line in proc.stderr:  # wait until the order rests on the exchange
        if client_order_id("tc", "live-1") in line and " open" in line:
            break
        assert time.monotonic() < deadline, "the order never opened"
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 0
    orders = json.loads(tc("orders", "--db", str(db), "--json").stdout)
    assert [(o["signal_id"], o["status"]) for o in orders] == [("live-1", "open")]  # left open, not canceled


def test_python_dash_m_console_is_the_same_command():
    out = subprocess.run([sys.executable, "-m", "console", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "inspect" in out.stdout and "emulator" in out.stdout


def test_the_schema_ships_with_the_package():
    import executor

    assert (Path(executor.__file__).parent / "schema" / "signal.schema.json").exists()


# -- bad store paths: one line naming the path and the problem, exit 2, never a traceback ------


def _bad_store(tmp_path: Path, kind: str) -> Path:
    if kind == "not a database":
        path = tmp_path / "notes.db"
        path.write_text("these are my notes, not a database\n" * 20)
    elif kind == "directory":
        path = tmp_path / "adir.db"
        path.mkdir()
    elif kind == "under a file":
        (tmp_path / "afile").write_text("x")
        path = tmp_path / "afile" / "x.db"
    elif kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads a chmod 000 file")
        path = tmp_path / "locked.db"
        sqlite3.connect(path).execute("CREATE TABLE orders (x)").connection.close()
        path.chmod(0)
    elif kind == "missing":
        path = tmp_path / "missing.db"
    elif kind == "empty file":
        path = tmp_path / "empty.db"
        path.touch()
    elif kind == "someone else's database":
        path = tmp_path / "other.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE recipes (name TEXT)")
        conn.commit()
        conn.close()
    else:
        raise AssertionError(kind)
    return path


PROBLEMS = {
    "not a database": "not a tradeconsole store (file is not a database)",
    "directory": "is a directory",
    "under a file": "afile is not a directory",
    "unreadable": "permission denied",
    "missing": "no store",
    "empty file": "not a tradeconsole store",
    "someone else's database": "not a tradeconsole store",
}
READERS = [("orders",), ("orders", "--json", "--all"), ("signals", "--json"), ("audit",), ("inspect",)]


def _assert_one_line(result: subprocess.CompletedProcess, path: Path, problem: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tradeconsole: {path}: "), lines[0]
    assert problem in lines[0].lower(), lines[0]
    assert result.stdout == ""  # inspect: failed before drawing anything


@pytest.mark.parametrize("kind", list(PROBLEMS))
@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reader_on_a_bad_store_path_exits_2_with_one_line(tmp_path, command, kind):
    path = _bad_store(tmp_path, kind)
    _assert_one_line(tc(*command, "--db", str(path), input="", timeout=60), path, PROBLEMS[kind])


CORE_KINDS = ["not a database", "directory", "under a file", "unreadable", "someone else's database"]


@pytest.mark.parametrize("kind", CORE_KINDS)
def test_a_headless_core_on_a_bad_store_path_exits_2_with_one_line(tmp_path, kind):
    path = _bad_store(tmp_path, kind)
    before = path.read_bytes() if path.is_file() else None
    run = run_until_idle(path)
    _assert_one_line(run, path, PROBLEMS[kind])
    if before is not None:
        assert path.read_bytes() == before, "the file is left as it was"
    assert not Path(f"{path}.lock").exists(), "refused before the lock is taken"


@pytest.mark.parametrize("kind", ["not a database", "directory", "under a file"])
@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_console_core_on_a_bad_store_path_exits_2_before_its_ui(tmp_path, command, kind):
    path = _bad_store(tmp_path, kind)
    _assert_one_line(tc(command, "--db", str(path), input="", timeout=60), path, PROBLEMS[kind])


def test_an_empty_file_is_a_new_store_for_a_core(tmp_path):
    path = tmp_path / "new.db"
    path.touch()
    run = run_until_idle(path)
    assert run.returncode == 0, run.stderr
    assert tc("orders", "--db", str(path), "--all").returncode == 0
