"""JSONL signals from a file or standard input, one signal per line.

Lines are read in a worker thread so a slow pipe never blocks the event loop. With `follow`, a
file is read as it grows (like `tail -f`) until the service stops. Undecodable bytes do not stop
the source: the line reaches intake as text and is recorded as invalid there.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO


async def read_lines(path: str | Path, *, follow: bool = False, poll: float = 0.25) -> AsyncIterator[str]:
    """Yield each line of `path` ("-" is standard input)."""
    if str(path) == "-":
        async for line in _read_stream(sys.stdin.buffer, follow=False, poll=poll):
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
