"""`KeyedTable`: a `DataTable` that is a view of models keyed by stable ids, never their source.

Rows are upserted by key (client order id, signal id). Each row's cells are computed from its
model as plain data (`formatting.Cell`) and compared with what is on screen, so only cells that
really changed are repainted, with `update_cell(..., update_width=False)`: column widths are fixed
and never re-measured. A table too narrow for all its columns drops the secondary ones
(`Column.wide_only`) by itself, and a `flex` column takes whatever width is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual.coordinate import Coordinate
from textual.events import Resize
from textual.reactive import reactive
from textual.theme import Theme
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from console.formatting import Cell, CellStyles, to_text

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    justify: str = "left"
    wide_only: bool = False  # dropped when the table is too narrow for every column
    flex: bool = False  # takes the width that is left (at least `width`)
    narrow: int | None = None  # width when the table is too narrow (default: `width`)
    keep_end: bool = False  # cut from the left when too long: ids differ at their end
    narrow_label: str | None = None

    def width_for(self, compact: bool) -> int:
        return self.narrow if compact and self.narrow is not None else self.width


class KeyedTable(DataTable, Generic[T]):
    COLUMNS: ClassVar[tuple[Column, ...]] = ()

    compact: reactive[bool] = reactive(False, init=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        # "renderable": the selected row keeps its colours (buy, sell, warnings) under the cursor.
        super().__init__(id=id, classes=classes, cursor_type="row", cell_padding=1,
                         cursor_foreground_priority="renderable")
        self.items: dict[str, T] = {}
        self._cells: dict[str, dict[str, Cell]] = {}
        self._shown: tuple[Column, ...] = ()
        self._flex_width = 0
        self._cell_styles: CellStyles | None = None
        self.now: datetime = datetime.now(UTC)

    # -- what a subclass provides -------------------------------------------------------------

    def cells(self, item: T) -> dict[str, Cell]:
        """Every column's cell for `item` (narrow or not), keyed by column key."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self.rebuild()

    def _theme_changed(self, _theme: Theme) -> None:
        self._cell_styles = None
        self.rebuild()

    def on_resize(self, _event: Resize) -> None:
        width = self.size.width - 1  # the vertical scrollbar's column, kept free whether shown or not
        needed = sum(c.width + 2 * self.cell_padding for c in self.COLUMNS)
        compact = width < needed
        flex = self._flex_for(width, compact)
        if compact != self.compact or flex != self._flex_width:
            self._flex_width = flex
            self.set_reactive(KeyedTable.compact, compact)
            self.rebuild()

    def watch_compact(self) -> None:
        self.rebuild()

    def _flex_for(self, width: int, compact: bool) -> int:
        columns = [c for c in self.COLUMNS if not (compact and c.wide_only)]
        fixed = sum(c.width_for(compact) + 2 * self.cell_padding for c in columns if not c.flex)
        flex = next((c for c in columns if c.flex), None)
        if flex is None:
            return 0
        return max(flex.width_for(compact), width - fixed - 2 * self.cell_padding)

    @property
    def cell_styles(self) -> CellStyles:
        if self._cell_styles is None:
            self._cell_styles = CellStyles.from_variables(self.app.theme_variables)
        return self._cell_styles

    # -- rows ---------------------------------------------------------------------------------

    def _width(self, column: Column) -> int:
        width = column.width_for(self.compact)
        return max(width, self._flex_width) if column.flex else width

    def _text(self, column: Column, cells: dict[str, Cell]) -> Text:
        return to_text(cells.get(column.key, ""), self.cell_styles, width=self._width(column), justify=column.justify,
                       keep_end=column.keep_end)

    def upsert(self, key: str, item: T) -> None:
        self.items[key] = item
        cells = self.cells(item)
        before = self._cells.get(key)
        self._cells[key] = cells
        if not self._shown:
            return  # not mounted yet: the first rebuild adds it
        if before is None:
            self.add_row(*(self._text(c, cells) for c in self._shown), key=key)
            return
        for column in self._shown:
            if cells.get(column.key) != before.get(column.key):
                self.update_cell(key, column.key, self._text(column, cells), update_width=False)

    def discard(self, key: str) -> None:
        if self.items.pop(key, None) is None:
            return
        self._cells.pop(key, None)
        if self._shown:
            self.remove_row(key)

    def tick(self, now: datetime) -> None:
        """A clock tick: recompute the rows on screen (countdowns); repaints only what changed.

        Rows out of view catch up when they scroll in (at the next tick), so a tick costs the
        same with ten orders or ten thousand.
        """
        self.now = now
        top = max(0, int(self.scroll_y))
        for key in list(islice(self.items, top, top + self.size.height + 1)):
            self.upsert(key, self.items[key])

    def rebuild(self) -> None:
        """Columns changed (width, theme): lay the table out again from the models it shows."""
        selected = self.selected_key
        self.clear(columns=True)
        self._shown = tuple(c for c in self.COLUMNS if not (self.compact and c.wide_only))
        for column in self._shown:
            label = column.narrow_label if self.compact and column.narrow_label else column.label
            self.add_column(Text(label, justify=column.justify), width=self._width(column), key=column.key)
        for key, item in self.items.items():
            cells = self.cells(item)
            self._cells[key] = cells
            self.add_row(*(self._text(c, cells) for c in self._shown), key=key)
        self.select(selected)

    # -- selection ----------------------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        except CellDoesNotExist:
            return None
        return row_key.value

    @property
    def selected(self) -> T | None:
        key = self.selected_key
        return None if key is None else self.items.get(key)

    def select(self, key: str | None) -> None:
        if key is not None and key in self.items:
            self.move_cursor(row=self.get_row_index(key), animate=False)
