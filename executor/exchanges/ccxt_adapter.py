"""Where the ccxt adapter used to live: it is the package `executor.exchanges.ccxt` now.

Kept so that `from executor.exchanges.ccxt_adapter import CcxtExchange, classify, scrub` works.
"""

from executor.exchanges.ccxt.adapter import DEFAULT_TIMEOUT_MS, PER_SYMBOL_OPEN_ORDERS_MAX, CcxtExchange, order_status
from executor.exchanges.ccxt.errors import DEFAULT_BAN, DEFAULT_RETRY_AFTER, classify, retry_after_of, scrub
from executor.exchanges.ccxt.throttle import OrderRate as _OrderRate
from executor.exchanges.ccxt.throttle import Slot as _Slot

__all__ = [
    "DEFAULT_BAN",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TIMEOUT_MS",
    "PER_SYMBOL_OPEN_ORDERS_MAX",
    "CcxtExchange",
    "_OrderRate",
    "_Slot",
    "classify",
    "order_status",
    "retry_after_of",
    "scrub",
]
