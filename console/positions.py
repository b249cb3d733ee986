"""The console's positions: the core's fills, folded per market, valued at the market's price.

`FillBook` keeps the fills the core has told of (the snapshot's, then each `OrderUpdated`'s), by
market and by order, de-duplicated by fill id like the store, and folds them with the core's own
`executor.positions.positions`, so the console shows what `tradeconsole positions` exports. A
change of fills re-folds only its market; a new price re-marks the folded positions and folds
nothing. No Textual here: the Balances pane is a view of `ConsoleState.positions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from executor.events import MarketQuote
from executor.models import Fill
from executor.positions import Position, marks_from_prices, positions


class FillBook:
    def __init__(self) -> None:
        self._by_symbol: dict[str, dict[str, Fill]] = {}  # market -> fill id -> fill
        self._by_order: dict[str, dict[str, str]] = {}  # client order id -> fill id -> market
        self._folded: dict[str, Position] = {}  # unmarked, per market with fills
        self.problems: dict[str, str] = {}  # market -> why its fills could not be folded

    def __len__(self) -> int:
        return sum(len(fills) for fills in self._by_symbol.values())

    def load(self, fills: Iterable[Fill]) -> set[str]:
        """Start again from `fills` (a snapshot's); returns every market shown before or now."""
        before = set(self._by_symbol) | set(self._folded)
        self._by_symbol, self._by_order, self._folded, self.problems = {}, {}, {}, {}
        changed = self.add(fills)
        self._fold(before | changed)
        return before | changed

    def add(self, fills: Iterable[Fill], *, replacing: str | None = None) -> set[str]:
        """Record `fills`; with `replacing` (a client order id) they replace all of that order's
        fills. Returns the markets whose fills changed (folded again by `refold`)."""
        changed: set[str] = set()
        if replacing is not None:
            for fill_id, symbol in self._by_order.pop(replacing, {}).items():
                self._by_symbol.get(symbol, {}).pop(fill_id, None)
                changed.add(symbol)
        for fill in fills:
            known = self._by_symbol.setdefault(fill.symbol, {})
            if known.get(fill.fill_id) == fill:
                continue  # the same fill told twice (a snapshot and its event, a replayed report)
            known[fill.fill_id] = fill
            self._by_order.setdefault(fill.client_order_id, {})[fill.fill_id] = fill.symbol
            changed.add(fill.symbol)
        return changed

    def refold(self, symbols: Iterable[str]) -> None:
        self._fold(set(symbols))

    def _fold(self, symbols: set[str]) -> None:
        for symbol in symbols:
            fills = self._by_symbol.get(symbol)
            self.problems.pop(symbol, None)
            if not fills:
                self._by_symbol.pop(symbol, None)
                self._folded.pop(symbol, None)
                continue
            try:
                self._folded[symbol] = positions(fills.values())[0]
            except (ValueError, ArithmeticError) as exc:  # a fill no venue could have reported
                self._folded.pop(symbol, None)
                self.problems[symbol] = str(exc)

    def marked(self, marks: Mapping[str, Decimal]) -> dict[str, Position]:
        """Every folded position, by market, valued at `marks` (unknown without a mark)."""
        return {s: p.at_mark(marks.get(s)) for s, p in sorted(self._folded.items())}

    @property
    def symbols(self) -> list[str]:
        return sorted(self._folded)


def marks(symbols: Iterable[str], quotes: Mapping[str, MarketQuote], prices: Mapping[str, Decimal],
          quote: str) -> dict[str, Decimal]:
    """Each market's price for its unrealized PnL: the mid of the market view's quote (the price
    the core's far-from-market rule uses), else the price the core valued the balances at."""
    symbols = list(symbols)
    out = marks_from_prices(prices, quote, symbols)
    for symbol in symbols:
        market = quotes.get(symbol)
        if market is not None and market.bid > 0 and market.ask > 0:
            out[symbol] = market.mid
    return out
