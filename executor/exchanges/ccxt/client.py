"""Building and configuring the ccxt client of one venue.

Owns what the adapter sets on ccxt before the first request: the client from its id and keys
(ccxt's throttle on, ccxt's own retries off: the executor owns retries, a create is never blindly
re-sent), spot only (no futures markets, margin pairs or currency lists), the sandbox, `api_url`
rebasing a Binance-compatible venue's REST URLs, the answers that mean "this client order id is in
use" mapped to ccxt's `DuplicateOrderId`, and ccxt's wire log (which carries request headers)
through a redacting logger. No session is opened here; the request discipline is installed on
the client afterwards (see `discipline`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from executor.exchanges.ccxt.errors import RedactingLogger, ccxt_async

_wire_log = logging.getLogger("tradeconsole.exchange.ccxt.wire")

DEFAULT_TIMEOUT_MS = 10_000

# Answers that mean "this client order id is in use": ccxt maps these codes to InvalidOrder only.
_DUPLICATE_ID_CODES = {
    "okx": ("51016",),  # "Duplicated clOrdId"
    "bybit": ("110072", "170141"),  # "OrderLinkedID is duplicate", "Duplicate clientOrderId"
}
_BINANCE_DUPLICATE_MESSAGE = "Duplicate order sent."  # -2010, whose code means any refused order


def new_client(
    exchange_id: str, keys: dict[str, str], timeout_ms: int, *, sandbox: bool, api_url: str, secrets: Sequence[str]
) -> Any:
    """A configured `ccxt.async_support.<exchange_id>` (see the module's doc), with `keys` in
    ccxt's names (`apiKey`, `secret`, and `password` where a venue asks for one).

    Raises ValueError for an id ccxt does not know, and ccxt's NotSupported for a sandbox the
    venue does not have.
    """
    ccxt = ccxt_async()
    if exchange_id not in ccxt.exchanges:
        raise ValueError(f"{exchange_id!r} is not a ccxt exchange id")
    # ccxt's throttle on: it keeps us under the request-weight limit
    ex = getattr(ccxt, exchange_id)({**keys, "enableRateLimit": True, "timeout": timeout_ms})
    _configure(ex, exchange_id, sandbox, api_url, secrets)
    return ex


def is_binance(ex: Any) -> bool:
    """Whether the client speaks Binance's API (binance itself, binanceus, the emulator behind one)."""
    return isinstance(ex, ccxt_async().binance)


def _configure(ex: Any, name: str, sandbox: bool, api_url: str, secrets: Sequence[str]) -> None:
    binance = is_binance(ex)
    options = ex.options
    options["defaultType"] = "spot"
    options["maxRetriesOnFailure"] = 0  # the executor owns retries: a create is never blindly re-sent
    # Spot only: no futures markets, no margin pairs or currency lists from Binance's sapi.
    if isinstance(options.get("fetchMarkets"), dict) and "types" in options["fetchMarkets"]:
        options["fetchMarkets"] = {**options["fetchMarkets"], "types": ["spot"]}
    for key in ("fetchCurrencies", "fetchMargins"):
        if key in options:
            options[key] = False
    if not binance and isinstance(ex.has, dict):
        # Currency lists (networks, withdrawal fees) are no use to spot trading: one request less
        # per load_markets, and a private one on OKX.
        ex.has = {**ex.has, "fetchCurrencies": False}
    if isinstance(options.get("fetchOpenOrders"), dict):
        options["fetchOpenOrders"] = {**options["fetchOpenOrders"], "warnWithoutSymbol": False}
    options["warnOnFetchOpenOrdersWithoutSymbol"] = False
    if sandbox:
        ex.set_sandbox_mode(True)  # raises NotSupported when the venue has no sandbox
    if api_url:
        ex.urls["api"] = _rebase(ex.urls["api"], api_url)
    exact = ex.exceptions.get("exact") if isinstance(ex.exceptions, dict) else None
    if isinstance(exact, dict):
        duplicate = ccxt_async().DuplicateOrderId
        if binance:
            # Binance answers a reused client order id with -2010 "Duplicate order sent."; ccxt
            # maps only the code (InvalidOrder, any refused order): the exact message wins.
            exact[_BINANCE_DUPLICATE_MESSAGE] = duplicate
        for code in _DUPLICATE_ID_CODES.get(name, ()):
            exact[code] = duplicate
    ex.logger = RedactingLogger(_wire_log, secrets)


def _rebase(urls: Any, base: str) -> Any:
    """Point every REST URL at `base`, keeping each one's path (`/api/v3`, `/api/v1`, ...)."""
    if isinstance(urls, str):
        parts = urlsplit(urls)
        return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    if isinstance(urls, dict):
        return {key: _rebase(value, base) for key, value in urls.items()}
    return urls
