"""`tradeconsole ctl submit [FILE or -]` (issue 11, part 3): JSONL over the control socket.

Against a real `run --headless` core (manual approval, paper exchange, no signal file of its own)
unless something must be injected: then a `ControlServer` over a `LocalClient`'s service in this
process. The cores and the CLI helpers are those of `cores.py`.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import aiohttp
import pytest
from helpers import DATA, wait_for

from executor.control import protocol as wire
from executor.control.client import TOO_LONG, LocalClient, SubmitResult
from executor.control.remote import Forbidden, RemoteClient
from executor.control.server import ControlServer
from executor.events import LogLine
from executor.models import SignalStatus
from executor.sources.lines import MAX_LINE

from .cores import BASE, DEADLINE, PYTHON, ROOT, Core, base_env, ctl, exported, local_core, run_cli, signals_taken

VALID = DATA / "signals.valid.jsonl"
INVALID = DATA / "signals.invalid.jsonl"


def limit_buy(sid: str, **extra) -> dict:
    return {
        "id": sid,
        "symbol": "BTC/USDT",
        "side": "buy",
        "amount": 0.001,
        "order_type": "limit",
        "price": 60000,
    } | extra


def jsonl(*signals: dict) -> str:
    return "".join(json.dumps(s) + "\n" for s in signals)


def ids_of(path: Path) -> list[str | None]:
    """The id each non-blank line of `path` carries, as the core reads it (None: no string id)."""
    ids: list[str | None] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            ids.append(None)
            continue
        ids.append(data.get("id") if isinstance(data.get("id"), str) else None)
    return ids


def submit(core: Core, *args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    """`ctl --socket S submit ARGS`, with `stdin` as its standard input when given."""
    if stdin is None:
        return ctl(core, "submit", *args)
    data = stdin.encode() if isinstance(stdin, str) else stdin
    result = subprocess.run(
        [PYTHON, "-m", "console", "ctl", "--socket", str(core.socket), "submit", *args],
        cwd=ROOT,
        env=core.env,
        input=data,
        capture_output=True,
        timeout=DEADLINE,
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def submitted_json(core: Core, *args: str, stdin: str | None = None) -> tuple[int, dict]:
    result = submit(core, "--json", *args, stdin=stdin)
    return result.returncode, json.loads(result.stdout)


def rows(stdout: str) -> tuple[list[tuple[str, str, str]], str]:
    """The printed (id, status, reason) rows and the summary line."""
    *lines, summary = stdout.splitlines()
    parsed = []
    for line in lines:
        match = re.fullmatch(r"(.+?) {2,}(\w+)(?: {2,}(.*))?", line)
        assert match, line
        parsed.append((match[1], match[2], match[3] or ""))
    return parsed, summary


def stored(core: Core) -> list[tuple[str | None, str, str, str]]:
    return [(s["id"], s["status"], s["reason"], s["source"]) for s in exported(core, "signals")]


@pytest.fixture
def core(workdir: Path) -> Iterator[Core]:
    """A core with nothing in its store: every signal there came from `ctl submit`."""
    with Core(workdir).running(signals=()) as core:
        yield core


# -- against a core in a subprocess ------------------------------------------------------------


def test_the_valid_examples_are_pending_exit_0_and_a_resubmission_is_duplicate(core: Core) -> None:
    result = submit(core, str(VALID))
    assert result.returncode == 0, result.stderr
    printed, summary = rows(result.stdout)
    assert [(sid, status) for sid, status, _ in printed] == [(sid, "pending") for sid in ids_of(VALID)]
    assert summary == "4 signals: 4 pending"
    assert len({line.index("pending") for line in result.stdout.splitlines()[:-1]}) == 1  # aligned
    assert stored(core) == [(sid, "pending", reason, "ctl") for sid, _, reason in printed]

    again = submit(core, str(VALID))
    assert again.returncode == 1, again.stderr
    printed, summary = rows(again.stdout)
    assert printed == [(sid, "duplicate", f"id {sid} seen before") for sid in ids_of(VALID)]
    assert summary == "4 signals: 4 duplicate"
    assert [s for s in stored(core) if s[1] == "duplicate"] == [(*p, "ctl") for p in printed]
    assert wait_for(
        lambda: json.loads(ctl(core, "status", "--json").stdout)["pending_signals"] == 4, "4 pending", DEADLINE
    )


def test_the_invalid_examples_exit_1_each_with_its_reason(core: Core) -> None:
    result = submit(core, str(INVALID))
    assert result.returncode == 1 and result.stderr == ""
    printed, summary = rows(result.stdout)
    assert [sid for sid, _, _ in printed] == [sid or "(no id)" for sid in ids_of(INVALID)]
    assert all(status == "invalid" and reason for _, status, reason in printed)
    assert summary == "13 signals: 13 invalid"
    reasons = {sid: reason for sid, _, reason in printed}
    assert "side" in reasons["bad-002"] and "DOGE/EUR" in reasons["bad-012"] and "amout" in reasons["bad-001"]

    code, data = submitted_json(core, str(INVALID))  # the same lines again: invalid again, not duplicate
    assert code == 1 and data["ok"] is False and data["command"] == "submit"
    assert data["results"] == [
        {"id": sid, "status": "invalid", "reason": reason}
        for sid, (_, _, reason) in zip(ids_of(INVALID), printed, strict=True)
    ]
    assert data["counts"] == {"invalid": 13}
    assert stored(core) == 2 * [(r["id"], "invalid", r["reason"], "ctl") for r in data["results"]]


def test_valid_and_invalid_together_exit_1_and_keep_their_order(core: Core, workdir: Path) -> None:
    mixed = workdir / "mixed.jsonl"
    lines = VALID.read_text().splitlines()
    bad = INVALID.read_text().splitlines()
    mixed.write_text("\n".join([lines[0], bad[1], lines[1], bad[10], lines[2]]) + "\n")
    code, data = submitted_json(core, str(mixed))
    assert code == 1
    assert [(r["id"], r["status"]) for r in data["results"]] == [
        ("ex-001", "pending"),
        ("bad-002", "invalid"),
        ("ex-002", "pending"),
        (None, "invalid"),
        ("ex-003", "pending"),
    ]
    assert data["counts"] == {"pending": 3, "invalid": 2}
    assert [(s[0], s[1]) for s in stored(core)] == [(r["id"], r["status"]) for r in data["results"]]


def test_standard_input_blank_lines_skipped(core: Core) -> None:
    text = "\n" + jsonl(limit_buy("in-1")) + "   \n\r\n" + json.dumps(limit_buy("in-2")) + "\r\n\n"
    result = submit(core, stdin=text)
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == ([("in-1", "pending", ""), ("in-2", "pending", "")], "2 signals: 2 pending")
    explicit = submit(core, "-", stdin=json.dumps(limit_buy("in-3")))  # no newline at the end: taken too
    assert (explicit.returncode, rows(explicit.stdout)[1]) == (0, "1 signal: 1 pending"), explicit.stderr
    assert [s[0] for s in stored(core)] == ["in-1", "in-2", "in-3"]


def test_an_empty_input_is_no_signals_and_exit_0(core: Core, workdir: Path) -> None:
    result = submit(core, stdin="\n  \n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "no signals\n", "")
    (workdir / "empty.jsonl").write_text("")
    code, data = submitted_json(core, str(workdir / "empty.jsonl"))
    assert (code, data) == (0, {"ok": True, "command": "submit", "results": [], "counts": {}})
    assert stored(core) == []


def test_three_thousand_lines_go_in_several_batches_in_order(core: Core, workdir: Path) -> None:
    signals = [limit_buy(f"n-{i:04}") if i % 10 else limit_buy(f"n-{i:04}", side="hold") for i in range(3000)]
    path = workdir / "many.jsonl"
    path.write_text(jsonl(*signals))
    assert len(signals) > wire.MAX_SUBMIT_LINES  # one request could not carry them all
    code, data = submitted_json(core, str(path))
    assert code == 1  # every tenth is invalid
    assert [(r["id"], r["status"]) for r in data["results"]] == [
        (s["id"], "pending" if s["side"] == "buy" else "invalid") for s in signals
    ]
    assert data["counts"] == {"pending": 2700, "invalid": 300}
    assert [(s[0], s[1], s[3]) for s in stored(core)] == [(r["id"], r["status"], "ctl") for r in data["results"]]


def test_a_line_longer_than_1_mib_is_invalid_and_its_neighbours_are_not_disturbed(core: Core, workdir: Path) -> None:
    def padded(sid: str, size: int, end: bytes = b"\n") -> bytes:
        head = json.dumps(limit_buy(sid, note=""))[:-2]  # ... "note": "
        line = head.encode() + b"x" * (size - len(head) - 2) + b'"}'
        assert len(line) == size
        return line + end

    path = workdir / "long.jsonl"
    path.write_bytes(
        b"".join(
            [
                jsonl(limit_buy("before")).encode(),
                padded("huge", MAX_LINE + 1),  # one byte too many
                padded("huge-crlf", MAX_LINE + 1, b"\r\n"),
                padded("edge", MAX_LINE, b"\r\n"),  # the most a line may be: read whole, alone in its request
                padded("big", wire.BATCH_BYTES + 1000),  # more than a batch: sent alone
                padded("huge-last", 3 * MAX_LINE, b""),  # and at the end of the file, without a newline
            ]
        )
    )
    code, data = submitted_json(core, str(path))
    assert code == 1
    results = [(r["id"], r["status"], r["reason"]) for r in data["results"]]
    assert results[0] == ("before", "pending", "")
    assert results[1] == results[2] == results[5] == (None, "invalid", TOO_LONG)
    assert "longer than 1 MiB" in TOO_LONG
    # Those sent whole: the core saw every character of them (and has its own limit for a signal).
    for size, result in ((MAX_LINE, results[3]), (wire.BATCH_BYTES + 1000, results[4])):
        assert result[1] == "invalid" and f"{size} characters" in result[2], result
    assert [(s[0], s[1], s[2]) for s in stored(core)] == results


def test_a_core_gone_mid_way_exits_3_and_says_what_was_recorded(core: Core) -> None:
    ctl_submit = [PYTHON, "-m", "console", "ctl", "--socket", str(core.socket), "submit"]
    process = subprocess.Popen(ctl_submit, cwd=ROOT, env=core.env, stdin=PIPE, stdout=PIPE, stderr=PIPE, text=True)
    try:
        assert process.stdin is not None
        # The 501st line closes the first batch, which goes; then the core stops, and the rest has nowhere to go.
        process.stdin.write(jsonl(*(limit_buy(f"m-{i:03}") for i in range(wire.BATCH_LINES + 1))))
        process.stdin.flush()
        wait_for(lambda: signals_taken(core) == wire.BATCH_LINES, "the first batch recorded", DEADLINE)
        assert core.stop() == 0
        process.stdin.write(jsonl(limit_buy("m-late")))
        stdout, stderr = process.communicate(timeout=DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, stderr
    printed = stdout.splitlines()
    assert printed == [f"m-{i:03}  pending" for i in range(wire.BATCH_LINES)]  # no summary: it is not done
    assert str(core.socket) in stderr and f"{wire.BATCH_LINES} signals recorded before" in stderr


def test_no_core_exits_3_naming_the_socket(workdir: Path) -> None:
    missing = workdir / "none.sock"
    result = run_cli("ctl", "--socket", str(missing), "submit", str(VALID), env=base_env(workdir))
    assert result.returncode == 3 and str(missing) in result.stderr and result.stdout == ""
    as_json = run_cli("ctl", "--socket", str(missing), "--json", "submit", str(VALID), env=base_env(workdir))
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["error"]["kind"] == "no_core"
    empty = subprocess.run(
        [PYTHON, "-m", "console", "ctl", "--socket", str(missing), "submit"],
        cwd=ROOT,
        env=base_env(workdir),
        input="",
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert empty.returncode == 3  # even with nothing to send: no core is no core


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_a_file_that_cannot_be_read_exits_2_naming_it(workdir: Path, what: str) -> None:
    path = workdir / "nope.jsonl" if what == "missing" else workdir
    result = run_cli("ctl", "--socket", str(workdir / "none.sock"), "submit", str(path), env=base_env(workdir))
    assert result.returncode == 2 and str(path) in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_submit_takes_one_file_at_most(workdir: Path) -> None:
    result = run_cli("ctl", "submit", "a.jsonl", "b.jsonl", env=base_env(workdir))
    assert result.returncode == 2


def test_an_auto_approving_core_answers_approved_and_exit_0(workdir: Path) -> None:
    with Core(workdir, TRADECONSOLE_APPROVAL__MODE="auto").running(signals=()) as core:
        result = submit(core, stdin=jsonl(limit_buy("auto-1"), limit_buy("auto-2", amount=0.002)))
        assert result.returncode == 0, result.stdout + result.stderr
        printed, summary = rows(result.stdout)
        assert [(sid, status) for sid, status, _ in printed] == [("auto-1", "approved"), ("auto-2", "approved")]
        assert summary == "2 signals: 2 approved"
        wait_for(
            lambda: {o["signal_id"] for o in exported(core, "orders")} == {"auto-1", "auto-2"},
            "an order for each approved signal",
            DEADLINE,
        )


# -- in this process: what a subprocess cannot show --------------------------------------------


async def test_a_read_only_client_may_not_submit(workdir: Path) -> None:
    async with local_core(workdir) as local:
        service = local.service
        assert service is not None
        path = workdir / "c.sock"
        async with ControlServer(service, path):
            remote = RemoteClient(path, read_only=True)
            try:
                with pytest.raises(Forbidden, match="submit: a read-only client cannot command the core"):
                    await remote.submit([json.dumps(limit_buy("ro-1"))])
            finally:
                await remote.close()
        assert await service.store.signals() == []


async def test_the_server_checks_what_a_careless_client_sends(workdir: Path) -> None:
    async with local_core(workdir) as local:
        service = local.service
        assert service is not None
        logged: list[LogLine] = []
        service.bus.subscribe(lambda event: logged.append(event) if isinstance(event, LogLine) else None)
        path = workdir / "c.sock"
        async with (
            ControlServer(service, path),
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as http,
        ):

            async def send(args: dict | None = None, body: bytes | None = None) -> tuple[int, dict]:
                data = (
                    body
                    if body is not None
                    else json.dumps({"v": 1, "id": 9, "command": "submit", "args": args}).encode()
                )
                async with http.post(f"{BASE}/v1/command", data=data) as response:
                    return response.status, await response.json(content_type=None)

            status, answer = await send({"lines": ["{}"] * (wire.MAX_SUBMIT_LINES + 1)})
            assert (status, answer["error"]["kind"]) == (400, "bad_request")
            assert f"at most {wire.MAX_SUBMIT_LINES} lines" in answer["error"]["message"]
            status, answer = await send({"lines": ["{}"], "too_long": [1]})
            assert (status, answer["error"]["kind"]) == (400, "bad_request")
            status, answer = await send({"lines": [7]})
            assert (status, answer["error"]["kind"]) == (400, "bad_request")
            assert await service.store.signals() == []

            # A whole line over MAX_LINE, unmarked: the core cuts and refuses it itself.
            huge = json.dumps(limit_buy("huge-1", note="x" * MAX_LINE))
            status, answer = await send({"lines": [json.dumps(limit_buy("s-1")), huge, "", "oops"]})
            assert status == 200 and answer["ok"] is True
            assert [(r["id"], r["status"]) for r in answer["result"]] == [
                ("s-1", "pending"),
                (None, "invalid"),
                (None, "invalid"),
                (None, "invalid"),
            ]
            assert answer["result"][1]["reason"] == TOO_LONG
            records = await service.store.signals()
            assert [r.source for r in records] == ["ctl"] * 4 and len(records[1].raw) <= 4096

            # Larger than 64 KiB is for submit alone; nothing larger than MAX_SUBMIT_REQUEST.
            status, answer = await send(
                body=json.dumps({"v": 1, "id": 1, "command": "pause", "args": {"pad": "x" * 100_000}}).encode()
            )
            assert status == 413 and "only submit" in answer["error"]["message"] and not service.paused
            status, answer = await send({"lines": ["x" * (wire.MAX_SUBMIT_REQUEST // 2)] * 2})
            assert status == 413 and str(wire.MAX_SUBMIT_REQUEST) in answer["error"]["message"]
            assert len(await service.store.signals()) == 4

            # The Log says who submitted: the source is only "ctl".
            lines = [e.message for e in logged if "submitted over the control socket" in e.message]
            assert (
                lines == [f"4 signals submitted over the control socket: 1 pending, 3 invalid (by {logged[-1].actor})"]
                and "@" in logged[-1].actor
            )


async def test_remote_and_local_clients_submit_alike(workdir: Path) -> None:
    lines = [json.dumps(limit_buy("a-1")), "not json", json.dumps(limit_buy("a-1")), "x" * (MAX_LINE + 1)]
    (workdir / "local").mkdir()
    (workdir / "remote").mkdir()
    async with local_core(workdir / "local") as local:
        assert isinstance(local, LocalClient)
        got_local = await local.submit(lines)
        assert [r.source for r in await local.service.store.signals()] == ["console"] * 4
    async with local_core(workdir / "remote") as other:
        path = workdir / "c.sock"
        async with ControlServer(other.service, path):
            remote = RemoteClient(path)
            try:
                got_remote = await remote.submit(lines)
                assert await remote.submit([]) == []
            finally:
                await remote.close()
    assert got_local == got_remote
    assert got_remote[0] == SubmitResult("a-1", SignalStatus.PENDING, "")
    assert got_remote[1].status is SignalStatus.INVALID and got_remote[1].reason.startswith("not valid JSON")
    assert got_remote[2] == SubmitResult("a-1", SignalStatus.DUPLICATE, "id a-1 seen before")
    assert got_remote[3] == SubmitResult(None, SignalStatus.INVALID, TOO_LONG)
    assert [r.accepted for r in got_remote] == [True, False, False, False]
