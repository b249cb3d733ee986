"""The bulk reads reconciliation relies on: open orders, every order since a time, our fills.

Owns how each venue lists orders and trades beyond ccxt's single call: open orders market by
market or in one request (whichever costs less), Binance's `allOrders`/`myTrades` paged by time
then by id, OKX's and Bybit's pages by their own cursors, ccxt's `since` elsewhere; and what comes
back de-duplicated by id, filtered to `since` and sorted oldest first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from executor.exchanges.base import ExchangeOrder, Rejected, Trade
from executor.exchanges.ccxt.translate import id_key, to_ms
from executor.models import MarketInfo

# Open orders without a symbol cost Binance 80 weight against 6 per symbol: below this many
# markets, asking market by market is cheaper, and it works on venues that require a symbol.
PER_SYMBOL_OPEN_ORDERS_MAX = 8
BINANCE_PAGE = 1000  # allOrders and myTrades: the largest page
_DAY_MS = 24 * 3600 * 1000  # Binance: startTime..endTime may span at most 24 h
_MAX_PAGES = 1000
# How each venue pages order and trade history beyond ccxt's single call, and its largest page.
_PAGING = {"okx": ("after", 100), "bybit": ("cursor", 50)}


class BulkReads:
    """The port's list methods of `CcxtExchange` (a mixin: see the module's doc)."""

    # Provided by CcxtExchange and its request discipline.
    name: str
    _ex: Any
    _binance: bool
    _venue: str
    _markets: dict[str, MarketInfo]
    _markets_wanted: tuple[str, ...]
    _request: Callable[..., Awaitable[Any]]
    _order: Callable[..., ExchangeOrder]
    _trade: Callable[[dict[str, Any], str], Trade]

    async def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        symbols = [symbol] if symbol else list(self._markets or self._markets_wanted)
        if symbol is None and not (0 < len(symbols) <= PER_SYMBOL_OPEN_ORDERS_MAX):
            raws = await self._open_orders_of(None)
        else:
            results = await asyncio.gather(*(self._open_orders_of(s) for s in symbols), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            raws = [raw for result in results for raw in result]  # type: ignore[union-attr]
        return [self._order(raw) for raw in raws]

    async def _open_orders_of(self, symbol: str | None) -> list[dict[str, Any]]:
        if self._venue in _PAGING:
            return await self._pages("fetch_open_orders", "fetch_open_orders", symbol, None, after_key="ordId")
        return await self._request("fetch_open_orders", lambda: self._ex.fetch_open_orders(symbol))

    async def fetch_orders_since(self, symbol: str, since: datetime) -> list[ExchangeOrder]:
        since_ms = to_ms(since)
        if self._binance:
            raws = await self._binance_pages("fetch_orders_since", self._ex.fetch_orders, symbol, since_ms, "orderId")
        else:
            raws = []
            for name in self._history_sources():
                raws += await self._pages("fetch_orders_since", name, symbol, since_ms, after_key="ordId")
        by_id: dict[str, ExchangeOrder] = {}
        for raw in raws:
            order = self._order(raw)
            if order.created is not None and to_ms(order.created) < since_ms:
                continue
            by_id[order.exchange_order_id or order.client_order_id] = order
        epoch = datetime.fromtimestamp(0, UTC)
        return sorted(by_id.values(), key=lambda o: (o.created or epoch, id_key(o.exchange_order_id)))

    def _history_sources(self) -> list[str]:
        """The ccxt methods that together list every order of a market (open and ended)."""
        has = self._ex.has
        if has.get("fetchOrders") is True:
            return ["fetch_orders"]
        sources = ["fetch_open_orders"] if has.get("fetchOpenOrders") else []
        # Bybit's and OKX's "closed" orders are the filled ones only: the canceled come separately.
        if has.get("fetchCanceledAndClosedOrders"):
            sources.append("fetch_canceled_and_closed_orders")
        else:
            if has.get("fetchClosedOrders"):
                sources.append("fetch_closed_orders")
            if has.get("fetchCanceledOrders"):
                sources.append("fetch_canceled_orders")
        if not sources:
            raise Rejected(f"{self.name} cannot list its orders")
        return sources

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> list[Trade]:
        since_ms = to_ms(since) if since is not None else None
        if self._binance:
            raws = await self._binance_pages("fetch_my_trades", self._ex.fetch_my_trades, symbol, since_ms, "fromId")
        else:
            raws = await self._pages("fetch_my_trades", "fetch_my_trades", symbol, since_ms, after_key="billId")
        by_id: dict[str, Trade] = {}
        for raw in raws:
            trade = self._trade(raw, symbol)
            if since_ms is not None and trade.ts is not None and to_ms(trade.ts) < since_ms:
                continue
            by_id[trade.trade_id] = trade
        epoch = datetime.fromtimestamp(0, UTC)
        return sorted(by_id.values(), key=lambda t: (t.ts or epoch, id_key(t.trade_id)))

    async def _binance_pages(
        self,
        operation: str,
        method: Callable[..., Awaitable[list[Any]]],
        symbol: str,
        since_ms: int | None,
        id_param: str,
    ) -> list[dict[str, Any]]:
        """Every page of Binance's allOrders (`id_param` "orderId") or myTrades ("fromId").

        The first page by time: `startTime` alone when `since` is within the last 24 h (the answer
        then spans up to now), else 24 h windows (`startTime` + `endTime`, Binance's widest) until
        one holds anything. Then by id, `id_param` = last id + 1, 1,000 at a time, until a page is
        short: ids grow with time, so nothing after the first page is older than `since`.
        """
        limit = BINANCE_PAGE
        out: list[dict[str, Any]] = []
        if since_ms is None:
            first = await self._request(operation, lambda: method(symbol, None, limit, {id_param: 0}))
            to_present = True
        else:
            start, first, to_present = since_ms, [], False
            while not first:
                now = self._ex.milliseconds()
                to_present = now - start <= _DAY_MS
                if to_present:
                    first = await self._request(operation, lambda start=start: method(symbol, start, limit))
                    break
                end = start + _DAY_MS - 1
                first = await self._request(
                    operation, lambda start=start, end=end: method(symbol, start, limit, {"until": end})
                )
                start = end + 1
        out += first
        page = first
        for _ in range(_MAX_PAGES):
            if not page or (to_present and len(page) < limit):
                break
            last = max(id_key(raw.get("id"))[0] for raw in page)
            page = await self._request(operation, lambda last=last: method(symbol, None, limit, {id_param: last + 1}))
            out += page
            to_present = True
        return out

    async def _pages(
        self, operation: str, name: str, symbol: str | None, since_ms: int | None, *, after_key: str
    ) -> list[dict[str, Any]]:
        """Every page of a ccxt list method on a venue other than Binance.

        Bybit: by its `cursor`; OKX: backwards by its own ids (`after`: older than that id);
        elsewhere forwards by `since` (the newest timestamp seen). Stops at a short page or one
        that brings nothing new.
        """
        ex = self._ex
        method = getattr(ex, name)
        style, limit = _PAGING.get(self._venue, ("since", None))
        seen: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = {}
        since = since_ms
        for _ in range(_MAX_PAGES):
            page = await self._request(operation, lambda since=since, p=dict(params): method(symbol, since, limit, p))
            fresh = [raw for raw in page if str(raw.get("id")) not in seen]
            for raw in page:
                seen[str(raw.get("id"))] = raw
            if not fresh or (limit is not None and len(page) < limit):
                break
            infos = [raw["info"] for raw in page if isinstance(raw.get("info"), dict)]
            if style == "cursor":
                cursor = next((i["nextPageCursor"] for i in infos if i.get("nextPageCursor")), None)
                if not cursor:
                    break
                params["cursor"] = cursor
            elif style == "after":
                ids = [str(i[after_key]) for i in infos if i.get(after_key)]
                if not ids:
                    break
                params["after"] = min(ids, key=id_key)
            else:
                stamps = [raw["timestamp"] for raw in page if isinstance(raw.get("timestamp"), int)]
                if not stamps or (since is not None and max(stamps) <= since):
                    break
                since = max(stamps)
        return list(seen.values())
