"""The Signals pane: signals waiting for an operator, with their TTL and distance from the market."""

from __future__ import annotations

from decimal import Decimal

from console import formatting as f
from console.formatting import Cell
from console.widgets.table.widget import Column, KeyedTable
from executor.events import MarketQuote
from executor.models import MarketInfo, OrderType, SignalRecord, distance_pct


class SignalsTable(KeyedTable[SignalRecord]):
    """Pending signals keyed by signal id, in arrival order."""

    COLUMNS = (
        # At 80 columns the type and the price stay: one approves knowing limit from market.
        Column("id", "signal", 14, narrow=10, keep_end=True),
        Column("symbol", "symbol", 9, narrow=8),
        Column("side", "side", 6),
        Column("type", "type", 6),
        Column("amount", "amount", 10, justify="right", narrow=8),
        Column("price", "ref. price", 11, justify="right", narrow=9, narrow_label="ref.price"),
        Column("notional", "notional", 10, justify="right", wide_only=True),
        Column("market", "vs mkt", 7, justify="right", narrow=6, narrow_label="mkt"),
        Column("ttl", "TTL", 6, justify="right", narrow=5),
        Column("strategy", "strategy", 11, extra=True),  # where the others leave room
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.markets: dict[str, MarketInfo] = {}
        self.default_type = "limit"  # `[execution] order_type`, for signals that name none
        self.quotes: dict[str, MarketQuote] = {}  # the core's market view
        self.far = Decimal(0)  # `[approval] far_from_market_pct`: beyond it the distance is flagged
        self.border_title = "Signals"

    def cells(self, item: SignalRecord) -> dict[str, Cell]:
        signal = item.signal
        assert signal is not None
        market = self.markets.get(signal.symbol)
        order_type = signal.order_type or self.default_type
        note = signal.strategy or ""
        if item.reason and item.decided_by == "executor":
            note = f"{note} · {item.reason}" if note else item.reason
        return {
            "id": item.id or "",
            "symbol": signal.symbol,
            "side": f.side(signal.side),
            "type": order_type.value if isinstance(order_type, OrderType) else order_type,
            "amount": f.amount(item.amount, market),
            "price": f.price(item.reference_price, market),
            "notional": f.money(item.notional),
            "market": f.distance(self.distance(item), self.far),
            "ttl": f.countdown(item.expires_at, self.now, warn_below=15),
            "strategy": ((note, "muted"),) if note else "",
        }

    def distance(self, item: SignalRecord) -> Decimal | None:
        """The signal's reference price from the market (the mid of bid and ask), in %."""
        quote = self.quotes.get(item.signal.symbol) if item.signal else None
        if quote is None or item.reference_price is None or not quote.mid:
            return None
        return distance_pct(item.reference_price, quote.mid)

    def show_count(self) -> None:
        n = len(self.items)
        self.show_summary(f"{n} pending" if n else "none pending")
