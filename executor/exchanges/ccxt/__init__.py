"""The ccxt adapter: any ccxt venue behind the exchange port (see `adapter`).

`errors` classifies every failure and scrubs secrets, `throttle` paces requests to the venue's
limits, `adapter` is the port itself. Importing this package does not import ccxt (0.6 s).
"""

from executor.exchanges.ccxt.adapter import CcxtExchange
from executor.exchanges.ccxt.errors import classify, retry_after_of, scrub

__all__ = ["CcxtExchange", "classify", "retry_after_of", "scrub"]
