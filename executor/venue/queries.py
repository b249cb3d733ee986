"""The paper engine's order book of record, read: lookups and the order and trade history.

Owns `OrderQueries`, the half of `PaperEngine` that only reads what the engine recorded: an
order by exchange or client order id (Binance's rules), the open orders, every order ever placed
and the fills, by market, id and time. Everything handed out is a copy or a fresh list.
"""

from __future__ import annotations

import bisect
import copy
import math

from executor.venue.market import Market
from executor.venue.orders import EngineError, EngineOrder, EngineTrade, ErrorKind


class OrderQueries:
    """Reads of the engine's records; `PaperEngine` holds them and mixes this in."""

    _markets: dict[str, Market]
    _orders: dict[int, EngineOrder]  # by id: every order ever placed, oldest first
    _by_client_id: dict[str, EngineOrder]  # the most recent order with each client order id
    _trades: list[EngineTrade]  # every fill, oldest first (trade ids count from 1)
    _order_trades: dict[int, list[EngineTrade]]

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
        """Every market's fills with a trade id above `trade_id`, oldest first (ids count from 1)."""
        return self._trades[max(0, trade_id) :]

    def open_orders(self, symbol: str | None = None) -> list[EngineOrder]:
        if symbol is not None:
            return [copy.copy(o) for o in self._market(symbol).open.values()]
        return [copy.copy(o) for m in self._markets.values() for o in m.open.values()]

    def all_orders(
        self,
        symbol: str | None = None,
        limit: int | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        from_id: int | None = None,
    ) -> list[EngineOrder]:
        """Every order ever placed, by exchange order id (oldest first); `limit` keeps the most
        recent ones. `since` / `until` (epoch seconds, inclusive) select by creation time,
        `from_id` orders whose id is at least it."""
        orders: list[EngineOrder] = self._market(symbol).orders if symbol is not None else list(self._orders.values())
        if from_id is not None:
            orders = orders[bisect.bisect_left(orders, from_id, key=lambda o: o.id) :]
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
        """Fills, oldest first, with `ts >= since` (epoch seconds), optionally of one order only."""
        if client_order_id is not None or exchange_order_id is not None:
            order = self._lookup(client_order_id, exchange_order_id)
            trades = self._order_trades.get(order.id, [])
            if symbol is not None and order.symbol != symbol:
                trades = []
        else:
            trades = self._market(symbol).trades if symbol is not None else self._trades
        if since is not None:
            trades = trades[bisect.bisect_left(trades, since, key=lambda t: t.ts) :]
        return list(trades)


def _order_number(exchange_order_id: str | int) -> int:
    if isinstance(exchange_order_id, int):
        return exchange_order_id
    text = exchange_order_id.removeprefix("paper-")
    return int(text) if text.isdigit() else -1
