"""The emulator's endpoints: one synchronous handler per Binance spot REST endpoint.

Owns what each endpoint does with the paper engine and answers (in `shapes`' JSON), and
`ROUTES`, the table the pipeline in `app` dispatches on: one route per endpoint of
`executor.venue.endpoints`. Handlers are synchronous on purpose: each one is atomic against the
engine, whatever else is in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from executor.venue.emulator import shapes, wire
from executor.venue.emulator.wire import BinanceError
from executor.venue.endpoints import ENDPOINTS
from executor.venue.orders import EngineError

if TYPE_CHECKING:
    from executor.venue.emulator.app import Emulator


@dataclass
class Ctx:
    """One request as a handler sees it."""

    endpoint: str
    params: dict[str, str]
    created: list[int] = field(default_factory=list)  # order ids of the orders this request placed
    # An exhausted order count that refuses only the new-order leg (cancel-replace, CANCEL_ONLY).
    order_refusal: BinanceError | None = None


def _ping(emu: Emulator, ctx: Ctx) -> Any:
    return {}


def _time(emu: Emulator, ctx: Ctx) -> Any:
    return {"serverTime": int(time.time() * 1000)}


def _exchange_info(emu: Emulator, ctx: Ctx) -> Any:
    limits = emu.faults.limits
    return {
        "timezone": "UTC",
        "serverTime": int(time.time() * 1000),
        "rateLimits": shapes.rate_limits_json(limits.weight_per_minute, limits.orders_per_10s, limits.orders_per_day),
        "exchangeFilters": [],
        "symbols": [
            shapes.market_json(emu.info(s), percent_price=emu.percent_price, max_orders=emu.max_orders_per_symbol)
            for s in emu.symbols(ctx.params)
        ],
    }


def _tickers(shape: Callable[[Emulator, str], Any]) -> Callable[[Emulator, Ctx], Any]:
    def handler(emu: Emulator, ctx: Ctx) -> Any:
        rows = [shape(emu, s) for s in emu.symbols(ctx.params)]
        return rows[0] if "symbol" in ctx.params else rows

    return handler


def _ticker_24hr(emu: Emulator, ctx: Ctx) -> Any:
    kind = ctx.params.get("type") or "FULL"
    if kind not in ("FULL", "MINI"):
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'type'; legal range is 'FULL, MINI'.")
    now = emu.engine.now()
    rows = [
        shapes.ticker_24hr_json(emu.engine.ticker(s), emu.info(s), now, mini=kind == "MINI")
        for s in emu.symbols(ctx.params)
    ]
    return rows[0] if "symbol" in ctx.params else rows


def _book_ticker(emu: Emulator, symbol: str) -> Any:
    return shapes.book_ticker_json(emu.engine.ticker(symbol), emu.info(symbol))


def _price_ticker(emu: Emulator, symbol: str) -> Any:
    return {"symbol": wire.market_id(emu.info(symbol)), "price": wire.num(emu.engine.ticker(symbol).last)}


def _depth(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    limit = wire.int_param(ctx.params, "limit", 100)
    if limit is None or limit < 1:
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '1-5000'.")
    return shapes.depth_json(emu.engine.depth(symbol, min(limit, 5000)))  # more than 5000: 5000, as Binance


def _avg_price(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    minutes = emu.percent_price.avg_price_mins if emu.percent_price is not None else 5
    return shapes.avg_price_json(emu.engine.avg_price(symbol, minutes), minutes, emu.engine.now())


def _klines(emu: Emulator, ctx: Ctx) -> Any:
    """Binance's klines from the engine's one-minute candles (its last 24 hours): `interval` 1m to
    1M (not 1s), `startTime` / `endTime` by open time, `timeZone`, `limit` 500 by default, 1000 at most."""
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    p = ctx.params
    interval = wire.interval_param(p)
    offset = wire.time_zone_param(p)
    limit = _limit(p)
    start, end = wire.int_param(p, "startTime"), wire.int_param(p, "endTime")
    if start is not None and end is not None and start > end:
        raise BinanceError(400, -1023, "Start time is greater than end time.")
    candles = emu.engine.candles(symbol)
    return shapes.klines_json(candles, interval, start_ms=start, end_ms=end, limit=limit, offset_ms=offset)


def _public_trades(emu: Emulator, ctx: Ctx) -> Any:
    """Binance's recent trades: the engine's fills in the symbol (the only trades it records),
    the newest `limit` (500 by default, 1000 at most), oldest first."""
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    limit = _limit(ctx.params)
    trades = [t for t in emu.engine.trades(symbol)[-limit:] if emu.visible(t.order_id)]
    return [shapes.public_trade_json(t) for t in trades]


def _agg_trades(emu: Emulator, ctx: Ctx) -> Any:
    """Binance's aggregate trades, one per fill: from `fromId`, by time (`startTime` / `endTime`),
    or the most recent; `limit` 500 by default, 1000 at most; oldest first."""
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    p = ctx.params
    limit = _limit(p)
    from_id = wire.int_param(p, "fromId")
    start, end = wire.int_param(p, "startTime"), wire.int_param(p, "endTime")
    trades = emu.engine.trades(symbol)
    trades = [
        t
        for t in trades
        if (from_id is None or t.id >= from_id) and _within(wire.ms(t.ts), start, end) and emu.visible(t.order_id)
    ]
    trades = trades[:limit] if from_id is not None or start is not None else trades[-limit:]
    return [shapes.agg_trade_json(t) for t in trades]


def _system_status(emu: Emulator, ctx: Ctx) -> Any:
    return {"status": 0, "msg": "normal"}


def _trade_fee(emu: Emulator, ctx: Ctx) -> Any:
    return [shapes.trade_fee_json(emu.info(s)) for s in emu.symbols(ctx.params)]


def _account(emu: Emulator, ctx: Ctx) -> Any:
    omit = ctx.params.get("omitZeroBalances", "false").lower() == "true"
    engine = emu.engine
    return shapes.account_json(engine.balances(), engine.maker_fee, engine.taker_fee, engine.now(), omit)


def _order_counts(emu: Emulator, ctx: Ctx) -> Any:
    return emu.limits.order_counts()


def _new_order(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    return emu.place(ctx, ctx.params, symbol)


def _get_order(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    return shapes.order_json(emu.find(ctx.params, symbol, cancel=False), emu.info(symbol))


def _cancel_order(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    order = emu.find(ctx.params, symbol, cancel=True)
    return emu.cancel(order, ctx.params.get("newClientOrderId"))


def _open_orders(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params, required=False)
    orders = [o for o in emu.engine.open_orders(symbol) if emu.visible(o.id)]
    return [shapes.order_json(o, emu.info(o.symbol)) for o in sorted(orders, key=lambda o: o.id)]


def _cancel_open_orders(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    orders = [o for o in emu.engine.open_orders(symbol) if emu.visible(o.id)]
    if not orders:
        raise wire.unknown_order(cancel=True)
    return [emu.cancel(o, None) for o in sorted(orders, key=lambda o: o.id)]


def _all_orders(emu: Emulator, ctx: Ctx) -> Any:
    """Binance's allOrders: by `orderId` (ids at least it), by creation time (`startTime` /
    `endTime`, at most 24 hours apart when both are given) or the most recent; `limit` 500 by
    default, 1000 at most; oldest first. From an id or a start time the oldest `limit` are sent,
    otherwise the newest `limit`."""
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    p = ctx.params
    limit = _limit(p)
    from_id = wire.int_param(p, "orderId")
    start, end = _window(p)
    orders = emu.engine.all_orders(symbol, from_id=from_id)
    orders = [o for o in orders if _within(wire.ms(o.created_at), start, end) and emu.visible(o.id)]
    orders = orders[:limit] if from_id is not None or start is not None else orders[-limit:]
    info = emu.info(symbol)
    return [shapes.order_json(o, info) for o in orders]


def _my_trades(emu: Emulator, ctx: Ctx) -> Any:
    """Binance's myTrades: of one order (`orderId`), from a trade id (`fromId`), by time
    (`startTime` / `endTime`, at most 24 hours apart) or the most recent; only the combinations
    Binance supports (-1128 otherwise); `limit` 500 by default, 1000 at most; oldest first."""
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    p = ctx.params
    limit = _limit(p)
    order_id = wire.int_param(p, "orderId")
    from_id = wire.int_param(p, "fromId")
    start, end = _window(p)
    given = frozenset(
        k
        for k, v in (("orderId", order_id), ("fromId", from_id), ("startTime", start), ("endTime", end))
        if v is not None
    )
    if given not in _TRADE_QUERIES:
        raise BinanceError(400, -1128, "Combination of optional parameters invalid.")
    if order_id is not None:
        try:
            trades = emu.engine.trades(symbol, exchange_order_id=order_id)
        except EngineError:
            trades = []
    else:
        trades = emu.engine.trades(symbol)
    trades = [t for t in trades if (from_id is None or t.id >= from_id) and _within(wire.ms(t.ts), start, end)]
    trades = [t for t in trades if emu.visible(t.order_id)]
    trades = trades[:limit] if from_id is not None or start is not None else trades[-limit:]
    info = emu.info(symbol)
    return [shapes.trade_json(t, info) for t in trades]


# The parameter combinations Binance's myTrades accepts (beside symbol, limit and the signature).
_TRADE_QUERIES = frozenset(
    frozenset(c)
    for c in (
        (),
        ("orderId",),
        ("startTime",),
        ("endTime",),
        ("fromId",),
        ("startTime", "endTime"),
        ("orderId", "fromId"),
    )
)
_DAY_MS = 86_400_000


def _limit(p: dict[str, str]) -> int:
    limit = wire.int_param(p, "limit", 500)
    assert limit is not None
    if not 1 <= limit <= 1000:
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '1000'.")
    return limit


def _window(p: dict[str, str]) -> tuple[int | None, int | None]:
    start, end = wire.int_param(p, "startTime"), wire.int_param(p, "endTime")
    if start is not None and end is not None and end - start > _DAY_MS:
        raise BinanceError(400, -1127, "More than 24 hours between startTime and endTime.")
    return start, end


def _within(ts_ms: int, start: int | None, end: int | None) -> bool:
    return (start is None or ts_ms >= start) and (end is None or ts_ms <= end)


def _cancel_replace(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    p = ctx.params
    mode = p.get("cancelReplaceMode")
    if not mode:
        raise wire.mandatory("cancelReplaceMode")
    if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'cancelReplaceMode'.")
    try:
        target, missing = emu.find(p, symbol, cancel=True, replace=True), None
    except BinanceError as exc:
        target, missing = None, exc
    # As Binance: the new order's filters are checked before the cancel, so a bad new order
    # leaves the old one working (and answers the filter failure itself). MAX_NUM_ORDERS counts
    # the open orders as they will be once the old one is canceled.
    emu.check_filters(p, symbol, replacing=target)
    cancel_response: Any = None
    cancel_ok = False
    try:
        if missing is not None:
            raise missing
        assert target is not None
        cancel_response = emu.cancel(target, p.get("cancelNewClientOrderId"))
        cancel_ok = True
    except BinanceError as exc:
        cancel_response = exc.body()
    if not cancel_ok and mode == "STOP_ON_FAILURE":
        raise BinanceError(
            400,
            -2022,
            "Order cancel-replace failed.",
            data={
                "cancelResult": "FAILURE",
                "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": cancel_response,
                "newOrderResponse": None,
            },
        )
    if ctx.order_refusal is not None:  # the order count is exhausted: CANCEL_ONLY canceled all the same
        new_response, new_ok = ctx.order_refusal.body(), False
    else:
        try:
            new_response = emu.place(ctx, p, symbol)
            new_ok = True
        except BinanceError as exc:
            new_response, new_ok = exc.body(), False
    result = {
        "cancelResult": "SUCCESS" if cancel_ok else "FAILURE",
        "newOrderResult": "SUCCESS" if new_ok else "FAILURE",
        "cancelResponse": cancel_response,
        "newOrderResponse": new_response,
    }
    if cancel_ok and new_ok:
        return result
    if cancel_ok or new_ok:
        raise BinanceError(409, -2021, "Order cancel-replace partially failed.", data=result)
    raise BinanceError(400, -2022, "Order cancel-replace failed.", data=result)


_Handler = Callable[["Emulator", Ctx], Any]
# endpoint -> (handler, signed)
ROUTES: dict[str, tuple[_Handler, bool]] = {
    "GET /api/v3/ping": (_ping, False),
    "GET /api/v3/time": (_time, False),
    "GET /api/v3/exchangeInfo": (_exchange_info, False),
    "GET /api/v3/ticker/24hr": (_ticker_24hr, False),
    "GET /api/v3/ticker/bookTicker": (_tickers(_book_ticker), False),
    "GET /api/v3/ticker/price": (_tickers(_price_ticker), False),
    "GET /api/v3/depth": (_depth, False),
    "GET /api/v3/avgPrice": (_avg_price, False),
    "GET /api/v3/klines": (_klines, False),
    "GET /api/v3/trades": (_public_trades, False),
    "GET /api/v3/aggTrades": (_agg_trades, False),
    "GET /api/v3/account": (_account, True),
    "POST /api/v3/order": (_new_order, True),
    "GET /api/v3/order": (_get_order, True),
    "DELETE /api/v3/order": (_cancel_order, True),
    "GET /api/v3/openOrders": (_open_orders, True),
    "DELETE /api/v3/openOrders": (_cancel_open_orders, True),
    "GET /api/v3/allOrders": (_all_orders, True),
    "GET /api/v3/myTrades": (_my_trades, True),
    "GET /api/v3/rateLimit/order": (_order_counts, True),
    "POST /api/v3/order/cancelReplace": (_cancel_replace, True),
    "GET /sapi/v1/system/status": (_system_status, False),
    "GET /sapi/v1/asset/tradeFee": (_trade_fee, True),
}
assert tuple(ROUTES) == ENDPOINTS, "every endpoint in executor.venue.endpoints has its route, in its order"
