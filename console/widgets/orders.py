"""The Orders pane: the active-order book. Finished orders leave it for the history screen."""

from __future__ import annotations

from console import formatting as f
from console.formatting import Cell
from console.widgets.table.widget import Column, KeyedTable
from executor.models import MarketInfo, Order, OrderStatus

STATUS_STYLE = {
    OrderStatus.NEW: "muted",
    OrderStatus.SUBMITTING: "accent",
    OrderStatus.OPEN: "plain",
    OrderStatus.PARTIALLY_FILLED: "accent",
    OrderStatus.PENDING_CANCEL: "warning",
    OrderStatus.UNKNOWN: "error",
    OrderStatus.FILLED: "success",
    OrderStatus.CANCELED: "muted",
    OrderStatus.EXPIRED: "muted",
    OrderStatus.REJECTED: "error",
    OrderStatus.FAILED: "error",
}


def order_cells(order: Order, market: MarketInfo | None, bar_width: int) -> dict[str, Cell]:
    """The cells of one order; shared by the active-order book and the history screen."""
    return {
        "signal": order.signal_id or ((order.origin, "warning"),),
        "coid": order.client_order_id,
        "symbol": order.symbol,
        "side": f.side(order.side),
        "type": order.type.value,
        "price": f.price(order.price, market) if order.price is not None else (("market", "muted"),),
        "amount": f.amount(order.amount, market),
        "filled": f.progress(order.filled, order.amount, bar_width),
        "average": f.price(order.average, market) if order.average is not None else "",
        "status": ((order.status.value, STATUS_STYLE[order.status]),),
        "attempts": str(order.attempts),
        "reason": ((order.last_error, "muted"),) if order.last_error else "",
        "updated": f.hms(order.updated_at),
    }


class OrdersTable(KeyedTable[Order]):
    """Non-terminal orders keyed by client order id, oldest first."""

    COLUMNS = (
        Column("signal", "signal", 14, wide_only=True, keep_end=True),
        Column("symbol", "symbol", 9, narrow=8),
        Column("side", "side", 6),
        Column("type", "type", 6, wide_only=True),
        Column("price", "price", 11, justify="right", narrow=10),
        Column("amount", "amount", 10, justify="right", narrow=8),
        Column("filled", "filled", 13, narrow=10),
        Column("status", "status", 16),
        Column("timeout", "timeout", 7, justify="right", narrow=5, narrow_label="t/out"),
        Column("attempts", "att", 3, justify="right", wide_only=True),
        Column("reason", "last error", 24, extra=True),  # on wide screens: why it is retrying, stuck
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.markets: dict[str, MarketInfo] = {}
        self.border_title = "Orders"

    def cells(self, item: Order) -> dict[str, Cell]:
        cells = order_cells(item, self.markets.get(item.symbol), bar_width=5 if self.compact else 7)
        cells["timeout"] = f.countdown(item.timeout_at if item.status.is_live else None, self.now)
        return cells

    def show_count(self, active_orders: int, history: int) -> None:
        active = f"{active_orders} active" if active_orders else "none active"
        self.show_summary(f"{active} · {history} finished (h)")
