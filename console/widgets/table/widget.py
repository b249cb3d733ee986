"""`KeyedTable`: a virtualised table that is a view of models keyed by stable ids, never their source.

Rows are upserted by key (client order id, signal id). Each row's cells are computed from its
model as plain data (`formatting.Cell`) and compared with what is on screen, so only cells that
really changed are repainted (`update_cell`): column widths are fixed and never re-measured. A
cell on screen is a `CellView`, which turns its data into styled text only when it is drawn, with
the current theme's colours and the column's current width: a theme switch or a new flex width
repaints the rows in view and rebuilds none. A table too narrow for all its columns drops the
secondary ones (`Column.wide_only`), a `flex` column takes whatever width is left, and an `extra`
column is shown only when there is room for it.

The table is drawn with Textual's line API (`ScrollView.render_line`): only the rows in view are
ever turned into strips, and those are cached per row until the row, the theme, the focus or the
width changes. An update of a row out of view is a dict write; of a row in view, a repaint of its
lines only. The rows are kept in display order (the order they were first upserted) in `_Rows`,
which answers key → index, index → key and line → row in O(log n) however many rows came and went.

The selection is keyed too: the cursor stays on its row while rows above or below come and go.
When the selected row leaves, nothing is selected (`selected_key` is None, the cursor is hidden)
and the table says what left and why in its border subtitle, until the operator moves the cursor.
Many rows leaving at once (`discard_many`) cost one pass over the table, not one per row.

It speaks `DataTable`'s language where the console listens: it posts `DataTable.RowHighlighted`
when the cursor moves and `DataTable.RowSelected` on enter (or a click on the cursor row), and
styles itself with the `datatable--header` / `datatable--cursor` / `datatable--hover` component
classes, drawn the way `DataTable` draws them (a row cursor whose cells keep their own colours).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

from rich._loop import loop_last
from rich._wrap import re_word
from rich.cells import cell_len, chop_cells
from rich.console import Console, ConsoleOptions, RenderResult
from rich.control import strip_control_codes
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual._segment_tools import line_crop
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.events import Resize
from textual.geometry import Region, Size, Spacing, clamp
from textual.message import Message
from textual.reactive import reactive
from textual.renderables.styled import Styled
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.theme import Theme
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets._data_table import RowDoesNotExist, RowKey

from console.formatting import Cell, CellStyles, to_text

T = TypeVar("T")

WRAP_LINES = 3  # a wrapped cell's most lines
BULK = 64  # more rows than this leaving at once (or most slots dead): the order is rebuilt in one pass
HEADER = 1  # the header row's height
STRIP_CACHE = 2048  # rows whose drawn lines are kept (the rows in view, and those seen lately)
CELL_CACHE = 8192  # drawn cells, by column, data and cursor: most values repeat from row to row


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


def _breaks(text: str, width: int, enough: int) -> int:
    """How many line breaks rich's `divide_line(text, width, fold=True)` puts in `text` (as `Text.wrap`
    does), counted until there are `enough`."""
    measure = len if text.isascii() and text.isprintable() else cell_len  # one cell a character, or not
    if measure(text) <= width:
        return 0
    breaks = offset = 0
    for match in re_word.finditer(text):  # rich's `words`: each word with the spaces after it
        start, word = match.start(), match.group()
        length = measure(word.rstrip())
        if width - offset >= length:
            offset += measure(word)
        elif length > width:  # folded over as many lines as it takes
            for last, line in loop_last(chop_cells(word, width)):
                if start:
                    breaks += 1
                if last:
                    offset = cell_len(line)
                else:
                    start += len(line)
        elif offset and start:
            breaks += 1
            offset = measure(word)
        if breaks >= enough:
            return breaks
    return breaks


class _Rows:
    """The rows in display order, with their heights in lines.

    Each row has a slot, in the order rows arrive; two Fenwick trees over the slots count the rows
    and their lines, so key → index, index → key, key → first line and line → row are O(log n),
    appending is O(log n) and removing k rows is O(k log n), or one O(n) pass when k is large
    (which also drops the slots of rows that left).
    """

    __slots__ = ("_cap", "_count", "_heights", "_keys", "_len", "_lines", "_slot", "_top", "total")

    def __init__(self, rows: Iterable[tuple[str, int]] = ()) -> None:
        self._build(list(rows))

    def _build(self, rows: list[tuple[str, int]]) -> None:
        n = len(rows)
        cap = 64
        while cap < 2 * n:
            cap *= 2
        keys: list[str | None] = [k for k, _ in rows]
        heights = [h for _, h in rows]
        count = [0] + [1] * n + [0] * (cap - n)
        lines = [0, *heights] + [0] * (cap - n)
        for i in range(1, cap + 1):  # the trees in O(n)
            j = i + (i & -i)
            if j <= cap:
                count[j] += count[i]
                lines[j] += lines[i]
        self._keys = keys + [None] * (cap - n)
        self._heights = heights + [0] * (cap - n)
        self._slot = {k: i for i, (k, _) in enumerate(rows)}
        self._count, self._lines, self._cap = count, lines, cap
        self._top = self._len = n
        self.total = sum(heights)

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._keys[: self._top] if k is not None)

    def _add(self, slot: int, count: int, lines: int) -> None:
        i, cap, counts, tree = slot + 1, self._cap, self._count, self._lines
        while i <= cap:
            counts[i] += count
            tree[i] += lines
            i += i & -i

    @staticmethod
    def _prefix(tree: list[int], i: int) -> int:
        total = 0
        while i:
            total += tree[i]
            i &= i - 1
        return total

    def _search(self, tree: list[int], target: int) -> tuple[int, int]:
        """The slot holding unit `target` of `tree` (0-based), and the offset of that unit in it."""
        pos, step = 0, self._cap
        while step:
            nxt = pos + step
            if nxt <= self._cap and tree[nxt] <= target:
                pos = nxt
                target -= tree[nxt]
            step >>= 1
        return pos, target

    def append(self, key: str, height: int) -> None:
        if self._top == self._cap:
            self._build([(k, self._heights[s]) for s, k in enumerate(self._keys) if k is not None])
        slot = self._top
        self._top += 1
        self._keys[slot], self._heights[slot], self._slot[key] = key, height, slot
        self._add(slot, 1, height)
        self._len += 1
        self.total += height

    def remove(self, keys: Iterable[str]) -> None:
        slots = [s for s in (self._slot.pop(k, None) for k in keys) if s is not None]
        if not slots:
            return
        keys_, heights = self._keys, self._heights
        dead = self._top - self._len + len(slots)
        if len(slots) > BULK or dead > max(BULK, self._len - len(slots)):
            for s in slots:
                keys_[s] = None
            self._build([(k, heights[s]) for s, k in enumerate(keys_[: self._top]) if k is not None])
            return
        for s in slots:
            height = heights[s]
            keys_[s], heights[s] = None, 0
            self._add(s, -1, -height)
            self.total -= height
        self._len -= len(slots)

    def index(self, key: str) -> int:
        return self._prefix(self._count, self._slot[key])

    def key_at(self, index: int) -> str:
        slot, _ = self._search(self._count, index)
        key = self._keys[slot] if 0 <= index < self._len else None
        if key is None:
            raise IndexError(index)
        return key

    def line(self, key: str) -> int:
        """The row's first line."""
        return self._prefix(self._lines, self._slot[key])

    def at_line(self, line: int) -> tuple[str, int]:
        """The row on `line`, and the line within the row."""
        if not 0 <= line < self.total:
            raise IndexError(line)
        slot, offset = self._search(self._lines, line)
        key = self._keys[slot]
        assert key is not None
        return key, offset

    def height(self, key: str) -> int:
        return self._heights[self._slot[key]]

    def set_height(self, key: str, height: int) -> None:
        slot = self._slot[key]
        delta = height - self._heights[slot]
        if delta:
            self._heights[slot] = height
            self._add(slot, 0, delta)
            self.total += delta

    def from_index(self, index: int) -> Iterator[str]:
        """The keys from row `index` on, in order."""
        if not 0 <= index < self._len:
            return
        slot, _ = self._search(self._count, index)
        keys = self._keys
        for s in range(slot, self._top):
            key = keys[s]
            if key is not None:
                yield key

    def before(self, index: int) -> Iterator[str]:
        """The keys from row `index` back to the first, in reverse order."""
        if not 0 <= index < self._len:
            return
        slot, _ = self._search(self._count, index)
        keys = self._keys
        for s in range(slot, -1, -1):
            key = keys[s]
            if key is not None:
                yield key


class KeyedTable(ScrollView, Generic[T], can_focus=True):
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
        self._rows = _Rows()
        self._shown: tuple[Column, ...] = ()
        self._labels: tuple[Text, ...] = ()
        self._table_width = 0
        self._flex_width = 0
        self._extra = False
        self._cell_styles: CellStyles | None = None
        self.now: datetime = datetime.now(UTC)
        self._selection: str | None = None  # the key the operator chose (or the first row, before any choice)
        self.lost: str = ""  # what left while selected, and why; "" while a row is selected
        self.summary: str = ""  # the subclass's part of the border subtitle (counts)
        self._wraps = any(c.wrap for c in self.COLUMNS)
        self._cursor = 0  # the cursor's row index
        self._hover = -2  # the row under the mouse (-1: the header), shown while `_show_hover`
        self._show_hover = False
        # What is drawn: each row's lines, the header's, and the styles they are drawn with.
        self._strips: LRUCache[str, tuple[tuple, list[Strip]]] = LRUCache(STRIP_CACHE)
        self._drawn_cells: LRUCache[tuple, list[list[Segment]]] = LRUCache(CELL_CACHE)
        self._header: tuple[tuple, Strip] | None = None
        self._styles: dict[tuple[bool, bool, bool], tuple[Style, Style]] = {}
        self._drawn_with: tuple = ()
        self._base = Style()  # the table's own style, as of this frame
        self._size_dirty = False  # the rows changed: the virtual size is to be set
        self._size_settling = 0  # virtual sizes set, waiting for the layout that takes them in
        self._scroll_deferred: bool | None = None  # a scroll to the cursor waits for the layout (animated?)
        self._metas = [Style.from_meta({"column": i}) for i in range(len(self.COLUMNS))]
        self._out_of_bounds = Style.from_meta({"out_of_bounds": True})

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

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._clear_caches()
        self.refresh()

    def _clear_caches(self) -> None:
        self._strips.clear()
        self._drawn_cells.clear()
        self._header = None
        self._styles.clear()

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

    def _widths(self) -> int:
        return sum(self._width(c) + 2 * self.cell_padding for c in self._shown)

    def _text(self, column: Column, cell: Cell) -> Text:
        return to_text(cell, self.cell_styles, width=self._width(column), justify=column.justify,
                       keep_end=column.keep_end, wrap=column.wrap)

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
        self._rows = _Rows((key, measure(key)) for key in self.items)
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

    def _measure(self, key: str) -> int:
        """A row's height: its wrapped cells' lines (at most WRAP_LINES), at least one."""
        cells, height = self._cells_of(key), 1
        for column in self._shown:
            if column.wrap:
                cell = cells.get(column.key, "")
                plain = cell if isinstance(cell, str) else "".join(part for part, _ in cell)
                height = max(height, self._wrapped_lines(plain, self._width(column)))
        return height

    def _wrapped_lines(self, plain: str, width: int) -> int:
        """How many lines a wrapped cell takes (`CellView`: rich's fold wrap, at most WRAP_LINES),
        counted without drawing it."""
        plain = strip_control_codes(plain)
        if "\t" in plain:
            return min(WRAP_LINES, len(Text(plain, overflow="fold").wrap(self.app.console, width)))
        lines = 0
        for paragraph in plain.split("\n"):
            lines += 1 + _breaks(paragraph, width, WRAP_LINES - 1 - lines)
            if lines >= WRAP_LINES:
                return WRAP_LINES
        return lines

    # -- what is in view ----------------------------------------------------------------------

    def _view_lines(self) -> tuple[int, int]:
        """The first row line in view, and how many row lines the view shows."""
        return round(self.scroll_y), max(0, self.container_size.height - HEADER)

    def _keys_in_view(self) -> list[str]:
        top, height = self._view_lines()
        if top >= self._rows.total or not height:
            return []
        first, offset = self._rows.at_line(top)
        keys, lines = [], -offset
        for key in self._rows.from_index(self._rows.index(first)):
            if lines >= height:
                break
            keys.append(key)
            lines += self._rows.height(key)
        return keys

    def _in_view(self, key: str) -> bool:
        top, height = self._view_lines()
        first = self._rows.line(key) - top
        return first < height and first + self._rows.height(key) > 0

    def _refresh_row(self, key: str) -> None:
        """Repaint a row's lines, if any is in view (a row out of view costs nothing)."""
        if not self.is_mounted:
            return
        top, height = self._view_lines()
        first = self._rows.line(key) - top
        rows = self._rows.height(key)
        if first + rows <= 0 or first >= height:
            return
        self.refresh(Region(0, HEADER + first, max(self.container_size.width, self._table_width), rows))

    def _refresh_index(self, index: int) -> None:
        if 0 <= index < len(self._rows):
            self._refresh_row(self._rows.key_at(index))
        elif index == -1:
            self.refresh(Region(0, 0, max(self.size.width, self._table_width), HEADER))

    # -- drawing ------------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # Lines drawn for another focus state, base style or width are drawn again.
        self._base = base = self.rich_style
        drawn_with = (self.get_pseudo_class_state(), base, self.size.width)
        if drawn_with != self._drawn_with:
            self._drawn_with = drawn_with
            self._clear_caches()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        if y < HEADER:
            return self._header_line(y, scroll_x)
        try:
            key, offset = self._rows.at_line(y - HEADER + scroll_y)
        except IndexError:
            return Strip.blank(self.size.width, self._base)
        return self._row_lines(key, scroll_x)[offset]

    def _cell_styles_for(self, header: bool, cursor: bool, hover: bool) -> tuple[Style, Style]:
        """The component styles over a cell, and after it (DataTable's `_get_styles_to_render_cell`)."""
        key = (header, cursor, hover)
        styles = self._styles.get(key)
        if styles is None:
            get = self.get_component_rich_style
            component = Style()
            if hover:
                component += get("datatable--hover")
                if header:
                    component += get("datatable--header-hover")
            if cursor:
                component += get("datatable--cursor")
                if header:
                    component += get("datatable--header-cursor")
            # The cursor's colours go under the cells' own (foreground and background priority
            # "renderable"): a selected row keeps its buy, sell and warning colours.
            styles = self._styles[key] = (component, Style.null())
        return styles

    def _hovered(self, index: int) -> bool:
        return self._show_hover and self.show_cursor and self._hover == index

    def _header_line(self, y: int, scroll_x: int) -> Strip:
        hover = self._hovered(-1)
        state = (hover, scroll_x)
        if self._header is not None and self._header[0] == state:
            return self._header[1]
        style = self.get_component_styles("datatable--header").rich_style
        component, post = self._cell_styles_for(True, False, hover)
        update = self.app.console_options.update_dimensions
        cells = [
            self._draw_cell(i, label, update(self._width(c) + 2 * self.cell_padding, HEADER).update(no_wrap=True),
                            style, component, post)
            for i, (c, label) in enumerate(zip(self._shown, self._labels, strict=True))
        ]
        line = self._lines(cells, HEADER, style, component, scroll_x)[y]
        self._header = (state, line)
        return line

    def _row_lines(self, key: str, scroll_x: int) -> list[Strip]:
        index = self._rows.index(key)
        cursor = self.show_cursor and index == self._cursor
        hover = self._hovered(index)
        state = (cursor, hover, scroll_x)
        cached = self._strips.get(key)
        if cached is not None and cached[0] == state:
            return cached[1]
        cells, pad, base = self._cells_of(key), self.cell_padding, self._base
        component, post = self._cell_styles_for(False, cursor, hover)
        drawn_cells, console_options = self._drawn_cells, self.app.console_options
        drawn = []
        for i, column in enumerate(self._shown):
            cell = cells.get(column.key, "")
            try:
                lines = drawn_cells.get(cache_key := (i, cell, cursor, hover))
            except TypeError:  # data that cannot be a key: drawn every time
                lines, cache_key = None, None
            if lines is None:
                width = self._width(column) + 2 * pad
                if self._wraps:
                    options = console_options.update_width(width)
                else:
                    options = console_options.update_dimensions(width, 1).update(no_wrap=True)
                lines = self._draw_cell(i, CellView(self, column, cell), options, base, component, post)
                if cache_key is not None:
                    drawn_cells.set(cache_key, lines)
            drawn.append(lines)
        strips = self._lines(drawn, self._rows.height(key), base, component, scroll_x)
        self._strips.set(key, (state, strips))
        return strips

    def _draw_cell(self, index: int, renderable: object, options: ConsoleOptions, row_style: Style,
                   component: Style, post: Style) -> list[list[Segment]]:
        """One cell's lines, drawn as DataTable draws a cell: padded, over the row's style and the
        cursor's. Its segments are simplified here, once: the column in the style's meta keeps them
        from ever merging with another cell's, so a row's line needs no simplifying of its own."""
        lines = self.app.console.render_lines(
            Styled(Padding(renderable, (0, self.cell_padding)), pre_style=row_style + self._metas[index] + component,
                   post_style=post),
            options,
        )
        return [list(Segment.simplify(line)) for line in lines]

    def _lines(self, cells: list[list[list[Segment]]], height: int, row_style: Style, component: Style,
               scroll_x: int) -> list[Strip]:
        """A row's strips: its cells side by side (a shorter cell in a taller row gets blank lines in
        its style), extended to the table's width in the row's and the cursor's style."""
        width, table_width, base_style = self.size.width, self._table_width, self._base
        extend = Segment(" " * max(0, width - table_width), row_style + component + self._out_of_bounds)
        lines: list[list[Segment]] = [[] for _ in range(height)]
        for drawn in cells:
            for line, segments in zip(lines, drawn, strict=False):
                line.extend(segments)
            if len(drawn) < height:
                first = drawn[0]
                blank = Segment(" " * sum(s.cell_length for s in first), first[0].style)
                for line in lines[len(drawn):]:
                    line.append(blank)
        if scroll_x:
            return [
                Strip(line_crop([*line, extend], scroll_x, scroll_x + width, width))
                .adjust_cell_length(width, base_style)
                .simplify()
                for line in lines
            ]
        # Not scrolled sideways, the crop is the whole line; the cells' segments are simplified.
        length = table_width + len(extend.text)
        strips = []
        for line in lines:
            line.append(extend)
            strips.append(Strip(line, length).adjust_cell_length(width, base_style))
        return strips

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
        if key is not None and key in self._rows:
            index = self._rows.index(key)
            if index != self._cursor:
                self.move_cursor(row=index, animate=False)

    def _operator_moved(self) -> None:
        """The operator moved the cursor: the row under it is the selection from now on."""
        if self.row_count:
            self._selection = self.cursor_key
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

    # -- the cursor ---------------------------------------------------------------------------

    def move_cursor(self, *, row: int | None = None, column: int | None = None, animate: bool = False,
                    scroll: bool = True) -> None:
        """Put the cursor on row `row` (clamped to the rows there are); `column` is ignored (a row cursor)."""
        moved = self._set_cursor(self._cursor if row is None else row, scroll=False)
        if scroll or moved:
            self._scroll_cursor_into_view(animate=animate and scroll)

    def _set_cursor(self, row: int, *, scroll: bool = True) -> bool:
        """The cursor on row `row` (clamped); if it moved: repainted, said, scrolled into view."""
        row = clamp(row, 0, len(self._rows) - 1)
        old, self._cursor = self._cursor, row
        if row == old:
            return False
        self._refresh_index(old)
        self._highlight()
        if scroll:
            self._scroll_cursor_into_view()
        return True

    def _key_or_none(self, index: int) -> str | None:
        return self._rows.key_at(index) if 0 <= index < len(self._rows) else None

    def _highlight(self) -> None:
        """Repaint the cursor's row and say it moved there (DataTable's `RowHighlighted`)."""
        self._refresh_index(self._cursor)
        key = self._key_or_none(self._cursor)
        if key is not None:
            self.post_message(DataTable.RowHighlighted(self, self._cursor, RowKey(key)))  # type: ignore[arg-type]

    def watch_show_cursor(self, show: bool) -> None:
        self._refresh_index(self._cursor)
        if show:
            self._scroll_cursor_into_view()
            self._highlight()

    def _scroll_cursor_into_view(self, animate: bool = False) -> None:
        key = self._key_or_none(self._cursor)
        if key is None:
            return
        if self._size_pending or not self.container_size.height:
            # Once laid out with the rows (one scroll however many moves wait, to where the cursor is then).
            if self._scroll_deferred is None:
                self.call_after_refresh(self._deferred_scroll)
            self._scroll_deferred = animate
            return
        region = Region(int(self.scroll_x), HEADER + self._rows.line(key), 1, self._rows.height(key))
        self.scroll_to_region(region, animate=animate, spacing=Spacing(HEADER, 0, 0, 0), force=True)

    def _deferred_scroll(self) -> None:
        animate, self._scroll_deferred = bool(self._scroll_deferred), None
        self._scroll_cursor_into_view(animate)

    def _set_hover_cursor(self, active: bool) -> None:
        self._show_hover = active
        self._refresh_index(self._hover)

    def _move(self, action: Callable[[], None]) -> None:
        self.show_cursor = True  # hidden while nothing is selected: the move brings it back
        action()
        self._operator_moved()

    def _cursor_up(self) -> None:
        self._set_hover_cursor(False)
        if self.show_cursor:
            self._set_cursor(self._cursor - 1)
        else:
            self.scroll_up()

    def _cursor_down(self) -> None:
        self._set_hover_cursor(False)
        if self.show_cursor:
            self._set_cursor(self._cursor + 1)
        else:
            self.scroll_down()

    def _page_height(self) -> int:
        return self.scrollable_content_region.height - HEADER

    def _page_down(self) -> None:
        self._set_hover_cursor(False)
        if not self.show_cursor:
            self.scroll_page_down()
            return
        height, offset, rows = self._page_height(), 0, 0
        for key in self._rows.from_index(self._cursor):
            offset += self._rows.height(key)
            rows += 1
            if offset > height:
                break
        self.scroll_relative(y=height, animate=False, force=True)
        self.move_cursor(row=self._cursor + rows - 1, scroll=False)

    def _page_up(self) -> None:
        self._set_hover_cursor(False)
        if not self.show_cursor:
            self.scroll_page_up()
            return
        height, offset, rows = self._page_height(), 0, 0
        for key in self._rows.before(self._cursor):
            offset += self._rows.height(key)
            rows += 1
            if offset > height:
                break
        self.scroll_relative(y=-height, animate=False)
        self.move_cursor(row=self._cursor - rows + 1, scroll=False)

    def _top(self) -> None:
        self._set_hover_cursor(False)
        if self.show_cursor:
            self._set_cursor(0)
        else:
            self.scroll_home()

    def _bottom(self) -> None:
        self._set_hover_cursor(False)
        if self.show_cursor:
            self._set_cursor(len(self._rows) - 1)
        else:
            self.scroll_end()

    def action_cursor_up(self) -> None:
        self._move(self._cursor_up)

    def action_cursor_down(self) -> None:
        self._move(self._cursor_down)

    def action_page_up(self) -> None:
        self._move(self._page_up)

    def action_page_down(self) -> None:
        self._move(self._page_down)

    def action_scroll_top(self) -> None:
        self._move(self._top)

    def action_scroll_bottom(self) -> None:
        self._move(self._bottom)

    def action_cursor_left(self) -> None:
        self._set_hover_cursor(False)
        self.scroll_left()

    def action_cursor_right(self) -> None:
        self._set_hover_cursor(False)
        self.scroll_right()

    def action_scroll_home(self) -> None:
        self._set_hover_cursor(False)
        self.scroll_x = 0

    def action_scroll_end(self) -> None:
        self._set_hover_cursor(False)
        self.scroll_x = self.max_scroll_x

    def action_select_cursor(self) -> None:
        self._set_hover_cursor(False)
        self._post_selected()

    def _post_selected(self) -> None:
        key = self.cursor_key
        if self.show_cursor and key is not None:
            self.post_message(DataTable.RowSelected(self, self._cursor, RowKey(key)))  # type: ignore[arg-type]

    # -- the mouse ----------------------------------------------------------------------------

    def _row_at(self, event: events.MouseEvent) -> int | None:
        """The row under the mouse: its index, -1 for the header, None below the last row."""
        offset = event.get_content_offset(self)
        if offset is None:
            return None
        if offset.y < HEADER:
            return -1
        try:
            key, _ = self._rows.at_line(offset.y - HEADER + self.scroll_offset.y)
        except IndexError:
            return None
        return self._rows.index(key)

    def _on_mouse_move(self, event: events.MouseMove) -> None:
        row = self._row_at(event)
        self._show_hover = row is not None
        if row != self._hover:
            self._refresh_index(self._hover)
            self._hover = -2 if row is None else row
        self._refresh_index(self._hover)

    def _on_leave(self, _event: events.Leave) -> None:
        self._set_hover_cursor(False)

    async def _on_click(self, event: events.Click) -> None:
        self.show_cursor = True
        self._show_hover = True
        row = self._row_at(event)
        if row is not None and row >= 0:
            if row == self._cursor:
                self._post_selected()  # a click on the cursor's row opens it, as enter does
            self._set_cursor(row, scroll=False)
            self._scroll_cursor_into_view(animate=True)
            event.stop()
        self._operator_moved()

    # -- the border subtitle ------------------------------------------------------------------

    def _show_subtitle(self) -> None:
        parts = [p for p in (self.summary, self.lost and f"{self.lost}: nothing selected (move to choose)") if p]
        self.border_subtitle = " · ".join(parts)

    def show_summary(self, summary: str) -> None:
        if summary != self.summary:
            self.summary = summary
            self._show_subtitle()
