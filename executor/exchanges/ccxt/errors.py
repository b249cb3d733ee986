"""Secrets out, and every ccxt failure into the port's three classes: the one place that decides.

`scrub` takes query strings, signatures and the keys themselves out of any text; `classify` turns a
ccxt (or transport) exception into `NotPlaced`, `Rejected` or `MaybePlaced`; `annotate` attaches
what one response said (HTTP status, Retry-After or ban time, the venue's own error code) to the
exception ccxt raised for it, because ccxt keeps response headers only in a shared attribute that
concurrent requests overwrite.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import re
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

from executor.exchanges.base import DuplicateOrder, ExchangeError, MaybePlaced, NotPlaced, OrderNotFound, Rejected

DEFAULT_RETRY_AFTER = 1.0  # a 429 without Retry-After
DEFAULT_BAN = 120.0  # a 418 without Retry-After or ban time: Binance's shortest ban

# A venue's order-count limit ("too many new orders"): it refuses new orders only, so only new
# orders wait it out (see `discipline.RequestDiscipline._request`). By venue family and code:
# Binance -1015 (a 429), Bybit 170005 and OKX 50061, which ccxt 4.5.90 raises as InvalidOrder and
# ExchangeError (bybit.py and okx.py `exceptions`): certainly not placed, and rate limited.
ORDER_COUNT_CODES = frozenset({("binance", "-1015"), ("bybit", "170005"), ("okx", "50061")})

# Venue codes whose ccxt 4.5.90 class says the wrong thing about the request, by venue family and
# code: the port's class for each (ccxt's, from its `exceptions` tables, in the comment).
_BY_CODE: dict[tuple[str, str], type[ExchangeError]] = {
    # "Invalid API-key, IP, or permissions for action.": AuthenticationError, but DDoSProtection
    # once any private request succeeded (binance.handle_errors' -2015 workaround), which would
    # read as a rate limit retried for ever. Certainly not placed, and the key is refused: final.
    ("binance", "-2015"): Rejected,
    ("bybit", "170146"): MaybePlaced,  # "Order creation timeout": InvalidOrder
    ("bybit", "170147"): MaybePlaced,  # "Order cancellation timeout": InvalidOrder
    # Nothing to cancel any more (the port's OrderNotFound: look it up), all InvalidOrder to ccxt.
    ("bybit", "110008"): OrderNotFound,  # "Order has been finished or canceled"
    ("bybit", "110010"): OrderNotFound,  # "Order already cancelled"
    ("bybit", "170139"): OrderNotFound,  # "Order has been filled."
    ("bybit", "170142"): OrderNotFound,  # "Order has been canceled"
}

_ccxt_module: Any = None


def ccxt_async() -> Any:
    """`ccxt.async_support`, imported on first use: importing it costs 0.6 s."""
    global _ccxt_module
    if _ccxt_module is None:
        import ccxt.async_support

        _ccxt_module = ccxt.async_support
    return _ccxt_module


# -- scrubbing ----------------------------------------------------------------------------------

_QUERY = re.compile(r"(https?://[^\s?#\"'<>]*)\?[^\s\"'<>]*")
_SIGNATURE = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)
_MAX_MESSAGE = 600


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without query strings, signatures or any of `secrets`, and not endless."""
    text = _QUERY.sub(r"\1", text)
    text = _SIGNATURE.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 3] + "..."
    return text


class RedactingLogger:
    """What ccxt logs through: its request/response debug lines carry the API key in headers."""

    def __init__(self, logger: logging.Logger, secrets: Sequence[str]) -> None:
        self._logger = logger
        self._secrets = tuple(s for s in secrets if s)

    def _log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self._logger.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(str(a) for a in (msg, *args))
        self._logger.log(level, "%s", scrub(text, self._secrets))

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.DEBUG, msg, *args)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.INFO, msg, *args)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.WARNING, msg, *args)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._log(logging.ERROR, msg, *args)


# -- what one response said ---------------------------------------------------------------------


def retry_after_of(headers: dict[str, str] | None, body: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a 429/418: Retry-After (seconds or HTTP date), or Binance's ban time."""
    now = time.time() if now is None else now
    waits: list[float] = []
    for name, value in (headers or {}).items():
        if name.lower() != "retry-after":
            continue
        value = str(value).strip()
        # ccxt joins a repeated header with ", ": take the first of several numbers
        for candidate in (value, value.split(",")[0]):
            with contextlib.suppress(ValueError):
                waits.append(float(candidate))
                break
        else:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                waits.append(email.utils.parsedate_to_datetime(value).timestamp() - now)
    if body and (match := re.search(r"banned until (\d{12,14})", body)):
        waits.append(int(match.group(1)) / 1000 - now)
    waits = [w for w in waits if w == w]  # drop NaN
    return max(waits) if waits else None


def venue_code(body: Any) -> str | None:
    """The venue's error code in a JSON body: Binance's and OKX's `code`, Bybit's `retCode`, and
    where OKX says only that the operation failed (`code` 1 or 2), the first order's `sCode`."""
    if not isinstance(body, str) or not body.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("code", "retCode", "ret_code"):
        value = data.get(key)
        if value not in (None, "", 0, "0"):
            if str(value) in ("1", "2") and isinstance(data.get("data"), list):
                inner = [d.get("sCode") for d in data["data"] if isinstance(d, dict)]
                value = next((c for c in inner if c not in (None, "", "0")), value)
            return str(value)
    return None


def annotate(exc: BaseException, status: Any, headers: dict[str, str] | None, body: Any, venue: str = "") -> None:
    """Attach this response's own status, wait and venue code (of `venue`, the venue family whose
    codes these are) to the exception ccxt raised for it."""
    with contextlib.suppress(AttributeError, TypeError):
        exc.tc_status = status  # type: ignore[attr-defined]
        exc.tc_retry_after = retry_after_of(headers, body if isinstance(body, str) else None)  # type: ignore[attr-defined]
        exc.tc_code = venue_code(body)  # type: ignore[attr-defined]
        exc.tc_venue = venue  # type: ignore[attr-defined]


def _code_of(exc: BaseException) -> tuple[str, str | None]:
    return getattr(exc, "tc_venue", ""), getattr(exc, "tc_code", None)


def is_order_count_limit(exc: BaseException) -> bool:
    """A refusal of new orders only (Binance -1015 "Too many new orders", Bybit 170005, OKX 50061)."""
    return _code_of(exc) in ORDER_COUNT_CODES or "Too many new orders" in str(exc)


# -- classification -----------------------------------------------------------------------------


def _refused_before_sending(exc: BaseException) -> bool:
    """A connection that was never made (refused, DNS, connect timeout): nothing was sent."""
    import aiohttp

    pre_send: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError, socket.gaierror, ConnectionRefusedError)
    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    if connect_timeout is not None:
        pre_send += (connect_timeout,)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, pre_send):
            return True
        current = current.__cause__ or current.__context__
    return False


def classify(exc: BaseException, secrets: Iterable[str] = ()) -> ExchangeError:
    """The one mapping from a ccxt (or transport) exception to the port's taxonomy.

    Reads use the same classes; the executor retries `NotPlaced` and `MaybePlaced` reads.
    """
    if isinstance(exc, ExchangeError):
        return exc
    ccxt = ccxt_async()
    message = scrub(f"{type(exc).__name__}: {exc}", secrets)
    by_code = _BY_CODE.get(_code_of(exc))  # type: ignore[arg-type]
    if by_code is not None:
        return by_code(message)
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded) or is_order_count_limit(exc):
        retry_after = getattr(exc, "tc_retry_after", None)
        if retry_after is None:
            retry_after = DEFAULT_BAN if getattr(exc, "tc_status", None) == 418 else DEFAULT_RETRY_AFTER
        # rate_limited: the executor does not count this attempt against max_retries
        return NotPlaced(message, retry_after=max(retry_after, 0.0), rate_limited=True)
    if isinstance(exc, ccxt.InvalidNonce):
        # The venue refused the request's timestamp or nonce before looking at it (Binance -1021
        # "outside of the recvWindow", OKX 50102, Bybit 10002): certainly not placed.
        return NotPlaced(message)
    if _refused_before_sending(exc):
        return NotPlaced(message)
    if isinstance(exc, ccxt.DuplicateOrderId):
        return DuplicateOrder(message)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(message)
    if isinstance(
        exc,
        ccxt.InsufficientFunds
        | ccxt.InvalidOrder
        | ccxt.BadRequest
        | ccxt.AuthenticationError
        | ccxt.OperationRejected
        | ccxt.NotSupported
        | ccxt.ArgumentsRequired,
    ):
        return Rejected(message)
    # Every other NetworkError, OperationFailed, unknown ExchangeError or surprise: nobody knows.
    return MaybePlaced(message)
