"""Order history: finished orders, newest first, limited to what the console keeps (the last 500)."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label

from console import formatting as f
from console.formatting import Cell
from console.screens.detail import DetailScreen
from console.widgets.orders import order_cells
from console.widgets.table.widget import Column, KeyedTable
from executor.models import MarketInfo, Order


class HistoryTable(KeyedTable[Order]):
    BINDINGS = [Binding("enter", "select_cursor", "open whole", id="history.open")]
    COLUMNS = (
        Column("updated", "time", 8),
        Column("signal", "signal", 14, wide_only=True, keep_end=True),
        Column("symbol", "symbol", 9, narrow=8),
        Column("side", "side", 6),
        Column("type", "type", 6, wide_only=True),
        Column("price", "price", 11, justify="right", wide_only=True),
        Column("amount", "amount", 10, justify="right", narrow=8),
        Column("average", "avg. price", 11, justify="right", narrow=9, narrow_label="avg.price"),
        Column("status", "status", 8),  # terminal states only: "canceled" is the longest
        # At 80 columns too: why it ended is what one opens the history for. Long reasons wrap.
        Column("reason", "reason", 10, flex=True, wrap=True),
    )

    def __init__(self, markets: dict[str, MarketInfo], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.markets = markets

    def cells(self, item: Order) -> dict[str, Cell]:
        return order_cells(item, self.markets.get(item.symbol), bar_width=5)


class HistoryScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HistoryScreen {
        align: center middle;
        background: $background 60%;
    }
    HistoryScreen #dialog {
        width: 100%;
        height: 100%;
        margin: 1 1;
        border: round $primary;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        background: $surface;
    }
    HistoryScreen #history-table {
        height: 1fr;
    }
    HistoryScreen #hint {
        color: $text-muted;
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape,h,q", "close", "back", id="history.close", key_display="esc"),
    ]

    def __init__(self, orders: Iterable[Order], markets: dict[str, MarketInfo], limit: int) -> None:
        super().__init__()
        self.orders = list(orders)
        self.markets = markets
        self.limit = limit

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Order history"
            dialog.border_subtitle = f"{len(self.orders)} finished, newest first (the last {self.limit} are kept)"
            table = HistoryTable(self.markets, id="history-table")
            for order in reversed(self.orders):
                table.items[order.client_order_id] = order
            yield table
            yield Label("enter opens an order whole · the full record: tradeconsole orders --all", id="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(HistoryTable).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        table = self.query_one(HistoryTable)
        order = table.items.get(table.cursor_key or "")
        if order is not None:
            self.app.push_screen(DetailScreen(f"{order.signal_id or order.origin} · {order.client_order_id}",
                                              order_detail(order)))


def order_detail(order: Order) -> str:
    """A finished order as text, its reason whole."""
    price = "market" if order.price is None else f.number(order.price)
    lines = [
        f"{order.symbol}  {f.side_word(order.side)}  {order.type.value}  {f.number(order.amount)} at {price}",
        f"{order.status.value} at {f.hms(order.updated_at)} · filled {f.number(order.filled)}"
        + (f" at {f.number(order.average)}" if order.average is not None else ""),
    ]
    if order.last_error:
        lines += ["", order.last_error]
    return "\n".join(lines)
