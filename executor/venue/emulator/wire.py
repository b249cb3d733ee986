"""Binance spot's REST wire format, the requests' side: errors, parameters, weights, encodings.

Owns the `BinanceError` every refusal becomes (HTTP status + Binance code + message, the messages
Binance sends verbatim, because ccxt matches some of them exactly), the parsing of request
parameters (with Binance's refusals), the PERCENT_PRICE_BY_SIDE filter, kline intervals, the
request weight of each endpoint, and the encodings answers share (numbers, times, market ids).
What answers look like is `shapes`'. Pure functions: no I/O, no state.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from executor.models import MarketInfo, OrderType, Side
from executor.venue.orders import EngineError, ErrorKind

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
            "bidMultiplierUp": plain(self.bid_up),
            "bidMultiplierDown": plain(self.bid_down),
            "askMultiplierUp": plain(self.ask_up),
            "askMultiplierDown": plain(self.ask_down),
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
    | GET /api/v3/rateLimit/order       | 40                                                       |
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
    "GET /api/v3/rateLimit/order": 40,
    "POST /api/v3/order/cancelReplace": 1,
    "GET /api/v3/avgPrice": 2,
    "GET /api/v3/klines": 2,
    "GET /api/v3/trades": 25,
    "GET /api/v3/aggTrades": 4,
    "GET /sapi/v1/system/status": 1,
    "GET /sapi/v1/asset/tradeFee": 1,
}


# -- encodings ----------------------------------------------------------------------------------


def num(value: Decimal | None) -> str:
    """Binance's fixed eight decimals."""
    return format(value if value is not None else Decimal(0), ".8f")


def ms(ts: float) -> int:
    return int(ts * 1000)


def plain(value: Decimal) -> str:
    """A Decimal as Binance writes multipliers and commissions: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def market_id(info: MarketInfo) -> str:
    return f"{info.base}{info.quote}"
