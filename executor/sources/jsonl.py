"""JSONL signals from a file or standard input, one signal per line.

Lines are read in a worker thread so a slow pipe never blocks the event loop. With `follow`, a
file is read as it grows (like `tail -f`) until the service stops. Undecodable bytes do not stop
the source: the line reaches intake as text and is recorded as invalid there.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO


async def read_lines(path: str | Path, *, follow: bool = False, poll: float = 0.25) -> AsyncIterator[str]:
    """Yield each line of `path` ("-" is standard input)."""
    if str(path) == "-":
        async for line in _read_stdin():
            yield line
        return
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        async for line in _read_stream(handle, follow=follow, poll=poll):
            yield line
    finally:
        handle.close()


async def _read_stream(handle: IO[bytes], *, follow: bool, poll: float) -> AsyncIterator[str]:
    pending = b""
    while True:
        chunk = await asyncio.to_thread(handle.readline)
        if not chunk:
            if not follow:
                if pending:
                    yield pending.decode("utf-8", errors="replace")
                return
            await asyncio.sleep(poll)
            continue
        pending += chunk
        if pending.endswith(b"\n"):
            yield pending.decode("utf-8", errors="replace")
            pending = b""


async def _read_stdin() -> AsyncIterator[str]:
    """Standard input through a daemon thread reading the raw descriptor.

    A read blocked on a quiet pipe or terminal must never keep the process from stopping on
    SIGTERM: a worker-pool thread would be joined at exit, and a daemon thread inside
    `sys.stdin.buffer` would hold its lock at shutdown and abort the interpreter.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    fd = sys.stdin.fileno()

    def put(item: bytes | None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:
            pass  # the loop is gone: the process is stopping

    def pump() -> None:
        try:
            while chunk := os.read(fd, 65536):
                put(chunk)
        except OSError:
            pass
        put(None)

    threading.Thread(target=pump, name="stdin-signals", daemon=True).start()
    pending = b""
    while (chunk := await queue.get()) is not None:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            yield raw.decode("utf-8", errors="replace") + "\n"
    if pending:
        yield pending.decode("utf-8", errors="replace")
