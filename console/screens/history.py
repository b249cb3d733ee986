"""Order history: finished orders, newest first, limited to what the console keeps (the last 500)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from console.formatting import Cell
from console.widgets.orders import order_cells
from console.widgets.table import Column, KeyedTable
from executor.models import MarketInfo, Order


class HistoryTable(KeyedTable[Order]):
    COLUMNS = (
        Column("updated", "time", 8),
        Column("signal", "signal", 14, wide_only=True),
        Column("symbol", "symbol", 9),
        Column("side", "side", 6),
        Column("type", "type", 6, wide_only=True),
        Column("price", "price", 11, justify="right", wide_only=True),
        Column("amount", "amount", 10, justify="right"),
        Column("average", "avg. price", 11, justify="right"),
        Column("status", "status", 8),  # terminal states only: "canceled" is the longest
        Column("reason", "reason", 10, flex=True, wide_only=True),
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

    BINDINGS = [Binding("escape,h,q", "close", "back", id="history.close")]

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
            yield Label("esc or h goes back · the full record: tradeconsole orders --all", id="hint")

    def on_mount(self) -> None:
        self.query_one(HistoryTable).focus()

    def action_close(self) -> None:
        self.dismiss(None)
