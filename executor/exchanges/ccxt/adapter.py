"""Any ccxt venue behind the exchange port.

Owns building the ccxt client from settings (`sandbox` through `set_sandbox_mode`, `api_url`
rebasing a Binance-compatible venue's REST URLs, keys from `TRADECONSOLE_API_KEY` /
`TRADECONSOLE_API_SECRET`, spot only), every request's discipline (the one cooldown all requests
share after a 429/418, the new-orders-only cooldown after an order-count 429, ccxt's throttle
paced to the venue's announced request weight, the venue's order-rate limit), each venue's own way
to find, cancel and page through orders, and the translation of ccxt structures into the port's
dataclasses. `errors.classify` is the single place a ccxt exception becomes `NotPlaced`,
`Rejected` or `MaybePlaced`.

Why some ccxt internals are replaced on the instance: ccxt's REST layer ignores Retry-After and
keeps response headers only in a shared attribute that concurrent requests overwrite, so
`handle_errors` is wrapped to attach each error's own headers to it and to read each answer's
used-weight header; ccxt's throttle becomes the same leaky bucket with a queue that stands still
during a cooldown or while the venue's weight window is full (see `throttle`); and `fetch` is
wrapped to time-stamp order requests when they really leave (for the order-rate limiter), to
count what is on the wire, and to learn the venue's limits from Binance's `exchangeInfo`.

Request weight (`request_cost`, `budget`). ccxt describes each endpoint's cost in its own units:
one unit is `rateLimit` ms of its pacing. For Binance, ccxt's tables say "cost = 0.2 * weight"
(`rateLimit` 50 ms: 20 units/s = 100 weight/s = Binance's default 6,000 weight/min), so one ccxt
unit is `rateLimit * 6000 / 60000` = 5 weight; the adapter reports Binance weight and paces the
bucket at `PACE_SHARE` of the limit the venue announces in `exchangeInfo` (REQUEST_WEIGHT). For
venues that announce no weight limit we can read (OKX, Bybit, ...), costs and budget are in
ccxt's own units and the budget is ccxt's own pace for the venue (60,000 / `rateLimit` per min).

Secrets never leave this module: messages are scrubbed of query strings, signatures and the
key and secret themselves, exceptions are raised `from None`, and ccxt's wire log (which carries
request headers) goes through a redacting logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from executor.exchanges.base import (
    Cooldown,
    ExchangeOrder,
    ExchangePort,
    NotPlaced,
    OrderNotFound,
    RateLimitState,
    Rejected,
    RequestBudget,
    Ticker,
    Trade,
)
from executor.exchanges.ccxt.errors import (
    DEFAULT_RETRY_AFTER,
    RedactingLogger,
    annotate,
    ccxt_async,
    classify,
    is_order_count_limit,
    scrub,
)
from executor.exchanges.ccxt.throttle import OrderRate, Slot, WeightWindow, cooldown_throttler
from executor.models import Balance, MarketInfo, OrderStatus, OrderType, Side, to_decimal

if TYPE_CHECKING:
    from executor.config import Settings

log = logging.getLogger("tradeconsole.exchange.ccxt")
_wire_log = logging.getLogger("tradeconsole.exchange.ccxt.wire")

T = TypeVar("T")
DEFAULT_TIMEOUT_MS = 10_000
# Open orders without a symbol cost Binance 80 weight against 6 per symbol: below this many
# markets, asking market by market is cheaper, and it works on venues that require a symbol.
PER_SYMBOL_OPEN_ORDERS_MAX = 8
# The share of the venue's announced request weight ccxt's throttle paces us to.
PACE_SHARE = 0.9
# How many order ids each way the adapter remembers (least recently used ones are forgotten).
ID_MAP_SIZE = 8192

# Binance spot's limits until the venue's exchangeInfo says otherwise.
_BINANCE_ORDER_LIMITS = ((100, 10.0),)
_BINANCE_WEIGHT_LIMIT = (6000, 60.0)
_LIMIT_INTERVALS = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0}
_USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
_BINANCE_PAGE = 1000  # allOrders and myTrades: the largest page
_DAY_MS = 24 * 3600 * 1000  # Binance: startTime..endTime may span at most 24 h
_MAX_PAGES = 1000

# Venues whose fetch_order / cancel_order take the client order id as `clientOrderId` in params:
# ccxt's binance sends it as `origClientOrderId`, ccxt's okx as `clOrdId` (read in their source).
_CLIENT_ID_PARAM_VENUES = frozenset({"binance", "binanceus", "okx"})
# Bybit looks orders up and cancels them by `orderLinkId` (its client order id): ccxt's
# fetch_order cannot on unified accounts (it raises ArgumentsRequired, "last 500 orders").
_LINK_ID_VENUES = frozenset({"bybit"})
# Answers that mean "this client order id is in use": ccxt maps these codes to InvalidOrder only.
_DUPLICATE_ID_CODES = {
    "okx": ("51016",),  # "Duplicated clOrdId"
    "bybit": ("110072", "170141"),  # "OrderLinkedID is duplicate", "Duplicate clientOrderId"
}
_BINANCE_DUPLICATE_MESSAGE = "Duplicate order sent."  # -2010, whose code means any refused order
# How each venue pages order and trade history beyond ccxt's single call, and its largest page.
_PAGING = {"okx": ("after", 100), "bybit": ("cursor", 50)}

# One port call -> the ccxt endpoints it requests once each: (api, method, path, params for the cost).
_S = {"symbol": "BTCUSDT"}
_ENDPOINTS: dict[str, dict[str, tuple[tuple[str, str, str, dict[str, Any]], ...]]] = {
    "binance": {
        "load_markets": (("public", "get", "exchangeInfo", {}),),
        "fetch_ticker": (("public", "get", "ticker/24hr", _S),),
        "fetch_balances": (("private", "get", "account", {}),),
        "create_order": (("private", "post", "order", _S),),
        "fetch_order": (("private", "get", "order", _S),),
        "cancel_order": (("private", "delete", "order", _S),),
        "fetch_open_orders": (("private", "get", "openOrders", _S),),
        "fetch_orders_since": (("private", "get", "allOrders", {**_S, "limit": _BINANCE_PAGE}),),
        "fetch_my_trades": (("private", "get", "myTrades", {**_S, "limit": _BINANCE_PAGE}),),
        "edit_order": (("private", "post", "order/cancelReplace", _S),),
        "cancel_all_orders": (("private", "delete", "openOrders", _S),),
    },
    "okx": {
        "load_markets": (("public", "get", "public/instruments", {}),),
        "fetch_ticker": (("public", "get", "market/ticker", {}),),
        "fetch_balances": (("private", "get", "account/balance", {}),),
        # ccxt's okx sends a single create through the batch endpoint (options["createOrder"])
        "create_order": (("private", "post", "trade/batch-orders", {}),),
        "fetch_order": (("private", "get", "trade/order", {}),),
        "cancel_order": (("private", "post", "trade/cancel-order", {}),),
        "fetch_open_orders": (("private", "get", "trade/orders-pending", {}),),
        "fetch_orders_since": (
            ("private", "get", "trade/orders-pending", {}),
            ("private", "get", "trade/orders-history", {}),
        ),
        "fetch_my_trades": (("private", "get", "trade/fills", {}),),
        "edit_order": (("private", "post", "trade/cancel-order", {}), ("private", "post", "trade/batch-orders", {})),
    },
    "bybit": {
        "load_markets": (("public", "get", "v5/market/instruments-info", {}),),
        "fetch_ticker": (("public", "get", "v5/market/tickers", {}),),
        "fetch_balances": (("private", "get", "v5/account/wallet-balance", {}),),
        "create_order": (("private", "post", "v5/order/create", {}),),
        # open orders first, then the history: at most both
        "fetch_order": (("private", "get", "v5/order/realtime", {}), ("private", "get", "v5/order/history", {})),
        "cancel_order": (("private", "post", "v5/order/cancel", {}),),
        "fetch_open_orders": (("private", "get", "v5/order/realtime", {}),),
        "fetch_orders_since": (
            ("private", "get", "v5/order/realtime", {}),
            ("private", "get", "v5/order/history", {}),
        ),
        "fetch_my_trades": (("private", "get", "v5/execution/list", {}),),
        "edit_order": (("private", "post", "v5/order/cancel", {}), ("private", "post", "v5/order/create", {})),
        "cancel_all_orders": (("private", "post", "v5/order/cancel-all", {}),),
    },
}

# The order slots the current task holds (owner, slots), and whether the request being made is the
# order request those slots are for: `fetch` stamps them when it really leaves.
_ORDER_SLOTS: contextvars.ContextVar[tuple[int, tuple[Slot, ...]] | None] = contextvars.ContextVar(
    "tc_order_slots", default=None
)
_ORDER_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("tc_order_request", default=False)
_RESPONSE_HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "tc_response_headers", default=None
)
_REQUEST_WEIGHT: contextvars.ContextVar[float] = contextvars.ContextVar("tc_request_weight", default=0.0)
_SENT_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar("tc_sent_at", default=None)

_STATUS = {
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


# -- translation --------------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return to_decimal(value) if isinstance(value, float | int | str | Decimal) else None
    except ArithmeticError:
        return None


def _dt(ms: Any) -> datetime | None:
    if isinstance(ms, str) and ms.isdigit():
        ms = int(ms)
    return datetime.fromtimestamp(ms / 1000, UTC) if isinstance(ms, int | float) and not isinstance(ms, bool) else None


def _ms(when: datetime) -> int:
    return math.floor(when.timestamp() * 1000)


def order_status(raw: dict[str, Any]) -> OrderStatus:
    """ccxt's unified status (+ filled) as ours."""
    status = raw.get("status")
    filled = _dec(raw.get("filled")) or Decimal(0)
    if status == "closed":
        return OrderStatus.FILLED
    if status in _STATUS:
        return _STATUS[status]
    # "open", or None (an acknowledgement only): accepted and not final as far as it says.
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


def _id_key(value: Any) -> tuple[int, str]:
    text = "" if value is None else str(value)
    return (int(text), "") if text.isdigit() else (0, text)


class _IdMap:
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
        password: str | None = None,
    ) -> None:
        """`password`: the API passphrase some venues ask for besides key and secret (OKX)."""
        ccxt = ccxt_async()
        if exchange_id not in ccxt.exchanges:
            raise ValueError(f"{exchange_id!r} is not a ccxt exchange id")
        self.name = exchange_id
        # `mode` lets a caller that knows better say so (the emulator behind a demo is PAPER).
        self.mode = mode or ("SANDBOX" if sandbox else "LIVE")
        self.cooldown = Cooldown()  # every request waits it out (429 on weight, 418 ban)
        self.order_cooldown = Cooldown()  # new orders only (an order-count 429, Binance -1015)
        self._secrets = tuple(s for s in (api_key, api_secret, password) if s)
        self._markets_wanted = tuple(markets)
        self._markets: dict[str, MarketInfo] = {}
        self._ids = _IdMap()
        self._resyncing = False
        ex = getattr(ccxt, exchange_id)(
            {
                "apiKey": api_key or "",
                "secret": api_secret or "",
                **({"password": password} if password else {}),
                "enableRateLimit": True,  # ccxt's throttle keeps us under the request-weight limit
                "timeout": timeout_ms,
            }
        )
        self._ex = ex
        self._binance = isinstance(ex, ccxt.binance)
        self._ccxt_rate_limit = float(ex.rateLimit or 0)  # ms per ccxt cost unit, as ccxt ships it
        # Binance weight per ccxt cost unit (see the module's doc); elsewhere costs stay ccxt units.
        self._weight_per_cost = self._ccxt_rate_limit * _BINANCE_WEIGHT_LIMIT[0] / 60_000 if self._binance else 1.0
        self._weight_limit: tuple[float, float] | None = _BINANCE_WEIGHT_LIMIT if self._binance else None
        self._window = WeightWindow()
        self._configure(ex, sandbox, api_url)  # no session is opened before the first request
        if order_limits is None:
            order_limits = _BINANCE_ORDER_LIMITS if self._binance else ()
        self._order_limits = tuple(order_limits)
        self._order_rates = [OrderRate(limit, window) for limit, window in self._order_limits]
        self._pace()

    @property
    def _binance_like(self) -> bool:
        return self._binance

    @property
    def _venue(self) -> str:
        """The venue family whose rules apply (binanceus and the emulator speak Binance)."""
        return "binance" if self._binance else self.name

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
        if not self._binance and isinstance(ex.has, dict):
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
            if self._binance:
                # Binance answers a reused client order id with -2010 "Duplicate order sent."; ccxt
                # maps only the code (InvalidOrder, any refused order): the exact message wins.
                exact[_BINANCE_DUPLICATE_MESSAGE] = duplicate
            for code in _DUPLICATE_ID_CODES.get(self.name, ()):
                exact[code] = duplicate
        ex.logger = RedactingLogger(_wire_log, self._secrets)
        self._wrap(ex)

    def _wrap(self, ex: Any) -> None:
        cooldown, window = self.cooldown, self._window
        if getattr(ex, "tokenBucket", None) and ex.rateLimiterAlgorithm == "leakyBucket":
            ex.throttler = cooldown_throttler(
                ex.tokenBucket, ex.asyncio_loop, cooldown, window, lambda: self._weight_per_cost
            )
        throttle, fetch = ex.throttle, ex.fetch
        handle_errors, handle_status = ex.handle_errors, ex.handle_http_status_code

        async def throttled(cost: Any = None) -> Any:
            await cooldown.wait()
            result = await throttle(cost)
            # Let through by the throttle just before a 429 was read: wait out its cooldown too.
            await cooldown.wait()
            if _ORDER_REQUEST.get():
                await self.order_cooldown.wait()
            units = cost if isinstance(cost, int | float) else (ex.tokenBucket or {}).get("cost", 1)
            _REQUEST_WEIGHT.set(float(units) * self._weight_per_cost)
            return result

        async def fetched(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            weight = _REQUEST_WEIGHT.get()
            _REQUEST_WEIGHT.set(0.0)
            held = _ORDER_SLOTS.get()
            if held is not None and _ORDER_REQUEST.get():
                for slot in held[1]:
                    slot.sent_at = time.monotonic()  # moving it later only makes the limiter stricter
            token = _SENT_AT.set(time.time())
            window.sent(weight)
            try:
                response = await fetch(url, method, headers, body)
            finally:
                window.answered(weight)
                _SENT_AT.reset(token)
            if isinstance(response, dict) and isinstance(response.get("rateLimits"), list):
                self._learn_limits(response["rateLimits"])
            return response

        def errors(code, reason, url, method, headers, body, response, request_headers, request_body):
            _RESPONSE_HEADERS.set(headers)
            self._read_used_weight(headers)
            try:
                return handle_errors(code, reason, url, method, headers, body, response, request_headers, request_body)
            except Exception as exc:
                annotate(exc, code, headers, body)
                raise

        def status(code, reason, url, method, body):
            try:
                return handle_status(code, reason, url, method, body)
            except Exception as exc:
                annotate(exc, code, _RESPONSE_HEADERS.get(), body)
                raise

        ex.throttle = throttled
        ex.fetch = fetched
        ex.handle_errors = errors
        ex.handle_http_status_code = status

    def _read_used_weight(self, headers: Any) -> None:
        if not self._binance or not isinstance(headers, dict):
            return
        sent_at = _SENT_AT.get()
        for name, value in headers.items():
            if str(name).lower() != _USED_WEIGHT_HEADER:
                continue
            numbers = []
            for part in str(value).split(","):  # ccxt joins a repeated header with ", "
                with contextlib.suppress(ValueError):
                    numbers.append(float(part.strip()))
            if numbers and sent_at is not None:
                self._window.report(max(numbers), sent_at)

    def _learn_limits(self, rate_limits: list[Any]) -> None:
        """The venue's ORDERS and REQUEST_WEIGHT limits from Binance's exchangeInfo `rateLimits`."""
        orders: list[tuple[int, float]] = []
        weights: list[tuple[float, float]] = []
        for entry in rate_limits:
            if not isinstance(entry, dict):
                continue
            unit = _LIMIT_INTERVALS.get(str(entry.get("interval")))
            if unit is None:
                continue  # daily limits are far beyond one run
            try:
                limit, seconds = int(entry["limit"]), unit * int(entry.get("intervalNum", 1))
            except (KeyError, TypeError, ValueError):
                continue
            if limit <= 0 or seconds <= 0:
                continue
            if entry.get("rateLimitType") == "ORDERS" and seconds <= 60:
                orders.append((limit, seconds))
            elif entry.get("rateLimitType") == "REQUEST_WEIGHT":
                weights.append((float(limit), seconds))
        if orders and tuple(orders) != self._order_limits:
            log.info("%s order-rate limit: %s", self.name, ", ".join(f"{n} per {w:g}s" for n, w in orders))
            self._order_limits = tuple(orders)
            self._order_rates = [OrderRate(limit, window) for limit, window in orders]
        if weights:
            # The strictest per second, if a venue ever announces several windows.
            weight = min(weights, key=lambda w: w[0] / w[1])
            if weight != self._weight_limit:
                log.info("%s request-weight limit: %g per %gs", self.name, *weight)
                self._weight_limit = weight
                self._pace()

    def _pace(self) -> None:
        """Pace ccxt's bucket to PACE_SHARE of the venue's weight limit, and size the window check."""
        if self._weight_limit is None:
            return
        limit, seconds = self._weight_limit
        self._window.limit, self._window.seconds = limit, seconds
        units_per_ms = PACE_SHARE * limit / (seconds * 1000) / self._weight_per_cost
        ex = self._ex
        ex.rateLimit = 1 / units_per_ms
        for config in (getattr(ex, "tokenBucket", None), getattr(getattr(ex, "throttler", None), "config", None)):
            if isinstance(config, dict):
                config["refillRate"] = units_per_ms
                config["rateLimit"] = ex.rateLimit

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
                if is_order_count_limit(exc):
                    self.order_cooldown.trip(wait)
                    log.warning("%s %s: order-count limit, new orders wait %.2fs", self.name, operation, wait)
                else:
                    self.cooldown.trip(wait)
                    log.warning("%s %s: rate limited, every request waits %.2fs", self.name, operation, wait)
            elif isinstance(error, NotPlaced) and isinstance(exc, ccxt_async().InvalidNonce):
                await self._resync_clock()
        raise error from None

    async def _resync_clock(self) -> None:
        """After a timestamp refusal (Binance -1021): learn the venue's clock, so that the retry
        the executor makes carries a timestamp the venue accepts."""
        if not self._binance or self._resyncing:
            return
        self._resyncing = True
        try:
            difference = await self._ex.load_time_difference()  # local minus venue, ms
            self._window.offset = -float(difference) / 1000
            log.warning("%s: clock differs from the venue's by %d ms; corrected", self.name, difference)
        except Exception as exc:  # the next request will tell again
            log.warning("%s: could not read the venue's clock (%s)", self.name, scrub(str(exc), self._secrets))
        finally:
            self._resyncing = False

    @contextlib.asynccontextmanager
    async def _order_slot(self, *, sending: bool = True) -> AsyncIterator[None]:
        """Hold one admission of the venue's order-rate limit (reusing the caller's unused one).

        `sending`: the order request is made inside; `fetch` stamps the slots when it leaves.
        """
        held = _ORDER_SLOTS.get()
        reuse = held is not None and held[0] == id(self) and all(s.sent_at is None for s in held[1])
        if reuse:
            flag = _ORDER_REQUEST.set(True) if sending else None
            try:
                yield
            finally:
                if flag is not None:
                    _ORDER_REQUEST.reset(flag)
            return
        await self.order_cooldown.wait()
        await self.cooldown.wait()
        rates = list(self._order_rates)
        slots: list[Slot] = []
        try:
            for rate in rates:
                slots.append(await rate.acquire())
        except BaseException:
            for rate, slot in zip(rates, slots, strict=False):
                rate.release(slot)
            raise
        token = _ORDER_SLOTS.set((id(self), tuple(slots)))
        flag = _ORDER_REQUEST.set(True) if sending else None
        try:
            yield
        finally:
            if flag is not None:
                _ORDER_REQUEST.reset(flag)
            _ORDER_SLOTS.reset(token)
            for rate, slot in zip(rates, slots, strict=True):
                rate.release(slot)

    def admit(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Wait until one more order may go: the cooldowns, then the venue's order-rate limit. A
        create (or edit) inside the block uses this admission instead of waiting for another."""
        return self._order_slot(sending=False)

    def _remember(self, client_order_id: str | None, exchange_order_id: str | None) -> None:
        self._ids.remember(client_order_id, exchange_order_id)

    def forget(self, client_order_id: str) -> None:
        """Drop what the adapter remembers of an order that ended (the maps are bounded anyway)."""
        self._ids.forget(client_order_id)

    def _stated_filled(self, raw: dict[str, Any], info: dict[str, Any]) -> Decimal | None:
        """The filled amount when the answer states it. ccxt's binance reads a missing
        `executedQty` (an ACK answer) as "0": only the raw answer can tell."""
        if self._binance and "executedQty" not in info:
            return None
        filled = _dec(raw.get("filled"))
        if filled is None and self._binance:
            filled = _dec(info.get("executedQty"))
        return filled

    def _created(self, raw: dict[str, Any], info: dict[str, Any], creating: bool) -> datetime | None:
        if self._binance:
            # `time`/`workingTime` are the order's; `transactTime` is the request's (the creation
            # in a create answer, the cancel in a cancel answer).
            for key in ("time", "workingTime", *(("transactTime",) if creating else ())):
                if (when := _dt(info.get(key))) is not None:
                    return when
            return None
        return _dt(raw.get("timestamp"))

    def _order(
        self, raw: dict[str, Any], client_order_id: str | None = None, *, creating: bool = False, **known: Any
    ) -> ExchangeOrder:
        """A ccxt order as the port's. `client_order_id` wins over the answer's: Binance's cancel
        answer carries the cancel request's own id there."""
        exchange_order_id = raw.get("id")
        exchange_order_id = str(exchange_order_id) if exchange_order_id not in (None, "") else None
        info = raw.get("info") if isinstance(raw.get("info"), dict) else {}
        coid = (
            client_order_id
            or info.get("origClientOrderId")
            or raw.get("clientOrderId")
            or self._ids.client_id(exchange_order_id)
            or ""
        )
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
            filled=self._stated_filled(raw, info),
            average=_dec(raw.get("average")) or None,
            fee=fee,
            fee_currency=fee_currency,
            ts=_dt(raw.get("lastUpdateTimestamp") or raw.get("timestamp")),
            created=self._created(raw, info, creating),
        )

    def _trade(self, raw: dict[str, Any], symbol: str) -> Trade:
        order_id = str(raw["order"]) if raw.get("order") not in (None, "") else None
        info = raw.get("info") if isinstance(raw.get("info"), dict) else {}
        fee, fee_currency = _fee(raw)
        return Trade(
            trade_id=str(raw.get("id")),
            exchange_order_id=order_id,
            # Binance's trades carry only the orderId: the orders seen so far name the rest.
            client_order_id=self._ids.client_id(order_id)
            or raw.get("clientOrderId")
            or info.get("clOrdId")
            or info.get("orderLinkId")
            or None,
            symbol=raw.get("symbol") or symbol,
            side=Side(raw.get("side") or "buy"),
            amount=_dec(raw.get("amount")) or Decimal(0),
            price=_dec(raw.get("price")) or Decimal(0),
            fee=fee,
            fee_currency=fee_currency,
            ts=_dt(raw.get("timestamp")),
        )

    # -- the request budget ---------------------------------------------------------------------

    def request_cost(self, operation: str) -> float:
        """The request weight of one call of the port method `operation` on this venue.

        Binance (and Binance-compatible venues): Binance weight, from ccxt's own cost table
        converted at `rateLimit * 6000 / 60000` weight per ccxt unit (5 for ccxt's 50 ms).
        `fetch_open_orders` is per symbol (a call without one asks market by market for up to
        PER_SYMBOL_OPEN_ORDERS_MAX markets); `fetch_orders_since` and `fetch_my_trades` are one
        page (1,000 orders or trades), `fetch_order` one lookup. OKX and Bybit: ccxt's own cost
        units, summed over the requests one call makes. Other venues: 1 ccxt unit per request.
        """
        endpoints = _ENDPOINTS.get(self._venue, {}).get(operation)
        if not endpoints:
            return 1.0 * self._weight_per_cost if self._binance else 1.0
        ex = self._ex
        total = 0.0
        for api, method, path, params in endpoints:
            config = ((ex.api or {}).get(api) or {}).get(method, {}).get(path)
            cost = ex.calculate_rate_limiter_cost(api, method, path, params, config) if config else 1
            total += float(cost)
        return round(total * self._weight_per_cost, 6)

    @property
    def weight_per_minute(self) -> float | None:
        if self._weight_limit is not None:
            limit, seconds = self._weight_limit
            return limit * 60 / seconds
        return 60_000 / self._ccxt_rate_limit if self._ccxt_rate_limit > 0 else None

    def budget(self) -> RequestBudget:
        """`weight_per_minute`: Binance's announced REQUEST_WEIGHT (exchangeInfo, read by
        `load_markets`; Binance's 6,000 until then), elsewhere ccxt's own pace in its units.
        `used`: the venue's count in its current minute from the freshest `X-MBX-USED-WEIGHT-1M`
        header, or what we let out in that minute if that is more (or all there is), forgotten
        when the minute rolls over. `queued`: requests waiting in ccxt's throttle right now."""
        queue = getattr(getattr(self._ex, "throttler", None), "queue", ())
        return RequestBudget(weight_per_minute=self.weight_per_minute, used=self._window.used, queued=len(queue))

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
        # ccxt sends it as Binance's newClientOrderId, OKX's clOrdId, Bybit's orderLinkId.
        params = {"clientOrderId": client_order_id}
        async with self._order_slot():
            raw = await self._request(
                "create_order",
                # A market order is sent without a price: with one, ccxt's binance turns it into quoteOrderQty.
                lambda: ex.create_order(symbol, type.value, side.value, amount_text, price_text, params),
            )
        return self._order(raw, client_order_id, creating=True, symbol=symbol, side=side, type=type, amount=sent_amount)

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
        if self.name in _LINK_ID_VENUES:
            return await self._link_lookup(client_order_id, symbol)
        order_id = self._ids.order_id(client_order_id)
        if order_id is not None:
            raw = await self._request("fetch_order", lambda: ex.fetch_order(order_id, symbol))
            return self._order(raw, client_order_id)
        return await self._scan(client_order_id, symbol)

    async def _link_lookup(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """Bybit: the open orders, then the order history, each asked for this `orderLinkId`."""
        ex = self._ex
        params = {"orderLinkId": client_order_id}
        for name in ("fetch_open_orders", "fetch_canceled_and_closed_orders"):
            method = getattr(ex, name)
            raws = await self._request("fetch_order", lambda method=method: method(symbol, None, None, dict(params)))
            for raw in raws:
                if raw.get("clientOrderId") == client_order_id:
                    return self._order(raw, client_order_id)
        raise OrderNotFound(f"{client_order_id} is not among {self.name}'s orders for {symbol}")

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
        if self._by_client_id or ex.has.get("cancelOrderWithClientOrderId"):
            raw = await self._request(
                "cancel_order", lambda: ex.cancel_order("", symbol, {"clientOrderId": client_order_id})
            )
        elif self.name in _LINK_ID_VENUES:
            raw = await self._request(
                "cancel_order", lambda: ex.cancel_order(None, symbol, {"orderLinkId": client_order_id})
            )
        else:
            order_id = self._ids.order_id(client_order_id)
            if order_id is None:
                order_id = (await self.fetch_order(client_order_id, symbol)).exchange_order_id
            raw = await self._request("cancel_order", lambda: ex.cancel_order(order_id, symbol))
        return self._order(raw, client_order_id, symbol=symbol)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        symbols = [symbol] if symbol else list(self._markets or self._markets_wanted)
        if symbol is None and not (0 < len(symbols) <= PER_SYMBOL_OPEN_ORDERS_MAX):
            raws = await self._open_orders_of(None)
        else:
            results = await asyncio.gather(*(self._open_orders_of(s) for s in symbols), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            raws = [raw for result in results for raw in result]  # type: ignore[union-attr]
        return [self._order(raw) for raw in raws]

    async def _open_orders_of(self, symbol: str | None) -> list[dict[str, Any]]:
        if self._venue in _PAGING:
            return await self._pages("fetch_open_orders", "fetch_open_orders", symbol, None, after_key="ordId")
        return await self._request("fetch_open_orders", lambda: self._ex.fetch_open_orders(symbol))

    async def fetch_orders_since(self, symbol: str, since: datetime) -> list[ExchangeOrder]:
        since_ms = _ms(since)
        if self._binance:
            raws = await self._binance_pages("fetch_orders_since", self._ex.fetch_orders, symbol, since_ms, "orderId")
        else:
            raws = []
            for name in self._history_sources():
                raws += await self._pages("fetch_orders_since", name, symbol, since_ms, after_key="ordId")
        by_id: dict[str, ExchangeOrder] = {}
        for raw in raws:
            order = self._order(raw)
            if order.created is not None and _ms(order.created) < since_ms:
                continue
            by_id[order.exchange_order_id or order.client_order_id] = order
        epoch = datetime.fromtimestamp(0, UTC)
        return sorted(by_id.values(), key=lambda o: (o.created or epoch, _id_key(o.exchange_order_id)))

    def _history_sources(self) -> list[str]:
        """The ccxt methods that together list every order of a market (open and ended)."""
        has = self._ex.has
        if has.get("fetchOrders") is True:
            return ["fetch_orders"]
        sources = ["fetch_open_orders"] if has.get("fetchOpenOrders") else []
        # Bybit's and OKX's "closed" orders are the filled ones only: the canceled come separately.
        if has.get("fetchCanceledAndClosedOrders"):
            sources.append("fetch_canceled_and_closed_orders")
        else:
            if has.get("fetchClosedOrders"):
                sources.append("fetch_closed_orders")
            if has.get("fetchCanceledOrders"):
                sources.append("fetch_canceled_orders")
        if not sources:
            raise Rejected(f"{self.name} cannot list its orders")
        return sources

    async def fetch_my_trades(self, symbol: str, since: datetime | None = None) -> list[Trade]:
        since_ms = _ms(since) if since is not None else None
        if self._binance:
            raws = await self._binance_pages("fetch_my_trades", self._ex.fetch_my_trades, symbol, since_ms, "fromId")
        else:
            raws = await self._pages("fetch_my_trades", "fetch_my_trades", symbol, since_ms, after_key="billId")
        by_id: dict[str, Trade] = {}
        for raw in raws:
            trade = self._trade(raw, symbol)
            if since_ms is not None and trade.ts is not None and _ms(trade.ts) < since_ms:
                continue
            by_id[trade.trade_id] = trade
        epoch = datetime.fromtimestamp(0, UTC)
        return sorted(by_id.values(), key=lambda t: (t.ts or epoch, _id_key(t.trade_id)))

    async def _binance_pages(
        self,
        operation: str,
        method: Callable[..., Awaitable[list[Any]]],
        symbol: str,
        since_ms: int | None,
        id_param: str,
    ) -> list[dict[str, Any]]:
        """Every page of Binance's allOrders (`id_param` "orderId") or myTrades ("fromId").

        The first page by time: `startTime` alone when `since` is within the last 24 h (the answer
        then spans up to now), else 24 h windows (`startTime` + `endTime`, Binance's widest) until
        one holds anything. Then by id, `id_param` = last id + 1, 1,000 at a time, until a page is
        short: ids grow with time, so nothing after the first page is older than `since`.
        """
        limit = _BINANCE_PAGE
        out: list[dict[str, Any]] = []
        if since_ms is None:
            first = await self._request(operation, lambda: method(symbol, None, limit, {id_param: 0}))
            to_present = True
        else:
            start, first, to_present = since_ms, [], False
            while not first:
                now = self._ex.milliseconds()
                to_present = now - start <= _DAY_MS
                if to_present:
                    first = await self._request(operation, lambda start=start: method(symbol, start, limit))
                    break
                end = start + _DAY_MS - 1
                first = await self._request(
                    operation, lambda start=start, end=end: method(symbol, start, limit, {"until": end})
                )
                start = end + 1
        out += first
        page = first
        for _ in range(_MAX_PAGES):
            if not page or (to_present and len(page) < limit):
                break
            last = max(_id_key(raw.get("id"))[0] for raw in page)
            page = await self._request(operation, lambda last=last: method(symbol, None, limit, {id_param: last + 1}))
            out += page
            to_present = True
        return out

    async def _pages(
        self, operation: str, name: str, symbol: str | None, since_ms: int | None, *, after_key: str
    ) -> list[dict[str, Any]]:
        """Every page of a ccxt list method on a venue other than Binance.

        Bybit: by its `cursor`; OKX: backwards by its own ids (`after`: older than that id);
        elsewhere forwards by `since` (the newest timestamp seen). Stops at a short page or one
        that brings nothing new.
        """
        ex = self._ex
        method = getattr(ex, name)
        style, limit = _PAGING.get(self._venue, ("since", None))
        seen: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = {}
        since = since_ms
        for _ in range(_MAX_PAGES):
            page = await self._request(operation, lambda since=since, p=dict(params): method(symbol, since, limit, p))
            fresh = [raw for raw in page if str(raw.get("id")) not in seen]
            for raw in page:
                seen[str(raw.get("id"))] = raw
            if not fresh or (limit is not None and len(page) < limit):
                break
            infos = [raw["info"] for raw in page if isinstance(raw.get("info"), dict)]
            if style == "cursor":
                cursor = next((i["nextPageCursor"] for i in infos if i.get("nextPageCursor")), None)
                if not cursor:
                    break
                params["cursor"] = cursor
            elif style == "after":
                ids = [str(i[after_key]) for i in infos if i.get(after_key)]
                if not ids:
                    break
                params["after"] = min(ids, key=_id_key)
            else:
                stamps = [raw["timestamp"] for raw in page if isinstance(raw.get("timestamp"), int)]
                if not stamps or (since is not None and max(stamps) <= since):
                    break
                since = max(stamps)
        return list(seen.values())

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
        """Replace an order under a new client order id: Binance's cancelReplace, else cancel + create
        (OKX's and Bybit's editOrder amend in place, keeping the old client order id)."""
        ex = self._ex
        if not (self._binance and ex.has.get("editOrder")):
            await self.cancel_order(client_order_id, symbol)
            return await self.create_order(
                client_order_id=new_client_order_id, symbol=symbol, side=side, type=type, amount=amount, price=price
            )
        try:
            amount_text = ex.amount_to_precision(symbol, str(amount))
            price_text = ex.price_to_precision(symbol, str(price)) if type is OrderType.LIMIT and price else None
        except Exception as exc:
            raise classify(exc, self._secrets) from None
        order_id = self._ids.order_id(client_order_id) or ""
        params = {"cancelOrigClientOrderId": client_order_id, "newClientOrderId": new_client_order_id}
        async with self._order_slot():
            raw = await self._request(
                "edit_order",
                lambda: ex.edit_order(order_id, symbol, type.value, side.value, amount_text, price_text, params),
            )
        return self._order(raw, new_client_order_id, creating=True, symbol=symbol, side=side, type=type)

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
            cooldown_remaining=self.cooldown.remaining,
            trips=self.cooldown.trips + self.order_cooldown.trips,
            throttled=len(queue) > 0 or self.order_cooldown.remaining > 0,
        )

    async def close(self) -> None:
        await self._ex.close()

    async def __aenter__(self) -> CcxtExchange:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _rebase(urls: Any, base: str) -> Any:
    """Point every REST URL at `base`, keeping each one's path (`/api/v3`, `/api/v1`, ...)."""
    if isinstance(urls, str):
        parts = urlsplit(urls)
        return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    if isinstance(urls, dict):
        return {key: _rebase(value, base) for key, value in urls.items()}
    return urls
