"""Any ccxt venue behind the exchange port, every failure classified once, here.

Owns building the ccxt client from settings (`sandbox` through `set_sandbox_mode`, `api_url`
rebasing a Binance-compatible venue's REST URLs, keys from `TRADECONSOLE_API_KEY` /
`TRADECONSOLE_API_SECRET`, spot only), every request's discipline (the one cooldown all requests
share after a 429/418, ccxt's own throttle, the venue's order-rate limit), the translation of
ccxt structures into the port's dataclasses, and `classify`: the single place a ccxt exception
becomes `NotPlaced`, `Rejected` or `MaybePlaced`.

Why some ccxt internals are replaced on the instance: ccxt's REST layer ignores Retry-After and
keeps response headers only in a shared attribute that concurrent requests overwrite, so
`handle_errors` is wrapped to attach each error's own headers to it; ccxt's throttle becomes the
same leaky bucket with a queue that stands still during a cooldown, so requests queued there
neither slip out during a ban nor burst out after it (a burst into a venue's back-off earns a
418); and `fetch` is wrapped to time-stamp order requests when they really leave (for the
order-rate limiter) and to learn the venue's order limits from Binance's `exchangeInfo`.

Secrets never leave this module: messages are scrubbed of query strings, signatures and the
key and secret themselves, exceptions are raised `from None`, and ccxt's wire log (which carries
request headers) goes through a redacting logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from executor.exchanges.base import (
    Cooldown,
    DuplicateOrder,
    ExchangeError,
    ExchangeOrder,
    ExchangePort,
    MaybePlaced,
    NotPlaced,
    OrderNotFound,
    RateLimitState,
    Rejected,
    Ticker,
    Trade,
)
from executor.models import Balance, MarketInfo, OrderStatus, OrderType, Side, to_decimal

if TYPE_CHECKING:
    from executor.config import Settings

log = logging.getLogger("tradeconsole.exchange.ccxt")
_wire_log = logging.getLogger("tradeconsole.exchange.ccxt.wire")

T = TypeVar("T")
DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_RETRY_AFTER = 1.0  # a 429 without Retry-After
DEFAULT_BAN = 120.0  # a 418 without Retry-After or ban time: Binance's shortest ban
# Open orders without a symbol cost Binance 80 weight against 6 per symbol: below this many
# markets, asking market by market is cheaper, and it works on venues that require a symbol.
PER_SYMBOL_OPEN_ORDERS_MAX = 8
# Venues whose fetch_order / cancel_order take `clientOrderId` in params (read in ccxt's source).
_CLIENT_ID_PARAM_VENUES = frozenset({"binance", "binanceus"})
# Binance spot's ORDERS limit until the venue's exchangeInfo says otherwise.
_BINANCE_ORDER_LIMITS = ((100, 10.0),)
_ORDER_LIMIT_INTERVALS = {"SECOND": 1.0, "MINUTE": 60.0}

_STATUS = {
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}

# The order slots the current task holds: `fetch` stamps them when the request actually leaves.
_ORDER_SLOTS: contextvars.ContextVar[tuple[_Slot, ...]] = contextvars.ContextVar("tc_order_slots", default=())
_RESPONSE_HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "tc_response_headers", default=None
)

_ccxt_module: Any = None


def _ccxt() -> Any:
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


class _RedactingLogger:
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


# -- classification -----------------------------------------------------------------------------


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
    ccxt = _ccxt()
    message = scrub(f"{type(exc).__name__}: {exc}", secrets)
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        retry_after = getattr(exc, "tc_retry_after", None)
        if retry_after is None:
            retry_after = DEFAULT_BAN if getattr(exc, "tc_status", None) == 418 else DEFAULT_RETRY_AFTER
        return NotPlaced(message, retry_after=max(retry_after, 0.0), rate_limited=True)
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


# -- the venue's order-rate limit ---------------------------------------------------------------


@dataclass
class _Slot:
    sent_at: float | None = None  # None: reserved, not sent yet


class _OrderRate:
    """At most `limit` order requests in any `window` seconds, counted when they really leave.

    A slot is reserved before the request queues (cooldown, ccxt's throttle) and time-stamped by
    `fetch`; an unsent slot counts as "now", so a slow queue can never let a burst through.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        # Margin for the venue's clock and a request's time on the wire.
        self.window = window * 1.02 + 0.1
        self.clock = clock
        self._slots: list[_Slot] = []

    def _busy(self, now: float) -> list[_Slot]:
        self._slots = [s for s in self._slots if s.sent_at is None or s.sent_at > now - self.window]
        return self._slots

    async def acquire(self) -> _Slot:
        while True:
            now = self.clock()
            busy = self._busy(now)
            if len(busy) < self.limit:
                slot = _Slot()
                self._slots.append(slot)
                return slot
            sent = [s.sent_at for s in busy if s.sent_at is not None]
            wait = min(sent) + self.window - now if sent else 0.01
            await asyncio.sleep(min(max(wait, 0.005), 0.25))

    def release(self, slot: _Slot) -> None:
        if slot.sent_at is None and slot in self._slots:
            self._slots.remove(slot)


def _cooldown_throttler(config: dict[str, Any], loop: Any, cooldown: Cooldown) -> Any:
    """ccxt's leaky-bucket throttle, whose queue stands still while the shared cooldown runs.

    Nothing queued slips out inside a 429's Retry-After, and nothing bursts out after it: the
    queue resumes at the throttle's pace, in order (a venue bans a burst of requests that all
    arrive inside its back-off, even when the client honoured the Retry-After it had seen).
    """
    from ccxt.async_support.base.throttler import Throttler

    class CooldownThrottler(Throttler):
        async def leaky_bucket_loop(self) -> None:
            # ccxt's loop (async_support/base/throttler.py), plus the cooldown at the head.
            last_timestamp = time.time() * 1000
            while self.running:
                if cooldown.remaining > 0:
                    await cooldown.wait()
                    last_timestamp = time.time() * 1000
                    continue
                future, cost = self.queue[0]
                cost = self.config["cost"] if cost is None else cost
                if self.config["tokens"] >= 0:
                    self.config["tokens"] -= cost
                    if not future.done():
                        future.set_result(None)
                    self.queue.popleft()
                    await asyncio.sleep(0)
                    if len(self.queue) == 0:
                        self.running = False
                else:
                    await asyncio.sleep(self.config["delay"])
                    now = time.time() * 1000
                    elapsed = now - last_timestamp
                    last_timestamp = now
                    refill = elapsed * self.config["refillRate"]
                    self.config["tokens"] = min(self.config["tokens"] + refill, self.config["capacity"])

    return CooldownThrottler(config, loop)


# -- translation --------------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return to_decimal(value) if isinstance(value, float | int | str | Decimal) else None
    except ArithmeticError:
        return None


def _dt(ms: Any) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if isinstance(ms, int | float) else None


def order_status(raw: dict[str, Any]) -> OrderStatus:
    """ccxt's unified status (+ filled) as ours."""
    status = raw.get("status")
    filled = _dec(raw.get("filled")) or Decimal(0)
    if status == "closed":
        return OrderStatus.FILLED
    if status in _STATUS:
        return _STATUS[status]
    # "open", or None (an ACK-only answer): accepted and not final.
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN


def _fee(raw: dict[str, Any]) -> tuple[Decimal, str | None]:
    fees = raw.get("fees") or ([raw["fee"]] if raw.get("fee") else [])
    total, currency = Decimal(0), None
    for fee in fees:
        if not fee:
            continue
        cost = _dec(fee.get("cost"))
        if cost is None:
            continue
        if currency is None:
            currency = fee.get("currency")
        if fee.get("currency") == currency:
            total += cost
    return total, currency


class CcxtExchange(ExchangePort):
    """A ccxt venue (`ccxt.async_support.<exchange_id>`) behind the port. Always `close()` it."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        sandbox: bool = False,
        api_url: str = "",
        markets: Sequence[str] = (),
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        order_limits: Sequence[tuple[int, float]] | None = None,
        mode: str | None = None,
    ) -> None:
        ccxt = _ccxt()
        if exchange_id not in ccxt.exchanges:
            raise ValueError(f"{exchange_id!r} is not a ccxt exchange id")
        self.name = exchange_id
        # `mode` lets a caller that knows better say so (the emulator behind a demo is PAPER).
        self.mode = mode or ("SANDBOX" if sandbox else "LIVE")
        self.cooldown = Cooldown()
        self._secrets = tuple(s for s in (api_key, api_secret) if s)
        self._markets_wanted = tuple(markets)
        self._markets: dict[str, MarketInfo] = {}
        self._order_ids: dict[str, str] = {}  # client order id -> exchange order id
        self._client_ids: dict[str, str] = {}  # exchange order id -> client order id
        ex = getattr(ccxt, exchange_id)(
            {
                "apiKey": api_key or "",
                "secret": api_secret or "",
                "enableRateLimit": True,  # ccxt's throttle keeps us under the request-weight limit
                "timeout": timeout_ms,
            }
        )
        self._ex = ex
        self._configure(ex, sandbox, api_url)  # no session is opened before the first request
        if order_limits is None:
            order_limits = _BINANCE_ORDER_LIMITS if self._binance_like else ()
        self._order_limits = tuple(order_limits)
        self._order_rates = [_OrderRate(limit, window) for limit, window in self._order_limits]

    @property
    def _binance_like(self) -> bool:
        return isinstance(self._ex, _ccxt().binance)

    def _configure(self, ex: Any, sandbox: bool, api_url: str) -> None:
        options = ex.options
        options["defaultType"] = "spot"
        options["maxRetriesOnFailure"] = 0  # the executor owns retries: a create is never blindly re-sent
        # Spot only: no futures markets, no margin pairs or currency lists from Binance's sapi.
        if isinstance(options.get("fetchMarkets"), dict) and "types" in options["fetchMarkets"]:
            options["fetchMarkets"] = {**options["fetchMarkets"], "types": ["spot"]}
        for key in ("fetchCurrencies", "fetchMargins"):
            if key in options:
                options[key] = False
        if isinstance(options.get("fetchOpenOrders"), dict):
            options["fetchOpenOrders"] = {**options["fetchOpenOrders"], "warnWithoutSymbol": False}
        options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        if sandbox:
            ex.set_sandbox_mode(True)  # raises NotSupported when the venue has no sandbox
        if api_url:
            ex.urls["api"] = _rebase(ex.urls["api"], api_url)
        # Binance answers a reused client order id with -2010 "Duplicate order sent."; ccxt maps
        # only the code (InvalidOrder). Matching the exact message first makes it a duplicate.
        exact = ex.exceptions.get("exact") if isinstance(ex.exceptions, dict) else None
        if isinstance(exact, dict) and self._binance_like:
            exact["Duplicate order sent."] = _ccxt().DuplicateOrderId
        ex.logger = _RedactingLogger(_wire_log, self._secrets)
        self._wrap(ex)

    def _wrap(self, ex: Any) -> None:
        cooldown = self.cooldown
        if getattr(ex, "tokenBucket", None) and ex.rateLimiterAlgorithm == "leakyBucket":
            ex.throttler = _cooldown_throttler(ex.tokenBucket, ex.asyncio_loop, cooldown)
        throttle, fetch = ex.throttle, ex.fetch
        handle_errors, handle_status = ex.handle_errors, ex.handle_http_status_code

        async def throttled(cost: Any = None) -> Any:
            await cooldown.wait()
            result = await throttle(cost)
            # Let through by the throttle just before a 429 was read: wait out its cooldown too.
            await cooldown.wait()
            return result

        async def fetched(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            for slot in _ORDER_SLOTS.get():
                slot.sent_at = time.monotonic()  # moving it later only makes the limiter stricter
            response = await fetch(url, method, headers, body)
            if isinstance(response, dict) and isinstance(response.get("rateLimits"), list):
                self._learn_limits(response["rateLimits"])
            return response

        def errors(code, reason, url, method, headers, body, response, request_headers, request_body):
            _RESPONSE_HEADERS.set(headers)
            try:
                return handle_errors(code, reason, url, method, headers, body, response, request_headers, request_body)
            except Exception as exc:
                _annotate(exc, code, headers, body)
                raise

        def status(code, reason, url, method, body):
            try:
                return handle_status(code, reason, url, method, body)
            except Exception as exc:
                _annotate(exc, code, _RESPONSE_HEADERS.get(), body)
                raise

        ex.throttle = throttled
        ex.fetch = fetched
        ex.handle_errors = errors
        ex.handle_http_status_code = status

    def _learn_limits(self, rate_limits: list[Any]) -> None:
        limits = []
        for entry in rate_limits:
            if not isinstance(entry, dict) or entry.get("rateLimitType") != "ORDERS":
                continue
            unit = _ORDER_LIMIT_INTERVALS.get(str(entry.get("interval")))
            if unit is None:
                continue  # daily limits are far beyond one run
            try:
                limits.append((int(entry["limit"]), unit * int(entry.get("intervalNum", 1))))
            except (KeyError, TypeError, ValueError):
                continue
        if limits and tuple(limits) != self._order_limits:
            log.info("%s order-rate limit: %s", self.name, ", ".join(f"{n} per {w:g}s" for n, w in limits))
            self._order_limits = tuple(limits)
            self._order_rates = [_OrderRate(limit, window) for limit, window in limits]

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> CcxtExchange:
        """The venue of `[exchange]`; keys from the environment unless given."""
        from executor.config import API_KEY_ENV, API_SECRET_ENV, ConfigError, ConfigProblem, secrets_from_env

        creds = secrets_from_env()
        if api_key is None and creds.api_key is not None:
            api_key = creds.api_key.get_secret_value()
        if api_secret is None and creds.api_secret is not None:
            api_secret = creds.api_secret.get_secret_value()
        exchange = settings.exchange
        if not api_key or not api_secret:
            missing = API_KEY_ENV if not api_key else API_SECRET_ENV
            raise ConfigError(
                [
                    ConfigProblem(
                        None, missing, None, f"is not set: trading on {exchange.id} needs an API key and secret"
                    )
                ]
            )
        try:
            return cls(
                exchange.id,
                api_key=api_key,
                api_secret=api_secret,
                sandbox=exchange.sandbox,
                api_url=exchange.api_url,
                markets=list(exchange.markets),
                timeout_ms=timeout_ms,
            )
        except ValueError as exc:
            raise ConfigError([ConfigProblem(None, "exchange.id", None, str(exc))]) from None
        except Exception as exc:  # ccxt NotSupported: no sandbox on this venue
            key = "exchange.sandbox" if exchange.sandbox else "exchange.id"
            raise ConfigError([ConfigProblem(None, key, None, scrub(str(exc)))]) from None

    # -- requests -------------------------------------------------------------------------------

    async def _request(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        await self.cooldown.wait()
        try:
            return await call()
        except Exception as exc:
            error = classify(exc, self._secrets)
            if isinstance(error, NotPlaced) and error.rate_limited:
                wait = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
                self.cooldown.trip(wait)
                log.warning("%s %s: rate limited, every request waits %.2fs", self.name, operation, wait)
        raise error from None

    @contextlib.asynccontextmanager
    async def _order_slot(self):
        rates = list(self._order_rates)
        slots = [await rate.acquire() for rate in rates]
        token = _ORDER_SLOTS.set(tuple(slots))
        try:
            yield
        finally:
            _ORDER_SLOTS.reset(token)
            for rate, slot in zip(rates, slots, strict=True):
                rate.release(slot)

    def _remember(self, client_order_id: str | None, exchange_order_id: str | None) -> None:
        if client_order_id and exchange_order_id:
            self._order_ids[client_order_id] = exchange_order_id
            self._client_ids[exchange_order_id] = client_order_id

    def _order(self, raw: dict[str, Any], client_order_id: str | None = None, **known: Any) -> ExchangeOrder:
        """A ccxt order as the port's. `client_order_id` wins over the answer's: Binance's cancel
        answer carries the cancel request's own id there."""
        exchange_order_id = raw.get("id")
        exchange_order_id = str(exchange_order_id) if exchange_order_id not in (None, "") else None
        info = raw.get("info") if isinstance(raw.get("info"), dict) else {}
        coid = client_order_id or info.get("origClientOrderId") or raw.get("clientOrderId") or ""
        self._remember(coid, exchange_order_id)
        amount = _dec(raw.get("amount"))
        price = _dec(raw.get("price"))
        type_ = known.get("type") or (OrderType.MARKET if raw.get("type") == "market" else OrderType.LIMIT)
        fee, fee_currency = _fee(raw)
        return ExchangeOrder(
            client_order_id=coid,
            exchange_order_id=exchange_order_id,
            symbol=raw.get("symbol") or known.get("symbol") or "",
            side=known.get("side") or Side(raw.get("side") or "buy"),
            type=type_,
            amount=amount if amount is not None else known.get("amount", Decimal(0)),
            price=(price or None) if type_ is OrderType.LIMIT else None,
            status=order_status(raw),
            filled=_dec(raw.get("filled")) or Decimal(0),
            average=_dec(raw.get("average")) or None,
            fee=fee,
            fee_currency=fee_currency,
            ts=_dt(raw.get("lastUpdateTimestamp") or raw.get("timestamp")),
        )

    # -- the port -------------------------------------------------------------------------------

    async def load_markets(self) -> dict[str, MarketInfo]:
        markets = await self._request("load_markets", lambda: self._ex.load_markets(True))
        wanted = self._markets_wanted or [
            s for s, m in markets.items() if m.get("spot") and m.get("active") is not False
        ]
        out: dict[str, MarketInfo] = {}
        for symbol in wanted:
            market = markets.get(symbol)
            if market is None or not market.get("spot", True):
                log.warning("%s has no spot market %s; signals for it will be refused", self.name, symbol)
                continue
            out[symbol] = self._market_info(market)
        self._markets = out
        return out

    def _market_info(self, m: dict[str, Any]) -> MarketInfo:
        from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

        mode = self._ex.precisionMode

        def step(precision: Any) -> Decimal:
            value = _dec(precision)
            if value is None:
                return Decimal(0)
            if mode == TICK_SIZE:
                return value
            if mode == DECIMAL_PLACES:
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
            min_amount=_dec(amount_limits.get("min")) or amount_step,
            min_cost=_dec((limits.get("cost") or {}).get("min")) or Decimal(0),
            maker_fee=_dec(m.get("maker")) if m.get("maker") is not None else Decimal("0.001"),
            taker_fee=_dec(m.get("taker")) if m.get("taker") is not None else Decimal("0.001"),
            max_amount=_dec(amount_limits.get("max")),
            extra={"id": m.get("id"), "venue": self.name},
        )

    async def fetch_ticker(self, symbol: str) -> Ticker:
        raw = await self._request("fetch_ticker", lambda: self._ex.fetch_ticker(symbol))
        last = _dec(raw.get("last")) or _dec(raw.get("close"))
        bid = _dec(raw.get("bid")) or last
        ask = _dec(raw.get("ask")) or last
        if bid is None or ask is None:
            raise NotPlaced(f"{self.name} gave no price for {symbol}")
        ts = raw.get("timestamp")
        return Ticker(
            symbol=symbol, bid=bid, ask=ask, last=last or (bid + ask) / 2, ts=ts / 1000 if ts else time.time()
        )

    async def fetch_balances(self) -> dict[str, Balance]:
        raw = await self._request("fetch_balances", self._ex.fetch_balance)
        free, used = raw.get("free") or {}, raw.get("used") or {}
        out: dict[str, Balance] = {}
        for currency in sorted(set(free) | set(used)):
            f, u = _dec(free.get(currency)) or Decimal(0), _dec(used.get(currency)) or Decimal(0)
            if f or u:
                out[currency] = Balance(currency, f, u)
        return out

    async def create_order(
        self,
        *,
        client_order_id: str,
        symbol: str,
        side: Side,
        type: OrderType,
        amount: Decimal,
        price: Decimal | None,
    ) -> ExchangeOrder:
        ex = self._ex
        try:
            amount_text = ex.amount_to_precision(symbol, str(amount))
            price_text = ex.price_to_precision(symbol, str(price)) if type is OrderType.LIMIT and price else None
        except Exception as exc:  # unknown market, amount below the grid: nothing was sent
            raise classify(exc, self._secrets) from None
        sent_amount = Decimal(amount_text)
        if sent_amount <= 0:
            raise Rejected(f"{symbol}: amount {amount} is below the market's precision")
        market = self._markets.get(symbol)
        if price_text is not None and market is not None and market.min_cost > 0:
            notional = sent_amount * Decimal(price_text)
            if notional < market.min_cost:
                raise Rejected(
                    f"{symbol}: notional {notional} {market.quote} is below the minimum "
                    f"{market.min_cost} {market.quote}"
                )
        params = {"clientOrderId": client_order_id}
        async with self._order_slot():
            raw = await self._request(
                "create_order",
                # A market order is sent without a price: with one, ccxt's binance turns it into quoteOrderQty.
                lambda: ex.create_order(symbol, type.value, side.value, amount_text, price_text, params),
            )
        return self._order(raw, client_order_id, symbol=symbol, side=side, type=type, amount=sent_amount)

    @property
    def _by_client_id(self) -> bool:
        return bool(self._ex.has.get("fetchOrderWithClientOrderId")) or self.name in _CLIENT_ID_PARAM_VENUES

    async def fetch_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        ex = self._ex
        if self._by_client_id:
            raw = await self._request(
                "fetch_order", lambda: ex.fetch_order("", symbol, {"clientOrderId": client_order_id})
            )
            return self._order(raw, client_order_id)
        order_id = self._order_ids.get(client_order_id)
        if order_id is not None:
            raw = await self._request("fetch_order", lambda: ex.fetch_order(order_id, symbol))
            return self._order(raw, client_order_id)
        return await self._scan(client_order_id, symbol)

    async def _scan(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """Find an order by client id on a venue that cannot look it up directly."""
        ex = self._ex
        sources = []
        if ex.has.get("fetchOpenOrders"):
            sources.append(ex.fetch_open_orders)
        if ex.has.get("fetchClosedOrders"):
            sources.append(ex.fetch_closed_orders)
        elif ex.has.get("fetchOrders"):
            sources.append(ex.fetch_orders)
        if not sources:
            raise Rejected(f"{self.name} cannot look orders up by client order id")
        for source in sources:
            raws = await self._request("fetch_order", lambda source=source: source(symbol))
            for raw in raws:
                if raw.get("clientOrderId") == client_order_id:
                    return self._order(raw, client_order_id)
        raise OrderNotFound(f"{client_order_id} is not among {self.name}'s orders for {symbol}")

    async def cancel_order(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        ex = self._ex
        if self._by_client_id or self._ex.has.get("cancelOrderWithClientOrderId"):
            raw = await self._request(
                "cancel_order", lambda: ex.cancel_order("", symbol, {"clientOrderId": client_order_id})
            )
        else:
            order_id = self._order_ids.get(client_order_id)
            if order_id is None:
                order_id = (await self.fetch_order(client_order_id, symbol)).exchange_order_id
            raw = await self._request("cancel_order", lambda: ex.cancel_order(order_id, symbol))
        return self._order(raw, client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        ex = self._ex
        symbols = [symbol] if symbol else list(self._markets or self._markets_wanted)
        if symbol is None and not (0 < len(symbols) <= PER_SYMBOL_OPEN_ORDERS_MAX):
            raws = await self._request("fetch_open_orders", ex.fetch_open_orders)
        else:
            results = await asyncio.gather(
                *(self._request("fetch_open_orders", lambda s=s: ex.fetch_open_orders(s)) for s in symbols),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            raws = [raw for result in results for raw in result]
        return [self._order(raw) for raw in raws]

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> list[Trade]:
        since_ms = int(since.timestamp() * 1000) if since is not None else None
        raws = await self._request("fetch_my_trades", lambda: self._ex.fetch_my_trades(symbol, since_ms))
        out = []
        for raw in raws:
            order_id = str(raw["order"]) if raw.get("order") is not None else None
            fee = raw.get("fee") or {}
            out.append(
                Trade(
                    trade_id=str(raw.get("id")),
                    exchange_order_id=order_id,
                    client_order_id=self._client_ids.get(order_id or "") or raw.get("clientOrderId"),
                    symbol=raw.get("symbol") or symbol,
                    side=Side(raw.get("side") or "buy"),
                    amount=_dec(raw.get("amount")) or Decimal(0),
                    price=_dec(raw.get("price")) or Decimal(0),
                    fee=_dec(fee.get("cost")) or Decimal(0),
                    fee_currency=fee.get("currency"),
                    ts=_dt(raw.get("timestamp")),
                )
            )
        return out

    # -- beyond the port: what the venue can do in one request, else the same in several ---------

    async def edit_order(
        self,
        client_order_id: str,
        symbol: str,
        *,
        new_client_order_id: str,
        side: Side,
        type: OrderType,
        amount: Decimal,
        price: Decimal | None,
    ) -> ExchangeOrder:
        """Replace an order: the venue's cancel-replace when it has `editOrder`, else cancel + create."""
        ex = self._ex
        if not ex.has.get("editOrder"):
            await self.cancel_order(client_order_id, symbol)
            return await self.create_order(
                client_order_id=new_client_order_id, symbol=symbol, side=side, type=type, amount=amount, price=price
            )
        try:
            amount_text = ex.amount_to_precision(symbol, str(amount))
            price_text = ex.price_to_precision(symbol, str(price)) if type is OrderType.LIMIT and price else None
        except Exception as exc:
            raise classify(exc, self._secrets) from None
        order_id = self._order_ids.get(client_order_id, "")
        params = {"cancelOrigClientOrderId": client_order_id, "newClientOrderId": new_client_order_id}
        async with self._order_slot():
            raw = await self._request(
                "edit_order",
                lambda: ex.edit_order(order_id, symbol, type.value, side.value, amount_text, price_text, params),
            )
        return self._order(raw, new_client_order_id, symbol=symbol, side=side, type=type)

    async def cancel_all_orders(self, symbol: str) -> list[ExchangeOrder]:
        """Cancel every open order of `symbol`: in one request when the venue can."""
        ex = self._ex
        if ex.has.get("cancelAllOrders"):
            raws = await self._request("cancel_all_orders", lambda: ex.cancel_all_orders(symbol))
            return [self._order(raw) for raw in raws or []]
        out = []
        for order in await self.fetch_open_orders(symbol):
            with contextlib.suppress(OrderNotFound):
                if (report := await self.cancel_order(order.client_order_id, symbol)) is not None:
                    out.append(report)
        return out

    def rate_limit_state(self) -> RateLimitState:
        queue = getattr(getattr(self._ex, "throttler", None), "queue", ())
        return RateLimitState(
            cooldown_remaining=self.cooldown.remaining, trips=self.cooldown.trips, throttled=len(queue) > 0
        )

    async def close(self) -> None:
        await self._ex.close()

    async def __aenter__(self) -> CcxtExchange:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _annotate(exc: BaseException, status: Any, headers: dict[str, str] | None, body: Any) -> None:
    """Attach this response's own status and wait to the exception ccxt raised for it."""
    with contextlib.suppress(AttributeError, TypeError):
        exc.tc_status = status  # type: ignore[attr-defined]
        exc.tc_retry_after = retry_after_of(headers, body if isinstance(body, str) else None)  # type: ignore[attr-defined]


def _rebase(urls: Any, base: str) -> Any:
    """Point every REST URL at `base`, keeping each one's path (`/api/v3`, `/api/v1`, ...)."""
    if isinstance(urls, str):
        parts = urlsplit(urls)
        return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    if isinstance(urls, dict):
        return {key: _rebase(value, base) for key, value in urls.items()}
    return urls
