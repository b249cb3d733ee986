"""Where each key sits in a TOML config file: `tomllib` reports no positions, so they are scanned.

This module owns `key_lines` (the 1-based line of every table and key in the text) and `line_of`
(the line of a pydantic error location, by its longest known prefix), which put a file and line
on each configuration problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# tomllib reports no positions, so lines are found by scanning the text: table headers set the
# current table, `key =` lines record `table + key`. Multi-line arrays, inline tables and
# multi-line strings are skipped over so that their contents are not taken for keys.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEY_LINE_RE = re.compile(rf"^\s*({_DOTTED})\s*=")
_KEY_PART_RE = re.compile(_KEY_PART)


def _split_dotted(dotted: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _KEY_PART_RE.findall(dotted))


class _ValueScanner:
    """Tracks whether a line starts inside a multi-line value (open brackets or a ''' string)."""

    def __init__(self) -> None:
        self.depth = 0
        self.ml_quote: str | None = None

    @property
    def inside(self) -> bool:
        return self.depth > 0 or self.ml_quote is not None

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self.ml_quote is not None:
                end = text.find(self.ml_quote, i)
                if end < 0:
                    return
                i = end + 3
                self.ml_quote = None
                continue
            ch = text[i]
            if ch == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.ml_quote = text[i : i + 3]
                i += 3
                continue
            if ch in "\"'":
                i += 1
                while i < n and text[i] != ch:
                    i += 2 if ch == '"' and text[i] == "\\" else 1
            elif ch in "[{":
                self.depth += 1
            elif ch in "]}":
                self.depth = max(0, self.depth - 1)
            i += 1


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    scanner = _ValueScanner()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if scanner.inside:
            scanner.feed(line)
            continue
        header = _HEADER_RE.match(line)
        if header:
            table = _split_dotted(header.group(1))
            path = table
            rest = ""
        else:
            key = _KEY_LINE_RE.match(line)
            if not key:
                continue
            path = table + _split_dotted(key.group(1))
            rest = line[key.end() :]
        for n in range(1, len(path) + 1):
            lines.setdefault(path[:n], lineno)
        scanner.feed(rest)
    return lines


def line_of(lines: Mapping[tuple[str, ...], int], loc: Iterable[Any]) -> int | None:
    path: list[str] = []
    for part in loc:
        if not isinstance(part, str) or part == "[key]":
            break
        path.append(part)
    # Longest known prefix: a bad item of `markets` points at the `markets =` line.
    for n in range(len(path), 0, -1):
        line = lines.get(tuple(path[:n]))
        if line is not None:
            return line
    return None
