"""Binance spot's REST wire format, the answers' side: paper-engine records as Binance shows them.

Owns the JSON shapes of every answer the emulator sends: orders (as queried, placed in ACK,
RESULT or FULL form, canceled), fills, public and aggregate trades, tickers, the book, klines
from the engine's one-minute candles, markets with their filters, rate limits and the account.
The encodings they share and the requests' side are `wire`'s. Pure functions: no I/O, no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from executor.models import Balance, MarketInfo, OrderStatus, Side
from executor.venue.emulator.wire import ORDER_TYPES, PercentPriceBySide, kline_start, market_id, ms, num, plain
from executor.venue.history import Candle
from executor.venue.market import Depth, TickerRecord
from executor.venue.orders import EngineOrder, EngineTrade

_STATUS = {
    OrderStatus.OPEN: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}


def wire_type(o: EngineOrder) -> str:
    return "LIMIT_MAKER" if o.post_only else o.type.value.upper()


def order_json(o: EngineOrder, info: MarketInfo) -> dict[str, Any]:
    """An order as `GET /api/v3/order` shows it."""
    return {
        "symbol": market_id(info),
        "orderId": o.id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "price": num(o.price),
        "origQty": num(o.amount),
        "executedQty": num(o.filled),
        "cummulativeQuoteQty": num(o.cost),
        "status": _STATUS[o.status],
        "timeInForce": o.time_in_force,
        "type": wire_type(o),
        "side": o.side.value.upper(),
        "stopPrice": num(None),
        "icebergQty": num(None),
        "time": ms(o.created_at),
        "updateTime": ms(o.updated_at),
        "isWorking": True,
        "workingTime": ms(o.created_at),
        "origQuoteOrderQty": num(o.quote_amount),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def new_order_json(o: EngineOrder, info: MarketInfo, fills: list[EngineTrade], resp_type: str) -> dict[str, Any]:
    """The answer to `POST /api/v3/order` in its ACK, RESULT or FULL form."""
    ack = {
        "symbol": market_id(info),
        "orderId": o.id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "transactTime": ms(o.created_at),
    }
    if resp_type == "ACK":
        return ack
    full = order_json(o, info)
    for key in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
        full.pop(key)
    result = {**ack, **full}
    if resp_type == "FULL":
        result["fills"] = [
            {
                "price": num(t.price),
                "qty": num(t.amount),
                "commission": num(t.fee),
                "commissionAsset": t.fee_currency,
                "tradeId": t.id,
            }
            for t in fills
        ]
    return result


def cancel_json(o: EngineOrder, info: MarketInfo, cancel_client_id: str) -> dict[str, Any]:
    """The answer to `DELETE /api/v3/order`: `clientOrderId` is the cancel request's own id."""
    out = order_json(o, info)
    for key in ("time", "updateTime", "isWorking", "workingTime", "stopPrice", "icebergQty"):
        out.pop(key)
    out["origClientOrderId"] = o.client_order_id
    out["clientOrderId"] = cancel_client_id
    out["transactTime"] = ms(o.updated_at)
    return out


def trade_json(t: EngineTrade, info: MarketInfo) -> dict[str, Any]:
    return {
        "symbol": market_id(info),
        "id": t.id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": num(t.price),
        "qty": num(t.amount),
        "quoteQty": num(t.cost),
        "commission": num(t.fee),
        "commissionAsset": t.fee_currency,
        "time": ms(t.ts),
        "isBuyer": t.side is Side.BUY,
        "isMaker": t.maker,
        "isBestMatch": True,
    }


def ticker_24hr_json(t: TickerRecord, info: MarketInfo, now: float, *, mini: bool = False) -> dict[str, Any]:
    """The rolling 24 hours (`type=FULL`, or `MINI`): open, high and low from the engine's rolling
    window, so the open always lies within high and low; volumes and counts of its own fills."""
    change = t.last - t.open
    full = {
        "symbol": market_id(info),
        "priceChange": num(change),
        "priceChangePercent": format((change / t.open * 100).quantize(Decimal("0.001")), "f"),
        "weightedAvgPrice": num(t.quote_volume / t.base_volume if t.base_volume else t.last),
        "prevClosePrice": num(t.open),
        "lastPrice": num(t.last),
        "lastQty": num(t.last_amount),
        "bidPrice": num(t.bid),
        "bidQty": num(t.bid_amount),
        "askPrice": num(t.ask),
        "askQty": num(t.ask_amount),
        "openPrice": num(t.open),
        "highPrice": num(t.high),
        "lowPrice": num(t.low),
        "volume": num(t.base_volume),
        "quoteVolume": num(t.quote_volume),
        "openTime": ms(now - 86_400),
        "closeTime": ms(now),
        "firstId": t.first_id,
        "lastId": t.last_id,
        "count": t.count,
    }
    return {key: full[key] for key in _MINI_TICKER} if mini else full


# The fields of a `type=MINI` 24-hour ticker, in Binance's order.
_MINI_TICKER = (
    "symbol",
    "openPrice",
    "highPrice",
    "lowPrice",
    "lastPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
)


def _buyer_is_maker(t: EngineTrade) -> bool:
    # the engine's order is one side of the trade; the synthetic book's trader is the other
    return (t.side is Side.BUY) is t.maker


def public_trade_json(t: EngineTrade) -> dict[str, Any]:
    """A trade as `GET /api/v3/trades` shows it to anybody."""
    return {
        "id": t.id,
        "price": num(t.price),
        "qty": num(t.amount),
        "quoteQty": num(t.cost),
        "time": ms(t.ts),
        "isBuyerMaker": _buyer_is_maker(t),
        "isBestMatch": True,
    }


def agg_trade_json(t: EngineTrade) -> dict[str, Any]:
    """One trade as an aggregate trade of its own (`GET /api/v3/aggTrades`): the engine's fills of
    one taker are at distinct prices, so Binance would not merge them either."""
    return {
        "a": t.id,
        "p": num(t.price),
        "q": num(t.amount),
        "f": t.id,
        "l": t.id,
        "T": ms(t.ts),
        "m": _buyer_is_maker(t),
        "M": True,
    }


def avg_price_json(price: Decimal, minutes: int, now: float) -> dict[str, Any]:
    return {"mins": minutes, "price": num(price), "closeTime": ms(now)}


def trade_fee_json(info: MarketInfo) -> dict[str, Any]:
    """`GET /sapi/v1/asset/tradeFee`: the engine's fees, as fractions."""
    return {
        "symbol": market_id(info),
        "makerCommission": plain(info.maker_fee),
        "takerCommission": plain(info.taker_fee),
    }


def book_ticker_json(t: TickerRecord, info: MarketInfo) -> dict[str, Any]:
    return {
        "symbol": market_id(info),
        "bidPrice": num(t.bid),
        "bidQty": num(t.bid_amount),
        "askPrice": num(t.ask),
        "askQty": num(t.ask_amount),
    }


def depth_json(d: Depth) -> dict[str, Any]:
    return {
        "lastUpdateId": d.update_id,
        "bids": [[num(p), num(q)] for p, q in d.bids],
        "asks": [[num(p), num(q)] for p, q in d.asks],
    }


def market_json(
    info: MarketInfo, *, percent_price: PercentPriceBySide | None = None, max_orders: int = 0
) -> dict[str, Any]:
    """A symbol of exchangeInfo: exactly the filters enforced (PERCENT_PRICE_BY_SIDE when
    `percent_price` is given, MAX_NUM_ORDERS when `max_orders` is)."""
    max_amount = info.max_amount if info.max_amount is not None else Decimal(9_000_000)
    filters: list[dict[str, Any]] = [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": num(info.price_tick),
            "maxPrice": num(Decimal(10_000_000)),
            "tickSize": num(info.price_tick),
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": num(info.min_amount),
            "maxQty": num(max_amount),
            "stepSize": num(info.amount_step),
        },
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": num(info.min_amount),
            "maxQty": num(max_amount),
            "stepSize": num(info.amount_step),
        },
    ]
    if percent_price is not None:
        filters.append(percent_price.to_json())
    filters.append(
        {
            "filterType": "NOTIONAL",
            "minNotional": num(info.min_cost),
            "applyMinToMarket": True,
            "maxNotional": num(Decimal(9_000_000)),
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        }
    )
    if max_orders:
        filters.append({"filterType": "MAX_NUM_ORDERS", "maxNumOrders": max_orders})
    return {
        "symbol": market_id(info),
        "status": "TRADING",
        "baseAsset": info.base,
        "baseAssetPrecision": 8,
        "quoteAsset": info.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": filters,
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
    }


def rate_limits_json(weight_per_minute: int, orders_per_10s: int, orders_per_day: int) -> list[dict[str, Any]]:
    out = []
    if weight_per_minute:
        out.append(
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_per_minute}
        )
    if orders_per_10s:
        out.append({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": orders_per_10s})
    if orders_per_day:
        out.append({"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": orders_per_day})
    return out


def account_json(balances: dict[str, Balance], maker: Decimal, taker: Decimal, now: float, omit_zero: bool):
    rows = [
        {"asset": c, "free": num(b.free), "locked": num(b.used)}
        for c, b in sorted(balances.items())
        if not (omit_zero and b.total == 0)
    ]
    return {
        "makerCommission": int(maker * 10_000),
        "takerCommission": int(taker * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": num(maker), "taker": num(taker), "buyer": num(None), "seller": num(None)},
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": ms(now),
        "accountType": "SPOT",
        "balances": rows,
        "permissions": ["SPOT"],
        "uid": 1,
    }


def klines_json(
    candles: Sequence[Candle],
    interval: str,
    *,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
    offset_ms: int = 0,
) -> list[list[Any]]:
    """One-minute candles as Binance's klines of `interval`: by open time, oldest first; from
    `start_ms` the oldest `limit`, otherwise the newest `limit` (up to `end_ms`)."""
    rows: list[list[Any]] = []
    current: list[Any] | None = None
    for c in candles:
        open_ms, next_ms = kline_start(int(c.start * 1000), interval, offset_ms)
        if current is not None and current[0] == open_ms:
            current[2] = max(current[2], c.high)
            current[3] = min(current[3], c.low)
            current[4] = c.close
            for i, value in ((5, c.base_volume), (7, c.quote_volume), (9, c.taker_buy_base), (10, c.taker_buy_quote)):
                current[i] += value
            current[8] += c.trades
            continue
        current = [
            open_ms, c.open, c.high, c.low, c.close, c.base_volume, next_ms - 1, c.quote_volume, c.trades,
            c.taker_buy_base, c.taker_buy_quote, "0",
        ]  # fmt: skip
        rows.append(current)
    rows = [r for r in rows if (start_ms is None or r[0] >= start_ms) and (end_ms is None or r[0] <= end_ms)]
    rows = rows[:limit] if start_ms is not None else rows[-limit:]
    out = []
    for r in rows:
        out.append(
            [
                r[0],
                num(r[1]),
                num(r[2]),
                num(r[3]),
                num(r[4]),
                num(r[5]),
                r[6],
                num(r[7]),
                r[8],
                num(r[9]),
                num(r[10]),
                "0",
            ]
        )
    return out
