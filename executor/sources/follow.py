"""A JSONL file followed as it grows (`[signals] follow = true`): `FollowedFile`, and its place
journaled in the store so that a restart resumes there. A file read once is a `FollowedFile` with
`follow=False`.

Following (poll based, every `poll` seconds at the end of the file; no inotify):
- A partial last line is held until its newline arrives.
- Rotation by rename and re-create: the path names another file (device, inode). The old file is
  read to its end first (a writer may still add to it until it reopens; while the path is missing
  it keeps being read), a partial line left at its end is handed over as it is (recorded
  invalid), then the new file is read from its start.
- Truncation (logrotate's copytruncate): the file is shorter than what was read, or, when it grew
  back past that before we looked, the `TAIL` bytes before our offset are no longer the ones we
  read. Either way: from the start again. The same check follows every read, so that bytes read
  past a rewritten offset are dropped rather than taken for more of the file.

Journal (with follow and a store): the place to resume from is kept in the store's kv table under
`follow:<absolute path>`, as JSON {dev, ino, offset, tail (hex), line}. It is a watermark: the end
of the longest run of lines from the start that intake has all recorded (`Watermark`), because
lines are recorded concurrently and their acknowledgements arrive out of order. Writes are
coalesced (`Journal`): one at a time, always the newest watermark, never awaited by reading. On a
graceful stop the lines handed over are waited for (briefly) and the final watermark is written.
Which file is read is journaled before any line of it. At the next start: the same file (inode;
the device number may differ after a reboot) still holding the same tail bytes -> resume at the
offset; a different file at the path (rotated while we were down) -> the old one is looked up by
device and inode in the same directory and its remainder read first (all of it if it was
rewritten meanwhile), then the new file from its start; the same file rewritten (tail differs, or
shorter) -> from its start.

Accepted loss of exactness: after a kill -9, lines recorded after the last watermark written are
read again and recorded `duplicate` (intake executes nothing twice). A file replaced twice before
one poll loses the middle file's lines, and a truncated file rewritten past our offset with the
same `TAIL` bytes there is not seen as rewritten: polling cannot tell.

Why one module of over 500 lines: following a file is one state machine (identity, offset,
partial line, watermark, rotation, the journaled position) whose parts are only right together;
cutting bytes into lines (`lines.py`) and reading a file once (`jsonl.py`) are already apart.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from executor.sources.lines import CHUNK, TAIL, Line, LineSplitter, Piece

log = logging.getLogger("tradeconsole.sources.follow")

SKIP_BLOCK = 1 << 20  # one read while skipping the rest of an over-long line
SKIP_PER_CALL = 64 << 20  # skipped per worker-thread call at most, so that a stop is heard soon
SETTLE_SECONDS = 2.0  # a stop waits this long at most for the lines handed over to be recorded

ROTATED, TRUNCATED = "rotated", "truncated"


class FlagStore(Protocol):
    async def set_flag(self, key: str, value: str) -> None: ...

    async def get_flag(self, key: str) -> str | None: ...


# -- the journal -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """A place in one file: the file (device, inode), the offset, the bytes just before it, and
    the number of the line that starts there."""

    dev: int
    ino: int
    offset: int
    tail: bytes = b""
    line: int = 1

    def to_json(self) -> str:
        return json.dumps({"dev": self.dev, "ino": self.ino, "offset": self.offset,
                           "tail": self.tail.hex(), "line": self.line})

    @classmethod
    def from_json(cls, text: str) -> Position | None:
        try:
            data = json.loads(text)
            return cls(int(data["dev"]), int(data["ino"]), int(data["offset"]),
                       bytes.fromhex(data.get("tail", "")), int(data.get("line", 1)))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def names(self, st: os.stat_result) -> bool:
        return (st.st_dev, st.st_ino) == (self.dev, self.ino)


class Watermark:
    """The place below which every line handed to intake is recorded.

    Intake records up to 256 lines at once, so acknowledgements come out of order: a line's own
    end is no place to resume from while an earlier line is still in flight. Lines are queued in
    the order they were read; the watermark moves over the acknowledged run at the front."""

    def __init__(self, on_advance: Callable[[Position], None]) -> None:
        self.position: Position | None = None
        self._queue: deque[list] = deque()  # [position, recorded], in reading order
        self._on_advance = on_advance
        self._settled = asyncio.Event()
        self._settled.set()

    def issue(self, position: Position) -> Callable[[], None]:
        """A line ending at `position` is handed over: the callback to call once it is recorded."""
        entry = [position, False]
        self._queue.append(entry)
        self._settled.clear()

        def recorded() -> None:
            entry[1] = True
            self._advance()

        return recorded

    def mark(self, position: Position) -> None:
        """A place reached without a line to record (a new file, a truncated one: its start)."""
        self._queue.append([position, True])
        self._advance()

    async def settled(self, timeout: float) -> bool:
        """Wait until every line handed over is recorded; False if that took longer than `timeout`."""
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _advance(self) -> None:
        moved = False
        while self._queue and self._queue[0][1]:
            self.position = self._queue.popleft()[0]
            moved = True
        if not self._queue:
            self._settled.set()
        if moved and self.position is not None:
            self._on_advance(self.position)


class Journal:
    """A followed file's watermark in the store's kv table, one row per path.

    Writes are coalesced: at most one is in flight, and when it is done the newest watermark (if
    it moved meanwhile) is written next. Reading never waits for a write."""

    def __init__(self, store: FlagStore, path: str | Path) -> None:
        self.key = f"follow:{os.path.abspath(path)}"
        self._store = store
        self._latest: Position | None = None
        self._saved: Position | None = None
        self._writer: asyncio.Task | None = None
        self._warned = False

    async def load(self) -> Position | None:
        text = await self._store.get_flag(self.key)
        if text is None:
            return None
        position = Position.from_json(text)
        if position is None:
            log.warning("the journal of %s is unreadable (%r): reading it from the start", self.key, text[:200])
        self._latest = self._saved = position
        return position

    def save(self, position: Position) -> None:
        self._latest = position
        if self._latest != self._saved and (self._writer is None or self._writer.done()):
            self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"journal:{self.key}")

    async def flush(self) -> None:
        """Until the newest watermark is written (or writing it failed)."""
        while self._latest is not None and self._latest != self._saved:
            if self._writer is None or self._writer.done():
                self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"journal:{self.key}")
            if not await asyncio.shield(self._writer):
                return

    async def _write(self) -> bool:
        """Write the newest watermark until it stays the newest: True, or False if the store failed."""
        while self._latest is not None and self._latest != self._saved:
            position = self._latest
            try:
                await self._store.set_flag(self.key, position.to_json())
            except Exception as exc:  # the store closing under us: the next start re-reads a little
                if not self._warned:
                    log.warning("could not journal the place in %s: %s", self.key, exc)
                    self._warned = True
                return False
            self._saved = position
        return True

# -- a regular file ------------------------------------------------------------------------------


class OpenFile:
    """One regular file, read with pread at an offset of our own: what happens to the file (it
    shrinks, it is rewritten, the path is given to another file) is ours to notice, not hidden
    behind a file position."""

    def __init__(self, path: str | Path, fd: int, st: os.stat_result) -> None:
        self.path = path
        self.fd = fd
        self.dev, self.ino = st.st_dev, st.st_ino
        self.splitter = LineSplitter()

    @classmethod
    def open(cls, path: str | Path) -> OpenFile | None:
        """The file at `path`, or None when there is none (yet)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        return cls(path, fd, os.fstat(fd))

    def position(self, piece: Piece | None = None) -> Position:
        if piece is None:
            s = self.splitter
            return Position(self.dev, self.ino, s.offset, s.tail, s.line)
        return Position(self.dev, self.ino, piece.end, piece.tail, piece.line)

    def start_at(self, position: Position | None) -> None:
        self.splitter = LineSplitter() if position is None else LineSplitter(
            offset=position.offset, line=position.line, tail=position.tail)

    def holds(self, position: Position) -> bool:
        """This is the file `position` is in, still as it was read up to there."""
        st = os.fstat(self.fd)
        if not position.names(st) or st.st_size < position.offset:
            return False
        return self._intact(position.offset, position.tail)

    def continues(self, position: Position) -> bool:
        """`holds`, for a position journaled by an earlier run: a device number may change across
        a reboot or a container restart, so the inode and the bytes before the offset suffice."""
        st = os.fstat(self.fd)
        if st.st_ino != position.ino or st.st_size < position.offset:
            return False
        if st.st_dev != position.dev and not position.tail:
            return False
        return self._intact(position.offset, position.tail)

    def _intact(self, offset: int, tail: bytes) -> bool:
        """The bytes before `offset` are still `tail`: not truncated (and maybe rewritten) since."""
        return not tail or os.pread(self.fd, len(tail), offset - len(tail)) == tail

    def read_block(self) -> tuple[int, bytes, bytes] | None:
        """(bytes skipped, the last TAIL of them, the next block), or None when the file was
        truncated under the read (its bytes may be another file's content: dropped, and the next
        look at the file sees the truncation). (0, b"", b"") is the end of the file.

        The rest of an over-long line is skipped here in the thread, in big reads, until a block
        holds its newline. The check comes after the read: a truncation and a regrowth past our
        offset before the read would otherwise pass for more of the same file."""
        offset, tail = self.splitter.offset, self.splitter.tail
        block = self._read_from(offset)
        return block if self._intact(offset, tail) else None

    def _read_from(self, offset: int) -> tuple[int, bytes, bytes]:
        if not self.splitter.overlong:
            return 0, b"", os.pread(self.fd, CHUNK, offset)
        skipped, last = 0, b""
        while skipped < SKIP_PER_CALL:
            data = os.pread(self.fd, SKIP_BLOCK, offset + skipped)
            if not data or b"\n" in data:
                return skipped, last[-TAIL:], data
            skipped, last = skipped + len(data), data
        return skipped, last[-TAIL:], b""

    def unchanged(self) -> bool:
        """Still as it was read up to our offset: not truncated (nor rewritten) since."""
        return self.holds(self.position())

    def change(self) -> str | None:
        """What became of the file since it was read to its end: ROTATED (the path names another
        file), TRUNCATED (shorter than what was read, or rewritten past it), or None."""
        try:
            st = os.stat(self.path)
        except OSError:
            st = None  # between a rename and the re-create: the old file is still read
        if st is not None and (st.st_dev, st.st_ino) != (self.dev, self.ino):
            return ROTATED
        return None if self.unchanged() else TRUNCATED

    def close(self) -> None:
        os.close(self.fd)


def find_rotated(path: str | Path, position: Position) -> OpenFile | None:
    """The file `position` was in, renamed in the same directory (`signals.jsonl.1`), if it is
    there: the regular file with its device and inode."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        with os.scandir(directory) as scan:
            entries = [e for e in scan if e.inode() == position.ino]
    except OSError:
        return None
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            found = OpenFile.open(entry.path)
        except OSError:
            continue
        if found is not None and (found.dev, found.ino) == (position.dev, position.ino):
            return found
        if found is not None:
            found.close()
    return None


class FollowedFile:
    """The lines of one path: read once, or followed as it grows, is truncated and is rotated."""

    def __init__(
        self,
        path: str | Path,
        *,
        follow: bool = True,
        poll: float = 0.25,
        journal: Journal | None = None,
        idle: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.path = path
        self.follow = follow
        self.poll = poll
        self._journal = journal
        self._watermark = Watermark(journal.save) if journal is not None else None
        self._idle = idle  # how to wait between looks at the file (tests step it by hand)
        self._file: OpenFile | None = None

    async def lines(self) -> AsyncIterator[Line]:
        try:
            async for line in self._start():
                yield line
            while True:
                async for line in self._drain():
                    yield line
                if not self.follow:
                    if (line := self._flush()) is not None:
                        yield line
                    return
                await self._idle(self.poll)
                async for line in self._look():
                    yield line
        except asyncio.CancelledError:
            await self._settle()  # the service stops: what was handed over is being recorded
            raise
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None

    async def _start(self) -> AsyncIterator[Line]:
        """Open the path, and with a journal pick up where the last run stopped: in the same file,
        or first in the one it was renamed to while we were down."""
        saved = await self._journal.load() if self._journal is not None else None
        current = await asyncio.to_thread(OpenFile.open, self.path)
        try:
            resume = saved is not None and current is not None and await asyncio.to_thread(current.continues, saved)
            if saved is not None and not resume:
                if current is None or not await asyncio.to_thread(_names, current, saved):
                    async for line in self._read_rotated_away(saved):
                        yield line
                else:
                    log.info("%s was truncated or rewritten since the last run: reading it from the start",
                             self.path)
            if current is None:
                current = await self._wait_for_file()
        except BaseException:
            if current is not None:
                current.close()
            raise
        current.start_at(saved if resume else None)
        self._file = current
        self._mark()
        if self._journal is not None:
            # Which file is read is journaled before any of it: were it rotated before the first
            # watermark, the next start would not know where to look for its rest.
            await self._journal.flush()

    async def _read_rotated_away(self, saved: Position) -> AsyncIterator[Line]:
        old = await asyncio.to_thread(find_rotated, self.path, saved)
        if old is None:
            log.warning("the file read from %s at the last run is neither there nor renamed in its directory "
                        "any more: its unread lines, if any, are lost; reading what is there now from the start",
                        self.path)
            return
        if await asyncio.to_thread(old.holds, saved):
            log.info("%s was rotated while stopped: reading the rest of %s first", self.path, old.path)
            old.start_at(saved)
        else:
            # Truncated and written again before it was renamed: all of it is unread, or read and
            # recorded already (then recorded `duplicate`, executing nothing twice).
            log.info("%s was rotated while stopped, and %s rewritten before: reading it first, from its start",
                     self.path, old.path)
        self._file = old
        async for line in self._drain():
            yield line
        if (line := self._flush()) is not None:
            yield line
        self._file = None
        old.close()

    async def _wait_for_file(self) -> OpenFile:
        if not self.follow:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(self.path))
        log.warning("signals file %s does not exist yet: waiting for it", self.path)
        while (opened := await asyncio.to_thread(OpenFile.open, self.path)) is None:
            await self._idle(self.poll)
        return opened

    async def _drain(self) -> AsyncIterator[Line]:
        """Every line the current file holds now; a partial last line stays held. Stops early at a
        truncation seen while reading: the next look handles it."""
        file = self._file
        assert file is not None
        while True:
            block = await asyncio.to_thread(file.read_block)
            if block is None:
                return
            skipped, skipped_tail, data = block
            if skipped:
                file.splitter.skip(skipped, skipped_tail)
            if not data:
                if skipped:
                    continue
                return
            for piece in file.splitter.feed(data):
                yield self._line(file, piece)

    async def _look(self) -> AsyncIterator[Line]:
        """At the end of the file, after a pause: has it been truncated or rotated (or both: a
        file truncated, then renamed before we looked)?"""
        file = self._file
        assert file is not None
        change = await asyncio.to_thread(file.change)
        if change is None:
            return
        if change == ROTATED:
            async for line in self._drain():  # what the writer added before it moved on
                yield line
        while not await asyncio.to_thread(file.unchanged):
            log.info("%s was truncated: reading it from the start", file.path)
            if (line := self._flush()) is not None:
                yield line
            file.start_at(None)
            self._mark()
            async for line in self._drain():
                yield line
        if change == ROTATED:
            async for line in self._switch():
                yield line

    async def _switch(self) -> AsyncIterator[Line]:
        """From the old file, read to its end, to the one now at the path, from its start."""
        old = self._file
        assert old is not None
        new = await asyncio.to_thread(OpenFile.open, self.path)
        if new is None or (new.dev, new.ino) == (old.dev, old.ino):
            if new is not None:
                new.close()
            return  # changed again between the look and the open: look again next time
        log.info("%s was rotated: reading the new file from its start", self.path)
        if (line := self._flush()) is not None:
            yield line
        old.close()
        self._file = new
        self._mark()

    def _flush(self) -> Line | None:
        """The partial line at the end of a file that is done with (recorded invalid, or parsed
        when the input simply ended without a newline)."""
        file = self._file
        assert file is not None
        piece = file.splitter.flush()
        return None if piece is None else self._line(file, piece)

    def _line(self, file: OpenFile, piece: Piece) -> Line:
        if self._watermark is None:
            return Line(piece.text, piece.error)
        return Line(piece.text, piece.error, on_recorded=self._watermark.issue(file.position(piece)))

    def _mark(self) -> None:
        if self._watermark is not None and self._file is not None:
            self._watermark.mark(self._file.position())

    async def _settle(self) -> None:
        """On a stop: let the lines handed over finish recording, then write the final watermark."""
        if self._watermark is None or self._journal is None:
            return
        try:
            if not await self._watermark.settled(SETTLE_SECONDS):
                log.warning("stopping with lines of %s not yet recorded: they are read again at the next start",
                            self.path)
            await self._journal.flush()
        except Exception:
            log.exception("could not journal the place in %s at the stop", self.path)


def _names(file: OpenFile, position: Position) -> bool:
    return position.names(os.fstat(file.fd))
