"""JSONL signals from a file or standard input, one signal per line.

Owns reading the bytes and cutting them into lines (`read_lines`), for a file read once, a file
followed as it grows (`FollowedFile`, `[signals] follow = true`) and standard input or any other
pipe. Intake (executor/service.py) owns what a line means.

Reading:
- Bytes are read in blocks in a worker thread (a pipe: in a daemon thread, see `_read_pipe`), so
  a slow disk or a quiet pipe never blocks the event loop, and are cut at b"\\n" here.
- A line longer than `MAX_LINE` (1 MiB) is never held: past 1 MiB only its first `HEAD` bytes and
  its length are kept while the reader skips to its newline, and it reaches intake as a `Line`
  with an `error` naming its line number, offset and length (recorded `invalid`, never parsed).
  Memory stays flat whatever the file holds.
- Undecodable bytes do not stop the source: the line reaches intake with U+FFFD in their place
  and is recorded as invalid there.
- Without follow, the file is read once from its start, nothing journaled, and the last line is
  read even without its newline. A path naming a FIFO or a device is read like standard input:
  once, to its end (there is no offset to follow or journal).

Following a file as it grows, and journaling its place: executor/sources/follow.py.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from executor.sources.follow import FlagStore, FollowedFile, Journal
from executor.sources.lines import CHUNK, Line, LineSplitter

PIPE_CHUNKS = 16  # chunks a pipe's reader thread may run ahead of intake: memory stays bounded


async def read_lines(
    path: str | Path, *, follow: bool = False, poll: float = 0.25, store: FlagStore | None = None
) -> AsyncIterator[Line]:
    """Yield each line of `path` ("-" is standard input, read once). With `follow` a regular file
    is read as it grows, across truncation and rotation, and with `store` its place is journaled."""
    if str(path) == "-":
        async for line in _read_stdin():
            yield line
        return
    kind = await asyncio.to_thread(_kind, path)
    if kind == "pipe":  # a FIFO or a device: no offset to keep, read like standard input
        fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
        async for line in _read_pipe(fd, owned=True):
            yield line
        return
    journal = Journal(store, path) if follow and store is not None else None
    async for line in FollowedFile(path, follow=follow, poll=poll, journal=journal).lines():
        yield line


def _kind(path: str | Path) -> str:
    """"file" (also when it does not exist yet) or "pipe"; a directory is refused as `open` would."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file"
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    return "file" if stat.S_ISREG(mode) else "pipe"

# -- pipes -----------------------------------------------------------------------------------------


async def _read_stdin() -> AsyncIterator[Line]:
    """Standard input, read once to its end (see `_read_pipe`)."""
    async for line in _read_pipe(sys.stdin.fileno(), owned=False):
        yield line


async def _read_pipe(fd: int, *, owned: bool) -> AsyncIterator[Line]:
    """A pipe (standard input, a FIFO) through a daemon thread reading the raw descriptor.

    A read blocked on a quiet pipe or terminal must never keep the process from stopping on
    SIGTERM: a worker-pool thread would be joined at exit, and a daemon thread inside
    `sys.stdin.buffer` would hold its lock at shutdown and abort the interpreter. The thread may
    run only PIPE_CHUNKS chunks ahead of intake, so a fast writer cannot fill memory; the thread
    closes an `owned` descriptor itself, because closing it under a blocked read could let the
    number be reused and read from.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    credits = threading.Semaphore(PIPE_CHUNKS)
    stopped = threading.Event()

    def put(item: bytes | None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:
            pass  # the loop is gone: the process is stopping

    def pump() -> None:
        try:
            while chunk := os.read(fd, CHUNK):
                while not credits.acquire(timeout=0.5):
                    if stopped.is_set():
                        return
                put(chunk)
        except OSError:
            pass
        finally:
            if owned:
                os.close(fd)
        put(None)

    threading.Thread(target=pump, name="stdin-signals", daemon=True).start()
    splitter = LineSplitter()
    try:
        while (chunk := await queue.get()) is not None:
            credits.release()
            for piece in splitter.feed(chunk):
                yield Line(piece.text, piece.error)
        if (piece := splitter.flush()) is not None:
            yield Line(piece.text, piece.error)
    finally:
        stopped.set()
