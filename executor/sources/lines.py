"""What a signal source hands to intake (one line of text, and a way to hear that it was recorded),
and how bytes are cut into such lines (`LineSplitter`), never holding more than `MAX_LINE` of one.

Sources may yield plain `str` (the demo strategy) or `Line`. A `Line` carries:

- `error`: set when the source itself already knows the line cannot be a signal (a line longer
  than `MAX_LINE` bytes: only its first `MAX_LINE` bytes were read). Intake records it `invalid`
  with that reason and never parses it.
- `on_recorded`: called once, after the line's signal row is committed (or the line was blank).
  A followed file uses it to journal the offset below which every line is recorded, so a restart
  resumes there instead of re-reading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_LINE = 1 << 20  # 1 MiB: a line longer than this is recorded invalid; the rest of it is skipped unread
CHUNK = 64 * 1024  # one read of a file or a pipe
TAIL = 512  # bytes before our offset remembered, to tell a file rewritten past it from one grown
HEAD = 4096  # bytes of an over-long line kept to show (the store keeps 4096 characters of a line)


@dataclass(slots=True)
class Line:
    text: str
    error: str | None = None
    on_recorded: Callable[[], None] | None = None

    def recorded(self) -> None:
        callback, self.on_recorded = self.on_recorded, None
        if callback is not None:
            callback()


# -- cutting bytes into lines ----------------------------------------------------------------------


@dataclass(slots=True)
class Piece:
    """One line cut from the bytes, and where the reader stands just past it."""

    text: str
    error: str | None
    end: int  # the offset just past the line (past its newline, when it has one)
    tail: bytes  # the last TAIL bytes before `end`
    line: int  # the number of the next line


class LineSplitter:
    """Bytes in, whole lines out, never more than MAX_LINE bytes of one line held.

    It also keeps the offset reached, the last TAIL bytes before it and the line number, for the
    journal and for telling a rewritten file from a grown one."""

    def __init__(self, *, offset: int = 0, line: int = 1, tail: bytes = b"") -> None:
        self.offset = offset  # everything before this was fed
        self.line = line  # the number of the line being cut
        self.tail = tail[-TAIL:]
        self._start = offset  # where the line being cut starts
        self._kept = bytearray()  # the line being cut, while it is not over-long
        self._head: bytes | None = None  # an over-long line's first HEAD bytes
        self._length = 0  # an over-long line's length so far

    @property
    def overlong(self) -> bool:
        """The line being cut passed MAX_LINE: the rest of it only needs skipping to its newline."""
        return self._head is not None

    def feed(self, data: bytes) -> list[Piece]:
        pieces = []
        begin = 0
        while (newline := data.find(b"\n", begin)) != -1:
            pieces.append(self._cut(data, begin, newline + 1))
            begin = newline + 1
        self._take(data, begin, len(data))
        return pieces

    def skip(self, count: int, tail: bytes) -> None:
        """`count` more bytes of an over-long line, without a newline, `tail` the last of them."""
        assert self._head is not None
        self.offset += count
        self._length += count
        self.tail = (self.tail + tail)[-TAIL:]

    def flush(self) -> Piece | None:
        """The unfinished line as it is (end of input, or of a file that was replaced)."""
        if self.offset == self._start:
            return None
        return self._emit(newline=False)

    def _cut(self, data: bytes, begin: int, end: int) -> Piece:
        if not self._kept and self._head is None and end - 1 - begin <= MAX_LINE:
            self._advance(data, begin, end)  # the common case: the whole line is in this block
            return self._piece(data[begin:end].decode("utf-8", errors="replace"), None)
        self._take(data, begin, end - 1)
        self._advance(data, end - 1, end)
        return self._emit(newline=True)

    def _take(self, data: bytes, begin: int, end: int) -> None:
        """Bytes of the line being cut, before its newline."""
        if begin == end:
            return
        self._advance(data, begin, end)
        if self._head is not None:
            self._length += end - begin
            return
        self._kept += memoryview(data)[begin:end]
        if len(self._kept) > MAX_LINE:
            self._head, self._length = bytes(self._kept[:HEAD]), len(self._kept)
            self._kept = bytearray()  # let the megabyte go now, not when the line ends

    def _advance(self, data: bytes, begin: int, end: int) -> None:
        self.offset += end - begin
        self.tail = data[end - TAIL:end] if end - begin >= TAIL else (self.tail + data[begin:end])[-TAIL:]

    def _emit(self, *, newline: bool) -> Piece:
        if self._head is None:
            raw = bytes(self._kept) + (b"\n" if newline else b"")
            piece = self._piece(raw.decode("utf-8", errors="replace"), None)
        else:
            piece = self._piece(self._head.decode("utf-8", errors="replace"),
                                too_long(self.line, self._start, self._length))
        self._kept, self._head, self._length = bytearray(), None, 0
        return piece

    def _piece(self, text: str, error: str | None) -> Piece:
        self.line += 1
        self._start = self.offset
        return Piece(text, error, self.offset, self.tail, self.line)


def too_long(line: int, start: int, length: int) -> str:
    limit = f"{MAX_LINE >> 20} MiB" if MAX_LINE % (1 << 20) == 0 else f"{MAX_LINE:,} bytes"
    return (f"line {line} (at byte {start}) is longer than {limit} ({length:,} bytes): "
            f"not read as a signal, skipped to its end")
