"""The Balances pane: free, used and total per currency, its value in quote, and an equity sparkline."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline

from console import formatting as f
from console.formatting import Cell
from console.widgets.table import Column, KeyedTable
from executor.models import Balance

Holding = tuple[Balance, Decimal | None]  # a balance and its value in the quote currency


class BalancesTable(KeyedTable[Holding]):
    COLUMNS = (
        Column("currency", "ccy", 4),
        Column("free", "free", 11, justify="right", wide_only=True),
        Column("used", "used", 10, justify="right", wide_only=True),
        Column("total", "total", 11, justify="right"),
        Column("value", "value", 11, justify="right"),
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.places: dict[str, int] = {}  # decimals per currency, from the markets' amount steps
        self.quote = "USDT"

    def cells(self, item: Holding) -> dict[str, Cell]:
        balance, value = item
        places = self.places.get(balance.currency, 2 if balance.currency == self.quote else None)
        width = self.COLUMNS[1].width

        def show(quantity):
            return f.number(quantity, places) if places is not None else f.fit(quantity, width)

        used: Cell = show(balance.used)
        if not balance.used:
            used = ((used, "muted"),)
        return {
            "currency": balance.currency,
            "free": show(balance.free),
            "used": used,
            "total": show(balance.total),
            "value": f.money(value) if value is not None else (("no price", "muted"),),
        }


class BalancesPane(Vertical):
    """The table, then one line: equity now, its sparkline, and its change since the first sample."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Balances"
        self.table = BalancesTable(id="balances-table")
        self.sparkline = Sparkline([], id="equity-sparkline")
        self.equity = Label("", id="equity-value")

    def compose(self) -> ComposeResult:
        yield self.table
        with Horizontal(id="equity"):
            yield Label("equity", id="equity-label")
            yield self.sparkline
            yield self.equity

    def show(self, holdings: Iterable[Holding], quote: str) -> None:
        table = self.table
        table.quote = quote
        seen = set()
        for balance, value in sorted(holdings, key=lambda h: (h[0].currency != quote, h[0].currency)):
            seen.add(balance.currency)
            table.upsert(balance.currency, (balance, value))
        for currency in set(table.items) - seen:
            table.discard(currency)
        self.border_subtitle = f"value in {quote}"

    def show_equity(self, samples: list[Decimal], quote: str) -> None:
        sparkline = self.sparkline
        # One sample would draw a full bar: show the flat baseline until there is a history.
        sparkline.data = [float(v) for v in samples] if len(samples) > 1 else []
        label = self.equity
        if not samples:
            label.update("")
            return
        change = samples[-1] - samples[0]
        sign = "+" if change >= 0 else "-"
        style = "$text-success" if change > 0 else "$text-error" if change < 0 else "$text-muted"
        label.update(f"{f.money(samples[-1])} [{style}]{sign}{f.money(abs(change))}[/]")
