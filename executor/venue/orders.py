"""The paper engine's order model: its orders and trades, its refusals, and the resting book.

Owns `EngineOrder` and `EngineTrade` (what the engine records and hands out as copies; a trade
of an order is made by `EngineOrder.fill`, which moves the order's amounts with it),
`EngineError` with its `ErrorKind`s (every refusal of the engine, which the paper exchange and
the emulator each translate for their clients), and `RestingSide`, the resting limit orders of
one side of one market by price. Plain data: no money moves here (see `engine`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from executor.models import OrderStatus, OrderType, Side

ZERO = Decimal(0)


def fmt(value: Decimal) -> str:
    """A Decimal for a human (refusal messages): no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


class ErrorKind(StrEnum):
    BAD_SYMBOL = "bad_symbol"
    FILTER_FAILURE = "filter_failure"
    DUPLICATE_ORDER = "duplicate_order"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    UNKNOWN_ORDER = "unknown_order"
    BAD_REQUEST = "bad_request"
    WOULD_TAKE = "would_take"  # a post-only order that would cross


class EngineError(Exception):
    """Every refusal of the engine. `filter` names the Binance filter for `filter_failure`."""

    def __init__(self, kind: ErrorKind | str, message: str, *, filter: str | None = None) -> None:
        super().__init__(message)
        self.kind = ErrorKind(kind)
        self.message = message
        self.filter = filter


@dataclass(slots=True)
class EngineOrder:
    """One order ever placed. The engine hands out copies; `id` is Binance's numeric orderId."""

    id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    status: OrderStatus
    created_at: float  # epoch seconds
    updated_at: float
    filled: Decimal = ZERO
    cost: Decimal = ZERO  # quote spent or received, fees excluded
    fee: Decimal = ZERO  # in `fee_currency`: the base for a buy, the quote for a sell
    fee_currency: str = ""
    locked: Decimal = ZERO  # what this order still holds in `used` (quote for buys, base for sells)
    ticks: int = 0  # price in ticks, the resting book's key
    time_in_force: str = "GTC"  # GTC, IOC or FOK
    post_only: bool = False  # Binance's LIMIT_MAKER
    quote_amount: Decimal | None = None  # a market order by quote (Binance's quoteOrderQty)
    # One up at every change a client can see (a fill, its end): an answer converted from one
    # version of the order holds as long as the version does (the paper exchange keeps them).
    version: int = 0

    def __copy__(self) -> EngineOrder:
        # What the engine hands out: a tenth of `copy.copy`'s generic way, every field.
        return EngineOrder(
            self.id,
            self.client_order_id,
            self.symbol,
            self.side,
            self.type,
            self.amount,
            self.price,
            self.status,
            self.created_at,
            self.updated_at,
            self.filled,
            self.cost,
            self.fee,
            self.fee_currency,
            self.locked,
            self.ticks,
            self.time_in_force,
            self.post_only,
            self.quote_amount,
            self.version,
        )

    @property
    def exchange_order_id(self) -> str:
        return f"paper-{self.id}"

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def average(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)

    def fill(
        self, trade_id: int, qty: Decimal, price: Decimal, fee: Decimal, fee_currency: str, *, maker: bool, ts: float
    ) -> EngineTrade:
        """One trade of this order (`qty` at `price`, its fee, as maker or taker, at `ts`): the order's
        filled amount, cost, fee and status move with it. The money is the engine's to move."""
        self.filled += qty
        self.cost += qty * price
        self.fee += fee
        self.updated_at = ts
        self.status = OrderStatus.FILLED if self.filled >= self.amount else OrderStatus.PARTIALLY_FILLED
        self.version += 1
        return EngineTrade(
            trade_id, self.id, self.client_order_id, self.symbol, self.side, qty, price, fee, fee_currency, maker, ts
        )


@dataclass(frozen=True, slots=True)
class EngineTrade:
    id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    maker: bool
    ts: float  # epoch seconds

    @property
    def exchange_order_id(self) -> str:
        return f"paper-{self.order_id}"

    @property
    def cost(self) -> Decimal:
        return self.amount * self.price


class RestingSide:
    """Resting orders of one side of one market, best price first, FIFO within a price.

    Keys are ticks for sells and negated ticks for buys, so "best first" is ascending for both
    and "crosses the touch" is `key <= bound` for both.
    """

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, side: Side) -> None:
        self.sign = -1 if side is Side.BUY else 1
        self.keys: list[int] = []
        self.levels: dict[int, dict[int, EngineOrder]] = {}

    def add(self, order: EngineOrder) -> None:
        key = self.sign * order.ticks
        level = self.levels.get(key)
        if level is None:
            bisect.insort(self.keys, key)
            level = self.levels[key] = {}
        level[order.id] = order

    def remove(self, order: EngineOrder) -> None:
        key = self.sign * order.ticks
        level = self.levels[key]
        del level[order.id]
        if not level:
            del self.levels[key]
            del self.keys[bisect.bisect_left(self.keys, key)]

    def crossing(self, touch_ticks: int) -> list[EngineOrder]:
        """Orders a taker at `touch_ticks` would trade with; only these are touched."""
        bound = self.sign * touch_ticks
        out: list[EngineOrder] = []
        for key in self.keys:
            if key > bound:
                break
            out.extend(self.levels[key].values())
        return out
