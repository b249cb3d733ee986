"""`KeyedTable`: a virtualised table that is a view of models keyed by stable ids, never their source.

Rows are upserted by key (client order id, signal id). Each row's cells are computed from its
model as plain data (`formatting.Cell`) and compared with what is on screen, so only cells that
really changed are repainted (`update_cell`): column widths are fixed and never re-measured. A
table too narrow for all its columns drops the secondary ones (`Column.wide_only`), a `flex`
column takes whatever width is left, and an `extra` column is shown only when there is room for
it. An update of a row out of view is a dict write; of a row in view, a repaint of its lines
only. Many rows leaving at once (`discard_many`) cost one pass over the table, not one per row.

The widget is in three parts, one job each: this module (the rows, the columns, the sizes and
the bindings), `lines.py` (drawing on Textual's line API, the caches, row heights) and
`cursor.py` (the keyed selection, the cursor, keys and mouse); the row order is a `RowIndex`
(`rows.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets._data_table import RowDoesNotExist

from console.formatting import Cell
from console.widgets.table.cursor import TableCursor
from console.widgets.table.lines import HEADER, CellView, TableLines
from console.widgets.table.rows import BULK, RowIndex

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
    extra: bool = False  # shown only when the others leave room for it (then it flexes)
    wrap: bool = False  # long text wraps onto more lines instead of being cut (rows grow)

    def width_for(self, compact: bool) -> int:
        return self.narrow if compact and self.narrow is not None else self.width


class KeyedTable(TableCursor[T], TableLines, ScrollView, Generic[T], can_focus=True):
    """A table of `T`s keyed by id; a subclass names its `COLUMNS` and computes a row's `cells`."""

    ALLOW_SELECT = False

    # DataTable's keys: a row cursor moves up and down; ctrl+home / ctrl+end go to the first / last row.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("right", "cursor_right", "Cursor right", show=False),
        Binding("left", "cursor_left", "Cursor left", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("ctrl+home", "scroll_top", "Top", show=False),
        Binding("ctrl+end", "scroll_bottom", "Bottom", show=False),
        Binding("home", "scroll_home", "Home", show=False),
        Binding("end", "scroll_end", "End", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "datatable--cursor",
        "datatable--hover",
        "datatable--header",
        "datatable--header-cursor",
        "datatable--header-hover",
    }

    # DataTable's own default styles, for the parts this table draws.
    DEFAULT_CSS = """
    KeyedTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;

        &:focus {
            background-tint: $foreground 5%;
            & > .datatable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .datatable--header {
                background-tint: $foreground 5%;
            }
        }
        & > .datatable--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .datatable--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .datatable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .datatable--header-cursor {
            background: $accent-darken-1;
            color: $foreground;
        }
        & > .datatable--header-hover {
            background: $accent 30%;
        }
        & > .datatable--hover {
            background: $block-hover-background;
        }
    }
    """

    COLUMNS: ClassVar[tuple[Column, ...]] = ()

    compact: reactive[bool] = reactive(False, init=False)
    show_cursor: reactive[bool] = reactive(True, repaint=False, init=False)

    # What the console listens for: the cursor moved (`RowHighlighted`), enter (`RowSelected`).
    RowHighlighted = DataTable.RowHighlighted
    RowSelected = DataTable.RowSelected

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.cell_padding = 1
        self.items: dict[str, T] = {}
        self._cells: dict[str, dict[str, Cell]] = {}
        self._rows = RowIndex()
        self._shown: tuple[Column, ...] = ()
        self._labels: tuple[Text, ...] = ()
        self._table_width = 0
        self._flex_width = 0
        self._extra = False
        self.now: datetime = datetime.now(UTC)
        self._wraps = any(c.wrap for c in self.COLUMNS)
        self._size_dirty = False  # the rows changed: the virtual size is to be set
        self._size_settling = 0  # virtual sizes set, waiting for the layout that takes them in
        self._init_lines(len(self.COLUMNS))
        self._init_cursor()

    class SelectionMoved(Message):
        """The operator chose a row again after the selected one left."""

        def __init__(self, table: KeyedTable) -> None:
            super().__init__()
            self.table = table

    # -- what a subclass provides -------------------------------------------------------------

    def cells(self, item: T) -> dict[str, Cell]:
        """Every column's cell for `item` (narrow or not), keyed by column key."""
        raise NotImplementedError

    # -- lifecycle and columns ----------------------------------------------------------------

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self.rebuild()

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
            if self._wraps:
                self.rebuild()  # wrapped rows change height with the width
            else:
                self._table_width = self._widths()
                self._update_size()
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

    def _width(self, column: Column) -> int:
        width = column.width_for(self.compact)
        stretches = column.extra if self._extra else column.flex
        return max(width, self._flex_width) if stretches else width

    def _widths(self) -> int:
        return sum(self._width(c) + 2 * self.cell_padding for c in self._shown)

    # -- rows ---------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """How many rows the table shows."""
        return len(self._rows)

    @property
    def cursor_row(self) -> int:
        """The index of the row under the cursor (shown or not)."""
        return self._cursor

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor (shown or not), None in an empty table."""
        return self._rows.key_at(self._cursor) if self._rows else None

    def get_row_index(self, key: str) -> int:
        """The row's index (its position from the top, 0 first)."""
        if key not in self._rows:
            raise RowDoesNotExist(f"No row exists for row_key={key!r}")
        return self._rows.index(key)

    def upsert(self, key: str, item: T) -> None:
        """Show `item` in row `key` (a new row goes at the bottom); only cells that changed are drawn again.

        A row out of view keeps its model only (its cells are computed when it comes into view),
        unless its height depends on them (wrapped columns).
        """
        new = key not in self.items
        self.items[key] = item
        if new and self._selection is None and not self.lost:
            self._selection = key  # nothing was ever chosen: the first row is, as the cursor shows
        if not self._shown:
            return  # not mounted yet: the first rebuild adds it
        if key not in self._rows:
            self._add_row(key)
            return
        if not self._wraps and not self._in_view(key):
            self._cells.pop(key, None)
            self._strips.discard(key)
            return
        before = self._cells.get(key)
        self._cells[key] = cells = self.cells(item)
        if before is None:  # it was out of view when it last changed
            self._strips.discard(key)
            self._refresh_row(key)
            return
        for column in self._shown:
            value = cells.get(column.key, "")
            if value != before.get(column.key, ""):
                self.update_cell(key, column.key, value, update_width=False)

    def upsert_many(self, rows: Iterable[tuple[str, T]]) -> None:
        """`upsert` each of `rows`; new rows are added at the bottom in their order, in one pass when
        they are many (a snapshot's 10,000 orders cost one rebuild of the row order, not 10,000)."""
        new: list[tuple[str, T]] = []
        for key, item in rows:
            if key in self.items or not self._shown:
                self.upsert(key, item)
            else:
                new.append((key, item))
        if len(new) <= BULK:
            for key, item in new:
                self.upsert(key, item)
            return
        empty = not self._rows
        if self._selection is None and not self.lost:
            self._selection = new[0][0]  # nothing was ever chosen: the first row is, as the cursor shows
        for key, item in new:
            self.items[key] = item
            self._cells.pop(key, None)
        measure = self._measure if self._wraps else (lambda _key: 1)
        self._rows.extend([(key, measure(key)) for key, _ in new])
        self._update_size()
        self.refresh()
        if empty and self.show_cursor:
            self._highlight()  # there is a row under the cursor now

    def update_cell(self, row_key: str, column_key: str, value: Cell, *, update_width: bool = False) -> None:
        """One cell of a row on screen has new data: its lines are drawn again if they are in view.

        Column widths are fixed: `update_width` is accepted (DataTable's signature) and ignored.
        """
        if row_key not in self._rows:
            raise RowDoesNotExist(f"No row exists for row_key={row_key!r}")
        self._cells_of(row_key)[column_key] = value.cell if isinstance(value, CellView) else value
        self._strips.discard(row_key)
        if self._wraps:
            height = self._measure(row_key)
            if height != self._rows.height(row_key):
                self._rows.set_height(row_key, height)
                self._update_size()
                self.refresh()
                return
        self._refresh_row(row_key)

    def _add_row(self, key: str) -> None:
        self._cells.pop(key, None)
        self._rows.append(key, self._measure(key) if self._wraps else 1)
        self._update_size()
        if self._in_view(key):
            self._cells_of(key)  # drawn next: its cells now (out of view: when it comes into view)
            self._refresh_row(key)
        if len(self._rows) == 1 and self.show_cursor:
            self._highlight()  # there is a row under the cursor now

    def discard(self, key: str, why: str = "") -> None:
        self.discard_many([key], {key: why} if why else None)

    def discard_many(self, keys: Iterable[str], why: Mapping[str, str] | None = None) -> None:
        """Remove rows; if the selected one is among them, nothing is selected and `why` says so."""
        gone = [k for k in keys if self.items.pop(k, None) is not None]
        if not gone:
            return
        for key in gone:
            self._cells.pop(key, None)
            self._strips.discard(key)
        if self._selection in gone:
            self._lose(self._selection, (why or {}).get(self._selection, ""))
        if not self._shown:
            return
        self._rows.remove(gone)  # one pass, however many
        self._update_size()
        self._set_cursor(self._cursor, scroll=False)  # clamped to the rows left
        self.refresh()
        self._keep_cursor()

    def tick(self, now: datetime) -> None:
        """A clock tick: recompute the rows on screen (countdowns); repaints only what changed.

        Rows out of view catch up when they scroll in (at the next tick), so a tick costs the
        same with ten orders or ten thousand.
        """
        self.now = now
        for key in self._keys_in_view():
            self.upsert(key, self.items[key])

    def rebuild(self) -> None:
        """Columns changed (which are shown): lay the table out again from the models it shows."""
        self._shown = tuple(self._columns_for(self.compact, self._extra))
        self._labels = tuple(
            Text(c.narrow_label if self.compact and c.narrow_label else c.label, justify=c.justify)  # type: ignore[arg-type]
            for c in self._shown
        )
        self._table_width = self._widths()
        self._clear_caches()
        self._cells.clear()  # computed again from the models, when drawn (or measured)
        measure = self._measure if self._wraps else (lambda _key: 1)
        self._rows = RowIndex((key, measure(key)) for key in self.items)
        self._update_size()
        self._set_cursor(self._cursor, scroll=False)
        self.refresh()
        self._keep_cursor()

    def _update_size(self) -> None:
        """The virtual size from the columns and the rows, set once for a burst of changes."""
        if not self._size_dirty:
            self._size_dirty = True
            self.call_next(self._set_size)

    def _set_size(self) -> None:
        self._size_dirty = False
        size = Size(self._table_width, self._rows.total + HEADER)
        if size == self.virtual_size:
            return
        if self.container_size and not self.styles.auto_dimensions:
            # The table's own size does not depend on its rows: no layout of the screen, only the
            # scrollbars told (ScrollView's `_size_updated` does the same at a layout), unless one
            # comes or goes (then `show_*_scrollbar` asks for the layout).
            scrollbars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
            self.set_reactive(Widget.virtual_size, size)
            self._scrollbar_changes.clear()
            self._scroll_update(size)
            if (self.show_vertical_scrollbar, self.show_horizontal_scrollbar) == scrollbars:
                return
        else:
            self.virtual_size = size
        self._size_settling += 1  # scrolls wait for the layout that takes the new size in
        self.call_after_refresh(self._size_settled)

    def _size_settled(self) -> None:
        self._size_settling -= 1

    @property
    def _size_pending(self) -> bool:
        """The virtual size changed since the last layout (or is about to)."""
        return self._size_dirty or self._size_settling > 0

    def _cells_of(self, key: str) -> dict[str, Cell]:
        cells = self._cells.get(key)
        if cells is None:
            cells = self._cells[key] = self.cells(self.items[key])
        return cells
