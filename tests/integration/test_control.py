"""The control socket end to end (SPEC sections 3 and 12, issue 10).

A headless core runs in a subprocess (`run --headless`, manual approval, the paper exchange, its
socket in a short temporary directory); `tradeconsole ctl` and `RemoteClient`s talk to it. What a
subprocess cannot fake (a peer of another uid, a watcher too slow to read) runs in this process:
a `ControlServer` over a `LocalClient`'s service.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import socket
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from helpers import eventually, wait_for

from executor.control.client import ConnectionChanged, CoreStatus, LocalClient, NeedsConfirmation, Refused
from executor.control.remote import CoreUnreachable, Forbidden, RemoteClient
from executor.control.server import ControlServer, Peer
from executor.events import LogLine, OrderUpdated, SignalDecided, SignalReceived, StateChanged
from executor.executor import AmendCheck, KillSwitchResult
from executor.models import ExchangeMode, OrderStatus, SignalStatus

from .cores import BASE, DEADLINE, FAR, NEAR, OTHER, Core, base_env, ctl, exported, orders_of, run_cli, signals_taken

# -- ctl against a core in a subprocess --------------------------------------------------------


def test_ctl_status_says_mode_exchange_and_what_waits(core: Core) -> None:
    words = ctl(core, "status")
    assert words.returncode == 0, words.stderr
    assert words.stdout.count("\n") == 1 and words.stdout.startswith("PAPER paper: trading")
    assert "0 open" in words.stdout and "3 pending signals" in words.stdout and "no drift" in words.stdout

    data = json.loads(ctl(core, "status", "--json").stdout)
    assert {
        k: data[k] for k in ("ok", "mode", "exchange", "paused", "open", "unknown", "pending_signals", "drift")
    } == {
        "ok": True,
        "mode": "PAPER",
        "exchange": "paper",
        "paused": False,
        "open": 0,
        "unknown": 0,
        "pending_signals": 3,
        "drift": {},
    }
    assert data["last_reconcile"] is not None and data["reconcile_age_seconds"] >= 0
    assert data["store"] == str(core.db.resolve()) or Path(data["store"]).resolve() == core.db.resolve()


def test_ctl_approve_gives_the_signal_an_order_and_audits_who(core: Core) -> None:
    result = ctl(core, "approve", "c-1")
    assert (result.returncode, result.stdout) == (0, "c-1 approved\n"), result.stderr

    wait_for(lambda: orders_of(core, "c-1"), "an order for c-1", DEADLINE)
    approvals = [a for a in exported(core, "audit") if a["action"] == "approve" and a["target"] == "c-1"]
    assert len(approvals) == 1 and approvals[0]["actor"].startswith(f"{getpass.getuser()}@")


def test_ctl_approve_far_from_the_market_needs_confirm(core: Core) -> None:
    refused = ctl(core, "approve", "c-2")
    assert refused.returncode == 1
    assert "far_from_market_pct" in refused.stderr and "--confirm" in refused.stderr
    assert orders_of(core, "c-2") == []

    confirmed = ctl(core, "approve", "c-2", "--confirm")
    assert confirmed.returncode == 0, confirmed.stderr
    wait_for(lambda: orders_of(core, "c-2", "open"), "c-2's order resting open", DEADLINE)


def test_ctl_cancel_cancels_an_open_order(core: Core) -> None:
    assert ctl(core, "approve", "c-2", "--confirm").returncode == 0
    coid = wait_for(lambda: orders_of(core, "c-2", "open"), "c-2's order open", DEADLINE)[0]["client_order_id"]

    result = ctl(core, "cancel", coid)
    assert (result.returncode, result.stdout) == (0, f"{coid} cancel requested\n"), result.stderr
    wait_for(lambda: orders_of(core, "c-2", "canceled"), "c-2's order canceled", DEADLINE)


def test_ctl_reject_rejects_a_pending_signal(core: Core) -> None:
    result = ctl(core, "reject", "c-3", "--reason", "not today", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == {"ok": True, "command": "reject", "signal_id": "c-3"}
    record = next(s for s in exported(core, "signals") if s["id"] == "c-3")
    assert (record["status"], record["reason"]) == ("rejected", "not today")


def test_ctl_pause_and_resume(core: Core) -> None:
    assert ctl(core, "pause").stdout == "paused: no intake, no auto-approval\n"
    assert json.loads(ctl(core, "status", "--json").stdout)["paused"] is True
    assert "paused" in ctl(core, "status").stdout

    assert ctl(core, "resume").returncode == 0
    assert json.loads(ctl(core, "status", "--json").stdout)["paused"] is False


def test_ctl_kill_switch_cancels_every_open_order(core: Core) -> None:
    assert ctl(core, "approve", "c-2", "--confirm").returncode == 0
    wait_for(lambda: orders_of(core, "c-2", "open"), "c-2's order open", DEADLINE)

    result = ctl(core, "kill-switch")
    assert (result.returncode, result.stdout) == (0, "kill switch: canceled 1; none left open\n"), result.stderr
    assert orders_of(core, "c-2", "canceled")
    again = json.loads(ctl(core, "kill-switch", "--json").stdout)
    assert again == {"ok": True, "command": "kill-switch", "canceled": 0, "left_open": 0, "orders": []}
    assert json.loads(ctl(core, "status", "--json").stdout)["paused"] is True


def test_a_refused_command_exits_1_with_the_reason(core: Core) -> None:
    result = ctl(core, "approve", "nope")
    assert result.returncode == 1 and "no signal nope" in result.stderr and result.stdout == ""

    as_json = ctl(core, "--json", "approve", "nope")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {
        "ok": False,
        "command": "approve",
        "error": {"kind": "refused", "message": "no signal nope"},
    }


def test_no_core_exits_3_naming_the_socket(workdir: Path) -> None:
    env = base_env(workdir)
    missing = workdir / "none.sock"
    result = run_cli("ctl", "--socket", str(missing), "status", env=env)
    assert result.returncode == 3 and str(missing) in result.stderr

    stale = workdir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(stale))  # a socket file nobody listens on, as a killed core leaves it
    result = run_cli("ctl", "--socket", str(stale), "--json", "pause", env=env)
    assert result.returncode == 3
    assert json.loads(result.stdout)["error"]["kind"] == "no_core" and str(stale) in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("ctl",),
        ("ctl", "approve"),
        ("ctl", "launch"),
        ("ctl", "--db", "a.db", "--socket", "a.sock", "status"),
        ("ctl", "status", "--verbose"),
    ],
    ids=["no command", "approve without id", "unknown command", "db and socket", "unknown flag"],
)
def test_bad_usage_exits_2(workdir: Path, args: tuple[str, ...]) -> None:
    assert run_cli(*args, env=base_env(workdir)).returncode == 2


def test_a_config_error_exits_2(workdir: Path) -> None:
    result = run_cli("ctl", "status", env=base_env(workdir, TRADECONSOLE_CONTROL__SOKET="x"))
    assert result.returncode == 2 and "TRADECONSOLE_CONTROL__SOKET" in result.stderr


def test_ctl_finds_the_core_from_the_store_path_and_the_socket_is_private(workdir: Path) -> None:
    runtime = workdir / "xdg"
    runtime.mkdir(mode=0o700)
    core = Core(workdir, XDG_RUNTIME_DIR=str(runtime))
    del core.env["TRADECONSOLE_CONTROL__SOCKET"]
    core.start()
    try:
        result = wait_for(
            lambda: (r := ctl(core, "status", where=("--db", str(core.db)))).returncode == 0 and r,
            "ctl --db answered",
            DEADLINE,
        )
        assert result.stdout.startswith("PAPER paper")
        (path,) = (runtime / "tradeconsole").iterdir()
        assert path.suffix == ".sock" and f"control socket: {path}" in core.output()
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    finally:
        assert core.stop() == 0
    assert not path.exists()  # removed on exit


def test_a_configured_socket_directory_is_created_private(workdir: Path) -> None:
    with Core(workdir, socket_path=workdir / "run" / "c.sock").running() as core:
        assert core.socket.stat().st_mode & 0o777 == 0o600
        assert core.socket.parent.stat().st_mode & 0o777 == 0o700


def test_a_stale_socket_file_is_replaced_at_start(workdir: Path) -> None:
    core = Core(workdir)
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(core.socket))
    assert core.socket.exists()
    with core.running():
        assert "replacing the stale control socket" in core.output()


def test_a_live_socket_is_not_taken_over(workdir: Path) -> None:
    core = Core(workdir)
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(core.socket))
        other.listen()
        before = core.socket.stat().st_ino
        core.start()
        try:
            # One clear line, and the core trades on without a socket.
            wait_for(lambda: "no control socket" in core.output(), "the core's complaint", DEADLINE)
            assert "another process answers on the control socket" in core.output()
            assert str(core.socket) in core.output()
            wait_for(lambda: signals_taken(core) == 3, "the core taking its signals", DEADLINE)
            assert core.socket.stat().st_ino == before
        finally:
            assert core.stop() == 0
        assert core.socket.stat().st_ino == before  # and it did not remove the other one's socket on exit


def test_without_a_usable_socket_path_the_core_says_so_once_and_trades_on(workdir: Path) -> None:
    home = workdir / ("h" * 90)  # the default socket under it would pass the 100-byte limit
    home.mkdir()
    core = Core(workdir, HOME=str(home))
    del core.env["TRADECONSOLE_CONTROL__SOCKET"]
    core.start()
    try:
        wait_for(lambda: signals_taken(core) == 3, "the core taking its signals", DEADLINE)
        complaints = [line for line in core.output().splitlines() if "no control socket" in line]
        assert len(complaints) == 1 and "100-byte limit" in complaints[0] and "[control] socket" in complaints[0]
    finally:
        assert core.stop() == 0


async def test_bad_messages_get_error_answers_and_the_core_goes_on(core: Core) -> None:
    connector = aiohttp.UnixConnector(path=str(core.socket))
    async with aiohttp.ClientSession(connector=connector) as http:

        async def send(body: bytes) -> tuple[int, dict]:
            async with http.post(f"{BASE}/v1/command", data=body) as response:
                return response.status, await response.json(content_type=None)

        status, answer = await send(b"{oops")
        assert status == 400 and answer["ok"] is False and answer["error"]["kind"] == "bad_request"
        status, answer = await send(json.dumps({"v": 2, "id": 4, "command": "pause"}).encode())
        assert (status, answer["id"], answer["error"]["kind"]) == (400, 4, "bad_request")
        assert "version" in answer["error"]["message"]
        status, answer = await send(json.dumps({"v": 1, "id": 5, "command": "launch_rockets"}).encode())
        assert (status, answer["id"], answer["error"]["kind"]) == (400, 5, "unknown_command")
        status, answer = await send(
            json.dumps({"v": 1, "id": 6, "command": "approve", "args": {"signal_id": 7}}).encode()
        )
        assert answer["error"]["kind"] == "bad_request" and "signal_id" in answer["error"]["message"]
        status, answer = await send(b"x" * 100_000)
        assert status == 413

        async with http.ws_connect(f"{BASE}/v1/events") as ws:
            assert json.loads((await ws.receive(timeout=DEADLINE)).data)["type"] == "snapshot"
            await ws.send_str("garbage")
            while (message := json.loads((await ws.receive(timeout=DEADLINE)).data))["type"] != "error":
                pass
            assert message["error"]["kind"] == "bad_request"

    client = RemoteClient(core.socket)
    try:
        assert (await client.status()).pending_signals == 3
        await client.approve("c-1")
    finally:
        await client.close()
    assert (await asyncio.to_thread(orders_of, core, "c-1")) != []


async def test_two_remote_clients_see_each_others_actions(core: Core) -> None:
    one, other = RemoteClient(core.socket), RemoteClient(core.socket)
    seen: list = []
    other.bus.subscribe(seen.append)
    try:
        await one.start()
        await other.start()
        await one.approve("c-1")

        def approved() -> bool:
            return any(
                isinstance(e, SignalDecided) and e.record.id == "c-1" and e.record.status is SignalStatus.APPROVED
                for e in seen
            )

        def ordered() -> bool:
            return any(isinstance(e, OrderUpdated) and e.order.signal_id == "c-1" for e in seen)

        await eventually(approved, DEADLINE)
        await eventually(ordered, DEADLINE)
        lines = [e for e in seen if isinstance(e, LogLine) and e.signal_id == "c-1"]
        assert lines and lines[0].actor.startswith(f"{getpass.getuser()}@")
        snapshot = await other.snapshot()
        assert next(r for r in snapshot.signals if r.id == "c-1").status is SignalStatus.APPROVED
    finally:
        await one.close()
        await other.close()
    assert core.process is not None and core.process.poll() is None  # detaching never stops the core


async def test_a_restarted_core_comes_back_under_a_remote_client(core: Core) -> None:
    client = RemoteClient(core.socket, max_backoff=0.5)
    changes: list[ConnectionChanged] = []
    seen: list = []
    client.bus.subscribe(lambda e: changes.append(e) if isinstance(e, ConnectionChanged) else seen.append(e))
    try:
        await client.start()
        before = await client.status()
        assert await asyncio.to_thread(core.stop) == 0
        await eventually(lambda: changes, DEADLINE)
        assert changes[0] == ConnectionChanged(False, "core disconnected, reconnecting…")
        assert client.rate_limit() is None
        with pytest.raises(CoreUnreachable):
            await client.snapshot(history=5)

        core.start(signals=[{**OTHER, "id": "c-9"}])
        await eventually(lambda: len(changes) >= 2, DEADLINE)
        assert changes[1].connected is True and len(changes) == 2
        snapshot = await client.snapshot()
        assert {"c-1", "c-2", "c-3"} <= {r.id for r in snapshot.signals}
        assert (await client.status()).pid != before.pid
        # The new core's signal: in that snapshot already, or on the stream after it.
        await eventually(
            lambda: (
                "c-9" in {r.id for r in snapshot.signals}
                or any(isinstance(e, SignalReceived) and e.record.id == "c-9" for e in seen)
            ),
            DEADLINE,
        )
    finally:
        await client.close()


async def test_a_remote_client_with_no_core_says_which_socket_it_tried(workdir: Path) -> None:
    client = RemoteClient(workdir / "none.sock")
    try:
        with pytest.raises(CoreUnreachable, match=f"no core answers on {workdir / 'none.sock'}: no socket there"):
            await client.start()
        with pytest.raises(CoreUnreachable):
            await client.pause()
    finally:
        await client.close()


# -- in this process: a ControlServer over a LocalClient's service ------------------------------


def signal_line(**fields) -> str:
    return json.dumps(NEAR | fields)


async def test_a_foreign_uid_is_refused_with_403_and_audited(local: LocalClient, workdir: Path) -> None:
    service = local.service
    assert service is not None
    path = workdir / "c.sock"
    async with ControlServer(service, path, peer_credentials=lambda request: (4242, 54321, 54321)):
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as http:
            async with http.post(f"{BASE}/v1/command", json={"v": 1, "id": 1, "command": "pause"}) as response:
                assert response.status == 403
                assert (await response.json())["error"]["kind"] == "forbidden"
            with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
                await http.ws_connect(f"{BASE}/v1/events")
            assert handshake.value.status == 403
        remote = RemoteClient(path)
        try:
            with pytest.raises(Forbidden):
                await remote.start()
        finally:
            await remote.close()

    assert service.paused is False
    audit = await service.store.audit()
    assert [a["action"] for a in audit] == ["control_refused"]
    assert audit[0]["detail"] == {"uid": 54321, "gid": 54321, "pid": 4242}
    assert "uid 54321" in audit[0]["actor"] and audit[0]["target"] == "/v1/command"


async def test_a_uid_in_allow_may_command_and_is_named(local: LocalClient, workdir: Path) -> None:
    service = local.service
    assert service is not None
    path = workdir / "c.sock"
    async with ControlServer(service, path, allow=[54321], peer_credentials=lambda request: (7, 54321, 100)):
        assert path.stat().st_mode & 0o777 == 0o666  # a single uid cannot be given the file: the uid check gates
        remote = RemoteClient(path, env={"SSH_CONNECTION": "10.1.2.3 52000 10.0.0.1 22"})
        try:
            await remote.pause()
        finally:
            await remote.close()
    assert service.paused is True
    (entry,) = await service.store.audit()
    host = socket.gethostname()
    assert (entry["action"], entry["actor"]) == ("pause", f"{Peer(7, 54321, 100).user}@{host} from 10.1.2.3")


async def test_a_read_only_client_may_look_but_not_command(local: LocalClient, workdir: Path) -> None:
    service = local.service
    assert service is not None
    await service.receive(signal_line(), source="test")
    path = workdir / "c.sock"
    async with ControlServer(service, path):
        remote = RemoteClient(path, read_only=True)
        try:
            await remote.start()
            assert [r.id for r in (await remote.snapshot()).signals] == ["c-1"]
            assert (await remote.status()).pending_signals == 1
            for command in (remote.pause(), remote.approve("c-1"), remote.kill_switch(), remote.stop_core()):
                with pytest.raises(Forbidden, match="read-only"):
                    await command
        finally:
            await remote.close()
    assert service.paused is False and await service.store.audit() == []
    assert (await service.store.get_signal("c-1")).status is SignalStatus.PENDING


async def test_every_command_of_the_client_api_answers_over_the_socket(local: LocalClient, workdir: Path) -> None:
    service = local.service
    assert service is not None
    await service.receive(signal_line(), source="test")
    await service.receive(json.dumps(FAR), source="test")
    path = workdir / "c.sock"
    async with ControlServer(service, path):
        remote = RemoteClient(path)
        try:
            check = await remote.check_signal_amend("c-1", amount=Decimal("0.02"))
            assert isinstance(check, AmendCheck) and check.ok and check.amount == Decimal("0.02")
            await remote.amend_signal("c-1", amount=Decimal("0.02"))
            assert (await service.store.get_signal("c-1")).amount == Decimal("0.02")
            await remote.reject("c-1", reason="changed my mind")
            with pytest.raises(NeedsConfirmation) as far:
                await remote.approve("c-2")
            assert far.value.subject == "signal c-2"
            await remote.approve("c-2", confirm=True)
            executor = service.executor
            await eventually(
                lambda: any(o.status is OrderStatus.OPEN for o in executor.active_orders.values()), DEADLINE
            )
            coid = next(iter(executor.active_orders))
            assert (await remote.check_order_amend(coid, price=Decimal("30500"))).ok
            with pytest.raises(NeedsConfirmation):
                await remote.amend_order(coid, price=Decimal("31000"))
            await remote.amend_order(coid, price=Decimal("31000"), confirm=True)
            with pytest.raises(Refused, match="nope"):
                await remote.cancel_order("nope")
            await remote.pause()
            await remote.resume()
            result = await remote.kill_switch()
            assert isinstance(result, KillSwitchResult) and result.left_open == 0
            status = await remote.status()
            assert isinstance(status, CoreStatus) and status.paused and status.open == 0
            await remote.stop_core()
            await asyncio.wait_for(service.wait_stopped(), DEADLINE)
        finally:
            await remote.close()
    actions = [a["action"] for a in await service.store.audit()]
    assert actions[:4] == ["amend_signal", "reject", "approve", "amend_order"] and actions[-1] == "stop"


async def test_a_slow_watcher_gets_a_fresh_snapshot_and_never_holds_up_the_core(
    local: LocalClient, workdir: Path
) -> None:
    service = local.service
    assert service is not None
    path = workdir / "c.sock"

    def burst() -> float:
        started = time.perf_counter()
        for i in range(1000):
            service.bus.publish(StateChanged(paused=False, intake_done=bool(i % 2), mode=ExchangeMode.PAPER))
        return time.perf_counter() - started

    async with ControlServer(service, path, queue_limit=5, heartbeat=60):
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as http:
            async with http.ws_connect(f"{BASE}/v1/events", max_msg_size=0) as ws:
                first = json.loads((await ws.receive(timeout=DEADLINE)).data)
                assert (first["type"], first["reason"]) == ("snapshot", "connect")
                assert json.loads((await ws.receive(timeout=DEADLINE)).data)["type"] == "status"

                assert burst() < 0.5  # the bus hands events over and returns; nobody waits for the watcher
                message = json.loads((await ws.receive(timeout=DEADLINE)).data)
                assert (message["type"], message["reason"]) == ("snapshot", "resync")  # nothing stale before it
                events = 0
                with contextlib.suppress(TimeoutError):
                    while json.loads((await ws.receive(timeout=0.5)).data)["type"] == "event":
                        events += 1
                assert events < 5

                burst()  # behind again within seconds: told to reconnect
                while (closing := await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.TEXT:
                    pass
                assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1013
                assert "too slow" in closing.extra
