"""`KeyedTable` at scale: only the rows in view are ever drawn, and the cursor stays on its key.

Plain Pilot tests on a bare app holding one table: 10,000 rows, 1,000 leaving at once, updates in
and out of view, a theme switch, wrapped rows; and the row order (`_Rows`) against a plain list.
What is counted is work (`render_line` calls, `cells()` calls, rows drawn), never wall-clock time.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import DataTable

from console.state import LogEntry
from console.themes import THEMES_DIR, load_themes
from console.widgets.log import LogTable
from console.widgets.orders import OrdersTable
from console.widgets.table.lines import WRAP_LINES
from console.widgets.table.rows import RowIndex as _Rows
from console.widgets.table.widget import KeyedTable
from executor.models import Order, OrderStatus, OrderType, Side

T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
SIZE = (120, 36)
ROWS_IN_VIEW = SIZE[1] - 1  # the table fills the screen, less its header


def order(i: int, **changes) -> Order:
    o = Order(
        client_order_id=f"tc-{i:06d}",
        signal_id=f"sig-{i:06d}",
        symbol="BTC/USDT",
        side=Side.BUY if i % 2 else Side.SELL,
        type=OrderType.LIMIT,
        amount=Decimal("0.01"),
        price=Decimal(58000 + i % 500),
        status=OrderStatus.OPEN,
        created_at=T0,
        updated_at=T0,
        timeout_at=T0 + timedelta(seconds=300),
    )
    return o.model_copy(update=changes) if changes else o


class OneTable(App[None]):
    CSS = "KeyedTable { height: 1fr; }"

    def __init__(self, table: KeyedTable) -> None:
        super().__init__()
        for theme in load_themes(THEMES_DIR).themes.values():
            self.register_theme(theme)
        self.theme = "tradeconsole-dark"
        self.table = table
        self.highlighted: list[int] = []
        self.opened: list[str | None] = []

    def compose(self) -> ComposeResult:
        yield self.table

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.highlighted.append(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.opened.append(event.row_key.value)


class Counting(OrdersTable):
    """Counts what the table computes (`cells`) and draws (`render_line`)."""

    def __init__(self) -> None:
        super().__init__(id="orders")
        self.cells_for: list[str] = []
        self.lines: list[int] = []
        self.now = T0

    def cells(self, item: Order):
        self.cells_for.append(item.client_order_id)
        return super().cells(item)

    def render_line(self, y: int):
        self.lines.append(y)
        return super().render_line(y)

    def forget(self) -> None:
        self.cells_for.clear()
        self.lines.clear()


async def loaded(pilot, table: KeyedTable, orders: list[Order]) -> None:
    with pilot.app.batch_update():
        for o in orders:
            table.upsert(o.client_order_id, o)
    await until(pilot, lambda: table.virtual_size.height == len(table.items) + 1, "the table sized")


async def until(pilot, predicate: Callable[[], bool], what: str, turns: int = 200) -> None:
    for _ in range(turns):
        if predicate():
            return
        await pilot.pause()
    raise AssertionError(f"never: {what}")


@contextlib.asynccontextmanager
async def on_screen(table: KeyedTable, rows: int = 0) -> AsyncIterator[tuple[OneTable, Pilot]]:
    """`table` alone on screen, first `rows` orders loaded into it (one batch); the app and its pilot."""
    app = OneTable(table)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if rows:
            await loaded(pilot, table, [order(i) for i in range(rows)])
        yield app, pilot


async def test_ten_thousand_rows_load_and_only_the_rows_in_view_are_computed_and_drawn():
    table = Counting()
    async with on_screen(table, 10_000) as (_, pilot):
        await pilot.pause()
        assert table.row_count == 10_000
        assert table.virtual_size.height == 10_000 + 1  # the rows and the header
        assert table.max_scroll_y == 10_000 + 1 - SIZE[1]
        assert table.vertical_scrollbar.display
        # Rows out of view are models only: nothing was computed or drawn for them.
        assert set(table.cells_for) == {f"tc-{i:06d}" for i in range(ROWS_IN_VIEW)}
        assert sorted(set(table.lines)) == list(range(SIZE[1]))
        table.forget()
        await pilot.press("ctrl+end")  # the last row, scrolled into view
        await until(pilot, lambda: table.scroll_offset.y == table.max_scroll_y, "the bottom in view")
        await pilot.pause()
        assert table.cursor_row == 9_999 and table.selected_key == "tc-009999"
        assert set(table.cells_for) == {f"tc-{i:06d}" for i in range(10_000 - ROWS_IN_VIEW, 10_000)}
        assert table.get_row_index("tc-005000") == 5_000


async def test_an_update_out_of_view_draws_nothing_and_one_in_view_redraws_its_line_only():
    table = Counting()
    async with on_screen(table, 10_000) as (_, pilot):
        await pilot.pause()
        table.forget()
        for i in (9_000, 5_000, 40):  # far below the view
            table.upsert(f"tc-{i:06d}", order(i, status=OrderStatus.PARTIALLY_FILLED, filled=Decimal("0.005")))
        await pilot.pause()
        assert table.lines == [] and table.cells_for == []  # a dict write each
        table.upsert("tc-000007", order(7, status=OrderStatus.PARTIALLY_FILLED, filled=Decimal("0.005")))
        await pilot.pause()
        assert table.cells_for == ["tc-000007"]
        assert table.lines == [1 + 7]  # its line (under the header), no other
        table.forget()
        table.scroll_to(y=4_990, animate=False)  # row 5,000 comes into view: drawn as it is now
        await pilot.pause()
        assert "tc-005000" in table.cells_for
        line = table.render_line(1 + 10).text
        assert "sig-005000" in line and "partially_filled" in line


async def test_a_theme_switch_redraws_the_lines_in_view_and_computes_no_row():
    table = Counting()
    async with on_screen(table, 10_000) as (app, pilot):
        await pilot.pause()
        before = table.render_line(3)
        table.forget()
        rebuilt: list[object] = []
        table.rebuild = lambda: rebuilt.append(1)  # type: ignore[method-assign]
        app.theme = "tradeconsole-light"
        await pilot.pause()
        assert not rebuilt and table.cells_for == []  # the cells are data: only drawn again
        assert sorted(set(table.lines)) == list(range(SIZE[1]))  # the lines in view, and no other
        after = table.render_line(3)
        assert after.text == before.text  # the same row, in the new theme's colours
        assert [s.style for s in after] != [s.style for s in before]


async def test_the_cursor_stays_on_its_key_while_1000_rows_above_it_leave_at_once_and_rows_come_and_change():
    table = Counting()
    async with on_screen(table, 3_000) as (app, pilot):
        table.focus()
        table.select("tc-002000")
        await pilot.pause()
        assert table.cursor_row == 2_000
        gone = [f"tc-{i:06d}" for i in range(0, 2_000, 2)]  # 1,000 rows above it, in one pass
        table.discard_many(gone)
        assert table.row_count == 2_000 and table.selected_key == "tc-002000"
        assert table.cursor_row == table.get_row_index("tc-002000") == 1_000
        for i in range(3_000, 3_500):  # new rows come in (at the bottom)
            table.upsert(f"tc-{i:06d}", order(i))
        for i in range(1, 2_000, 2):  # and those above change
            table.upsert(f"tc-{i:06d}", order(i, attempts=2))
        assert table.selected_key == "tc-002000" and table.cursor_row == 1_000 and not table.lost
        await pilot.pause()
        assert table.scroll_offset.y <= 1_000 < table.scroll_offset.y + ROWS_IN_VIEW  # in view
        assert app.highlighted[-1] == 1_000
        await pilot.press("down")
        assert table.selected_key == "tc-002001"
        # The selected row leaves with others: nothing is selected, the cursor is hidden, and says why.
        table.discard_many(["tc-002001", "tc-001999"], {"tc-002001": "sig-002001 filled"})
        assert table.selected_key is None and not table.show_cursor
        assert "sig-002001 filled: nothing selected" in str(table.border_subtitle)
        await pilot.press("down")
        assert table.selected_key is not None and table.show_cursor and not table.lost


async def test_a_click_selects_the_row_under_it_and_a_second_click_opens_it():
    table = Counting()
    async with on_screen(table, 100) as (app, pilot):
        await pilot.click(OrdersTable, offset=(5, 1 + 4))  # the fifth row
        assert table.cursor_row == 4 and table.selected_key == "tc-000004"
        await pilot.click(OrdersTable, offset=(60, 1 + 4))
        await until(pilot, lambda: bool(app.opened), "the row opened")
        assert app.opened == ["tc-000004"] and table.cursor_row == 4


async def test_wrapped_rows_grow_to_their_lines_and_the_cursor_and_lines_follow_them():
    table = LogTable(id="log", limit=500)
    long = "word " * 60
    async with on_screen(table) as (_, pilot):
        table.append([LogEntry(T0, "info", "short"), LogEntry(T0, "error", long), LogEntry(T0, "info", "after")])
        await until(pilot, lambda: table.virtual_size.height == 1 + 1 + WRAP_LINES + 1, "the rows sized")
        assert table.row_count == 3 and table.cursor_row == 2  # the log follows its last line
        lines = [table.render_line(y).text for y in range(1, 1 + 1 + WRAP_LINES + 1)]
        assert "short" in lines[0] and "word" in lines[1] and lines[3].rstrip().endswith("…")
        assert "after" in lines[4]
        table.discard_many([next(iter(table.items))])  # the first row leaves: the others move up
        await pilot.pause()
        assert table.virtual_size.height == 1 + WRAP_LINES + 1
        assert "after" in table.render_line(1 + WRAP_LINES).text and table.cursor_row == 1


def test_the_row_order_answers_like_a_list_whatever_came_and_went():
    """`_Rows` (two Fenwick trees over slots) against a plain list of (key, height), on a seeded mix
    of appends, removals of one to hundreds of rows, and height changes."""
    rng = random.Random(5)
    for _ in range(60):
        rows, model, n = _Rows(), [], 0
        for _ in range(rng.randint(1, 300)):
            op = rng.random()
            if op < 0.5 or not model:
                model.append((f"k{n}", rng.randint(1, WRAP_LINES)))
                rows.append(*model[-1])
                n += 1
            elif op < 0.8:
                gone = set(rng.sample([k for k, _ in model], min(len(model), rng.choice([1, 3, 70, 200]))))
                rows.remove(gone)
                model = [(k, h) for k, h in model if k not in gone]
            else:
                i = rng.randrange(len(model))
                model[i] = (model[i][0], rng.randint(1, WRAP_LINES))
                rows.set_height(*model[i])
            assert list(rows) == [k for k, _ in model] and rows.total == sum(h for _, h in model)
            line = 0
            for i, (key, height) in enumerate(model):
                assert (rows.index(key), rows.key_at(i), rows.line(key), rows.height(key)) == (i, key, line, height)
                assert [rows.at_line(line + offset) for offset in range(height)] == [(key, o) for o in range(height)]
                line += height
            if model:
                i = rng.randrange(len(model))
                assert list(rows.from_index(i)) == [k for k, _ in model[i:]]
                assert list(rows.before(i)) == [k for k, _ in reversed(model[: i + 1])]
