"""One order at a time, by its client order id: placing, looking up, canceling, each venue its way.

Owns what a create sends and what it refuses to send: amount and price on the market's grid, a
notional below the market's minimum `Rejected` before anything leaves, our client order id as
ccxt's `clientOrderId` (Binance's newClientOrderId, OKX's clOrdId, Bybit's orderLinkId), the
request made once inside one admission of the venue's order-rate limit (ccxt's retries are off).
Whatever happens to the request, `_request` (see `discipline`) says which of NotPlaced, Rejected
or MaybePlaced it was; the executor resolves MaybePlaced through `fetch_order`. Lookups and cancels
go by client order id where the venue can (Binance's origClientOrderId, OKX's clOrdId, Bybit's
orderLinkId over open orders then history), else by the exchange id the adapter has seen, else by
scanning the market's orders.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Unpack

from executor.exchanges.base import ExchangeOrder, NewOrder, OrderNotFound, Rejected
from executor.exchanges.ccxt.errors import classify
from executor.exchanges.ccxt.translate import IdMap
from executor.models import MarketInfo, OrderType

# Venues whose fetch_order / cancel_order take the client order id as `clientOrderId` in params:
# ccxt's binance sends it as `origClientOrderId`, ccxt's okx as `clOrdId` (read in their source).
_CLIENT_ID_PARAM_VENUES = frozenset({"binance", "binanceus", "okx"})
# Bybit looks orders up and cancels them by `orderLinkId` (its client order id): ccxt's
# fetch_order cannot on unified accounts (it raises ArgumentsRequired, "last 500 orders").
_LINK_ID_VENUES = frozenset({"bybit"})


class OrderCalls:
    """The port's one-order methods of `CcxtExchange` (a mixin: see the module's doc)."""

    # Provided by CcxtExchange and its request discipline.
    name: str
    _ex: Any
    _binance: bool
    _secrets: tuple[str, ...]
    _ids: IdMap
    _markets: dict[str, MarketInfo]
    _request: Callable[..., Awaitable[Any]]
    _order_slot: Callable[..., contextlib.AbstractAsyncContextManager[None]]
    _order: Callable[..., ExchangeOrder]

    async def create_order(self, **order: Unpack[NewOrder]) -> ExchangeOrder:
        ex, symbol, kind, price = self._ex, order["symbol"], order["type"], order["price"]
        try:
            amount_text = ex.amount_to_precision(symbol, str(order["amount"]))
            price_text = ex.price_to_precision(symbol, str(price)) if kind is OrderType.LIMIT and price else None
        except Exception as exc:  # unknown market, amount below the grid: nothing was sent
            raise classify(exc, self._secrets) from None
        sent_amount = Decimal(amount_text)
        if sent_amount <= 0:
            raise Rejected(f"{symbol}: amount {order['amount']} is below the market's precision")
        market = self._markets.get(symbol)
        if price_text is not None and market is not None and market.min_cost > 0:
            notional = sent_amount * Decimal(price_text)
            if notional < market.min_cost:
                raise Rejected(
                    f"{symbol}: notional {notional} {market.quote} is below the minimum "
                    f"{market.min_cost} {market.quote}"
                )
        # ccxt sends it as Binance's newClientOrderId, OKX's clOrdId, Bybit's orderLinkId.
        coid, side = order["client_order_id"], order["side"]
        params = {"clientOrderId": coid}
        async with self._order_slot():
            raw = await self._request(
                "create_order",
                # A market order is sent without a price: with one, ccxt's binance turns it into quoteOrderQty.
                lambda: ex.create_order(symbol, kind.value, side.value, amount_text, price_text, params),
            )
        return self._order(raw, coid, creating=True, symbol=symbol, side=side, type=kind, amount=sent_amount)

    @property
    def _by_client_id(self) -> bool:
        return bool(self._ex.has.get("fetchOrderWithClientOrderId")) or self.name in _CLIENT_ID_PARAM_VENUES

    async def fetch_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        ex = self._ex
        if self._by_client_id:
            raw = await self._request(
                "fetch_order", lambda: ex.fetch_order("", symbol, {"clientOrderId": client_order_id})
            )
            return self._order(raw, client_order_id)
        if self.name in _LINK_ID_VENUES:
            return await self._link_lookup(client_order_id, symbol)
        order_id = self._ids.order_id(client_order_id)
        if order_id is not None:
            raw = await self._request("fetch_order", lambda: ex.fetch_order(order_id, symbol))
            return self._order(raw, client_order_id)
        return await self._scan(client_order_id, symbol)

    async def _link_lookup(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """Bybit: the open orders, then the order history, each asked for this `orderLinkId`."""
        ex = self._ex
        params = {"orderLinkId": client_order_id}
        for name in ("fetch_open_orders", "fetch_canceled_and_closed_orders"):
            method = getattr(ex, name)
            raws = await self._request("fetch_order", lambda method=method: method(symbol, None, None, dict(params)))
            for raw in raws:
                if raw.get("clientOrderId") == client_order_id:
                    return self._order(raw, client_order_id)
        raise OrderNotFound(f"{client_order_id} is not among {self.name}'s orders for {symbol}")

    async def _scan(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """Find an order by client id on a venue that cannot look it up directly."""
        ex = self._ex
        sources = []
        if ex.has.get("fetchOpenOrders"):
            sources.append(ex.fetch_open_orders)
        if ex.has.get("fetchClosedOrders"):
            sources.append(ex.fetch_closed_orders)
        elif ex.has.get("fetchOrders"):
            sources.append(ex.fetch_orders)
        if not sources:
            raise Rejected(f"{self.name} cannot look orders up by client order id")
        for source in sources:
            raws = await self._request("fetch_order", lambda source=source: source(symbol))
            for raw in raws:
                if raw.get("clientOrderId") == client_order_id:
                    return self._order(raw, client_order_id)
        raise OrderNotFound(f"{client_order_id} is not among {self.name}'s orders for {symbol}")

    async def cancel_order(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        ex = self._ex
        if self._by_client_id or ex.has.get("cancelOrderWithClientOrderId"):
            raw = await self._request(
                "cancel_order", lambda: ex.cancel_order("", symbol, {"clientOrderId": client_order_id})
            )
        elif self.name in _LINK_ID_VENUES:
            raw = await self._request(
                "cancel_order", lambda: ex.cancel_order(None, symbol, {"orderLinkId": client_order_id})
            )
        else:
            order_id = self._ids.order_id(client_order_id)
            if order_id is None:
                order_id = (await self.fetch_order(client_order_id, symbol)).exchange_order_id
            raw = await self._request("cancel_order", lambda: ex.cancel_order(order_id, symbol))
        return self._order(raw, client_order_id, symbol=symbol)
