"""The emulator's endpoints: one synchronous handler per Binance spot REST endpoint.

Owns what each endpoint does with the paper engine and answers (through `emulator_binance`'s
shapes), and `ROUTES`, the table the pipeline in `emulator` dispatches on. Handlers are
synchronous on purpose: each one is atomic against the engine, whatever else is in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from executor.exchanges import emulator_binance as wire
from executor.exchanges.emulator_binance import BinanceError

if TYPE_CHECKING:
    from executor.exchanges.emulator import Emulator


@dataclass
class Ctx:
    """One request as a handler sees it."""

    endpoint: str
    params: dict[str, str]
    created: list[str] = field(default_factory=list)  # client ids of orders this request placed


def _ping(emu: Emulator, ctx: Ctx) -> Any:
    return {}


def _time(emu: Emulator, ctx: Ctx) -> Any:
    return {"serverTime": int(time.time() * 1000)}


def _exchange_info(emu: Emulator, ctx: Ctx) -> Any:
    limits = emu.faults.limits
    return {
        "timezone": "UTC",
        "serverTime": int(time.time() * 1000),
        "rateLimits": wire.rate_limits_json(limits.weight_per_minute, limits.orders_per_10s, limits.orders_per_day),
        "exchangeFilters": [],
        "symbols": [wire.market_json(emu.info(s)) for s in emu.symbols(ctx.params)],
    }


def _tickers(shape: Callable[[Emulator, str], Any]) -> Callable[[Emulator, Ctx], Any]:
    def handler(emu: Emulator, ctx: Ctx) -> Any:
        rows = [shape(emu, s) for s in emu.symbols(ctx.params)]
        return rows[0] if "symbol" in ctx.params else rows

    return handler


def _ticker_24hr(emu: Emulator, symbol: str) -> Any:
    return wire.ticker_24hr_json(emu.engine.ticker(symbol), emu.info(symbol), emu.engine.now())


def _book_ticker(emu: Emulator, symbol: str) -> Any:
    return wire.book_ticker_json(emu.engine.ticker(symbol), emu.info(symbol))


def _price_ticker(emu: Emulator, symbol: str) -> Any:
    return {"symbol": wire.market_id(emu.info(symbol)), "price": wire.num(emu.engine.ticker(symbol).last)}


def _depth(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    limit = wire.int_param(ctx.params, "limit", 100) or 100
    if not 1 <= limit <= 5000:
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '1-5000'.")
    return wire.depth_json(emu.engine.depth(symbol, limit))


def _account(emu: Emulator, ctx: Ctx) -> Any:
    omit = ctx.params.get("omitZeroBalances", "false").lower() == "true"
    return wire.account_json(emu.engine.balances(), emu.engine.maker_fee, emu.engine.taker_fee, emu.engine.now(), omit)


def _new_order(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    return emu.place(ctx, ctx.params, symbol)


def _get_order(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    return wire.order_json(emu.find(ctx.params, symbol, cancel=False), emu.info(symbol))


def _cancel_order(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    order = emu.find(ctx.params, symbol, cancel=True)
    return emu.cancel(order, ctx.params.get("newClientOrderId"))


def _open_orders(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params, required=False)
    orders = [o for o in emu.engine.open_orders(symbol) if emu.visible(o.client_order_id)]
    return [wire.order_json(o, emu.info(o.symbol)) for o in sorted(orders, key=lambda o: o.id)]


def _cancel_open_orders(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    orders = [o for o in emu.engine.open_orders(symbol) if emu.visible(o.client_order_id)]
    if not orders:
        raise wire.unknown_order(cancel=True)
    return [emu.cancel(o, None) for o in sorted(orders, key=lambda o: o.id)]


def _all_orders(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    p = ctx.params
    limit = min(max(wire.int_param(p, "limit", 500) or 500, 1), 1000)
    from_id = wire.int_param(p, "orderId")
    start, end = wire.int_param(p, "startTime"), wire.int_param(p, "endTime")
    orders = [o for o in emu.engine.all_orders(symbol) if emu.visible(o.client_order_id)]
    if from_id is not None:
        orders = [o for o in orders if o.id >= from_id][:limit]
    else:
        if start is not None:
            orders = [o for o in orders if wire.ms(o.created_at) >= start]
        if end is not None:
            orders = [o for o in orders if wire.ms(o.created_at) <= end]
        orders = orders[:limit] if start is not None else orders[-limit:]
    return [wire.order_json(o, emu.info(o.symbol)) for o in orders]


def _my_trades(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    p = ctx.params
    limit = min(max(wire.int_param(p, "limit", 500) or 500, 1), 1000)
    order_id = wire.int_param(p, "orderId")
    from_id = wire.int_param(p, "fromId")
    start, end = wire.int_param(p, "startTime"), wire.int_param(p, "endTime")
    trades = emu.engine.trades(symbol)
    if order_id is not None:
        trades = [t for t in trades if t.order_id == order_id]
    trades = [t for t in trades if emu.visible(t.client_order_id)]
    if from_id is not None:
        trades = [t for t in trades if t.id >= from_id][:limit]
    else:
        if start is not None:
            trades = [t for t in trades if wire.ms(t.ts) >= start]
        if end is not None:
            trades = [t for t in trades if wire.ms(t.ts) <= end]
        trades = trades[:limit] if start is not None else trades[-limit:]
    info = emu.info(symbol)
    return [wire.trade_json(t, info) for t in trades]


def _cancel_replace(emu: Emulator, ctx: Ctx) -> Any:
    symbol = emu.symbol(ctx.params)
    assert symbol is not None
    p = ctx.params
    mode = p.get("cancelReplaceMode")
    if not mode:
        raise wire.mandatory("cancelReplaceMode")
    if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'cancelReplaceMode'.")
    cancel_response: Any = None
    cancel_ok = False
    try:
        order = emu.find(p, symbol, cancel=True, replace=True)
        cancel_response = emu.cancel(order, p.get("cancelNewClientOrderId"))
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
    try:
        new_response: Any = emu.place(ctx, p, symbol)
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
    "GET /api/v3/ticker/24hr": (_tickers(_ticker_24hr), False),
    "GET /api/v3/ticker/bookTicker": (_tickers(_book_ticker), False),
    "GET /api/v3/ticker/price": (_tickers(_price_ticker), False),
    "GET /api/v3/depth": (_depth, False),
    "GET /api/v3/account": (_account, True),
    "POST /api/v3/order": (_new_order, True),
    "GET /api/v3/order": (_get_order, True),
    "DELETE /api/v3/order": (_cancel_order, True),
    "GET /api/v3/openOrders": (_open_orders, True),
    "DELETE /api/v3/openOrders": (_cancel_open_orders, True),
    "GET /api/v3/allOrders": (_all_orders, True),
    "GET /api/v3/myTrades": (_my_trades, True),
    "POST /api/v3/order/cancelReplace": (_cancel_replace, True),
}
