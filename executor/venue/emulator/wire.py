"""Binance spot's REST wire format, as the emulator speaks it: JSON shapes, error codes, weights.

Owns how paper-engine records look on the wire (orders, fills, trades, tickers, markets,
balances), the `BinanceError` every refusal becomes (HTTP status + Binance code + message, the
messages Binance sends verbatim, because ccxt matches some of them exactly), the request weight of
each endpoint, and the parsing of request parameters. Pure functions: no I/O, no state.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from executor.exchanges.paper_engine import (
    Candle,
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
    if kind is ErrorKind.WOULD_TAKE:
        return BinanceError(400, -2010, "Order would immediately match and take.")
    return BinanceError(400, -1100, f"Illegal characters found in a parameter. {exc.message}")


def unknown_order(*, cancel: bool) -> BinanceError:
    if cancel:
        return BinanceError(400, -2011, "Unknown order sent.")
    return BinanceError(400, -2013, "Order does not exist.")


def unknown_endpoint() -> BinanceError:
    """Every path (or method) the emulator does not serve: a 404 whose JSON body carries Binance's
    -1020, which ccxt raises as BadRequest, an error it never retries (an HTML 404, what Binance's
    edge sends, would be ExchangeNotAvailable to ccxt: a network error, retried)."""
    return BinanceError(404, -1020, "This operation is not supported.")


def sent_when_not_required(name: str) -> BinanceError:
    return BinanceError(400, -1106, f"Parameter '{name}' sent when not required.")


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


# The order types the paper engine trades, as exchangeInfo advertises them: (engine type, post-only).
ORDER_TYPES = {
    "LIMIT": (OrderType.LIMIT, False),
    "LIMIT_MAKER": (OrderType.LIMIT, True),
    "MARKET": (OrderType.MARKET, False),
}
TIME_IN_FORCE = ("GTC", "IOC", "FOK")


def type_param(params: Mapping[str, str]) -> tuple[OrderType, bool]:
    """The engine's order type of `type`, and whether it is post-only (LIMIT_MAKER)."""
    raw = params.get("type")
    if not raw:
        raise mandatory("type")
    if raw not in ORDER_TYPES:
        raise BinanceError(400, -1116, "Invalid orderType.")
    return ORDER_TYPES[raw]


@dataclass(frozen=True, slots=True)
class PercentPriceBySide:
    """Binance's PERCENT_PRICE_BY_SIDE filter: a limit price within these multiples of the average
    price of the last `avg_price_mins` minutes, by side. The defaults are Binance spot BTCUSDT's."""

    bid_up: Decimal = Decimal(5)
    bid_down: Decimal = Decimal("0.2")
    ask_up: Decimal = Decimal(5)
    ask_down: Decimal = Decimal("0.2")
    avg_price_mins: int = 5

    def allows(self, side: Side, price: Decimal, average: Decimal) -> bool:
        up, down = (self.bid_up, self.bid_down) if side is Side.BUY else (self.ask_up, self.ask_down)
        return average * down <= price <= average * up

    def to_json(self) -> dict[str, Any]:
        return {
            "filterType": "PERCENT_PRICE_BY_SIDE",
            "bidMultiplierUp": _plain(self.bid_up),
            "bidMultiplierDown": _plain(self.bid_down),
            "askMultiplierUp": _plain(self.ask_up),
            "askMultiplierDown": _plain(self.ask_down),
            "avgPriceMins": self.avg_price_mins,
        }


# -- klines -------------------------------------------------------------------------------------

_MINUTE_MS = 60_000
# Kline intervals by their length in ms; "1M" (calendar months) is computed apart. "1s" is
# Binance's too, but the engine keeps one-minute candles: it is refused as an invalid interval.
INTERVALS = {
    "1m": _MINUTE_MS,
    "3m": 3 * _MINUTE_MS,
    "5m": 5 * _MINUTE_MS,
    "15m": 15 * _MINUTE_MS,
    "30m": 30 * _MINUTE_MS,
    "1h": 60 * _MINUTE_MS,
    "2h": 120 * _MINUTE_MS,
    "4h": 240 * _MINUTE_MS,
    "6h": 360 * _MINUTE_MS,
    "8h": 480 * _MINUTE_MS,
    "12h": 720 * _MINUTE_MS,
    "1d": 1440 * _MINUTE_MS,
    "3d": 3 * 1440 * _MINUTE_MS,
    "1w": 7 * 1440 * _MINUTE_MS,
    "1M": 0,
}
_MONDAY_MS = 4 * 1440 * _MINUTE_MS  # 1970-01-05, the first Monday: weeks start on Mondays


def interval_param(params: Mapping[str, str]) -> str:
    raw = params.get("interval")
    if not raw:
        raise mandatory("interval")
    if raw not in INTERVALS:
        raise BinanceError(400, -1120, "Invalid interval.")
    return raw


def time_zone_param(params: Mapping[str, str]) -> int:
    """`timeZone` ("-1:00", "05:45", "8"; -12:00 to +14:00) as an offset in ms, 0 for UTC."""
    raw = params.get("timeZone")
    if raw is None or raw == "":
        return 0
    text = raw.strip()
    sign = -1 if text.startswith("-") else 1
    hours, _, minutes = text.lstrip("+-").partition(":")
    try:
        h, mins = int(hours), int(minutes or 0)
    except ValueError:
        h, mins = 99, 0
    offset = sign * (h * 60 + mins)
    if not 0 <= mins < 60 or not -12 * 60 <= offset <= 14 * 60:
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'timeZone'.")
    return offset * _MINUTE_MS


def kline_start(ts_ms: int, interval: str, offset_ms: int = 0) -> tuple[int, int]:
    """The open time of the `interval` kline holding `ts_ms`, and the next one's (UTC ms), with
    intervals counted in the time zone `offset_ms` ahead of UTC, as Binance's `timeZone`."""
    local = ts_ms + offset_ms
    if interval == "1M":
        days = local // (1440 * _MINUTE_MS)
        year, month = 1970, 1
        # walk from the epoch by whole months: at most a few hundred steps for any real date
        year += days // 366
        while True:
            start = calendar.timegm((year, month, 1, 0, 0, 0)) * 1000
            nxt_year, nxt_month = (year + 1, 1) if month == 12 else (year, month + 1)
            nxt = calendar.timegm((nxt_year, nxt_month, 1, 0, 0, 0)) * 1000
            if local < nxt:
                return start - offset_ms, nxt - offset_ms
            year, month = nxt_year, nxt_month
    length = INTERVALS[interval]
    base = _MONDAY_MS if interval == "1w" else 0
    start = (local - base) // length * length + base
    return start - offset_ms, start + length - offset_ms


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
        out.append([r[0], num(r[1]), num(r[2]), num(r[3]), num(r[4]), num(r[5]), r[6], num(r[7]), r[8],
                    num(r[9]), num(r[10]), "0"])  # fmt: skip
    return out


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
    | GET /api/v3/avgPrice, klines      | 2                                                        |
    | GET /api/v3/trades                | 25                                                       |
    | GET /api/v3/aggTrades             | 4                                                        |
    | GET /sapi/v1/system/status        | 1                                                        |
    | GET /sapi/v1/asset/tradeFee       | 1                                                        |
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
    "GET /api/v3/avgPrice": 2,
    "GET /api/v3/klines": 2,
    "GET /api/v3/trades": 25,
    "GET /api/v3/aggTrades": 4,
    "GET /sapi/v1/system/status": 1,
    "GET /sapi/v1/asset/tradeFee": 1,
}


# -- shapes -------------------------------------------------------------------------------------


def num(value: Decimal | None) -> str:
    """Binance's fixed eight decimals."""
    return format(value if value is not None else Decimal(0), ".8f")


def ms(ts: float) -> int:
    return int(ts * 1000)


def _plain(value: Decimal) -> str:
    """A Decimal as Binance writes multipliers and commissions: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def wire_type(o: EngineOrder) -> str:
    return "LIMIT_MAKER" if o.post_only else o.type.value.upper()


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
    if mini:
        return {
            "symbol": market_id(info),
            "openPrice": num(t.open),
            "highPrice": num(t.high),
            "lowPrice": num(t.low),
            "lastPrice": num(t.last),
            "volume": num(t.base_volume),
            "quoteVolume": num(t.quote_volume),
            "openTime": ms(now - 86_400),
            "closeTime": ms(now),
            "firstId": t.first_id,
            "lastId": t.last_id,
            "count": t.count,
        }
    change = t.last - t.open
    return {
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
        "makerCommission": _plain(info.maker_fee),
        "takerCommission": _plain(info.taker_fee),
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
