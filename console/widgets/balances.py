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
        Column("currency", "ccy", 5),
        Column("free", "free", 12, justify="right", wide_only=True),
        Column("used", "used", 11, justify="right", wide_only=True),
        Column("total", "total", 12, justify="right"),
        Column("value", "value", 11, justify="right"),
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.places: dict[str, int] = {}  # decimals per currency, from the markets' amount steps

    def cells(self, item: Holding) -> dict[str, Cell]:
        balance, value = item
        places = self.places.get(balance.currency)
        used: Cell = f.number(balance.used, places)
        if not balance.used:
            used = ((used, "muted"),)
        return {
            "currency": balance.currency,
            "free": f.number(balance.free, places),
            "used": used,
            "total": f.number(balance.total, places),
            "value": f.money(value) if value is not None else (("no price", "muted"),),
        }


class BalancesPane(Vertical):
    """The table, then one line: equity now, its sparkline, and its change since the first sample."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Balances"

    def compose(self) -> ComposeResult:
        yield BalancesTable(id="balances-table")
        with Horizontal(id="equity"):
            yield Label("equity", id="equity-label")
            yield Sparkline([], id="equity-sparkline")
            yield Label("", id="equity-value")

    @property
    def table(self) -> BalancesTable:
        return self.query_one(BalancesTable)

    def show(self, holdings: Iterable[Holding], quote: str) -> None:
        table = self.table
        seen = set()
        for balance, value in sorted(holdings, key=lambda h: (h[0].currency != quote, h[0].currency)):
            seen.add(balance.currency)
            table.upsert(balance.currency, (balance, value))
        for currency in set(table.items) - seen:
            table.discard(currency)
        self.border_subtitle = f"value in {quote}"

    def show_equity(self, samples: list[Decimal], quote: str) -> None:
        sparkline = self.query_one(Sparkline)
        sparkline.data = [float(v) for v in samples] or [0.0]
        label = self.query_one("#equity-value", Label)
        if not samples:
            label.update("")
            return
        change = samples[-1] - samples[0]
        sign = "+" if change >= 0 else "−"
        style = "$text-success" if change > 0 else "$text-error" if change < 0 else "$text-muted"
        label.update(f"{f.money(samples[-1])} [{style}]{sign}{f.money(abs(change))}[/]")
