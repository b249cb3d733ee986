"""Positions in the Balances pane: folded from the fills the core publishes (`OrderUpdated.fills`,
and the snapshot's `fills` at start), by average cost, valued at the market's mid. The fills are
hand-made and go through the core's own bus, the way the executor publishes them; the numbers
checked are the ones drawn on screen."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from console_harness import T0, Clock, console_app, console_settings, open_service, ready, shown

from console.app import TradeConsole
from console.screens.detail import DetailScreen
from console.state import ConsoleState
from executor.events import OrderUpdated
from executor.models import Fill, Order, OrderStatus, OrderType, Side

D = Decimal
SIZE = (120, 36)


def order(coid: str, side: Side, amount: str, symbol: str = "BTC/USDT") -> Order:
    return Order(
        client_order_id=coid,
        signal_id=None,
        symbol=symbol,
        side=side,
        type=OrderType.MARKET,
        amount=D(amount),
        status=OrderStatus.FILLED,
        filled=D(amount),
        created_at=T0,
        updated_at=T0,
    )


def fill(
    coid: str,
    n: int,
    side: Side,
    amount: str,
    price: str,
    fee: str = "0",
    currency: str | None = None,
    symbol: str = "BTC/USDT",
) -> Fill:
    return Fill(
        fill_id=f"{coid}:{n}",
        client_order_id=coid,
        signal_id=None,
        symbol=symbol,
        side=side,
        amount=D(amount),
        price=D(price),
        fee=D(fee),
        fee_currency=currency,
        ts=T0 + timedelta(seconds=n),
    )


def publish(app: TradeConsole, *fills: Fill, replaced: bool = False) -> None:
    """As the executor does: the order as its write left it, with the fills that write recorded."""
    first = fills[0]
    total = str(sum((f.amount for f in fills), D(0)))
    app.service.bus.publish(
        OrderUpdated(order(first.client_order_id, first.side, total, first.symbol), fills, replaced)
    )


def row(app: TradeConsole, symbol: str) -> list[str]:
    """The positions table's row for `symbol`, as drawn: one word per cell."""
    table = app.balances.positions
    return table.render_line(table.get_row_index(symbol) + 1).text.split()  # line 0 is the header


async def started(app: TradeConsole, pilot) -> None:
    await ready(app, pilot.pause)
    await shown(app, pilot.pause, lambda: "BTC/USDT" in app.state.markets, "the market prices")


def mark(app: TradeConsole, symbol: str = "BTC/USDT") -> Decimal:
    return app.state.markets[symbol].mid


async def test_buys_and_a_partial_sell_show_position_average_entry_and_pnl(tmp_path):
    app = console_app(tmp_path / "console.db", Clock())
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        publish(app, fill("tc-b1", 1, Side.BUY, "0.05", "58000", "0.00005", "BTC"))  # fee in base
        publish(app, fill("tc-b2", 2, Side.BUY, "0.03", "59000", "1.77", "USDT"))  # fee in quote
        publish(app, fill("tc-s1", 3, Side.SELL, "0.02", "61000", "1.22", "USDT"))  # a partial close
        await shown(app, pilot.pause, lambda: "BTC/USDT" in app.balances.positions.items, "the BTC position")
        # held: 0.05 - 0.00005 + 0.03 - 0.02 = 0.05995 BTC
        # average entry: (0.05 x 58000 + 0.03 x 59000 + 1.77) / (0.04995 + 0.03) = 4671.77 / 0.07995 = 58,433.646
        # realized: 0.02 x 61000 - 1.22 - 0.02 x 58,433.646 = +50.107
        # unrealized: 0.05995 x (mark - 58,433.646)
        unrealized = D("0.05995") * (mark(app) - D("4671.77") / D("0.07995"))
        assert row(app, "BTC/USDT") == ["BTC/USDT", "0.05995", "58,433.65", f"{unrealized:+,.2f}", "+50.11"]


async def test_a_sale_of_a_balance_held_before_the_fills_has_no_cost_basis(tmp_path):
    app = console_app(tmp_path / "console.db", Clock())
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        publish(app, fill("tc-e1", 1, Side.SELL, "0.6", "3150", "1.89", "USDT", symbol="ETH/USDT"))
        await shown(app, pilot.pause, lambda: "ETH/USDT" in app.balances.positions.items, "the ETH position")
        # nothing bought: the 0.6 ETH sold were held before, so no cost basis and no PnL
        assert row(app, "ETH/USDT") == ["ETH/USDT*", "0.0000", "—", "0.00", "0.00"]
        assert "* enter: notes" in app.balances.border_subtitle
        await pilot.press("tab", "tab", "tab", "tab")
        assert app.focused is app.balances.positions
        await pilot.press("enter")
        await shown(app, pilot.pause, lambda: isinstance(app.screen, DetailScreen), "the position's detail")
        detail = app.screen.text
        assert "held before     0.6 ETH sold for 1,888.11 USDT" in detail  # 0.6 x 3150 - 1.89
        assert "without a cost basis, so not in the PnL" in detail
        assert "realized PnL    0.00 USDT" in detail


async def test_a_fee_in_another_currency_is_noted_and_left_out_of_the_pnl(tmp_path):
    app = console_app(tmp_path / "console.db", Clock())
    async with app.run_test(size=(200, 50)) as pilot:  # wide enough for the note column
        await started(app, pilot)
        publish(app, fill("tc-b1", 1, Side.BUY, "0.05", "58000", "0.01", "BNB"))
        publish(app, fill("tc-s1", 2, Side.SELL, "0.05", "60000", "0.01", "BNB"))
        await shown(app, pilot.pause, lambda: "BTC/USDT" in app.balances.positions.items, "the BTC position")
        # closed at 60000 after buying at 58000: +100 USDT; the BNB fees are not part of it
        assert row(app, "BTC/USDT") == ["BTC/USDT*", "0.00000", "—", "0.00", "+100.00", "fee", "0.02", "BNB"]


async def test_the_venues_trades_replace_the_fills_of_an_order(tmp_path):
    app = console_app(tmp_path / "console.db", Clock())
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        # The order's answer stated no fee; the venue's trades, once complete, replace its fill.
        publish(app, fill("tc-s1", 1, Side.BUY, "0.02", "60000"))
        publish(
            app,
            fill("tc-s1", 2, Side.BUY, "0.01", "59000", "0.00001", "BTC"),
            fill("tc-s1", 3, Side.BUY, "0.01", "61000", "0.00001", "BTC"),
            replaced=True,
        )
        await shown(app, pilot.pause, lambda: row(app, "BTC/USDT")[1] == "0.01998", "the trades' fills")
        # (0.01 x 59000 + 0.01 x 61000) / (0.02 - 0.00002) = 1200 / 0.01998 = 60,060.06
        assert row(app, "BTC/USDT")[:3] == ["BTC/USDT", "0.01998", "60,060.06"]
        assert len(app.state.fills) == 2


async def test_a_console_started_on_a_store_with_fills_shows_their_positions(tmp_path):
    db, clock = tmp_path / "console.db", Clock()
    service = await open_service(db, clock, console_settings())
    buy = fill("tc-b1", 1, Side.BUY, "2", "150", "0.002", "SOL", symbol="SOL/USDT")
    written = order("tc-b1", Side.BUY, "2", "SOL/USDT")
    await service.store.transact(
        service.store.order_write(written, old=None, expect_version=None, source="test", fills=[buy])
    )
    await service.close()
    app = console_app(db, clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)  # the snapshot brings the store's fills
        await shown(app, pilot.pause, lambda: "SOL/USDT" in app.balances.positions.items, "the SOL position")
        # 2 - 0.002 SOL for 300 USDT: 150.15 each
        assert row(app, "SOL/USDT")[:3] == ["SOL/USDT", "1.998", "150.15"]


async def test_a_short_screen_shows_balances_or_positions_and_v_switches(tmp_path):
    app = console_app(tmp_path / "console.db", Clock())
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        publish(app, fill("tc-b1", 1, Side.BUY, "0.05", "58000", "0.00005", "BTC"))
        await shown(app, pilot.pause, lambda: "BTC/USDT" in app.balances.positions.items, "the BTC position")
        pane = app.balances
        assert pane.table.display and not pane.positions.display and pane.border_title == "Balances"
        await pilot.press("tab", "tab", "tab")
        assert app.focused is pane.table
        await pilot.press("v")
        await pilot.pause()
        assert pane.positions.display and not pane.table.display and pane.border_title == "Positions"
        assert app.focused is pane.positions
        assert row(app, "BTC/USDT")[0] == "BTC/USDT"  # compact: market, unrealized, realized
        await pilot.press("v")
        await pilot.pause()
        assert pane.table.display and not pane.positions.display and app.focused is pane.table


async def test_rows_stay_in_market_order_whenever_their_first_fill_comes(tmp_path):
    app = console_app(tmp_path / "console.db", Clock())
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table = app.balances.positions
        publish(app, fill("tc-s", 1, Side.BUY, "1", "150", symbol="SOL/USDT"))
        await shown(app, pilot.pause, lambda: "SOL/USDT" in table.items, "the SOL position")
        table.focus()
        await pilot.press("down")  # the operator chose the SOL row
        publish(app, fill("tc-b", 2, Side.BUY, "0.01", "60000"))
        await shown(app, pilot.pause, lambda: "BTC/USDT" in table.items, "the BTC position")
        assert list(table.items) == ["BTC/USDT", "SOL/USDT"]
        assert table.selected_key == "SOL/USDT"


def test_fills_that_cannot_be_folded_are_said_once_in_the_log_and_shown_nowhere():
    state = ConsoleState()
    bad = fill("tc-x", 1, Side.BUY, "-1", "100", symbol="SOL/USDT")
    state.apply([OrderUpdated(order("tc-x", Side.BUY, "1", "SOL/USDT"), (bad,))], T0)
    good = fill("tc-b", 2, Side.BUY, "0.01", "60000")
    changes = state.apply([OrderUpdated(order("tc-b", Side.BUY, "0.01"), (good,))], T0)
    assert list(state.positions) == ["BTC/USDT"] and changes.positions
    warnings = [e.reason for e in state.log if e.level == "warning"]
    assert warnings == ["positions: the fills of SOL/USDT cannot be folded (fill tc-x:1: negative amount or price)"]
