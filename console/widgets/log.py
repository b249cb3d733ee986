"""The Log pane: retries and errors, newest at the bottom (time, level, attempt n/max, delay, reason)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import count

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from console import formatting as f
from console.formatting import Cell
from console.state import LogEntry
from console.widgets.table.widget import Column, KeyedTable

LEVEL_STYLE = {"info": "muted", "warning": "warning", "retry": "warning", "error": "error"}


class LogTable(KeyedTable[LogEntry]):
    BINDINGS = [Binding("enter", "select_cursor", "open whole", id="log.open")]
    COLUMNS = (
        Column("time", "time", 8),
        Column("level", "level", 7),
        Column("attempt", "try", 3, justify="right", wide_only=True),
        Column("delay", "next", 5, justify="right", wide_only=True),
        Column("reason", "reason", 20, flex=True, wrap=True),  # long reasons wrap; enter opens one whole
    )

    def __init__(self, *, id: str | None = None, limit: int = 500) -> None:
        super().__init__(id=id)
        self.limit = limit
        self._keys = count()
        self.border_title = "Log"

    def cells(self, item: LogEntry) -> dict[str, Cell]:
        reason = item.reason
        if self.compact and item.attempt:
            reason = f"{item.attempt}, next in {item.delay}: {reason}"
        return {
            "time": ((f.hms(item.ts), "muted"),),
            "level": ((item.level, LEVEL_STYLE.get(item.level, "plain")),),
            "attempt": item.attempt,
            "delay": item.delay.replace(".00s", "s"),
            "reason": reason,
        }

    def append(self, entries: Iterable[LogEntry]) -> None:
        following = not self.has_focus or self.cursor_row >= self.row_count - 1
        # Older ones than the last `limit` would leave at once: never measured nor drawn.
        self.upsert_many([(str(next(self._keys)), entry) for entry in list(entries)[-self.limit:]])
        if len(self.items) > self.limit:
            self.discard_many(list(self.items)[: len(self.items) - self.limit])
        if following and self.row_count:
            self.select(next(reversed(self.items)))
        errors = sum(1 for e in self.items.values() if e.level == "error")
        self.show_summary(f"{errors} error{'s' if errors != 1 else ''} · enter: full line" if errors else (
            "enter: full line" if self.items else ""))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        entry = self.items.get(event.row_key.value or "")
        if entry is not None:
            event.stop()
            detail = f"attempt {entry.attempt}, next in {entry.delay}\n\n" if entry.attempt else ""
            self.post_message(self.Opened(f"{f.hms(entry.ts)} {entry.level}", f"{detail}{entry.reason}"))

    @dataclass
    class Opened(Message):
        """The operator asked for one line whole (enter)."""

        title: str
        text: str
