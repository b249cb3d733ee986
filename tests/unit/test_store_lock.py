"""One writer per store (SPEC section 9): the lock a core holds for its lifetime, and what it refuses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import AUTO, clean_env, make_settings, run_until_idle, tradeconsole

from executor.storelock import LockHolder, StoreLock, StoreLocked, StorePathError, lock_path_for

SCRIPT = Path(sys.executable).with_name("tradeconsole")
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "console"]
LOCKER = """
import sys
from executor.storelock import StoreLock
lock = StoreLock.acquire(sys.argv[1])
sys.stdin.read()  # hold it until killed (or stdin closes)
"""


def tc(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return tradeconsole(*args, env=env, input="", timeout=timeout)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.02)


def lock_content(db: Path) -> dict | None:
    try:
        return json.loads(lock_path_for(db).read_text())
    except (OSError, ValueError):
        return None


def says_pid(db: Path, pid: int) -> Callable[[], bool]:
    return lambda: (lock_content(db) or {}).get("pid") == pid


def kill_all(procs: list[subprocess.Popen]) -> None:
    """Kill those still running and reap them all."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stdin:
            proc.stdin.close()


@pytest.fixture
def core(tmp_path):
    """A headless core on tmp_path/x.db, reading signals from a stdin that stays open."""
    procs: list[subprocess.Popen] = []

    def start(db: Path) -> subprocess.Popen:
        log = (tmp_path / f"core-{len(procs)}.log").open("w")
        proc = subprocess.Popen(
            [*CLI, "run", "--headless", "--signals", "-", "--db", str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=clean_env(**AUTO),
        )
        log.close()
        procs.append(proc)
        wait_until(lambda: says_pid(db, proc.pid)() or proc.poll() is not None, "the core takes the store's lock")
        assert proc.poll() is None, (tmp_path / f"core-{len(procs) - 1}.log").read_text()
        return proc

    yield start
    kill_all(procs)


@pytest.fixture
def locker():
    """A plain process that takes a store's lock and holds it until killed."""
    procs: list[subprocess.Popen] = []

    def start(db: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)], stdin=subprocess.PIPE, env=clean_env())
        procs.append(proc)
        wait_until(lambda: says_pid(db, proc.pid)() or proc.poll() is not None, "the child takes the lock")
        assert proc.poll() is None, "the child died"
        return proc

    yield start
    kill_all(procs)


# -- the lock itself --------------------------------------------------------------------------


def test_the_lock_file_names_the_holder_and_stays_after_release(tmp_path):
    db = tmp_path / "x.db"
    before = datetime.now(UTC).replace(microsecond=0)
    lock = StoreLock.acquire(db)
    try:
        assert lock.held and lock.lock_path == tmp_path / "x.db.lock"
        content = lock_content(db)
        assert content is not None
        assert content["pid"] == os.getpid()
        assert content["host"] == socket.gethostname()
        assert content["started_at"].endswith("Z")
        started = datetime.strptime(content["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert before <= started <= datetime.now(UTC) + timedelta(seconds=1)
        assert lock.holder == LockHolder(os.getpid(), socket.gethostname(), content["started_at"])
        assert not db.exists(), "taking the lock never creates (or opens) the store"
        assert (lock_path_for(db).stat().st_mode & 0o777) == 0o600
    finally:
        lock.release()
    assert not lock.held
    lock.release()  # twice is fine
    assert lock_path_for(db).exists()
    assert StoreLock.holder_of(db) is None


def test_a_held_store_refuses_a_second_lock_naming_the_holder(tmp_path):
    db = tmp_path / "x.db"
    with StoreLock.acquire(db) as lock:
        with pytest.raises(StoreLocked) as refused:
            StoreLock.acquire(db, grace=0)
        assert refused.value.holder == lock.holder
        assert refused.value.path == db
        assert str(refused.value) == f"store {db} is in use by {lock.holder.describe()}"
        assert StoreLock.holder_of(db) == lock.holder
    assert not lock.held
    with StoreLock.acquire(db):  # released on leaving the block: free again
        pass


def test_the_directory_of_a_new_store_is_created(tmp_path):
    db = tmp_path / "a" / "b" / "x.db"
    with StoreLock.acquire(db):
        assert lock_path_for(db).exists() and not db.exists()


def test_a_path_under_a_file_is_no_store(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorePathError) as refused:
        StoreLock.acquire(tmp_path / "afile" / "x.db")
    assert "is not a directory" in str(refused.value)


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    lock_path_for(tmp_path / "x.db").symlink_to(victim)
    with pytest.raises(StorePathError):
        StoreLock.acquire(tmp_path / "x.db")
    assert victim.read_text() == "keep me"


def test_the_lock_of_a_killed_process_is_taken_over_and_rewritten(tmp_path, locker):
    db = tmp_path / "x.db"
    child = locker(db)
    holder = StoreLock.holder_of(db)
    assert holder is not None and holder.pid == child.pid
    with pytest.raises(StoreLocked) as refused:
        StoreLock.acquire(db, grace=0)
    assert refused.value.holder is not None and refused.value.holder.pid == child.pid
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert lock_content(db)["pid"] == child.pid  # the dead process's details are still there...
    assert StoreLock.holder_of(db) is None  # ...but nobody holds it
    with StoreLock.acquire(db) as lock:
        assert lock_content(db)["pid"] == os.getpid()
        assert lock.holder.pid == os.getpid()


# -- the command line -------------------------------------------------------------------------


def assert_refused(result: subprocess.CompletedProcess[str], db: Path, pid: int) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"tradeconsole: store {db} is in use by pid {pid} on host {socket.gethostname()} since ")
    assert f"use 'tradeconsole attach --db {db}' or 'tradeconsole inspect --db {db}' instead" in line


def test_a_second_core_on_the_same_store_exits_2_naming_the_holder(tmp_path, core):
    db = tmp_path / "x.db"
    first = core(db)
    second = run_until_idle(db, input="")
    assert_refused(second, db, first.pid)
    assert_refused(tc("run", "--db", str(db)), db, first.pid)  # with the UI: refused before it is drawn
    assert_refused(tc("demo", "--db", str(db)), db, first.pid)
    assert says_pid(db, first.pid)(), "a refused core leaves the holder's details alone"

    # The readers never take the lock and keep working while it is held.
    for command in ("orders", "signals", "audit"):
        out = tc(command, "--db", str(db), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == []

    # A graceful stop releases it: the next core starts.
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    assert StoreLock.holder_of(db) is None
    again = run_until_idle(db, input="")
    assert again.returncode == 0, again.stderr


def test_a_core_killed_with_sigkill_leaves_no_lock_behind(tmp_path, core):
    db = tmp_path / "x.db"
    first = core(db)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert says_pid(db, first.pid)()
    again = run_until_idle(db, env=AUTO, input="")
    assert again.returncode == 0, again.stderr
    content = lock_content(db)
    assert content is not None and content["pid"] != first.pid  # taken over and rewritten
    out = tc("orders", "--db", str(db), "--json", "--all")
    assert out.returncode == 0 and len(json.loads(out.stdout)) == 4


def test_a_refused_core_never_opens_the_store(tmp_path, locker):
    db = tmp_path / "fresh.db"
    child = locker(db)
    refused = run_until_idle(db, input="")
    assert_refused(refused, db, child.pid)
    assert not db.exists(), "no store created, no migration run"
    assert not Path(f"{db}-wal").exists()


def test_inspect_opens_a_held_store_read_only_without_the_lock(tmp_path, locker, monkeypatch):
    from console import app as console_app
    from console import wiring
    from executor.store import Store

    db = tmp_path / "x.db"

    async def create() -> None:
        store = await Store.open(db)
        await store.close()

    asyncio.run(create())
    child = locker(db)
    seen: dict[str, object] = {}

    def run(self: console_app.TradeConsole) -> None:  # instead of drawing: open the service as the app does
        async def look() -> None:
            service = await self.client.open()
            try:
                seen["read_only"] = service.read_only
            finally:
                await self.client.close()

        asyncio.run(look())

    monkeypatch.setattr(console_app.TradeConsole, "run", run)
    assert wiring.run_console(make_settings(), mode="inspect", db=db) == 0
    assert seen == {"read_only": True}
    holder = StoreLock.holder_of(db)
    assert holder is not None and holder.pid == child.pid


def test_demo_holds_the_lock_while_its_console_runs_and_releases_it(tmp_path, monkeypatch):
    from console import app as console_app
    from console import wiring

    db = tmp_path / "demo.db"
    seen: list[LockHolder | None] = []
    monkeypatch.setattr(console_app.TradeConsole, "run", lambda self: seen.append(StoreLock.holder_of(db)))
    assert wiring.run_console(make_settings(), mode="demo", db=db) == 0
    assert len(seen) == 1 and seen[0] is not None and seen[0].pid == os.getpid()
    assert StoreLock.holder_of(db) is None


def test_a_console_core_on_a_held_store_is_refused_before_its_ui(tmp_path, monkeypatch, capsys):
    from console import app as console_app
    from console import wiring

    db = tmp_path / "x.db"
    monkeypatch.setattr(console_app.TradeConsole, "run", lambda self: pytest.fail("the UI was started"))
    with StoreLock.acquire(db):
        for mode in ("run", "demo"):
            assert wiring.run_console(make_settings(), mode=mode, db=db) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and f"is in use by pid {os.getpid()}" in err[0] and "attach --db" in err[0]
