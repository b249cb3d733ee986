"""Bursts: events are buffered, folded per key and repainted once, cell by cell."""

from __future__ import annotations

from decimal import Decimal

from console_harness import Clock, coid, console_app, populate, ready, shown

from executor.events import OrderUpdated
from executor.models import OrderStatus


async def test_a_burst_of_events_repaints_only_the_cells_that_changed_once(tmp_path):
    clock = Clock()
    app = console_app(tmp_path / "console.db", clock, flush_interval=None)  # flushed on demand only
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app, pilot.pause)
        s = await populate(app.service, clock)
        await shown(app, pilot.pause, lambda: len(app.state.orders) == 2, "the orders")
        table, key = app.orders, coid(s.resting)
        calls: list[tuple[str, str, bool]] = []
        update_cell = table.update_cell

        def counting(row_key, column_key, value, *, update_width=False):
            calls.append((row_key, column_key, update_width))
            update_cell(row_key, column_key, value, update_width=update_width)

        table.update_cell = counting  # type: ignore[method-assign]
        order = app.state.orders[key]
        for i in range(1, 101):
            app.service.bus.publish(OrderUpdated(order.model_copy(
                update={"status": OrderStatus.PARTIALLY_FILLED, "filled": Decimal("0.00025") * i})))
        assert len(app.buffer) >= 100 and not calls  # nothing is drawn until the flush
        app.flush()
        assert sorted(column for _, column, _ in calls) == ["filled", "status"]
        assert {row for row, _, _ in calls} == {key}
        assert not any(update_width for _, _, update_width in calls)
        calls.clear()
        app.service.bus.publish(OrderUpdated(app.state.orders[key]))  # the same state again
        app.flush()
        assert not calls
