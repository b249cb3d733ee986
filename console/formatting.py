"""How numbers, sides, countdowns and fill progress read on screen.

Numbers go through the one formatter (`executor.numbers.fmt`); this module adds what a screen
needs on top of it: "—" for unknown, a market's precision, a column's width.

Cells are described as plain data (`Cell`: text plus the name of a theme style per segment) so a
table can tell whether a cell really changed by comparing two tuples, and turn it into a styled
`rich.text.Text` only when it did, with the colours of the current theme (`CellStyles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from rich.style import Style
from rich.text import Text
from textual.color import Color

from executor.models import MarketInfo, Side, SignalRecord
from executor.numbers import fmt, places_of

# A cell: plain text, or segments of (text, style name). Style names are `CellStyles` fields.
Segment = tuple[str, str]
Cell = str | tuple[Segment, ...]

BAR_BLOCKS = " ▏▎▍▌▋▊▉█"


@dataclass(frozen=True, slots=True)
class CellStyles:
    """Rich styles for table cells, resolved from the theme's variables (never hard-coded colours)."""

    buy: Style
    sell: Style
    muted: Style
    warning: Style
    error: Style
    success: Style
    accent: Style
    bar: Style
    bar_edge: Style  # the partly filled cell: bar colour on the track
    bar_empty: Style  # the track
    plain: Style

    @classmethod
    def from_variables(cls, variables: dict[str, str]) -> CellStyles:
        background = Color.parse(variables.get("surface") or variables.get("background") or "black")

        def color(name: str, fallback: str = "foreground") -> Style:
            value = variables.get(name) or variables.get(fallback) or "white"
            try:
                parsed = Color.parse(value)
            except Exception:
                parsed = Color.parse(variables.get(fallback, "white"))
            if parsed.a < 1:
                parsed = background + parsed
            return Style(color=parsed.rich_color)

        return cls(
            buy=color("buy", "success") + Style(bold=True),
            sell=color("sell", "error") + Style(bold=True),
            muted=color("foreground-muted"),
            warning=color("warning"),
            error=color("error") + Style(bold=True),
            success=color("success"),
            accent=color("accent"),
            bar=color("fill-bar", "primary"),
            bar_edge=color("fill-bar", "primary") + Style(bgcolor=color("fill-bar-empty", "panel").color),
            bar_empty=Style(bgcolor=color("fill-bar-empty", "panel").color),
            plain=Style(),
        )


def to_text(cell: Cell, styles: CellStyles, *, width: int, justify: str = "left", keep_end: bool = False,
            wrap: bool = False) -> Text:
    """A cell as styled text `width` wide: cut with an ellipsis, or wrapped onto more lines."""
    if isinstance(cell, str):
        text = Text(cell, end="")
    else:
        text = Text(end="")
        for part, style in cell:
            text.append(part, getattr(styles, style, styles.plain))
    text.justify = justify  # type: ignore[assignment]
    if wrap:
        text.overflow = "fold"  # a word longer than the column is broken, not cut
        return text
    if keep_end and text.cell_len > width:
        text = Text("…", end="") + text[text.cell_len - width + 1:]
        text.justify = justify  # type: ignore[assignment]
    text.truncate(width, overflow="ellipsis")
    text.no_wrap = True
    return text


def decimals(step: Decimal | None) -> int | None:
    """The decimals a market's step or tick gives its numbers; None when it gives none."""
    if step is None or step <= 0:
        return None
    return places_of(step)


def number(value: Decimal | None, places: int | None = None) -> str:
    """Thousands separators; `places` fixed decimals, or as many as the value needs; unknown: "—"."""
    if value is None:
        return "—"
    return fmt(value, places, grouping=True)


def fit(value: Decimal, width: int, max_places: int = 8) -> str:
    """As many decimals as the value has (at most `max_places`), fewer if it would not fit `width`."""
    places = min(max_places, places_of(value))
    text = number(value, places)
    while len(text) > width and places > 0:
        places -= 1
        text = number(value, places)
    return text


def price(value: Decimal | None, market: MarketInfo | None) -> str:
    return number(value, decimals(market.price_tick) if market else None)


def amount(value: Decimal | None, market: MarketInfo | None) -> str:
    return number(value, decimals(market.amount_step) if market else None)


def money(value: Decimal | None) -> str:
    return number(value, 2)


def side(value: Side) -> Cell:
    """Buy and sell differ in words and arrows, not only in colour."""
    return ((side_word(value), "buy" if value is Side.BUY else "sell"),)


def side_word(value: Side) -> str:
    return "▲ BUY" if value is Side.BUY else "▼ SELL"


def signal_summary(record: SignalRecord, default_type: str = "default type") -> str:
    """One line for a signal in a dialog: market, side, type, amount."""
    signal = record.signal
    assert signal is not None
    kind = signal.order_type.value if signal.order_type else default_type
    return f"{signal.symbol}  {side_word(signal.side)}  {kind}  {number(record.amount)} {signal.base}"


def duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 100 * 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d"


def countdown(until: datetime | None, now: datetime, *, warn_below: float = 10) -> Cell:
    if until is None:
        return (("—", "muted"),)
    left = (until - now).total_seconds()
    if left <= 0:
        return (("due", "warning"),)
    return ((duration(left), "warning" if left < warn_below else "plain"),)


def progress(filled: Decimal, total: Decimal, width: int) -> Cell:
    """A fill bar with eighth-block precision, then the percentage."""
    ratio = float(filled / total) if total > 0 else 0.0
    ratio = min(max(ratio, 0.0), 1.0)
    eighths = round(ratio * width * 8)
    full, part = divmod(eighths, 8)
    edge = BAR_BLOCKS[part] if part else ""
    empty = " " * (width - full - len(edge))
    return (("█" * full, "bar"), (edge, "bar_edge"), (empty, "bar_empty"), (f"{ratio:>5.0%}", "plain"))


def hms(ts: datetime) -> str:
    """Wall time of an event, in UTC like the rest of the store."""
    return (ts.astimezone(UTC) if ts.tzinfo else ts).strftime("%H:%M:%S")


def pct(value: Decimal | None, places: int = 2) -> str:
    """A signed percentage: "+0.12%", "-5.40%"; unknown: "—"."""
    if value is None:
        return "—"
    return f"{fmt(value, places, sign=True)}%"


def change(value: Decimal | None) -> Cell:
    """A market's change: the sign in words (▲/▼), not only in colour."""
    if value is None:
        return (("—", "muted"),)
    if value == 0:
        return ((" 0.00%", "muted"),)
    return ((f"{'▲' if value > 0 else '▼'}{fmt(abs(value), 2)}%", "buy" if value > 0 else "sell"),)


def distance(value: Decimal | None, far: Decimal) -> Cell:
    """A price's distance from the market, flagged beyond `far` % (the core asks to confirm there)."""
    if value is None:
        return (("—", "muted"),)
    text = pct(value, 1)
    if far and abs(value) > far:
        return ((f"{text}!", "warning"),)
    return ((text, "muted" if abs(value) < Decimal("0.5") else "plain"),)
