"""The venue's endpoints: one list for the emulator that serves them and the faults that hit them.

Owns `ENDPOINTS`, every Binance spot REST endpoint the emulator serves as "METHOD /path" (the
keys of the faults file's "endpoints", and of the emulator's routes), the ones that place orders,
and `OPERATIONS`: the endpoint each call of the exchange port requests on Binance (what ccxt's
`binance` sends), so the paper exchange's faults per operation name the same endpoints.
"""

from __future__ import annotations

ENDPOINTS = (
    "GET /api/v3/ping",
    "GET /api/v3/time",
    "GET /api/v3/exchangeInfo",
    "GET /api/v3/ticker/24hr",
    "GET /api/v3/ticker/bookTicker",
    "GET /api/v3/ticker/price",
    "GET /api/v3/depth",
    "GET /api/v3/avgPrice",
    "GET /api/v3/klines",
    "GET /api/v3/trades",
    "GET /api/v3/aggTrades",
    "GET /api/v3/account",
    "POST /api/v3/order",
    "GET /api/v3/order",
    "DELETE /api/v3/order",
    "GET /api/v3/openOrders",
    "DELETE /api/v3/openOrders",
    "GET /api/v3/allOrders",
    "GET /api/v3/myTrades",
    "GET /api/v3/rateLimit/order",
    "POST /api/v3/order/cancelReplace",
    "GET /sapi/v1/system/status",
    "GET /sapi/v1/asset/tradeFee",
)
NEW_ORDER = "POST /api/v3/order"
CANCEL_REPLACE = "POST /api/v3/order/cancelReplace"
# The endpoints that place orders: they take from the order count, and only they can hide one.
CREATING = frozenset({NEW_ORDER, CANCEL_REPLACE})

# Exchange port call -> the endpoint it requests (the ccxt adapter's own table for binance agrees).
OPERATIONS = {
    "load_markets": "GET /api/v3/exchangeInfo",
    "fetch_ticker": "GET /api/v3/ticker/24hr",
    "fetch_balances": "GET /api/v3/account",
    "create_order": NEW_ORDER,
    "fetch_order": "GET /api/v3/order",
    "cancel_order": "DELETE /api/v3/order",
    "fetch_open_orders": "GET /api/v3/openOrders",
    "fetch_orders_since": "GET /api/v3/allOrders",
    "fetch_my_trades": "GET /api/v3/myTrades",
}


def endpoint_of(name: str) -> str:
    """`name` as an endpoint: an endpoint itself, "*" (every endpoint), or a port operation's."""
    return OPERATIONS.get(name, name)
