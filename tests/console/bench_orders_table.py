"""Wall-clock timings of the Orders table at scale (a script, not a test: nothing is asserted).

    .venv/bin/python tests/console/bench_orders_table.py [n_orders] [n_finished]

Adds `n_orders` open orders (one batch), switches the theme, then removes `n_finished` of them
at once, as a burst of fills would; each step is timed up to the frame that shows it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from textual.app import App, ComposeResult

from console.themes import THEMES_DIR, load_themes
from console.widgets.orders import OrdersTable
from executor.models import Order, OrderStatus, OrderType, Side

T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def orders(n: int) -> list[Order]:
    return [
        Order(client_order_id=f"tc-{i:06d}", signal_id=f"sig-{i:06d}", symbol="BTC/USDT",
              side=Side.BUY if i % 2 else Side.SELL, type=OrderType.LIMIT, amount=Decimal("0.01"),
              price=Decimal(58000 + i % 500), status=OrderStatus.OPEN, created_at=T0, updated_at=T0,
              timeout_at=T0 + timedelta(seconds=300))
        for i in range(n)
    ]


class Bench(App[None]):
    def __init__(self) -> None:
        super().__init__()
        for theme in load_themes(THEMES_DIR).themes.values():
            self.register_theme(theme)
        self.theme = "tradeconsole-dark"
        self.table = OrdersTable(id="orders")

    def compose(self) -> ComposeResult:
        yield self.table


async def main(n: int, finished: int) -> None:
    app = Bench()
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.table
        table.now = T0
        await pilot.pause()
        book = orders(n)

        async def timed(what: str, step) -> None:
            start = time.perf_counter()
            with app.batch_update():
                step()
            await pilot.pause()
            while table.virtual_size.height <= table.row_count:  # until the rows are laid out
                await pilot.pause()
            await pilot.pause()  # the frame that shows it
            print(f"{what:<40} {time.perf_counter() - start:8.3f} s")

        def add() -> None:
            for order in book:
                table.upsert(order.client_order_id, order)

        await timed(f"add {n:,} orders", add)
        table.move_cursor(row=n // 2)
        await pilot.pause()
        await timed("theme switch", lambda: setattr(app, "theme", "tradeconsole-light"))
        gone = [o.client_order_id for o in book[::max(1, n // finished)][:finished]]
        await timed(f"remove {len(gone):,} finished orders", lambda: table.discard_many(gone)
                    if hasattr(table, "discard_many") else [table.discard(k) for k in gone])
        await timed("update one cell", lambda: table.upsert(book[1].client_order_id, book[1].model_copy(
            update={"status": OrderStatus.PARTIALLY_FILLED, "filled": Decimal("0.005")})))
        assert table.row_count == n - len(gone)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [10_000, 1_000][len(args):])))
