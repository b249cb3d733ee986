"""Binance spot's REST wire format, as the emulator speaks it: JSON shapes, error codes, weights.

Owns how paper-engine records look on the wire (orders, fills, trades, tickers, markets,
balances), the `BinanceError` every refusal becomes (HTTP status + Binance code + message, the
messages Binance sends verbatim, because ccxt matches some of them exactly), the request weight of
each endpoint, and the parsing of request parameters. Pure functions: no I/O, no state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from executor.exchanges.paper_engine import (
    Depth,
    EngineError,
    EngineOrder,
    EngineTrade,
    ErrorKind,
    TickerRecord,
)
from executor.models import Balance, MarketInfo, OrderStatus, OrderType, Side

_STATUS = {
    OrderStatus.OPEN: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELED: "CANCELED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}
_NUMBER = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"


class BinanceError(Exception):
    """A refusal as Binance sends it: HTTP status, `{"code": ..., "msg": ...}`, extra headers."""

    def __init__(
        self,
        status: int,
        code: int,
        msg: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = dict(headers or {})
        self.data = data

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.data is not None:
            out["data"] = self.data
        return out


def mandatory(name: str) -> BinanceError:
    return BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def engine_error(exc: EngineError, *, cancel: bool = False) -> BinanceError:
    """The Binance answer to an engine refusal. `cancel` picks -2011 over -2013 for unknown orders."""
    kind = exc.kind
    if kind is ErrorKind.INSUFFICIENT_FUNDS:
        return BinanceError(400, -2010, "Account has insufficient balance for requested action.")
    if kind is ErrorKind.DUPLICATE_ORDER:
        return BinanceError(400, -2010, "Duplicate order sent.")
    if kind is ErrorKind.FILTER_FAILURE:
        return BinanceError(400, -1013, f"Filter failure: {exc.filter or 'LOT_SIZE'}")
    if kind is ErrorKind.UNKNOWN_ORDER:
        return unknown_order(cancel=cancel)
    if kind is ErrorKind.BAD_SYMBOL:
        return BinanceError(400, -1121, "Invalid symbol.")
    return BinanceError(400, -1100, f"Illegal characters found in a parameter. {exc.message}")


def unknown_order(*, cancel: bool) -> BinanceError:
    if cancel:
        return BinanceError(400, -2011, "Unknown order sent.")
    return BinanceError(400, -2013, "Order does not exist.")


# -- parameters ---------------------------------------------------------------------------------


def decimal_param(params: Mapping[str, str], name: str, *, required: bool = True) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise mandatory(name)
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0 or "e" in raw.lower():
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{_NUMBER}'.")
    return value


def int_param(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(
            400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]+$'."
        ) from None


def symbols_param(params: Mapping[str, str]) -> list[str] | None:
    raw = params.get("symbols")
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'symbols'.")
    return value


def side_param(params: Mapping[str, str]) -> Side:
    raw = params.get("side")
    if not raw:
        raise mandatory("side")
    if raw not in ("BUY", "SELL"):
        raise BinanceError(400, -1117, "Invalid side.")
    return Side.BUY if raw == "BUY" else Side.SELL


def type_param(params: Mapping[str, str]) -> OrderType:
    raw = params.get("type")
    if not raw:
        raise mandatory("type")
    # The paper engine trades limit and market orders only; exchangeInfo advertises just these.
    if raw not in ("LIMIT", "MARKET"):
        raise BinanceError(400, -1116, "Invalid orderType.")
    return OrderType.LIMIT if raw == "LIMIT" else OrderType.MARKET


# -- weights ------------------------------------------------------------------------------------


def request_weight(endpoint: str, params: Mapping[str, str]) -> int:
    """Binance spot's request weight of one call (REQUEST_WEIGHT, per minute), as documented today:

    | endpoint                          | weight                                                   |
    |-----------------------------------|----------------------------------------------------------|
    | GET /api/v3/ping, time            | 1                                                        |
    | GET /api/v3/exchangeInfo          | 20                                                       |
    | GET /api/v3/depth                 | by `limit` (default 100): 5 up to 100, 25 up to 500,     |
    |                                   | 50 up to 1000, 250 above (at most 5000 levels are sent)  |
    | GET /api/v3/ticker/24hr           | 2 with `symbol`; `symbols`: 2 for 1-20, 40 for 21-100,   |
    |                                   | 80 for more; 80 for every market                         |
    | GET /api/v3/ticker/bookTicker     | 2 with `symbol`, 4 otherwise                             |
    | GET /api/v3/ticker/price          | 2 with `symbol`, 4 otherwise                             |
    | GET /api/v3/account               | 20                                                       |
    | POST /api/v3/order                | 1 (and 1 from the order count)                           |
    | GET /api/v3/order                 | 4                                                        |
    | DELETE /api/v3/order              | 1                                                        |
    | GET /api/v3/openOrders            | 6 with `symbol`, 80 without                              |
    | DELETE /api/v3/openOrders         | 1                                                        |
    | GET /api/v3/allOrders             | 20                                                       |
    | GET /api/v3/myTrades              | 20; 5 with `orderId`                                     |
    | POST /api/v3/order/cancelReplace  | 1 (and 1 from the order count)                           |
    """
    has_symbol = "symbol" in params
    if endpoint == "GET /api/v3/depth":
        limit = int_param(params, "limit", 100)
        assert limit is not None
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    if endpoint == "GET /api/v3/ticker/24hr":
        if has_symbol:
            return 2
        symbols = symbols_param(params)
        if symbols is None:
            return 80
        return 2 if len(symbols) <= 20 else 40 if len(symbols) <= 100 else 80
    if endpoint in ("GET /api/v3/ticker/bookTicker", "GET /api/v3/ticker/price"):
        return 2 if has_symbol else 4
    if endpoint == "GET /api/v3/openOrders":
        return 6 if has_symbol else 80
    if endpoint == "GET /api/v3/myTrades":
        return 5 if params.get("orderId") else 20
    return WEIGHTS.get(endpoint, 1)


# The fixed weights; every endpoint not named here, nor in `request_weight`'s cases, weighs 1.
WEIGHTS = {
    "GET /api/v3/ping": 1,
    "GET /api/v3/time": 1,
    "GET /api/v3/exchangeInfo": 20,
    "GET /api/v3/account": 20,
    "POST /api/v3/order": 1,
    "GET /api/v3/order": 4,
    "DELETE /api/v3/order": 1,
    "DELETE /api/v3/openOrders": 1,
    "GET /api/v3/allOrders": 20,
    "POST /api/v3/order/cancelReplace": 1,
}


# -- shapes -------------------------------------------------------------------------------------


def num(value: Decimal | None) -> str:
    """Binance's fixed eight decimals."""
    return format(value if value is not None else Decimal(0), ".8f")


def ms(ts: float) -> int:
    return int(ts * 1000)


def market_id(info: MarketInfo) -> str:
    return f"{info.base}{info.quote}"


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
        "timeInForce": "GTC",
        "type": o.type.value.upper(),
        "side": o.side.value.upper(),
        "stopPrice": num(None),
        "icebergQty": num(None),
        "time": ms(o.created_at),
        "updateTime": ms(o.updated_at),
        "isWorking": True,
        "workingTime": ms(o.created_at),
        "origQuoteOrderQty": num(None),
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
    for key in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty", "origQuoteOrderQty"):
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
    for key in ("time", "updateTime", "isWorking", "workingTime", "stopPrice", "icebergQty", "origQuoteOrderQty"):
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


def ticker_24hr_json(t: TickerRecord, info: MarketInfo, now: float) -> dict[str, Any]:
    change = t.last - t.open
    return {
        "symbol": market_id(info),
        "priceChange": num(change),
        "priceChangePercent": format((change / t.open * 100).quantize(Decimal("0.001")), "f"),
        "weightedAvgPrice": num(t.quote_volume / t.base_volume if t.base_volume else t.last),
        "prevClosePrice": num(t.open),
        "lastPrice": num(t.last),
        "lastQty": num(None),
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
        "firstId": -1,
        "lastId": -1,
        "count": 0,
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


def market_json(info: MarketInfo) -> dict[str, Any]:
    max_amount = info.max_amount if info.max_amount is not None else Decimal(9_000_000)
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
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": False,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
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
            {
                "filterType": "NOTIONAL",
                "minNotional": num(info.min_cost),
                "applyMinToMarket": True,
                "maxNotional": num(Decimal(9_000_000)),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
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
