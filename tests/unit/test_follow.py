"""`[signals] follow = true` (executor/sources/follow.py): a JSONL file tailed as it grows, across
truncation, copytruncate and rotation, with its place journaled in the store, and lines longer
than 1 MiB recorded invalid without being held. Every case asserts on the store: every line
written is read exactly once (no `duplicate`, none missing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import eventually, make_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.events import SignalReceived
from executor.models import SignalStatus
from executor.service import TradingService
from executor.sources import attach
from executor.sources.follow import FollowedFile, Journal, Position, Watermark
from executor.sources.jsonl import read_lines
from executor.sources.lines import MAX_LINE, TAIL, LineSplitter

S = SignalStatus
ROOT = Path(__file__).resolve().parents[2]
POLL = 0.01


def signal(n: int) -> bytes:
    """Signal line n: 61 bytes, so the TAIL bytes before any offset hold a whole id."""
    body = {"id": f"f{n:04d}", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def signals(first: int, last: int) -> bytes:
    return b"".join(signal(n) for n in range(first, last + 1))


def ids(first: int, last: int) -> list[str]:
    return [f"f{n:04d}" for n in range(first, last + 1)]


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def follow_settings(path: Path):
    return make_settings(execution={"retry_delay_seconds": 0.01}, signals={"jsonl": str(path), "follow": True})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """The followed file (its rotations go beside it, in the same directory)."""
    return tmp_path / "signals.jsonl"


@contextlib.asynccontextmanager
async def following(
    db_path: Path, path: Path, *, source: str | None = "follow", idle=asyncio.sleep
) -> AsyncIterator[TradingService]:
    """A manual-mode core on the paper exchange of the default settings (signals stay pending),
    reading `path` with its own FollowedFile (`source="follow"`, `idle` between looks), or as
    `run` does (`"attach"`: the journal in the service's store), or not at all (None); closed after."""
    service = await TradingService.open(follow_settings(path), db_path, actor="ops@desk", poll_interval=0.02)
    await service.start()
    try:
        if source == "follow":
            follow(service, path, idle=idle)
        elif source == "attach":
            attach(service, service.settings)
        yield service
    finally:
        await service.close()


def follow(service: TradingService, path: Path, *, idle=asyncio.sleep) -> None:
    reader = FollowedFile(path, poll=POLL, journal=Journal(service.store, path), idle=idle)
    service.add_source(reader.lines(), name=f"jsonl:{path}")


async def run_to_end(db_path: Path, path: Path, source: str = "follow") -> None:
    """One run of the core that reads `path` to its end (journaled), then stops."""
    async with following(db_path, path, source=source) as service:
        await settled(service, path)


def received_ids(service: TradingService) -> list[str]:
    """The ids of the signals the service receives from now on, as they arrive."""
    received: list[str] = []
    service.bus.subscribe(lambda e: received.append(e.record.id) if isinstance(e, SignalReceived) else None)
    return received


def journal_key(path: Path) -> str:
    return f"follow:{os.path.abspath(path)}"


async def journaled(service: TradingService, path: Path) -> dict | None:
    text = await service.store.get_flag(journal_key(path))
    return None if text is None else json.loads(text)


async def settled(service: TradingService, path: Path, timeout: float = 30.0) -> None:
    """Until the journal says every line up to the end of the file now at `path` is recorded: from
    then on nothing read so far can still turn up in the store."""

    async def at_the_end() -> bool:
        saved, st_ = await journaled(service, path), os.stat(path)
        return bool(saved) and (saved["dev"], saved["ino"], saved["offset"]) == (st_.st_dev, st_.st_ino, st_.st_size)

    await eventually(at_the_end, timeout, what=f"the journal to reach the end of {path}")


async def assert_read_once(service: TradingService, path: Path, expected: list[str]) -> None:
    """Once the journal has reached the end of `path`: every line read exactly once, all pending."""
    await settled(service, path)
    rows = await service.store.signals()
    assert [r.id for r in rows if r.status is S.DUPLICATE] == []
    assert [(r.raw, r.reason) for r in rows if r.status is S.INVALID] == []
    assert sorted(r.id for r in rows) == sorted(expected)
    assert all(r.status is S.PENDING for r in rows)


class Steps:
    """An `idle` for FollowedFile that waits for the test, so that what happens to the file between
    two looks is the test's to decide, not the clock's."""

    def __init__(self) -> None:
        self.parks = 0
        self.released = 0
        self._changed = asyncio.Condition()

    async def idle(self, seconds: float) -> None:
        async with self._changed:
            self.parks += 1
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self.released >= self.parks)

    async def parked(self) -> None:
        """Until the reader has read all there is and waits to look again."""
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(lambda: self.parks > self.released)

    async def step(self) -> None:
        """Let the reader look at the file once more and read what is there; back once it waits again."""
        await self.parked()
        async with asyncio.timeout(10), self._changed:
            self.released += 1
            target = self.released
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self.parks > target)


@pytest.fixture
def steps() -> Steps:
    return Steps()


async def test_lines_appended_while_followed_are_read_once(db_path, path):
    path.write_bytes(signals(1, 3))
    async with following(db_path, path) as service:
        await settled(service, path)
        append(path, signals(4, 5))
        append(path, signals(6, 7))
        await assert_read_once(service, path, ids(1, 7))


async def test_a_partial_line_is_held_until_its_newline_arrives(db_path, path, steps):
    path.write_bytes(signal(1) + signal(2)[:20])
    async with following(db_path, path, idle=steps.idle) as service:
        await steps.step()
        await steps.step()  # looked at twice with the half line there: still nothing of it handed over
        append(path, signal(2)[20:40])
        await steps.step()
        append(path, signal(2)[40:] + signal(3))
        await steps.step()
        await assert_read_once(service, path, ids(1, 3))  # no invalid row: no half line was handed over


async def test_a_file_truncated_to_zero_is_read_again_from_its_start(db_path, path):
    path.write_bytes(signals(1, 3))
    async with following(db_path, path) as service:
        await settled(service, path)
        os.truncate(path, 0)
        append(path, signals(4, 5))  # shorter than before
        await assert_read_once(service, path, ids(1, 5))


async def test_copytruncate_loses_and_repeats_nothing(db_path, path):
    path.write_bytes(signals(1, 4))
    async with following(db_path, path) as service:
        await settled(service, path)
        shutil.copyfile(path, path.with_name("signals.jsonl.1"))  # logrotate's copytruncate
        os.truncate(path, 0)
        append(path, signals(5, 6))
        await settled(service, path)
        append(path, signals(7, 12))  # now longer than before the truncation
        await assert_read_once(service, path, ids(1, 12))


async def test_copytruncate_and_regrowth_past_our_offset_before_the_next_look(db_path, path, steps):
    """The file is already longer again than what was read when the reader looks: only the bytes
    before its offset, no longer the ones it read, tell it the file was rewritten."""
    path.write_bytes(signals(1, 2))
    async with following(db_path, path, idle=steps.idle) as service:
        await steps.parked()
        await settled(service, path)
        shutil.copyfile(path, path.with_name("signals.jsonl.1"))
        os.truncate(path, 0)
        append(path, signals(3, 7))
        assert path.stat().st_size > 2 * len(signal(1))
        await steps.step()
        await assert_read_once(service, path, ids(1, 7))


async def test_a_file_truncated_and_regrown_during_a_read_is_not_taken_for_more_of_it(path):
    """The check comes after the read: what it read past a rewritten offset is dropped."""
    path.write_bytes(signals(1, 2))
    reader = FollowedFile(path, poll=POLL)
    got = []

    async def consume():
        async for line in reader.lines():
            got.append(line.text)

    task = asyncio.create_task(consume())
    try:
        await eventually(lambda: len(got) == 2)
        file = reader._file
        os.truncate(path, 0)
        append(path, signals(3, 6))
        assert file.read_block() is None
        await eventually(lambda: len(got) == 6)
        assert got == [signal(n).decode() for n in range(1, 7)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_rename_and_recreate_reads_the_old_file_to_its_end_then_the_new_one(db_path, path):
    """The issue's case: 3 of 6 read before the fix."""
    path.write_bytes(signals(1, 3))
    old = path.with_name("signals.jsonl.1")
    async with following(db_path, path) as service:
        await settled(service, path)
        os.rename(path, old)
        append(old, signal(4))  # the writer has not switched yet
        path.write_bytes(signals(5, 6))
        await assert_read_once(service, path, ids(1, 6))
        saved = await journaled(service, path)
        assert (saved["ino"], saved["offset"]) == (path.stat().st_ino, path.stat().st_size)


async def test_the_old_file_is_still_read_while_the_path_is_missing(db_path, path):
    old = path.with_name("signals.jsonl.1")
    path.write_bytes(signals(1, 2))
    async with following(db_path, path) as service:
        received = received_ids(service)
        await settled(service, path)
        os.rename(path, old)
        append(old, signal(3))
        await eventually(lambda: "f0003" in received)  # read from the old file, the path missing meanwhile
        append(old, signal(4))
        await eventually(lambda: "f0004" in received)
        path.write_bytes(signals(5, 6))
        await assert_read_once(service, path, ids(1, 6))


async def test_a_partial_line_left_in_a_rotated_file_is_recorded_invalid_as_it_is(db_path, path, steps):
    path.write_bytes(signal(1) + signal(2)[:30])
    async with following(db_path, path, idle=steps.idle) as service:
        await steps.parked()
        os.rename(path, path.with_name("signals.jsonl.1"))
        path.write_bytes(signal(3))
        await steps.step()
        await settled(service, path)
        rows = await service.store.signals()
        assert [r.id for r in rows if r.status is S.PENDING] == ["f0001", "f0003"]
        [invalid] = [r for r in rows if r.status is S.INVALID]
        assert invalid.raw == signal(2)[:30].decode()


async def test_a_restart_resumes_where_the_last_run_stopped(db_path, path):
    path.write_bytes(signals(1, 3))
    await run_to_end(db_path, path, "attach")  # as `run` does: the journal in the service's store
    append(path, signals(4, 5))
    async with following(db_path, path, source="attach") as second:
        await assert_read_once(second, path, ids(1, 5))  # 1 to 3 not read again: no duplicate rows
        rows = await second.store.signals()
        assert {r.source for r in rows} == {f"jsonl:{path}"}


async def test_a_stop_journals_the_lines_recorded_while_it_stops(db_path, path):
    """Lines read just before the stop are recorded while the source stops: their place is journaled
    before the store closes, so the next start reads none of them again."""
    path.write_bytes(b"")
    async with following(db_path, path) as first:
        received = received_ids(first)
        append(path, signals(1, 2000))
        await eventually(lambda: len(received) >= 10)
    # most likely closed mid-way: whatever was read is recorded, and journaled
    async with following(db_path, path) as second:
        await assert_read_once(second, path, ids(1, 2000))


async def test_a_rotation_while_stopped_reads_the_rest_of_the_old_file_first(db_path, path):
    path.write_bytes(signals(1, 3))
    await run_to_end(db_path, path, "attach")
    append(path, signals(4, 5))  # never read by the first run
    os.rename(path, path.with_name("signals.jsonl.1"))
    path.write_bytes(signals(6, 7))
    async with following(db_path, path, source="attach") as second:
        await assert_read_once(second, path, ids(1, 7))


async def test_a_file_rewritten_while_stopped_is_read_from_its_start(db_path, path):
    path.write_bytes(signals(1, 2))
    await run_to_end(db_path, path)
    with path.open("r+b") as f:  # same file, other content, longer than what was read
        f.write(signals(3, 6))
    async with following(db_path, path) as second:
        await assert_read_once(second, path, ids(1, 6))


async def test_a_gigabyte_line_is_recorded_invalid_and_intake_goes_on(db_path, path):
    with path.open("wb") as f:  # sparse: a gigabyte of NULs that takes no disk and no time to write
        f.truncate(1 << 30)
        f.seek(0, os.SEEK_END)
        f.write(b"\n" + signal(1))
    async with following(db_path, path, source=None) as service:
        tracemalloc.start()
        try:
            follow(service, path)
            await settled(service, path, timeout=120)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    async with following(db_path, path, source=None) as service:
        invalid, valid = await service.store.signals()
    assert invalid.status is S.INVALID and "longer than 1 MiB" in invalid.reason, invalid.reason
    assert "line 1" in invalid.reason and f"{1 << 30:,} bytes" in invalid.reason
    assert len(invalid.raw) <= 4096
    assert valid.status is S.PENDING and valid.id == "f0001"
    assert peak < 50 << 20, f"{peak / (1 << 20):.1f} MiB"


STDIN_CHILD = r"""
import asyncio, json, tracemalloc
from executor.sources.jsonl import read_lines

async def main():
    tracemalloc.start()
    lines = [{"text": line.text[:100], "error": line.error} async for line in read_lines("-")]
    print(json.dumps({"lines": lines, "peak": tracemalloc.get_traced_memory()[1]}))

asyncio.run(main())
"""


def test_an_over_long_line_on_standard_input_is_reported_and_not_held():
    child = subprocess.Popen(
        [sys.executable, "-c", STDIN_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
    )
    block = b"x" * (1 << 20)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError):
            child.stdin.write(signal(1))
            for _ in range(256):  # 256 MiB on one line
                child.stdin.write(block)
            child.stdin.write(b"\n" + signal(2) + b"tail without newline")
        child.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = child.stdout.read()
    assert child.wait(timeout=120) == 0
    writer.join(timeout=3)
    result = json.loads(out)
    first, long, second, last = result["lines"]
    assert first == {"text": signal(1).decode(), "error": None}
    assert long["text"] == "x" * 100
    assert "line 2" in long["error"] and "longer than 1 MiB" in long["error"]
    assert f"{256 << 20:,} bytes" in long["error"]
    assert second == {"text": signal(2).decode(), "error": None}
    assert last == {"text": "tail without newline", "error": None}
    assert result["peak"] < 50 << 20, f"{result['peak'] / (1 << 20):.1f} MiB"


async def test_without_follow_the_file_is_read_once_to_its_last_unterminated_line(tmp_path):
    path = tmp_path / "signals.jsonl"
    path.write_bytes(signal(1) + b"\n" + b"z" * (MAX_LINE + 1) + b"\n" + signal(2)[:-1])
    lines = [line async for line in read_lines(path)]
    assert [line.text for line in lines] == [signal(1).decode(), "\n", "z" * 4096, signal(2)[:-1].decode()]
    assert [bool(line.error) for line in lines] == [False, False, True, False]
    assert "line 3 (at byte 63)" in lines[2].error


async def test_a_named_pipe_is_read_like_standard_input(tmp_path):
    fifo = tmp_path / "signals.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("wb") as f:
            f.write(signals(1, 2) + b"x" * (MAX_LINE + 10) + b"\n" + signal(3))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    lines = [line async for line in read_lines(fifo, follow=True)]
    writer.join(timeout=10)
    assert [line.text for line in lines if not line.error] == [signal(n).decode() for n in (1, 2, 3)]
    assert [bool(line.error) for line in lines] == [False, False, True, False]


async def test_a_journal_from_before_a_device_number_changed_still_resumes(tmp_path):
    """After a reboot or in a new container the same file may have another st_dev: its inode and
    the bytes before the offset still say it is the file, read up to there."""
    path = tmp_path / "signals.jsonl"
    path.write_bytes(signals(1, 3))
    st_ = path.stat()
    flags = MemoryFlags()
    journal = Journal(flags, path)
    offset = 2 * len(signal(1))
    flags.flags[journal.key] = Position(st_.st_dev + 1, st_.st_ino, offset, signals(1, 2)[-TAIL:], 3).to_json()
    reader = FollowedFile(path, follow=False, journal=journal)
    lines = [line async for line in reader.lines()]
    assert [line.text for line in lines] == [signal(3).decode()]


# -- the parts -------------------------------------------------------------------------------------


def test_a_line_of_max_line_bytes_is_a_line_and_one_byte_more_is_not():
    splitter = LineSplitter()
    exact, over = b"a" * MAX_LINE + b"\n", b"b" * (MAX_LINE + 1) + b"\n"
    pieces = splitter.feed(exact + over + b"c\n")
    assert [p.error is None for p in pieces] == [True, False, True]
    assert pieces[0].text == exact.decode() and pieces[1].text == "b" * 4096
    assert [p.end for p in pieces] == [len(exact), len(exact) + len(over), len(exact) + len(over) + 2]
    assert "line 2" in pieces[1].error and f"{MAX_LINE + 1:,} bytes" in pieces[1].error


@given(
    data=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\xff", "é".encode(), b"x" * 70]), max_size=60),
    cuts=st.lists(st.integers(0, 4000), max_size=10),
)
def test_the_same_lines_whatever_the_blocks_they_arrive_in(data, cuts):
    raw = b"".join(data)
    splitter = LineSplitter()
    pieces = []
    begin = 0
    for cut in [*sorted(c for c in cuts if c <= len(raw)), len(raw)]:
        pieces += splitter.feed(raw[begin:cut])
        begin = max(begin, cut)
    last = splitter.flush()
    expected = [line + b"\n" for line in raw.split(b"\n")[:-1]]
    assert [p.text for p in pieces] == [line.decode("utf-8", errors="replace") for line in expected]
    ends = [sum(len(line) for line in expected[: i + 1]) for i in range(len(expected))]
    assert [p.end for p in pieces] == ends
    assert [p.tail for p in pieces] == [raw[max(0, end - TAIL) : end] for end in ends]
    rest = raw.split(b"\n")[-1]
    assert (last.text if last else "") == rest.decode("utf-8", errors="replace")
    assert splitter.offset == len(raw) and splitter.tail == raw[-TAIL:]


async def test_the_watermark_moves_only_over_a_run_of_recorded_lines():
    saved = []
    watermark = Watermark(saved.append)
    positions = [Position(1, 2, offset) for offset in (10, 20, 30, 40)]
    callbacks = [watermark.issue(p) for p in positions]
    callbacks[2]()
    callbacks[1]()
    assert saved == []  # the first line is still in flight
    callbacks[0]()
    assert saved == [positions[2]]
    watermark.mark(Position(1, 3, 0))  # a new file, queued behind the line still in flight
    assert saved == [positions[2]]
    callbacks[3]()
    assert saved[-1] == Position(1, 3, 0)
    assert await watermark.settled(0.1)


class SlowFlags:
    """A store whose writes wait for the test."""

    def __init__(self) -> None:
        self.flags: dict[str, str] = {}
        self.writes: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = asyncio.Event()

    async def set_flag(self, key: str, value: str) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await self.gate.wait()
        self.flags[key] = value
        self.writes.append(value)
        self.in_flight -= 1

    async def get_flag(self, key: str) -> str | None:
        return self.flags.get(key)


async def test_the_journal_writes_one_at_a_time_and_the_newest_last():
    store = SlowFlags()
    journal = Journal(store, "signals.jsonl")
    for offset in range(1, 101):
        journal.save(Position(1, 2, offset))
        await asyncio.sleep(0)
    store.gate.set()
    await journal.flush()
    assert store.most_in_flight == 1
    assert len(store.writes) == 2  # the first, then the newest once it was done
    assert Position.from_json(store.flags[journal.key]) == Position(1, 2, 100)


# -- the property ----------------------------------------------------------------------------------


class MemoryFlags:
    def __init__(self) -> None:
        self.flags: dict[str, str] = {}

    async def set_flag(self, key: str, value: str) -> None:
        await asyncio.sleep(0)
        self.flags[key] = value

    async def get_flag(self, key: str) -> str | None:
        return self.flags.get(key)


class Scenario:
    """A writer doing what writers and logrotate do to a followed file, and the reader following it
    (stopped and started again at times, its journal kept in `flags`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "signals.jsonl"
        self.path.write_bytes(b"")
        self.flags = MemoryFlags()
        self.written: list[str] = []  # whole lines, in the order they were completed
        self.got: list[tuple[str, str | None]] = []
        self.partial: bytes | None = None  # the rest of a line half written
        self.n = 0
        self.rotations = 0
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start a reader, and wait until it has journaled which file it reads (a reader stopped
        before that cannot know, at its next start, that the file was rotated meanwhile)."""
        self.task = asyncio.create_task(self._consume())
        await eventually(lambda: self.flags.flags or self.task.done(), timeout=20)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _consume(self) -> None:
        reader = FollowedFile(self.path, poll=0.002, journal=Journal(self.flags, self.path))
        async for line in reader.lines():
            self.got.append((line.text, line.error))
            line.recorded()

    async def caught_up(self) -> None:
        await eventually(lambda: len(self.got) >= len(self.written), timeout=10)

    def line(self) -> bytes:
        self.n += 1
        return signal(self.n)

    def write(self, path: Path, count: int = 1) -> None:
        lines = [self.line() for _ in range(count)]
        append(path, b"".join(lines))
        self.written += [line.decode() for line in lines]

    def rotated(self) -> Path:
        self.rotations += 1
        return self.directory / f"signals.jsonl.{self.rotations}"

    async def apply(self, op: str, cut: int) -> None:
        if op == "partial" and self.partial is None:
            line = self.line()
            append(self.path, line[:cut])
            self.partial = line[cut:]
            return
        if self.partial is not None and op != "restart":  # the writer finishes its line first
            append(self.path, self.partial)
            self.written.append(signal(self.n).decode())
            self.partial = None
        if op in ("partial", "complete"):
            return
        if op == "append":
            self.write(self.path)
        elif op == "burst":
            self.write(self.path, 5)
        elif op == "restart":
            await self.stop()
            await self.start()
        elif op == "rotate_while_stopped":
            # The reader has seen the last rotation (a file replaced twice before a look loses the
            # middle one's lines, by design), then stops with lines left unread.
            await self.caught_up()
            await self.stop()
            self.write(self.path)  # never read before the rotation
            os.rename(self.path, self.rotated())
            self.write(self.path)
            await self.start()
        else:
            await self.caught_up()  # what is lost to a truncation is not ours to find
            await self.destroy(op)

    async def destroy(self, op: str) -> None:
        if op == "truncate":
            os.truncate(self.path, 0)
        elif op in ("copytruncate", "regrow"):
            size = self.path.stat().st_size
            shutil.copyfile(self.path, self.rotated())
            os.truncate(self.path, 0)
            if op == "regrow":  # past the old offset at once, likely before the reader looks
                self.write(self.path, size // len(signal(1)) + 2)
        elif op == "rename":
            old = self.rotated()
            os.rename(self.path, old)
            self.write(old)
            self.write(self.path)
        elif op == "rename_gap":
            old = self.rotated()
            os.rename(self.path, old)
            self.write(old)
            await self.caught_up()  # read while the path is missing
            self.write(self.path)


OPS = [
    "append",
    "burst",
    "partial",
    "complete",
    "truncate",
    "copytruncate",
    "regrow",
    "rename",
    "rename_gap",
    "restart",
    "rotate_while_stopped",
]


@settings(max_examples=100)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(1, 60)), min_size=1, max_size=12))
def test_every_line_is_read_exactly_once_whatever_happens_to_the_file(ops):
    async def run(directory: Path) -> Scenario:
        scenario = Scenario(directory)
        await scenario.start()
        try:
            for op, cut in ops:
                await scenario.apply(op, cut)
            await scenario.apply("complete", 0)
            await scenario.caught_up()
        finally:
            await scenario.stop()
        return scenario

    directory = Path(tempfile.mkdtemp(prefix="follow"))
    try:
        scenario = asyncio.run(run(directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert [error for _, error in scenario.got if error] == []
    assert [text for text, _ in scenario.got] == scenario.written
