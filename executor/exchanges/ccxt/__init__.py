"""The ccxt adapter: any ccxt venue behind the exchange port (`CcxtExchange`, see `adapter`).

`adapter` puts the port together from one module per job: `client` builds the ccxt client,
`discipline` paces and classifies every request and reports the budget (its brakes are in
`throttle`), `orders` places, finds and cancels one order, `history` pages through the bulk reads,
`translate` reads ccxt's answers as the port's types, `announced` reads what Binance says of its
limits, and `errors` classifies every failure and scrubs secrets. Importing this package does not
import ccxt (0.6 s).
"""

from executor.exchanges.ccxt.adapter import CcxtExchange
from executor.exchanges.ccxt.errors import classify, retry_after_of, scrub

__all__ = ["CcxtExchange", "classify", "retry_after_of", "scrub"]
