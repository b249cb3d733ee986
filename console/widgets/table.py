"""`KeyedTable`: a `DataTable` that is a view of models keyed by stable ids, never their source.

Rows are upserted by key (client order id, signal id). Each row's cells are computed from its
model as plain data (`formatting.Cell`) and compared with what is on screen, so only cells that
really changed are repainted, with `update_cell(..., update_width=False)`: column widths are fixed
and never re-measured. A cell on screen is a `CellView`, which turns its data into styled text
only when it is drawn, with the current theme's colours and the column's current width: a theme
switch or a new flex width repaints the rows in view and rebuilds none. A table too narrow for all
its columns drops the secondary ones (`Column.wide_only`), a `flex` column takes whatever width is
left, and an `extra` column is shown only when there is room for it.

The selection is keyed too: the cursor stays on its row while rows above or below come and go.
When the selected row leaves, nothing is selected (`selected_key` is None, the cursor is hidden)
and the table says what left and why in its border subtitle, until the operator moves the cursor.
Many rows leaving at once (`discard_many`) cost one pass over the table, not one per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import ClassVar, Generic, TypeVar

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text
from textual import events
from textual._two_way_dict import TwoWayDict
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.theme import Theme
from textual.widgets import DataTable
from textual.widgets._data_table import CellKey, RowKey

from console.formatting import Cell, CellStyles, to_text

T = TypeVar("T")

WRAP_LINES = 3  # a wrapped cell's most lines
BULK = 16  # more rows than this leaving at once: one pass over the table instead of remove_row each


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
    extra: bool = False  # shown only when the others leave room for it (then it flexes)
    wrap: bool = False  # long text wraps onto more lines instead of being cut (rows grow)

    def width_for(self, compact: bool) -> int:
        return self.narrow if compact and self.narrow is not None else self.width


class CellView:
    """One cell on screen: its data, styled with the table's current theme when drawn."""

    __slots__ = ("cell", "column", "table")

    def __init__(self, table: KeyedTable, column: Column, cell: Cell) -> None:
        self.table = table
        self.column = column
        self.cell = cell

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = self.table._text(self.column, self.cell)
        if self.column.wrap:
            # At most WRAP_LINES lines, the last one cut with an ellipsis: `enter` opens it whole.
            width = self.table._width(self.column)
            lines = text.wrap(console, width)
            if len(lines) > WRAP_LINES:
                last = lines[WRAP_LINES - 1]
                last.rstrip()
                last.truncate(width - 1)
                last.append("…")
                lines = lines[:WRAP_LINES]
            text = Text("\n", end="").join(lines)
        yield text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = self.table._width(self.column)
        return Measurement(width, width)


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
        self._extra = False
        self._cell_styles: CellStyles | None = None
        self.now: datetime = datetime.now(UTC)
        self._selection: str | None = None  # the key the operator chose (or the first row, before any choice)
        self.lost: str = ""  # what left while selected, and why; "" while a row is selected
        self.summary: str = ""  # the subclass's part of the border subtitle (counts)
        self._wraps = any(c.wrap for c in self.COLUMNS)

    # -- what a subclass provides -------------------------------------------------------------

    def cells(self, item: T) -> dict[str, Cell]:
        """Every column's cell for `item` (narrow or not), keyed by column key."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self.rebuild()

    def _theme_changed(self, _theme: Theme) -> None:
        # The cells resolve their style names when drawn: forget the drawn lines, keep the rows.
        self._cell_styles = None
        self.restyle()

    def restyle(self) -> None:
        """Draw the rows in view again (colours or widths changed); no row is rebuilt."""
        self._clear_caches()
        self.refresh()

    def on_resize(self, _event: Resize) -> None:
        width = self.size.width - 1  # the vertical scrollbar's column, kept free whether shown or not
        needed = sum(c.width + 2 * self.cell_padding for c in self.COLUMNS if not c.extra)
        compact = width < needed
        flex, extra = self._flex_for(width, compact)
        if compact != self.compact or extra != self._extra:
            self._flex_width, self._extra = flex, extra
            self.set_reactive(KeyedTable.compact, compact)
            self.rebuild()
        elif flex != self._flex_width:
            self._flex_width = flex
            for column in self._shown:
                if column.flex or column.extra:
                    self.columns[column.key].width = self._width(column)
            if self._wraps:
                self.rebuild()  # wrapped rows change height with the width
            else:
                self._require_update_dimensions = True
                self.restyle()

    def watch_compact(self) -> None:
        self.rebuild()

    def _columns_for(self, compact: bool, extra: bool) -> list[Column]:
        return [c for c in self.COLUMNS if not (compact and c.wide_only) and (extra or not c.extra)]

    def _flex_for(self, width: int, compact: bool) -> tuple[int, bool]:
        """The flex column's width, and whether the extra column fits."""
        pad = 2 * self.cell_padding
        for extra in (True, False):
            columns = self._columns_for(compact, extra)
            fixed = sum(c.width_for(compact) + pad for c in columns if not (c.flex or c.extra))
            flex = next((c for c in columns if c.extra), None) or next((c for c in columns if c.flex), None)
            if flex is None:
                return 0, False
            left = width - fixed - pad
            if left >= flex.width_for(compact) or not extra:
                return max(flex.width_for(compact), left), extra and flex.extra
        return 0, False  # not reached

    @property
    def cell_styles(self) -> CellStyles:
        if self._cell_styles is None:
            self._cell_styles = CellStyles.from_variables(self.app.theme_variables)
        return self._cell_styles

    # -- rows ---------------------------------------------------------------------------------

    def _width(self, column: Column) -> int:
        width = column.width_for(self.compact)
        stretches = column.extra if self._extra else column.flex
        return max(width, self._flex_width) if stretches else width

    def _text(self, column: Column, cell: Cell) -> Text:
        return to_text(cell, self.cell_styles, width=self._width(column), justify=column.justify,
                       keep_end=column.keep_end, wrap=column.wrap)

    def _row(self, cells: dict[str, Cell]) -> list[CellView]:
        return [CellView(self, c, cells.get(c.key, "")) for c in self._shown]

    def upsert(self, key: str, item: T) -> None:
        self.items[key] = item
        cells = self.cells(item)
        before = self._cells.get(key)
        self._cells[key] = cells
        if before is None and self._selection is None and not self.lost:
            self._selection = key  # nothing was ever chosen: the first row is, as the cursor shows
        if not self._shown:
            return  # not mounted yet: the first rebuild adds it
        if before is None:
            self.add_row(*self._row(cells), key=key, height=None if self._wraps else 1)
            return
        for column in self._shown:
            value = cells.get(column.key, "")
            if value != before.get(column.key, ""):
                self.update_cell(key, column.key, CellView(self, column, value), update_width=False)

    def discard(self, key: str, why: str = "") -> None:
        self.discard_many([key], {key: why} if why else None)

    def discard_many(self, keys: Iterable[str], why: Mapping[str, str] | None = None) -> None:
        """Remove rows; if the selected one is among them, nothing is selected and `why` says so."""
        gone = [k for k in keys if self.items.pop(k, None) is not None]
        if not gone:
            return
        for key in gone:
            self._cells.pop(key, None)
        if self._selection in gone:
            self._lose(self._selection, (why or {}).get(self._selection, ""))
        if not self._shown:
            return
        if len(gone) > BULK:
            self._remove_rows(gone)
        else:
            for key in gone:
                self.remove_row(key)
        self._keep_cursor()

    def _remove_rows(self, keys: list[str]) -> None:
        """`remove_row` for many rows in one pass (remove_row renumbers every row, each time)."""
        dead = {RowKey(k) for k in keys}
        locations = self._row_locations
        keep = [k for k in (locations.get_key(i) for i in range(len(locations))) if k not in dead]
        self._row_locations = TwoWayDict({k: i for i, k in enumerate(keep)})
        for row_key in dead:
            for column_key in self._data.get(row_key, ()):
                self._updated_cells.discard(CellKey(row_key, column_key))
            self.rows.pop(row_key, None)
            self._data.pop(row_key, None)
            self._new_rows.discard(row_key)
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        self.hover_coordinate = self.hover_coordinate
        self._update_count += 1
        self.check_idle()
        self.refresh(layout=True)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        if self._wraps:
            super()._update_dimensions(new_rows)  # row heights depend on the text: measured
            return
        # Column widths are fixed and rows are one line: nothing to measure, only the size to set
        # (DataTable measures every cell of every new row: most of the cost of adding 10,000).
        width = sum(c.get_render_width(self) for c in self.columns.values()) + self._row_label_column_width
        header = self.header_height if self.show_header else 0
        self.virtual_size = Size(width, self._total_row_height + header)

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
        """Columns changed (which are shown): lay the table out again from the models it shows."""
        self.clear(columns=True)
        self._shown = tuple(self._columns_for(self.compact, self._extra))
        for column in self._shown:
            label = column.narrow_label if self.compact and column.narrow_label else column.label
            self.add_column(Text(label, justify=column.justify), width=self._width(column), key=column.key)
        height = None if self._wraps else 1
        for key, item in self.items.items():
            cells = self.cells(item)
            self._cells[key] = cells
            self.add_row(*self._row(cells), key=key, height=height)
        self._keep_cursor()

    # -- selection ----------------------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        key = self._selection
        return key if key is not None and not self.lost and key in self.items else None

    @property
    def selected(self) -> T | None:
        key = self.selected_key
        return None if key is None else self.items.get(key)

    def select(self, key: str | None) -> None:
        """Put the selection on `key` (a row of this table), as if the operator had moved there."""
        if key is not None and key in self.items:
            self._selection, self.lost = key, ""
            self.show_cursor = True
            self._show_subtitle()
            self._keep_cursor()

    def _lose(self, key: str, why: str) -> None:
        self._selection = None
        self.lost = why or f"{key} left"
        self.show_cursor = False
        self._show_subtitle()

    def _keep_cursor(self) -> None:
        """After rows came or went: the cursor back on the selected row, wherever it is now."""
        key = self.selected_key
        if key is not None and self.row_count:
            index = self.get_row_index(key)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)

    def _operator_moved(self) -> None:
        """The operator moved the cursor: the row under it is the selection from now on."""
        if self.row_count:
            row_key = self._row_locations.get_key(self.cursor_row)
            self._selection = row_key.value if row_key is not None else None
        was_lost = bool(self.lost)
        self.lost = ""
        if was_lost:
            self._show_subtitle()
            self.post_message(self.SelectionMoved(self))

    class SelectionMoved(Message):
        """The operator chose a row again after the selected one left."""

        def __init__(self, table: KeyedTable) -> None:
            super().__init__()
            self.table = table

    def _move(self, action: Callable[[], None]) -> None:
        self.show_cursor = True  # hidden while nothing is selected: the move brings it back
        action()
        self._operator_moved()

    def action_cursor_up(self) -> None:
        self._move(super().action_cursor_up)

    def action_cursor_down(self) -> None:
        self._move(super().action_cursor_down)

    def action_page_up(self) -> None:
        self._move(super().action_page_up)

    def action_page_down(self) -> None:
        self._move(super().action_page_down)

    def action_scroll_top(self) -> None:
        self._move(super().action_scroll_top)

    def action_scroll_bottom(self) -> None:
        self._move(super().action_scroll_bottom)

    async def _on_click(self, event: events.Click) -> None:
        self.show_cursor = True
        await super()._on_click(event)
        self._operator_moved()

    def _show_subtitle(self) -> None:
        parts = [p for p in (self.summary, self.lost and f"{self.lost}: nothing selected (move to choose)") if p]
        self.border_subtitle = " · ".join(parts)

    def show_summary(self, summary: str) -> None:
        if summary != self.summary:
            self.summary = summary
            self._show_subtitle()
