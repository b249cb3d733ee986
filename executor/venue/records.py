"""The paper engine's book of record: what it keeps of its orders and fills, and the reads of it.

Owns `OrderRecords`, the half of `PaperEngine` that records orders and fills and reads them back:
an order by exchange or client order id (Binance's rules), the open orders, the orders and the
fills by market, id and time. Everything handed out is a copy or a fresh list (or, from
`open_orders_as`, what the caller's conversion made of an order, once per version of it).

What is kept: every open order; every ended order whose end the client has not been told yet (it
filled while resting, or the answer that told of it was lost); and of the ended
orders the client has seen end, the last `keep_closed` (`None`: every order ever placed, as the
emulator keeps them for its record). An ended order beyond those is forgotten, as a venue archives
old orders: a lookup of it is an unknown order and no list shows it. A long paper run so holds a
bounded history (SPEC 11, B9), and an order is never forgotten before its client knows how it
ended (so a lost answer can never turn into "certainly absent" and a second placement). The
ticker's counts of the last 24 hours come from the candles (`history`), not from the fills kept
here.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from executor.venue.market import Market
from executor.venue.orders import EngineError, EngineOrder, EngineTrade, ErrorKind

T = TypeVar("T")

# Ended orders a paper engine keeps (with their fills) unless told otherwise: about 7 MB of them,
# seconds of a busy run (a client looks an order up within its lookup window), five pages of
# Binance's `allOrders` in all.
KEEP_CLOSED = 5_000


class OrderRecords:
    """The engine's records and their reads; `PaperEngine` mixes this in."""

    _markets: dict[str, Market]

    def _open_records(self, keep_closed: int | None) -> None:
        if keep_closed is not None and keep_closed < 1:
            raise ValueError("keep_closed must be at least 1 (None: keep every order)")
        self.keep_closed = keep_closed
        self._orders: dict[int, EngineOrder] = {}  # by id, oldest first: the open and the kept ended ones
        self._by_client_id: dict[str, EngineOrder] = {}  # the most recent kept order with each client order id
        self._trades: dict[int, EngineTrade] = {}  # by trade id (they count from 1), oldest first
        self._order_trades: dict[int, list[EngineTrade]] = {}  # order id -> its fills
        self._closed: OrderedDict[int, EngineOrder] = OrderedDict()  # ended and told, in the order told
        self._untold: dict[int, EngineOrder] = {}  # ended, their end not told to the client yet

    # -- recording ----------------------------------------------------------------------------

    def _record_order(self, m: Market, order: EngineOrder) -> None:
        self._orders[order.id] = order
        self._by_client_id[order.client_order_id] = order
        m.orders[order.id] = order

    def _record_trade(self, m: Market, trade: EngineTrade) -> None:
        self._trades[trade.id] = trade
        m.trades[trade.id] = trade
        m.last_trade = trade
        self._order_trades.setdefault(trade.order_id, []).append(trade)

    def _ended(self, order: EngineOrder) -> None:
        """`order` has just ended: kept until its client is told (`_told`)."""
        if self.keep_closed is not None:
            self._untold[order.id] = order

    def told(self, *orders: EngineOrder) -> None:
        """An answer reached the client telling it how `orders` stand (the paper exchange says so;
        a read of the engine itself tells nobody): each ended one now takes its turn among the
        last `keep_closed`, and the oldest beyond them is forgotten."""
        untold, closed = self._untold, self._closed
        if not untold:
            return
        for told in orders:
            order = untold.pop(told.id, None)
            if order is not None:
                closed[order.id] = order
                if len(closed) > self.keep_closed:  # type: ignore[operator]
                    self._forget(closed.popitem(last=False)[1])

    def _forget(self, order: EngineOrder) -> None:
        m = self._markets[order.symbol]
        del self._orders[order.id], m.orders[order.id]
        if self._by_client_id.get(order.client_order_id) is order:
            del self._by_client_id[order.client_order_id]
        for trade in self._order_trades.pop(order.id, ()):
            del self._trades[trade.id], m.trades[trade.id]

    # -- reads --------------------------------------------------------------------------------

    def _market(self, symbol: str) -> Market:
        m = self._markets.get(symbol)
        if m is None:
            known = ", ".join(self._markets) or "none"
            raise EngineError(
                ErrorKind.BAD_SYMBOL, f"Invalid symbol. {symbol!r} is not traded here (markets: {known})."
            )
        return m

    def _lookup(self, client_order_id: str | None, exchange_order_id: str | int | None) -> EngineOrder:
        """By exchange order id, checked against the client order id when both are given (Binance's
        rule); by client order id alone, the most recent order that has it."""
        order = None
        if exchange_order_id is not None:
            order = self._orders.get(_order_number(exchange_order_id))
            if order is not None and client_order_id is not None and order.client_order_id != client_order_id:
                order = None
        elif client_order_id is not None:
            order = self._by_client_id.get(client_order_id)
        else:
            raise EngineError(ErrorKind.BAD_REQUEST, "Give a client order id or an exchange order id.")
        if order is None:
            wanted = client_order_id if client_order_id is not None else exchange_order_id
            raise EngineError(ErrorKind.UNKNOWN_ORDER, f"Order does not exist: no order {wanted!r} here.")
        return order

    def get_order(self, client_order_id: str | None = None, exchange_order_id: str | int | None = None) -> EngineOrder:
        return copy.copy(self._lookup(client_order_id, exchange_order_id))

    def open_count(self, symbol: str) -> int:
        """How many orders are open in `symbol` (Binance's MAX_NUM_ORDERS counts them)."""
        return len(self._market(symbol).open)

    def trades_after(self, trade_id: int) -> list[EngineTrade]:
        """Every market's kept fills with a trade id above `trade_id`, oldest first (ids count from 1)."""
        return _newest(self._trades, lambda t: t.id > trade_id)

    def open_orders(self, symbol: str | None = None) -> list[EngineOrder]:
        if symbol is not None:
            return [copy.copy(o) for o in self._market(symbol).open.values()]
        return [copy.copy(o) for m in self._markets.values() for o in m.open.values()]

    def open_orders_as(
        self, convert: Callable[[EngineOrder], T], memo: dict[int, tuple[int, T]], symbol: str | None = None
    ) -> list[T]:
        """The open orders as `open_orders` lists them, each as `convert` makes it, converted once
        per version of the order: `memo` (order id -> (version, what `convert` made of it)) is
        the caller's, kept from one call to the next, and holds the orders of this answer only
        afterwards. A poll of 10,000 resting orders so converts those that changed and copies none.
        `convert` reads the engine's own record: it must neither keep nor change it, and what it
        makes must not change either (it is handed out again while the order stays the same)."""
        markets = [self._market(symbol)] if symbol is not None else self._markets.values()
        fresh: dict[int, tuple[int, T]] = {}
        out = []
        for m in markets:
            for order in m.open.values():
                hit = memo.get(order.id)
                if hit is None or hit[0] != order.version:
                    hit = (order.version, convert(order))
                fresh[order.id] = hit
                out.append(hit[1])
        memo.clear()
        memo.update(fresh)
        return out

    def all_orders(
        self,
        symbol: str | None = None,
        limit: int | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        from_id: int | None = None,
    ) -> list[EngineOrder]:
        """Every kept order, by exchange order id (oldest first); `limit` keeps the most recent ones.
        `since` / `until` (epoch seconds, inclusive) select by creation time, `from_id` orders whose
        id is at least it."""
        kept = self._market(symbol).orders if symbol is not None else self._orders
        orders = list(kept.values()) if from_id is None else _newest(kept, lambda o: o.id >= from_id)
        if since is not None or until is not None:
            lo = -math.inf if since is None else since
            hi = math.inf if until is None else until
            orders = [o for o in orders if lo <= o.created_at <= hi]
        if limit is not None:
            orders = orders[-limit:] if limit > 0 else []
        return [copy.copy(o) for o in orders]

    def trades(
        self,
        symbol: str | None = None,
        since: float | None = None,
        *,
        client_order_id: str | None = None,
        exchange_order_id: str | int | None = None,
    ) -> list[EngineTrade]:
        """Kept fills, oldest first, with `ts >= since` (epoch seconds), optionally of one order only."""
        if client_order_id is not None or exchange_order_id is not None:
            order = self._lookup(client_order_id, exchange_order_id)
            mine = self._order_trades.get(order.id, []) if symbol is None or order.symbol == symbol else []
            return [t for t in mine if since is None or t.ts >= since]
        kept = self._market(symbol).trades if symbol is not None else self._trades
        # Fills are recorded in time order: the ones since `since` are the newest.
        return list(kept.values()) if since is None else _newest(kept, lambda t: t.ts >= since)


def _newest(records: dict[int, T], wanted: Callable[[T], bool]) -> list[T]:
    """The records at the end of `records` (oldest first) that are `wanted`, back to the first from
    the end that is not, oldest first: the ones from an id or a time on, without a look at the rest."""
    out = []
    for record in reversed(records.values()):
        if not wanted(record):
            break
        out.append(record)
    out.reverse()
    return out


def _order_number(exchange_order_id: str | int) -> int:
    if isinstance(exchange_order_id, int):
        return exchange_order_id
    text = exchange_order_id.removeprefix("paper-")
    return int(text) if text.isdigit() else -1
