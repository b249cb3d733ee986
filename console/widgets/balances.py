"""The Balances pane: free, used and total per currency and its value in quote; the positions per
market (from fills, by average cost); and the equity sparkline, on a scale that says how far it
spans.

The sparkline is drawn on a range centred on the data and at least `EQUITY_MIN_HALF_PCT` of the
equity either side, and the range is written next to it ("±0.5%"): Textual's own `Sparkline`
stretches whatever range the data has to the full height, so a 0.01 % wiggle looks like a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.message import Message
from textual.renderables._blend_colors import blend_colors
from textual.widgets import DataTable, Label, Sparkline

from console import formatting as f
from console.formatting import Cell
from console.widgets.labels import relabel
from console.widgets.table.widget import Column, KeyedTable
from executor.models import Balance, MarketInfo
from executor.numbers import fmt
from executor.positions import Position

Holding = tuple[Balance, Decimal | None]  # a balance and its value in the quote currency

EQUITY_MIN_HALF_PCT = 0.5  # the sparkline spans at least ±0.5 % of the equity
BARS = "▁▂▃▄▅▆▇█"


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


# -- positions ------------------------------------------------------------------------------------


def signed_money(value: Decimal | None, width: int, *, unknown: str = "no price") -> Cell:
    """Money with its sign in words and colour (+ success, - error, 0 muted); fewer decimals if
    it would not fit `width`."""
    if value is None:
        return ((unknown, "muted"),)
    if not value.quantize(Decimal("0.01")):
        return (("0.00", "muted"),)
    text = fmt(value, 2, grouping=True, sign=True)
    if len(text) > width:
        text = fmt(value, 0, grouping=True, sign=True)
    return ((text, "success" if value > 0 else "error"),)


def position_notes(p: Position) -> list[str]:
    """What the PnL columns leave out: a balance held before the fills, fees in another asset."""
    notes = []
    if p.held_before:
        notes.append(f"sold {f.number(p.held_before)} {p.base} held before")
    for currency, fee in sorted(p.other_fees.items()):
        notes.append(f"fee {f.number(fee)} {currency}")
    return notes


def position_detail(p: Position, market: MarketInfo | None) -> str:
    """Everything about one position, for the detail screen (`enter`)."""
    q, b = p.quote, p.base

    def money(value: Decimal | None, what: str = "unknown: no market price") -> str:
        if value is None:
            return what
        return f"{fmt(value, 2, grouping=True, sign=True)} {q}" if value.quantize(Decimal("0.01")) else f"0.00 {q}"

    lines = [
        f"position        {f.amount(p.amount, market)} {b}",
        f"average entry   {f.price(p.average_entry, market)} {q}" if p.average_entry is not None
        else "average entry   — (nothing held from the fills)",
        f"cost basis      {f.money(p.cost)} {q} (fees in {b} and {q} included)",
        f"mark            {f.price(p.mark, market)} {q} (the market's mid)" if p.mark is not None
        else "mark            unknown: no market price",
        f"unrealized PnL  {money(p.unrealized)}",
        f"realized PnL    {money(p.realized)}",
        f"bought / sold   {f.number(p.bought)} / {f.number(p.sold)} {b} in {p.fills} fill{'s' * (p.fills != 1)}",
    ]
    if p.held_before:
        lines.append(f"held before     {f.number(p.held_before)} {b} sold for {f.money(p.held_before_proceeds)} {q}: "
                     "a balance held before the first fill, without a cost basis, so not in the PnL")
    if p.fees:
        lines.append("fees            " + ", ".join(f"{f.number(v)} {c}" for c, v in sorted(p.fees.items())))
    if p.other_fees:
        lines.append("other fees      " + ", ".join(f"{f.number(v)} {c}" for c, v in sorted(p.other_fees.items()))
                     + ": paid in neither base nor quote, not in the PnL")
    if p.first_fill and p.last_fill:
        when = f.hms(p.first_fill) if p.first_fill == p.last_fill else f"{f.hms(p.first_fill)} to {f.hms(p.last_fill)}"
        lines.append(f"fills           {when} UTC")
    return "\n".join(lines)


class PositionsTable(KeyedTable[Position]):
    """One row per market with fills: the position, its average entry, unrealized and realized
    PnL in the market's quote. `*` marks a row with a note (shown in `note` when there is room,
    and always in the detail that `enter` opens)."""

    BINDINGS = [Binding("enter", "select_cursor", "details", id="positions.open")]
    COLUMNS = (
        Column("market", "market", 9),
        Column("position", "position", 9, justify="right", wide_only=True),
        Column("entry", "avg entry", 10, justify="right", wide_only=True),
        Column("unrealized", "unrealized", 10, justify="right", narrow=9, narrow_label="unreal."),
        Column("realized", "realized", 9, justify="right"),
        Column("note", "note", 16, extra=True),
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.markets: Mapping[str, MarketInfo] = {}

    def cells(self, item: Position) -> dict[str, Cell]:
        market = self.markets.get(item.symbol)
        notes = position_notes(item)
        amount = f.amount(item.amount, market) if market else f.fit(item.amount, 9)
        unrealized_width = self.COLUMNS[3].width_for(self.compact)
        return {
            "market": ((item.symbol, "plain"), ("*", "accent")) if notes else item.symbol,
            "position": amount if item.amount else ((amount, "muted"),),
            "entry": f.price(item.average_entry, market) if item.average_entry is not None else (("—", "muted"),),
            "unrealized": signed_money(item.unrealized, unrealized_width),
            "realized": signed_money(item.realized, self.COLUMNS[4].width),
            "note": (("; ".join(notes), "muted"),),
        }

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        position = self.items.get(event.row_key.value or "")
        if position is not None:
            event.stop()
            self.post_message(self.Opened(f"{position.symbol} position",
                                          position_detail(position, self.markets.get(position.symbol))))

    @dataclass
    class Opened(Message):
        """The operator asked for one position whole (enter)."""

        title: str
        text: str


# -- the equity sparkline ---------------------------------------------------------------------------


def equity_scale(samples: Sequence[float], min_half_pct: float = EQUITY_MIN_HALF_PCT) -> tuple[float, float, float]:
    """(low, high, half the height in % of the level): a range centred on the samples that spans
    at least `min_half_pct` % of their level either side, more when they move more."""
    lo, hi = min(samples), max(samples)
    centre = (lo + hi) / 2
    half = max((hi - lo) / 2, abs(centre) * min_half_pct / 100)
    if half <= 0:
        return centre - 1, centre + 1, float("inf")  # an equity of zero: any range
    return centre - half, centre + half, half / abs(centre) * 100 if centre else float("inf")


def bar_levels(samples: Sequence[float], width: int, low: float, high: float) -> list[int]:
    """One bar height (0: lowest, 7: full) per column, newest last; more samples than columns
    are bucketed, each bucket drawn at its last sample. Fewer samples than columns: one each."""
    if width <= 0 or not samples:
        return []
    values = list(samples)
    if len(values) > width:
        step = Fraction(len(values), width)
        values = [values[int(step * (i + 1)) - 1] for i in range(width)]
    top = len(BARS) - 1
    span = high - low or 1.0
    return [min(top, max(0, int((v - low) / span * top))) for v in values]


def scale_words(half_pct: float) -> str:
    if half_pct == float("inf"):
        return ""
    return f"±{half_pct:.1f}%" if half_pct < 10 else f"±{half_pct:.0f}%"


class EquitySparkline(Sparkline):
    """Textual's `Sparkline` (its colours, its CSS) drawn on `equity_scale`, newest at the right."""

    def render(self) -> RenderResult:
        data = list(self.data or [])
        width = self.size.width
        _, base = self.background_colors
        low_color = (base + self.get_component_styles("sparkline--min-color").color).rich_color
        high_color = (base + self.get_component_styles("sparkline--max-color").color).rich_color
        if len(data) < 2:
            return Text("▁" * width, style=Style(color=low_color), end="")  # no history yet: the baseline
        low, high, _ = equity_scale(data)
        levels = bar_levels(data, width, low, high)
        top = len(BARS) - 1
        text = Text(" " * (width - len(levels)), end="")
        for level in levels:
            text.append(BARS[level], Style(color=blend_colors(low_color, high_color, level / top)))
        return text


# -- the pane -------------------------------------------------------------------------------------------


class BalancesPane(Vertical):
    """The balances, then the positions, then one line: equity now, its sparkline and scale, and
    its change since the first sample. On a short screen one table at a time (`v` switches)."""

    BINDINGS = [
        Binding("v", "show('positions')", "positions", id="balances.positions",
                tooltip="on a short screen: show the positions instead of the balances"),
        Binding("v", "show('balances')", "balances", id="balances.balances",
                tooltip="on a short screen: show the balances instead of the positions"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Balances · Positions"
        self.table = BalancesTable(id="balances-table")
        self.positions = PositionsTable(id="positions-table")
        self.sparkline = EquitySparkline([], id="equity-sparkline")
        self.scale = Label("", id="equity-scale")
        self.equity = Label("", id="equity-value")
        self._shown: dict[Label, object] = {}  # what the labels show (relabel)
        self.quote = "USDT"
        self.notes = False  # a position has a note (`*`): the subtitle says where to read it

    @property
    def markets(self) -> Mapping[str, MarketInfo]:
        return self.positions.markets

    @markets.setter
    def markets(self, markets: Mapping[str, MarketInfo]) -> None:
        self.positions.markets = markets

    def compose(self) -> ComposeResult:
        yield self.table
        yield self.positions
        with Horizontal(id="equity"):
            yield Label("equity", id="equity-label")
            yield self.sparkline
            yield self.scale
            yield self.equity

    # -- one table at a time on a short screen -----------------------------------------------

    @property
    def one_at_a_time(self) -> bool:
        return self.is_mounted and self.screen.has_class("-short")

    @property
    def showing_positions(self) -> bool:
        return self.has_class("-positions")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show":
            return self.one_at_a_time and (parameters[0] == "positions") != self.showing_positions
        return True

    def action_show(self, which: str) -> None:
        if not self.one_at_a_time or (which == "positions") == self.showing_positions:
            return
        self.set_class(which == "positions", "-positions")
        shown = self.positions if self.showing_positions else self.table
        if self.has_focus_within:
            shown.focus()
        self._titles()

    def on_resize(self, _event: Resize) -> None:
        self._titles()

    def _titles(self) -> None:
        # On a narrow screen the equity line has no room for its name: the subtitle names it.
        what = "equity" if self.is_mounted and self.screen.has_class("-narrow") else "value and PnL"
        if self.one_at_a_time:
            self.border_title = "Positions" if self.showing_positions else "Balances"
            other = "balances" if self.showing_positions else "positions"
            where = "* enter: notes" if self.notes and self.showing_positions else f"{what} in {self.quote}"
            self.border_subtitle = f"{where} · v: {other}"
        else:
            self.border_title = "Balances · Positions"
            self.border_subtitle = f"{what} in {self.quote}" + (" · * enter: notes" if self.notes else "")
        self.app.refresh_bindings()

    # -- what the app shows ----------------------------------------------------------------

    def show(self, holdings: Iterable[Holding], quote: str) -> None:
        table = self.table
        table.quote = quote
        seen = set()
        for balance, value in sorted(holdings, key=lambda h: (h[0].currency != quote, h[0].currency)):
            seen.add(balance.currency)
            table.upsert(balance.currency, (balance, value))
        for currency in set(table.items) - seen:
            table.discard(currency)
        if quote != self.quote or not self.border_subtitle:
            self.quote = quote
            self._titles()

    def show_positions(self, positions: Mapping[str, Position]) -> None:
        """One row per market, in market order whenever they arrived (a market is a new row
        rarely: then the few rows are laid out again in order)."""
        table = self.positions
        symbols = sorted(positions)
        gone = [s for s in table.items if s not in positions]
        if gone:
            table.discard_many(gone)
        kept = list(table.items)
        selected = None
        if kept + [s for s in symbols if s not in table.items] != symbols:
            selected = table.selected_key
            table.discard_many(kept)
        for symbol in symbols:
            table.upsert(symbol, positions[symbol])
        if selected is not None:
            table.select(selected)  # laid out again: the operator's row stays chosen
        notes = any(position_notes(p) for p in positions.values())
        if notes != self.notes:
            self.notes = notes
            self._titles()

    def show_equity(self, samples: list[Decimal], quote: str) -> None:
        history = [float(v) for v in samples] if len(samples) > 1 else []
        self.sparkline.data = history
        relabel(self.scale, scale_words(equity_scale(history)[2]) if history else "", self._shown)
        label = self.equity
        if not samples:
            relabel(label, "", self._shown)
            return
        change = samples[-1] - samples[0]
        sign = "+" if change >= 0 else "-"
        style = "$text-success" if change > 0 else "$text-error" if change < 0 else "$text-muted"
        relabel(label, f"{f.money(samples[-1])} [{style}]{sign}{f.money(abs(change))}[/]", self._shown)
