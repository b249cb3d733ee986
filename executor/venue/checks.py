"""The paper engine's checks of a new order, before it exists: syntax, then the market's filters.

Owns what the engine refuses from the order's own arguments alone, with Binance's filter names:
malformed arguments (`BAD_REQUEST`), and PRICE_FILTER, LOT_SIZE and NOTIONAL (`FILTER_FAILURE`).
What needs the engine's state (funds, an open duplicate client order id, a post-only order that
would cross) is checked in `engine`. Pure functions: no state.
"""

from __future__ import annotations

import re
from decimal import Decimal

from executor.models import MarketInfo, OrderType, Side, to_decimal
from executor.venue.market import Market
from executor.venue.orders import EngineError, ErrorKind, fmt

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")  # what Binance accepts as newClientOrderId
SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")


def _bad(message: str) -> EngineError:
    return EngineError(ErrorKind.BAD_REQUEST, message)


def parse(
    client_order_id: str | None,
    side: Side | str,
    type: OrderType | str,
    amount: Decimal | float | str,
    price: Decimal | float | str | None,
) -> tuple[Side, OrderType, Decimal, Decimal | None]:
    if client_order_id is not None and not CLIENT_ID.match(client_order_id):
        raise _bad(f"Illegal client order id {client_order_id!r}: use 1-36 of [A-Za-z0-9_-].")
    side = side_arg(side)
    try:
        type = OrderType(type)
    except ValueError:
        raise _bad(f"Invalid order type {type!r}: use limit or market.") from None
    try:
        qty = to_decimal(amount)
        # A market order's price is ignored, as ccxt does for Binance.
        limit = None if price is None or type is OrderType.MARKET else to_decimal(price)
    except (ArithmeticError, ValueError, TypeError):
        raise _bad(f"Invalid number in amount {amount!r} or price {price!r}.") from None
    if not qty.is_finite() or qty <= 0:
        raise _bad(f"Invalid quantity {amount}: it must be a positive number.")
    if type is OrderType.LIMIT:
        if limit is None:
            raise _bad("A limit order needs a price.")
        if not limit.is_finite() or limit <= 0:
            raise _bad(f"Invalid price {price}: it must be a positive number.")
    return side, type, qty, limit


def side_arg(side: Side | str) -> Side:
    try:
        return Side(side)
    except ValueError:
        raise _bad(f"Invalid side {side!r}: use buy or sell.") from None


def tif_arg(type: OrderType | str, time_in_force: str, post_only: bool) -> str:
    if time_in_force not in ("GTC", "IOC", "FOK"):
        raise _bad(f"Invalid time in force {time_in_force!r}: use GTC, IOC or FOK.")
    if (time_in_force != "GTC" or post_only) and type not in (OrderType.LIMIT, "limit"):
        raise _bad("Only a limit order takes a time in force or post-only.")
    if post_only and time_in_force != "GTC":
        raise _bad("A post-only order rests: its time in force is GTC.")
    return time_in_force


def quote_arg(type: OrderType | str, quote_amount: Decimal | float | str) -> Decimal:
    if type not in (OrderType.MARKET, "market"):
        raise _bad("Only a market order may be sized by its quote.")
    try:
        quote = to_decimal(quote_amount)
    except (ArithmeticError, ValueError, TypeError):
        quote = None
    if quote is None or not quote.is_finite() or quote <= 0:
        raise _bad(f"Invalid quote amount {quote_amount}: it must be positive.")
    return quote


def check_filters(
    m: Market, side: Side, amount: Decimal, price: Decimal | None, notional: Decimal | None = None
) -> int:
    """PRICE_FILTER, LOT_SIZE and NOTIONAL (of `notional` when given: a market order by quote);
    returns the price in ticks (0 for a market order)."""
    info = m.info
    ticks = 0
    if price is not None:
        _check_price(info, price)
        ticks = int(price / info.price_tick)
    _check_amount(info, amount)
    # Market orders are checked at the touch, as Binance applies NOTIONAL to market orders.
    if notional is None:
        touch = info.price_tick * (m.ask_t if side is Side.BUY else m.bid_t)
        notional = amount * (price if price is not None else touch)
    if notional < info.min_cost:
        raise EngineError(
            ErrorKind.FILTER_FAILURE,
            f"Filter failure: NOTIONAL (notional {fmt(notional)} {info.quote} is below the minimum "
            f"{fmt(info.min_cost)} {info.quote} for {info.symbol}).",
            filter="NOTIONAL",
        )
    return ticks


def _check_price(info: MarketInfo, price: Decimal) -> None:
    if _off_grid(price, info.price_tick):
        raise EngineError(
            ErrorKind.FILTER_FAILURE,
            f"Filter failure: PRICE_FILTER (price {fmt(price)} is not a multiple of the tick size "
            f"{fmt(info.price_tick)} for {info.symbol}).",
            filter="PRICE_FILTER",
        )


def _check_amount(info: MarketInfo, amount: Decimal) -> None:
    problem = None
    if amount < info.min_amount:
        problem = f"is below the minimum {fmt(info.min_amount)}"
    elif info.max_amount is not None and amount > info.max_amount:
        problem = f"is above the maximum {fmt(info.max_amount)}"
    elif _off_grid(amount, info.amount_step):
        problem = f"is not a multiple of the step {fmt(info.amount_step)}"
    if problem:
        raise EngineError(
            ErrorKind.FILTER_FAILURE,
            f"Filter failure: LOT_SIZE (amount {fmt(amount)} {info.base} {problem} for {info.symbol}).",
            filter="LOT_SIZE",
        )


def _off_grid(value: Decimal, step: Decimal) -> bool:
    try:
        return bool(value % step)
    except ArithmeticError:  # too many steps for the context's precision: certainly not a sane order
        return True
