"""What a signal source hands to intake: one line of text, and a way to hear that it was recorded.

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


@dataclass(slots=True)
class Line:
    text: str
    error: str | None = None
    on_recorded: Callable[[], None] | None = None

    def recorded(self) -> None:
        callback, self.on_recorded = self.on_recorded, None
        if callback is not None:
            callback()
