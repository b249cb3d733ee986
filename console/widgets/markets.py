"""The Markets strip: last, bid, ask and change of every configured market, from the core's market view.

One cell per market, as many on a line as fit, wrapping as needed: last, change, bid and ask; on a
short screen (`full` off) the last price and the change only, unless bid and ask fit on one line too.
"""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from console import formatting as f
from executor.events import MarketQuote
from executor.models import MarketInfo

GAP = "   "


class MarketsStrip(Widget):
    DEFAULT_CSS = """
    MarketsStrip {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Markets"
        self.quotes: dict[str, MarketQuote] = {}
        self.markets: dict[str, MarketInfo] = {}
        self.symbols: list[str] = []  # the configured markets, in their order
        self.full = True  # bid and ask too, on as many lines as that takes (the app turns it off at 80x24)
        self._subtitle = ""

    def show(self, quotes: dict[str, MarketQuote]) -> None:
        if quotes == self.quotes:
            return
        width = self.content_region.width or self.size.width
        lines = len(self._lines(width))
        self.quotes = dict(quotes)
        since = [q.change_since for q in quotes.values() if q.change_since is not None]
        subtitle = f"change since {f.hms(min(since))}" if since else ("change 24h" if quotes else "")
        if subtitle != self._subtitle:
            self._subtitle = self.border_subtitle = subtitle
        # As many lines as before (new prices, the same markets): no layout of the screen.
        self.refresh(layout=not width or len(self._lines(width)) != lines)

    def _cell(self, quote: MarketQuote, full: bool) -> Content:
        market = self.markets.get(quote.symbol)
        text, style = f.change(quote.change_pct)[0]
        parts = [
            Content.from_markup("[b]$s[/b] $last ", s=quote.symbol, last=f.price(quote.last, market)),
            Content(text).stylize(f"${style}" if style in ("buy", "sell") else "$text-muted"),
        ]
        if full:
            parts.append(Content.from_markup(
                "  [$text-muted]bid[/] $bid [$text-muted]ask[/] $ask",
                bid=f.price(quote.bid, market), ask=f.price(quote.ask, market),
            ))
        return Content("").join(parts)

    def _lines(self, width: int) -> list[Content]:
        ordered = [self.quotes[s] for s in self.symbols if s in self.quotes]
        ordered += [q for s, q in self.quotes.items() if s not in self.symbols]
        if not ordered:
            return [Content("waiting for the first prices").stylize("$text-muted")]
        full = [self._cell(q, True) for q in ordered]
        one_line = sum(c.cell_length for c in full) + len(GAP) * (len(full) - 1)
        cells = full if one_line <= width or self.full else [self._cell(q, False) for q in ordered]
        lines: list[list[Content]] = [[]]
        used = 0
        for cell in cells:
            need = cell.cell_length + (len(GAP) if lines[-1] else 0)
            if lines[-1] and used + need > width:
                lines.append([])
                used, need = 0, cell.cell_length
            lines[-1].append(cell)
            used += need
        return [Content(GAP).join(line) for line in lines]

    def render(self) -> Content:
        return Content("\n").join(self._lines(self.content_region.width or self.size.width))

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lines(width))
