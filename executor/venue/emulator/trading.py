"""The emulator's trading desk: what the endpoint handlers share to read and place orders.

Owns `Trading`, the half of `Emulator` the handlers call: markets by Binance symbol, what the
client may see yet (the `invisible` fault, `hide`), finding an order by `orderId` /
`origClientOrderId`, a new order's parameters and filters as Binance reads and refuses them
(`NewOrder`, `check_filters`: the engine's, then PERCENT_PRICE_BY_SIDE and MAX_NUM_ORDERS), and
placing and canceling through the engine, answered in Binance's shapes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from executor.models import MarketInfo, OrderType, Side
from executor.venue.emulator import shapes, wire
from executor.venue.emulator.limits import RateLimits
from executor.venue.emulator.wire import BinanceError, PercentPriceBySide
from executor.venue.engine import PaperEngine
from executor.venue.orders import EngineError, EngineOrder

if TYPE_CHECKING:
    from executor.venue.emulator.handlers import Ctx


class NewOrder(NamedTuple):
    """A new order's parameters as Binance reads them."""

    side: Side
    type: OrderType
    amount: Decimal | None  # None: a market order by quote
    price: Decimal | None
    client_order_id: str | None
    time_in_force: str
    post_only: bool
    quote_amount: Decimal | None

    def terms(self) -> dict[str, Any]:
        """What the engine's `create_order` and `validate_order` take, but the symbol and client order id."""
        terms = self._asdict()
        del terms["client_order_id"]
        return terms


class Trading:
    """Order helpers over `engine`; `Emulator` holds the state and mixes this in."""

    engine: PaperEngine
    limits: RateLimits
    percent_price: PercentPriceBySide | None
    max_orders_per_symbol: int
    _by_id: dict[str, str]  # Binance symbol -> the engine's "BASE/QUOTE"
    _hidden: dict[int, float]  # order id -> monotonic time it becomes visible
    _cancel_ids: int

    def hide(self, order: int | str, seconds: float) -> None:
        """Keep an order out of every query for `seconds`: by order id, or the most recent order
        with that client order id."""
        if isinstance(order, str):
            order = self.engine.get_order(client_order_id=order).id
        self._hidden[order] = time.monotonic() + seconds

    def symbol(self, params: Mapping[str, str], *, required: bool = True) -> str | None:
        raw = params.get("symbol")
        if not raw:
            if required:
                raise wire.mandatory("symbol")
            return None
        symbol = self._by_id.get(raw)
        if symbol is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return symbol

    def symbols(self, params: Mapping[str, str]) -> list[str]:
        """`symbol`, or the JSON list `symbols`, or every market."""
        one = self.symbol(params, required=False)
        if one is not None:
            return [one]
        listed = wire.symbols_param(params)
        if listed is None:
            return list(self.engine.markets())
        out = []
        for raw in listed:
            if raw not in self._by_id:
                raise BinanceError(400, -1121, "Invalid symbol.")
            out.append(self._by_id[raw])
        return out

    def info(self, symbol: str) -> MarketInfo:
        return self.engine.market(symbol)

    def visible(self, order_id: int) -> bool:
        """Whether the order may be seen yet (see the `invisible` fault)."""
        if not self._hidden:
            return True
        until = self._hidden.get(order_id)
        if until is None:
            return True
        if time.monotonic() >= until:
            del self._hidden[order_id]
            return True
        return False

    def find(self, params: Mapping[str, str], symbol: str, *, cancel: bool, replace: bool = False) -> EngineOrder:
        """The order named by `orderId` / `origClientOrderId` (`cancel...` ones for a cancel-replace).

        With both, the order id is looked up and the client order id checked against it; with the
        client order id alone, the most recent order that has it (ids are reused once an order
        ended). An order the client may not see yet (invisible fault) is unknown, as on a lagging
        venue.
        """
        coid_key, id_key = ("cancelOrigClientOrderId", "cancelOrderId") if replace else ("origClientOrderId", "orderId")
        coid = params.get(coid_key) or None
        order_id = wire.int_param(params, id_key)
        if coid is None and order_id is None:
            raise BinanceError(400, -1102, f"Param '{coid_key}' or '{id_key}' must be sent, but both were empty/null!")
        try:
            order = self.engine.get_order(client_order_id=coid, exchange_order_id=order_id)
        except EngineError as exc:
            raise wire.engine_error(exc, cancel=cancel) from None
        if order.symbol != symbol or not self.visible(order.id):
            raise wire.unknown_order(cancel=cancel)
        return order

    def order_args(self, params: Mapping[str, str]) -> NewOrder:
        """A new order's parameters, with Binance's refusals of the ones that do not go together."""
        side = wire.side_param(params)
        type_, post_only = wire.type_param(params)
        amount = wire.decimal_param(params, "quantity", required=False)
        quote = wire.decimal_param(params, "quoteOrderQty", required=False)
        price = wire.decimal_param(params, "price", required=False)
        tif = params.get("timeInForce") or None
        if type_ is OrderType.MARKET:
            if amount is None and quote is None:
                raise BinanceError(
                    400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
                )
            if amount is not None and quote is not None:
                raise BinanceError(400, -1014, "Unsupported order combination.")
            if price is not None:
                raise wire.sent_when_not_required("price")
            if tif is not None:
                raise wire.sent_when_not_required("timeInForce")
            tif = "GTC"
        else:
            if amount is None:
                raise wire.mandatory("quantity")
            if quote is not None:
                raise wire.sent_when_not_required("quoteOrderQty")
            if price is None:
                raise wire.mandatory("price")
            if post_only:
                if tif is not None:
                    raise wire.sent_when_not_required("timeInForce")
                tif = "GTC"
            elif tif is None:
                raise wire.mandatory("timeInForce")
            elif tif not in wire.TIME_IN_FORCE:
                raise BinanceError(400, -1115, "Invalid timeInForce.")
        coid = params.get("newClientOrderId") or None
        return NewOrder(side, type_, amount, price, coid, tif, post_only, quote)

    def check_filters(
        self, params: Mapping[str, str], symbol: str, *, replacing: EngineOrder | None = None
    ) -> NewOrder:
        """Refuse a new order that breaks its market's filters, before anything is done: the engine's
        (PRICE_FILTER, LOT_SIZE, NOTIONAL), then PERCENT_PRICE_BY_SIDE and MAX_NUM_ORDERS. An order
        a cancel-replace is `replacing` does not count as open for MAX_NUM_ORDERS."""
        args = self.order_args(params)
        try:
            self.engine.validate_order(symbol, **args.terms())
        except EngineError as exc:
            raise wire.engine_error(exc) from None
        percent = self.percent_price
        if percent is not None and args.price is not None:
            average = self.engine.avg_price(symbol, percent.avg_price_mins)
            if not percent.allows(args.side, args.price, average):
                raise BinanceError(400, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
        if self.max_orders_per_symbol:
            open_now = self.engine.open_count(symbol)
            if replacing is not None and replacing.is_open and replacing.symbol == symbol:
                open_now -= 1
            if open_now >= self.max_orders_per_symbol:
                raise BinanceError(400, -1013, "Filter failure: MAX_NUM_ORDERS")
        return args

    def place(self, ctx: Ctx, params: Mapping[str, str], symbol: str) -> dict[str, Any]:
        args = self.check_filters(params, symbol)
        try:
            order = self.engine.create_order(args.client_order_id, symbol, **args.terms())
        except EngineError as exc:
            raise wire.engine_error(exc) from None
        ctx.created.append(order.id)
        # Binance's default: FULL for MARKET and LIMIT orders, ACK for the others (LIMIT_MAKER).
        resp_type = params.get("newOrderRespType") or ("ACK" if args.post_only else "FULL")
        if resp_type not in ("ACK", "RESULT", "FULL"):
            resp_type = "FULL"
        fills = self.engine.trades(exchange_order_id=order.id)
        return shapes.new_order_json(order, self.info(symbol), fills, resp_type)

    def cancel(self, order: EngineOrder, cancel_client_id: str | None) -> dict[str, Any]:
        try:
            done = self.engine.cancel_order(exchange_order_id=order.id)
        except EngineError as exc:
            raise wire.engine_error(exc, cancel=True) from None
        if not done.filled:
            self.limits.never_fills(done.id)
        if not cancel_client_id:
            self._cancel_ids += 1
            cancel_client_id = f"emu-cancel-{self._cancel_ids}"
        return shapes.cancel_json(done, self.info(done.symbol), cancel_client_id)
