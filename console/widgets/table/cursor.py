"""The selection and the cursor of a `KeyedTable`: keyed like its rows, moved by keys and the mouse.

The selection is a key: the cursor stays on its row while rows above or below come and go. When
the selected row leaves, nothing is selected (`selected_key` is None, the cursor is hidden) and
the table says what left and why in its border subtitle, until the operator moves the cursor.

It speaks `DataTable`'s language where the console listens: it posts `DataTable.RowHighlighted`
when the cursor moves and `DataTable.RowSelected` on enter (or a click on the cursor row), and
`KeyedTable.SelectionMoved` when the operator chooses a row again after the selected one left.
`TableCursor` is a part of `KeyedTable` (widget.py), whose `BINDINGS` name these actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from textual import events
from textual.geometry import Region, Spacing, clamp
from textual.widgets import DataTable
from textual.widgets._data_table import RowKey

from console.widgets.table.lines import HEADER

T = TypeVar("T")


class TableCursor(Generic[T]):
    """The cursor half of `KeyedTable`: the selected key, the cursor row, keys, the mouse, the subtitle."""

    def _init_cursor(self) -> None:
        self._selection: str | None = None  # the key the operator chose (or the first row, before any choice)
        self.lost: str = ""  # what left while selected, and why; "" while a row is selected
        self.summary: str = ""  # the subclass's part of the border subtitle (counts)
        self._subtitle: str = ""  # the border subtitle as last set
        self._cursor = 0  # the cursor's row index
        self._hover = -2  # the row under the mouse (-1: the header), shown while `_show_hover`
        self._show_hover = False
        self._scroll_deferred: bool | None = None  # a scroll to the cursor waits for the layout (animated?)

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

    def _page(self, down: bool) -> None:
        """A page down (or up): the view scrolls by its height, the cursor by the rows that fill it."""
        self._set_hover_cursor(False)
        if not self.show_cursor:
            (self.scroll_page_down if down else self.scroll_page_up)()
            return
        height, offset, rows = self._page_height(), 0, 0
        for key in (self._rows.from_index if down else self._rows.before)(self._cursor):
            offset += self._rows.height(key)
            rows += 1
            if offset > height:
                break
        self.scroll_relative(y=height if down else -height, animate=False, force=down)
        self.move_cursor(row=self._cursor + (rows - 1 if down else 1 - rows), scroll=False)

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
        self._move(lambda: self._page(down=False))

    def action_page_down(self) -> None:
        self._move(lambda: self._page(down=True))

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
        subtitle = " · ".join(parts)
        if subtitle != self._subtitle:  # setting it repaints the whole table, changed or not
            self._subtitle = self.border_subtitle = subtitle

    def show_summary(self, summary: str) -> None:
        if summary != self.summary:
            self.summary = summary
            self._show_subtitle()
