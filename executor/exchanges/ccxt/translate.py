"""ccxt's answers as the port's types, and the order ids seen in them.

Owns reading ccxt's unified structures (orders, trades, fees, markets, tickers, balances) into the
port's dataclasses, keeping to what each answer states: a Binance ACK says nothing about fills, a
Binance cancel answer's `transactTime` is the cancel's and its `clientOrderId` the cancel
request's own. And `IdMap`, the bounded client order id <-> exchange order id memory that the
answers fill and that names trades (Binance's carry only the orderId) and cancels by exchange id.
Nothing here sends a request.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from executor.exchanges.base import ExchangeOrder, NotPlaced, Ticker, Trade
from executor.models import Balance, MarketInfo, OrderStatus, OrderType, Side, to_decimal

# How many order ids each way the adapter remembers (least recently used ones are forgotten).
ID_MAP_SIZE = 8192

_STATUS = {
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def dec(value: Any) -> Decimal | None:
    """A number in an answer as a Decimal; None when the answer gives none (or nonsense)."""
    if value is None or value == "":
        return None
    try:
        return to_decimal(value) if isinstance(value, float | int | str | Decimal) else None
    except ArithmeticError:
        return None


def from_ms(ms: Any) -> datetime | None:
    """A venue's epoch milliseconds (a number, or digits) as a UTC datetime."""
    if isinstance(ms, str) and ms.isdigit():
        ms = int(ms)
    return datetime.fromtimestamp(ms / 1000, UTC) if isinstance(ms, int | float) and not isinstance(ms, bool) else None


def to_ms(when: datetime) -> int:
    return math.floor(when.timestamp() * 1000)


def id_key(value: Any) -> tuple[int, str]:
    """Sorts venue ids numerically when they are numbers (they grow with time), else as text."""
    text = "" if value is None else str(value)
    return (int(text), "") if text.isdigit() else (0, text)


def order_status(raw: dict[str, Any]) -> OrderStatus:
    """ccxt's unified status (+ filled) as ours."""
    status = raw.get("status")
    filled = dec(raw.get("filled")) or Decimal(0)
    if status == "closed":
        return OrderStatus.FILLED
    if status in _STATUS:
        return _STATUS[status]
    # "open", or None (an acknowledgement only): accepted and not final as far as it says.
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN


def fee_of(raw: dict[str, Any]) -> tuple[Decimal, str | None]:
    """The fee of an order or trade in its first fee currency (others are not summed into it)."""
    fees = raw.get("fees") or ([raw["fee"]] if raw.get("fee") else [])
    total, currency = Decimal(0), None
    for fee in fees:
        if not fee:
            continue
        cost = dec(fee.get("cost"))
        if cost is None:
            continue
        if currency is None:
            currency = fee.get("currency")
        if fee.get("currency") == currency:
            total += cost
    return total, currency


class IdMap:
    """Client order id <-> exchange order id, both ways, the `size` most recently used of each."""

    def __init__(self, size: int = ID_MAP_SIZE) -> None:
        self.size = size
        self._order_ids: OrderedDict[str, str] = OrderedDict()  # client order id -> exchange order id
        self._client_ids: OrderedDict[str, str] = OrderedDict()  # exchange order id -> client order id

    def __len__(self) -> int:
        return max(len(self._order_ids), len(self._client_ids))

    @staticmethod
    def _put(table: OrderedDict[str, str], key: str, value: str, size: int) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > size:
            table.popitem(last=False)

    def remember(self, client_order_id: str | None, exchange_order_id: str | None) -> None:
        if client_order_id and exchange_order_id:
            self._put(self._order_ids, client_order_id, exchange_order_id, self.size)
            self._put(self._client_ids, exchange_order_id, client_order_id, self.size)

    def order_id(self, client_order_id: str) -> str | None:
        value = self._order_ids.get(client_order_id)
        if value is not None:
            self._order_ids.move_to_end(client_order_id)
        return value

    def client_id(self, exchange_order_id: str | None) -> str | None:
        if not exchange_order_id:
            return None
        value = self._client_ids.get(exchange_order_id)
        if value is not None:
            self._client_ids.move_to_end(exchange_order_id)
        return value

    def forget(self, client_order_id: str) -> None:
        exchange_order_id = self._order_ids.pop(client_order_id, None)
        if exchange_order_id is not None and self._client_ids.get(exchange_order_id) == client_order_id:
            del self._client_ids[exchange_order_id]


def _stated_filled(raw: dict[str, Any], info: dict[str, Any], binance: bool) -> Decimal | None:
    """The filled amount when the answer states it. ccxt's binance reads a missing
    `executedQty` (an ACK answer) as "0": only the raw answer can tell."""
    if binance and "executedQty" not in info:
        return None
    filled = dec(raw.get("filled"))
    if filled is None and binance:
        filled = dec(info.get("executedQty"))
    return filled


def _created(raw: dict[str, Any], info: dict[str, Any], creating: bool, binance: bool) -> datetime | None:
    if binance:
        # `time`/`workingTime` are the order's; `transactTime` is the request's (the creation
        # in a create answer, the cancel in a cancel answer).
        for key in ("time", "workingTime", *(("transactTime",) if creating else ())):
            if (when := from_ms(info.get(key))) is not None:
                return when
        return None
    return from_ms(raw.get("timestamp"))


def to_order(
    raw: dict[str, Any],
    ids: IdMap,
    *,
    binance: bool,
    client_order_id: str | None = None,
    creating: bool = False,
    **known: Any,
) -> ExchangeOrder:
    """A ccxt order as the port's, its id pair remembered in `ids`. `client_order_id` wins over
    the answer's: Binance's cancel answer carries the cancel request's own id there. `known`:
    what the request said (symbol, side, type, amount) where the answer may not."""
    exchange_order_id = raw.get("id")
    exchange_order_id = str(exchange_order_id) if exchange_order_id not in (None, "") else None
    info = raw.get("info") if isinstance(raw.get("info"), dict) else {}
    coid = (
        client_order_id
        or info.get("origClientOrderId")
        or raw.get("clientOrderId")
        or ids.client_id(exchange_order_id)
        or ""
    )
    ids.remember(coid, exchange_order_id)
    amount = dec(raw.get("amount"))
    price = dec(raw.get("price"))
    type_ = known.get("type") or (OrderType.MARKET if raw.get("type") == "market" else OrderType.LIMIT)
    fee, fee_currency = fee_of(raw)
    return ExchangeOrder(
        client_order_id=coid,
        exchange_order_id=exchange_order_id,
        symbol=raw.get("symbol") or known.get("symbol") or "",
        side=known.get("side") or Side(raw.get("side") or "buy"),
        type=type_,
        amount=amount if amount is not None else known.get("amount", Decimal(0)),
        price=(price or None) if type_ is OrderType.LIMIT else None,
        status=order_status(raw),
        filled=_stated_filled(raw, info, binance),
        average=dec(raw.get("average")) or None,
        fee=fee,
        fee_currency=fee_currency,
        ts=from_ms(raw.get("lastUpdateTimestamp") or raw.get("timestamp")),
        created=_created(raw, info, creating, binance),
    )


def to_trade(raw: dict[str, Any], symbol: str, ids: IdMap) -> Trade:
    """A ccxt trade as the port's, named by its order's client id where anything names it."""
    order_id = str(raw["order"]) if raw.get("order") not in (None, "") else None
    info = raw.get("info") if isinstance(raw.get("info"), dict) else {}
    fee, fee_currency = fee_of(raw)
    return Trade(
        trade_id=str(raw.get("id")),
        exchange_order_id=order_id,
        # Binance's trades carry only the orderId: the orders seen so far name the rest.
        client_order_id=ids.client_id(order_id)
        or raw.get("clientOrderId")
        or info.get("clOrdId")
        or info.get("orderLinkId")
        or None,
        symbol=raw.get("symbol") or symbol,
        side=Side(raw.get("side") or "buy"),
        amount=dec(raw.get("amount")) or Decimal(0),
        price=dec(raw.get("price")) or Decimal(0),
        fee=fee,
        fee_currency=fee_currency,
        ts=from_ms(raw.get("timestamp")),
    )


def to_market_info(m: dict[str, Any], precision_mode: Any, venue: str) -> MarketInfo:
    """A ccxt market as ours: its grid as steps (ccxt's tick sizes or decimal places)."""
    from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

    def step(precision: Any) -> Decimal:
        value = dec(precision)
        if value is None:
            return Decimal(0)
        if precision_mode == TICK_SIZE:
            return value
        if precision_mode == DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(value))
        return Decimal(0)  # significant digits: no fixed grid to check against

    precision = m.get("precision") or {}
    limits = m.get("limits") or {}
    amount_limits = limits.get("amount") or {}
    amount_step = step(precision.get("amount"))
    return MarketInfo(
        symbol=m["symbol"],
        base=m["base"],
        quote=m["quote"],
        amount_step=amount_step,
        price_tick=step(precision.get("price")),
        min_amount=dec(amount_limits.get("min")) or amount_step,
        min_cost=dec((limits.get("cost") or {}).get("min")) or Decimal(0),
        maker_fee=dec(m.get("maker")) if m.get("maker") is not None else Decimal("0.001"),
        taker_fee=dec(m.get("taker")) if m.get("taker") is not None else Decimal("0.001"),
        max_amount=dec(amount_limits.get("max")),
        extra={"id": m.get("id"), "venue": venue},
    )


def to_ticker(raw: dict[str, Any], symbol: str, venue: str) -> Ticker:
    """A ccxt ticker as ours; a missing side of the book is the last price. No price: `NotPlaced`."""
    last = dec(raw.get("last")) or dec(raw.get("close"))
    bid = dec(raw.get("bid")) or last
    ask = dec(raw.get("ask")) or last
    if bid is None or ask is None:
        raise NotPlaced(f"{venue} gave no price for {symbol}")
    ts = raw.get("timestamp")
    return Ticker(symbol=symbol, bid=bid, ask=ask, last=last or (bid + ask) / 2, ts=ts / 1000 if ts else time.time())


def to_balances(raw: dict[str, Any]) -> dict[str, Balance]:
    """ccxt's balance as ours: the currencies holding anything, free and in orders."""
    free, used = raw.get("free") or {}, raw.get("used") or {}
    out: dict[str, Balance] = {}
    for currency in sorted(set(free) | set(used)):
        f, u = dec(free.get(currency)) or Decimal(0), dec(used.get(currency)) or Decimal(0)
        if f or u:
            out[currency] = Balance(currency, f, u)
    return out
