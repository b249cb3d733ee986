"""Positions and PnL per market from fills, by average cost (SPEC sections 3 and 8).

Pure functions, no I/O, no UI: `positions(fills, marks)` folds the store's fills (in the order
of their time, then fill id) into one `Position` per market.

Definitions (spot, long only):

- **Average cost.** A buy adds its base to the position and its quote cost to the cost basis; the
  average entry is cost basis / amount. A sell closes part of the position at the average cost:
  realized PnL = the sale's net proceeds - average entry x the base closed. A sell never changes
  the average entry of what is left. When the position is closed completely, the cost basis is
  exactly zero, so that a re-opened position starts from the price of its new buys.
- **Fees, in the asset they were paid in.**
  - buy, fee in base (Binance: charged in the asset received): the position grows by
    amount - fee while the cost basis is amount x price, so the fee raises the cost per unit;
  - buy, fee in quote: the cost basis is amount x price + fee;
  - sell, fee in quote: the proceeds are amount x price - fee;
  - sell, fee in base: amount + fee leaves the position, for the proceeds of amount x price
    (the fee's base is disposed of at its average cost, for nothing);
  - a fee in any other currency (e.g. BNB), or with no currency, is not folded into cost or
    proceeds: it is reported in `other_fees`, per currency, and is not part of the PnL.
- **Balances held before the first fill.** Fills cannot know a balance held before them, so a
  sell of more base than the fills have bought is, for the excess, a sale of such a balance. That
  part is reported in `held_before` (base) and `held_before_proceeds` (its net quote proceeds),
  without a cost basis and outside the realized PnL; the position never goes negative. The
  position held from fills is closed first (at its average cost), then the excess.
- **Unrealized PnL** at a mark (the market price in quote): amount x mark - cost basis; unknown
  (None) without a mark, zero when nothing is held.

Without a pre-held balance, for every market: realized + unrealized = the quote received - the
quote spent (fees in quote included) + amount x mark: the cash-flow identity the tests check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from executor.models import Fill, Side
from executor.numbers import fmt

ZERO = Decimal(0)
# Working precision of the fold: enough that rounding never shows at any quantity a venue reports.
PRECISION = 40


@dataclass(frozen=True)
class Position:
    """One market's position from its fills. Quantities in base, money in the market's quote."""

    symbol: str
    base: str
    quote: str
    amount: Decimal  # base held from fills (never negative)
    cost: Decimal  # cost basis of `amount`, in quote (fees in base and quote included)
    average_entry: Decimal | None  # cost / amount; None when nothing is held
    realized: Decimal  # quote: sells against the average cost, net of fees in base and quote
    mark: Decimal | None  # the market price the unrealized PnL is valued at
    unrealized: Decimal | None  # amount x mark - cost; None without a mark, 0 when flat
    held_before: Decimal  # base sold beyond what the fills bought: a balance held before them
    held_before_proceeds: Decimal  # net quote received for `held_before` (no cost basis, not PnL)
    bought: Decimal  # base bought (gross, before fees in base)
    sold: Decimal  # base sold (gross, before fees in base)
    quote_flow: Decimal  # quote received - quote spent, fees in quote included
    fees: dict[str, Decimal] = field(default_factory=dict)  # every fee, per currency paid in
    other_fees: dict[str, Decimal] = field(default_factory=dict)  # fees in neither base nor quote
    fills: int = 0
    first_fill: datetime | None = None
    last_fill: datetime | None = None

    def at_mark(self, mark: Decimal | None) -> Position:
        """The same position valued at another mark (a live view re-marks it without a re-fold)."""
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return replace(self, mark=mark, unrealized=_unrealized(self.amount, self.cost, mark))

    @property
    def total_pnl(self) -> Decimal | None:
        """realized + unrealized, or None when the unrealized PnL is unknown."""
        return None if self.unrealized is None else self.realized + self.unrealized

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: every quantity, price and amount of money as a decimal string, never a float."""
        return {
            "symbol": self.symbol,
            "base": self.base,
            "quote": self.quote,
            "amount": _s(self.amount),
            "average_entry": _s(self.average_entry),
            "cost": _s(self.cost),
            "realized": _s(self.realized),
            "mark": _s(self.mark),
            "unrealized": _s(self.unrealized),
            "total_pnl": _s(self.total_pnl),
            "held_before": _s(self.held_before),
            "held_before_proceeds": _s(self.held_before_proceeds),
            "bought": _s(self.bought),
            "sold": _s(self.sold),
            "quote_flow": _s(self.quote_flow),
            "fees": {c: _s(v) for c, v in sorted(self.fees.items())},
            "other_fees": {c: _s(v) for c, v in sorted(self.other_fees.items())},
            "fills": self.fills,
            "first_fill": self.first_fill.isoformat() if self.first_fill else None,
            "last_fill": self.last_fill.isoformat() if self.last_fill else None,
        }


def split_symbol(symbol: str) -> tuple[str, str]:
    """("BTC", "USDT") from "BTC/USDT" (a ccxt settle suffix such as ":USDT" is dropped)."""
    pair = symbol.split(":", 1)[0]
    if "/" not in pair:
        raise ValueError(f"market {symbol!r} is not BASE/QUOTE")
    base, quote = pair.split("/", 1)
    return base, quote


def fill_order(fills: Iterable[Fill]) -> list[Fill]:
    """The order fills are folded in: by time, then fill id."""
    return sorted(fills, key=lambda f: (f.ts, f.fill_id))


class _Book:
    """One market's fold. Its attributes are the fields of the `Position` it ends in, but for the
    three derived from them at a mark (`average_entry`, `mark`, `unrealized`)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.base, self.quote = split_symbol(symbol)
        self.amount = self.cost = self.realized = ZERO
        self.held_before = self.held_before_proceeds = ZERO
        self.bought = self.sold = self.quote_flow = ZERO
        self.fees: dict[str, Decimal] = {}
        self.other_fees: dict[str, Decimal] = {}
        self.fills = 0
        self.first_fill: datetime | None = None
        self.last_fill: datetime | None = None

    def apply(self, fill: Fill) -> None:
        if fill.amount < 0 or fill.price < 0:
            raise ValueError(f"fill {fill.fill_id}: negative amount or price")
        self.fills += 1
        self.first_fill = fill.ts if self.first_fill is None else self.first_fill
        self.last_fill = fill.ts
        fee = fill.fee or ZERO
        currency = fill.fee_currency or ""
        fee_base = fee if fee and currency == self.base else ZERO
        fee_quote = fee if fee and currency == self.quote else ZERO
        if fee:
            key = currency or "unknown"
            self.fees[key] = self.fees.get(key, ZERO) + fee
            if not (fee_base or fee_quote):
                self.other_fees[key] = self.other_fees.get(key, ZERO) + fee
        notional = fill.amount * fill.price
        if fill.side is Side.BUY:
            received = fill.amount - fee_base
            if received < 0:
                raise ValueError(f"fill {fill.fill_id}: a fee in base larger than the amount bought")
            spent = notional + fee_quote
            self.bought += fill.amount
            self.quote_flow -= spent
            self.amount += received
            self.cost += spent
            return
        delivered = fill.amount + fee_base
        proceeds = notional - fee_quote
        self.sold += fill.amount
        self.quote_flow += proceeds
        closed = min(delivered, self.amount)
        excess = delivered - closed
        closed_proceeds = proceeds if not excess else proceeds * closed / delivered
        if closed:
            if closed == self.amount:
                closed_cost, self.amount, self.cost = self.cost, ZERO, ZERO
            else:
                closed_cost = self.cost * closed / self.amount
                self.amount -= closed
                self.cost -= closed_cost
            self.realized += closed_proceeds - closed_cost
        if excess:
            self.held_before += excess
            self.held_before_proceeds += proceeds - closed_proceeds

    def position(self, mark: Decimal | None) -> Position:
        return Position(
            **vars(self) | {"fees": dict(self.fees), "other_fees": dict(self.other_fees)},
            average_entry=self.cost / self.amount if self.amount else None,
            mark=mark,
            unrealized=_unrealized(self.amount, self.cost, mark),
        )


def positions(fills: Iterable[Fill], marks: Mapping[str, Decimal] | None = None) -> list[Position]:
    """One position per market that has fills, sorted by market; `marks` maps a market to its price."""
    marks = marks or {}
    books: dict[str, _Book] = {}
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for fill in fill_order(fills):
            book = books.get(fill.symbol)
            if book is None:
                book = books[fill.symbol] = _Book(fill.symbol)
            book.apply(fill)
        return [books[s].position(marks.get(s)) for s in sorted(books)]


def marks_from_prices(prices: Mapping[str, Decimal], quote: str, symbols: Iterable[str]) -> dict[str, Decimal]:
    """Market prices from prices per currency in `quote` (what the core persists with balances):
    BASE/quote is the base's price; BASE/OTHER the ratio of both prices when both are known."""
    marks: dict[str, Decimal] = {}
    for symbol in symbols:
        try:
            base, market_quote = split_symbol(symbol)
        except ValueError:
            continue
        price = prices.get(base)
        if price is None:
            continue
        if market_quote == quote:
            marks[symbol] = price
        elif prices.get(market_quote):
            with localcontext() as ctx:
                ctx.prec = PRECISION
                marks[symbol] = price / prices[market_quote]
    return marks


def marks_from_balances_flag(raw: str | None, symbols: Iterable[str]) -> dict[str, Decimal]:
    """Marks from the store's `balances` flag (`executor.store.state.BALANCES`: the quote, and prices
    per currency in it). An absent or unreadable flag gives no marks: the unrealized PnL is then
    unknown, never zero."""
    if not raw:
        return {}
    from executor.store.state import BALANCES  # here: a console attached to a core never opens a store

    try:
        saved = BALANCES.parse(raw)
    except ValueError:
        return {}
    prices = {c: p for c, p in saved.prices.items() if p.is_finite() and p > 0}
    return marks_from_prices(prices, saved.quote, symbols)


def _unrealized(amount: Decimal, cost: Decimal, mark: Decimal | None) -> Decimal | None:
    if not amount:
        return ZERO
    return None if mark is None else amount * mark - cost


def _s(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)
