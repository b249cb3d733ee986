"""How a `KeyedTable` is drawn: its rows as strips on Textual's line API, cached, and how tall they are.

Only the rows in view are ever turned into strips (`render_line`), and those are cached per row
until the row, the theme, the focus or the width changes. A cell on screen is a `CellView`, which
turns its data (`formatting.Cell`) into styled text only when it is drawn, with the current
theme's colours and the column's current width: a theme switch or a new flex width repaints the
rows in view and rebuilds none. A column that wraps makes its rows as tall as their text (at most
`WRAP_LINES`), counted here without drawing them (`_breaks`, as rich breaks lines).

The strips are drawn the way `DataTable` draws them, with its `datatable--header` /
`datatable--cursor` / `datatable--hover` component classes: a row cursor whose cells keep their
own colours. `TableLines` is a part of `KeyedTable` (widget.py), which sets up the state it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from textual._segment_tools import line_crop
from textual.cache import LRUCache
from textual.geometry import Region
from textual.renderables.styled import Styled
from textual.strip import Strip
from textual.theme import Theme

from console.formatting import Cell, CellStyles, to_text

if TYPE_CHECKING:
    from console.widgets.table.widget import Column, KeyedTable

WRAP_LINES = 3  # a wrapped cell's most lines
HEADER = 1  # the header row's height
STRIP_CACHE = 2048  # rows whose drawn lines are kept (the rows in view, and those seen lately)
CELL_CACHE = 8192  # drawn cells, by column, data and cursor: most values repeat from row to row


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


class TableLines:
    """The drawing half of `KeyedTable`: strips for the lines in view, their caches, row heights."""

    def _init_lines(self, columns: int) -> None:
        self._cell_styles: CellStyles | None = None
        # What is drawn: each row's lines, the header's, and the styles they are drawn with.
        self._strips: LRUCache[str, tuple[tuple, list[Strip]]] = LRUCache(STRIP_CACHE)
        self._drawn_cells: LRUCache[tuple, list[list[Segment]]] = LRUCache(CELL_CACHE)
        self._header: tuple[tuple, Strip] | None = None
        self._styles: dict[tuple[bool, bool, bool], tuple[Style, Style]] = {}
        self._drawn_with: tuple = ()
        self._base = Style()  # the table's own style, as of this frame
        self._metas = [Style.from_meta({"column": i}) for i in range(columns)]
        self._out_of_bounds = Style.from_meta({"out_of_bounds": True})

    # -- colours and caches -------------------------------------------------------------------

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

    @property
    def cell_styles(self) -> CellStyles:
        if self._cell_styles is None:
            self._cell_styles = CellStyles.from_variables(self.app.theme_variables)
        return self._cell_styles

    def _text(self, column: Column, cell: Cell) -> Text:
        return to_text(cell, self.cell_styles, width=self._width(column), justify=column.justify,
                       keep_end=column.keep_end, wrap=column.wrap)

    # -- row heights --------------------------------------------------------------------------

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
