"""`tradeconsole emulator`: a Binance-spot-compatible REST venue on 127.0.0.1 over the paper engine.

Owns the aiohttp app (`make_app`), starting and stopping it (`start_emulator`, `serve_cli`), the
request pipeline (rate limits and bans, `X-MBX-APIKEY` and HMAC-SHA256 signature checks, the
fault plan, the engine call) and the helpers endpoints share (visibility, lookup, place, cancel).
The endpoints live in `emulator_endpoints`, wire formats in `emulator_binance`, the fault plan in
`emulator_faults`, the order record and its audit in `emulator_record`.

Endpoints (what ccxt 4.5's `binance` and Binance's own `binance-sdk-spot` call for spot):
`GET /api/v3/ping`, `time`, `exchangeInfo`, `ticker/24hr`, `ticker/bookTicker`, `ticker/price`,
`depth`, `avgPrice`, `klines`, `trades`, `aggTrades`, `account`; `POST|GET|DELETE /api/v3/order`;
`GET|DELETE /api/v3/openOrders`; `GET /api/v3/allOrders`, `myTrades`; `POST
/api/v3/order/cancelReplace`; `GET /sapi/v1/system/status` and `GET /sapi/v1/asset/tradeFee`
(signed; the engine's fees). Plus `GET /_emulator/record` (no auth, no limits, no faults). Any
other path or method is a 404 with `{"code": -1020, "msg": "This operation is not supported."}`,
which ccxt raises as BadRequest and never retries.

Binance behaviour kept: error codes and HTTP statuses (-2010 insufficient balance / duplicate
order / a LIMIT_MAKER that would take, -1013 filter failure, -2013 / -2011 unknown order, -1022
bad signature, -2014 / -2015 bad key, -1021 timestamp outside recvWindow, -1127 a time window over
24 hours, -1128 a bad parameter combination, -1001 / -1007 with 5xx); a client order id unique
among open orders only (reused once its order ended; a lookup by it finds the most recent order);
fees in the asset received (see `paper_engine`); request weights per endpoint
(`emulator_binance.request_weight`) counted per minute, and new orders per 10 s and per day, in
fixed windows aligned to the epoch, Binance's default limits unless the faults file says
otherwise, announced exactly in exchangeInfo; a cancel-replace checks its new order's filters and
the order count before it cancels anything.

Orders as Binance takes them: LIMIT with timeInForce GTC, IOC (what does not fill at once expires)
or FOK (fills completely at once or expires untouched); LIMIT_MAKER (refused with -2010 when it
would take); MARKET by `quantity` or by `quoteOrderQty` (the most, in whole steps, that the quote
buys, or that brings at most that quote). A limit buy locks exactly quantity x price. The filters
are PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL, PERCENT_PRICE_BY_SIDE (Binance BTCUSDT's
multipliers 5 / 0.2 around the 5-minute `avgPrice`) and, with `max_orders_per_symbol`
(`--max-orders-per-symbol N`; off by default, as the paper exchange enforces no such limit),
MAX_NUM_ORDERS; exchangeInfo announces exactly those in force. The market data come from the
engine: a book of `EMULATOR_BOOK_LEVELS` (100) levels a side (`depth` sends 100 by default), a
24-hour ticker whose open, high and low roll with the engine's one-minute candles, which also
make the klines (1m to 1M, the last 24 hours), and the engine's own fills as `trades` and
`aggTrades` (one aggregate per fill).

The order count counts unfilled orders, as Binance's: every accepted new order takes one from the
current 10 s and day windows (a refused one gives its one back; a cancel-replace counts even when
its new order was not attempted), and an order's first fill (at once, or later as a maker) gives
one back to the windows current then; the answer that placed an order that filled at once still
shows the count with it, as on Binance.

Rate limits as Binance answers them: request weight over the minute's limit is 429 -1003; an
exhausted order count is 429 -1015 for new orders only (`POST /api/v3/order`, and a
cancel-replace, which with `orderRateLimitExceededMode=CANCEL_ONLY` still cancels and fails just
its new-order leg) while cancels and reads go on; a client that keeps sending inside a
request-weight 429's Retry-After is banned with 418 (order-count 429s never lead to a ban).
Every answer carries `X-MBX-USED-WEIGHT-1M`, order answers `X-MBX-ORDER-COUNT-10S` and
`X-MBX-ORDER-COUNT-1D`, 429 and 418 a `Retry-After` in whole seconds.

Faults file (`--faults FILE`, JSON; every key optional, unknown keys are an error):

    {
      "seed": 1,                 # seeds the draws: same file, same requests -> same faults
      "invisible_ms": 300,       # how long an "invisible" order stays out of every query
      "retry_after": 1,          # back-off (seconds) of an injected 429; its header rounds up
      "timeout_hold_s": 12,      # how long a timeout-after-accept response is held (> client timeout)
      "limits": {"weight_per_minute": 6000, "orders_per_10s": 100, "orders_per_day": 200000,
                 "ban_after": 10, "ban_seconds": 5},     # Binance's spot limits; 0 switches one off
      "endpoints": {
        "POST /api/v3/order": {"timeout_after_accept": 0.1, "error_before": 0.1, "error_after": 0.1,
                               "rate_limit": 0.1, "reset_after_accept": 0.1, "invisible": 0.1},
        "*": {"error_before": 0.05}                      # every endpoint without its own table
      }
    }

Per request, one response fault is drawn from its endpoint's table (their probabilities add up to
at most 1): `timeout_after_accept` acts, then holds the answer for `timeout_hold_s`;
`error_before` answers 5xx without acting; `error_after` acts, then answers 5xx; `rate_limit`
answers a request-weight 429 (-1003) without acting (and, like a real limit, so does every
request inside its Retry-After, on the way to a 418); `reset_after_accept` acts, then drops the
connection without an answer.
Independently, `invisible` hides an order a create made from every query for `invisible_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

from aiohttp import web

from executor.exchanges import emulator_binance as wire
from executor.exchanges.emulator_binance import BinanceError, PercentPriceBySide
from executor.exchanges.emulator_endpoints import ROUTES, Ctx
from executor.exchanges.emulator_faults import (
    CANCEL_REPLACE,
    CREATING,
    NEW_ORDER,
    EmulatorFault,
    EmulatorFaults,
    FaultsFileError,
)
from executor.exchanges.emulator_record import Audit, audit_orders
from executor.exchanges.paper_engine import EngineError, EngineOrder, PaperEngine
from executor.models import MarketInfo, OrderType, Side, to_decimal

if TYPE_CHECKING:
    import argparse

    from executor.config import Settings
    from executor.exchanges.ccxt_adapter import CcxtExchange

# Not secrets: what the emulator accepts when TRADECONSOLE_API_KEY/SECRET are unset (demos, tests).
DEMO_API_KEY = "tradeconsole-emulator-demo-key"
DEMO_API_SECRET = "tradeconsole-emulator-demo-secret"
# Levels a side of the book of the engines the emulator builds itself: Binance's default depth.
EMULATOR_BOOK_LEVELS = 100

F = EmulatorFault

_SERVER_ERRORS = (
    (500, -1001, "Internal error; unable to process your request. Please try again."),
    (503, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
    (502, None, "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"),
)


@dataclass
class _Window:
    """A Binance limit counter: fixed windows aligned to the epoch, reset at each boundary."""

    limit: int
    seconds: float
    start: float = 0.0
    used: int = 0

    def roll(self, now: float) -> None:
        start = math.floor(now / self.seconds) * self.seconds
        if start != self.start:
            self.start, self.used = start, 0

    def full(self, now: float, cost: int) -> bool:
        self.roll(now)
        return self.limit > 0 and self.used + cost > self.limit

    def reset_in(self, now: float) -> float:
        return max(0.0, self.start + self.seconds - now)


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


class Emulator:
    """One venue: the engine, the fault plan, the limits and everything counted along the way.

    `percent_price` is the PERCENT_PRICE_BY_SIDE filter (None: none), `max_orders_per_symbol`
    the MAX_NUM_ORDERS filter (0: none, the default).
    """

    def __init__(
        self,
        engine: PaperEngine,
        faults: EmulatorFaults | None = None,
        *,
        api_key: str = DEMO_API_KEY,
        api_secret: str = DEMO_API_SECRET,
        latency_ms: float = 0.0,
        percent_price: PercentPriceBySide | None = PercentPriceBySide(),
        max_orders_per_symbol: int = 0,
    ) -> None:
        if max_orders_per_symbol < 0:
            raise ValueError("max_orders_per_symbol must not be negative")
        self.engine = engine
        self.percent_price = percent_price
        self.max_orders_per_symbol = max_orders_per_symbol
        self.faults = faults or EmulatorFaults()
        self._api_key = api_key.encode()
        self._api_secret = api_secret.encode()
        self.latency_ms = latency_ms
        limits = self.faults.limits
        self._weight = _Window(limits.weight_per_minute, 60.0)
        self._orders_10s = _Window(limits.orders_per_10s, 10.0)
        self._orders_day = _Window(limits.orders_per_day, 86_400.0)
        # Monotonic end of the last request-weight 429's Retry-After: requests inside it are the
        # violations that earn a 418. Order-count 429s (-1015) never set it.
        self._weight_backoff_until = 0.0
        self._banned_until = 0.0
        self._violations = 0
        self._hidden: dict[int, float] = {}  # order id -> monotonic time it becomes visible
        self._rng = random.Random(f"emulator:{self.faults.seed}")
        # Unfilled order count: orders counted in the windows and not filled yet, and the engine's
        # trade id up to which fills were given back.
        self._unfilled: set[int] = set()
        past = engine.trades_after(0)
        self._fills_seen = past[-1].id if past else 0
        self._cancel_ids = 0
        self._by_id: dict[str, str] = {}
        for symbol, info in engine.markets().items():
            self._by_id[wire.market_id(info)] = symbol
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.statuses_by_path: dict[str, Counter[int]] = {}  # "METHOD /path" -> HTTP status -> answers
        self.codes: Counter[int] = Counter()  # Binance error code -> answers carrying it
        self.closing = asyncio.Event()

    # -- test and operator hooks ----------------------------------------------------------------

    def ban(self, seconds: float) -> None:
        """Answer everything with 418 for `seconds`, as after repeated 429s."""
        self._banned_until = time.monotonic() + seconds

    def hide(self, order: int | str, seconds: float) -> None:
        """Keep an order out of every query for `seconds`: by order id, or the most recent order
        with that client order id."""
        if isinstance(order, str):
            order = self.engine.get_order(client_order_id=order).id
        self._hidden[order] = time.monotonic() + seconds

    @property
    def too_many_orders(self) -> int:
        """How many answers refused a new order for the order count (-1015)."""
        return self.codes[-1015]

    def record(self) -> dict[str, Any]:
        """Every order the venue accepted, what was injected and answered: plain JSON.

        `statuses_by_path` counts answers per endpoint and HTTP status (`{"GET /api/v3/order":
        {"200": 3, "429": 1}}`), `error_codes` per Binance error code (`{"-2010": 1}`, a -1015
        inside a cancel-replace answer included), `too_many_orders` the -1015 answers alone.
        """
        orders = []
        for o in self.engine.all_orders():
            orders.append(
                {
                    "client_order_id": o.client_order_id,
                    "order_id": o.id,
                    "symbol": o.symbol,
                    "side": o.side.value,
                    "type": o.type.value,
                    "amount": str(o.amount),
                    "price": None if o.price is None else str(o.price),
                    "filled": str(o.filled),
                    "status": o.status.value,
                    "created_at": o.created_at,
                    "ended_at": None if o.is_open else o.updated_at,
                }
            )
        return {
            "orders": orders,
            "faults": self.faults.summary(),
            "requests": dict(sorted(self.requests.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "statuses_by_path": {
                path: {str(k): v for k, v in sorted(counts.items())}
                for path, counts in sorted(self.statuses_by_path.items())
            },
            "error_codes": {str(k): v for k, v in sorted(self.codes.items())},
            "too_many_orders": self.too_many_orders,
            "audit": audit_orders(orders).to_json(),
        }

    def audit(self, expected: Mapping[str, Decimal | str | float] | None = None) -> Audit:
        return audit_orders(self.record()["orders"], expected)

    # -- the pipeline ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = f"{request.method} {request.path}"
        route = ROUTES.get(endpoint)
        if route is None:
            unknown = wire.unknown_endpoint()
            return self._answer(endpoint, unknown.status, unknown.body())
        self.requests[endpoint] += 1
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        # The raw strings: the signature covers exactly what the client sent, before decoding.
        raw_query = request.raw_path.partition("?")[2]
        raw_body = (await request.read()).decode("utf-8", errors="replace") if request.body_exists else ""
        params = dict(parse_qsl(raw_body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))  # the query string wins, as on Binance
        handler, signed = route
        headers: dict[str, str] = {}
        try:
            self._gate(wire.request_weight(endpoint, params))
            if signed:
                self._authenticate(request, raw_query, raw_body, params)
            draw = self.faults.draw(endpoint)
            if draw.fault is F.RATE_LIMIT:
                raise self._weight_429(self.faults.retry_after)
            if draw.fault is F.ERROR_BEFORE:
                return self._server_error(endpoint)
            ctx = Ctx(endpoint, params)
            self.engine.sync()
            counted = False
            if endpoint in CREATING:
                ctx.order_refusal = self._count_order(endpoint, params, headers)
                counted = ctx.order_refusal is None
            outcome: Any
            try:
                outcome = (200, handler(self, ctx))
            except BinanceError as exc:
                outcome = exc
            if counted and ctx.created:
                self._await_fills(ctx.created)
            elif counted and endpoint == NEW_ORDER:
                self._uncount(headers)  # only an accepted order counts (a cancel-replace's always does)
            if draw.invisible and ctx.created:
                for order_id in ctx.created:
                    self.hide(order_id, self.faults.invisible_ms / 1000)
                self.faults.note_invisible(endpoint)
            if draw.fault is F.ERROR_AFTER:
                return self._server_error(endpoint)
            if draw.fault is F.RESET_AFTER_ACCEPT:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)  # never written: the connection is gone
            if draw.fault is F.TIMEOUT_AFTER_ACCEPT:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), self.faults.timeout_hold_s)
            if isinstance(outcome, BinanceError):
                raise outcome
            status, payload = outcome
            return self._answer(endpoint, status, payload, headers)
        except BinanceError as exc:
            return self._answer(endpoint, exc.status, exc.body(), {**headers, **exc.headers})

    def _answer(
        self, endpoint: str, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        self._count_answer(endpoint, status)
        if isinstance(payload, dict) and isinstance(payload.get("code"), int):
            self.codes[payload["code"]] += 1
        return web.json_response(payload, status=status, headers={**self._weight_header(), **(headers or {})})

    def _server_error(self, endpoint: str) -> web.Response:
        status, code, msg = self._rng.choice(_SERVER_ERRORS)
        self._count_answer(endpoint, status)
        if code is None:
            return web.Response(status=status, text=msg, content_type="text/html", headers=self._weight_header())
        self.codes[code] += 1
        return web.json_response({"code": code, "msg": msg}, status=status, headers=self._weight_header())

    def _count_answer(self, endpoint: str, status: int) -> None:
        self.statuses[status] += 1
        by_path = self.statuses_by_path.get(endpoint)
        if by_path is None:
            by_path = self.statuses_by_path[endpoint] = Counter()
        by_path[status] += 1

    def _weight_header(self) -> dict[str, str]:
        self._weight.roll(time.time())
        return {"X-MBX-USED-WEIGHT-1M": str(self._weight.used)}

    def _gate(self, weight: int) -> None:
        """Bans, the request-weight 429 back-off and the request-weight limit, before anything else.

        Only requests sent inside a request-weight 429's Retry-After count towards the 418, as on
        Binance: an exhausted order count refuses new orders and nothing else.
        """
        now = time.monotonic()
        limits = self.faults.limits
        if now < self._banned_until:
            raise self._banned(now)
        if now < self._weight_backoff_until:
            self._violations += 1
            if limits.ban_after and self._violations >= limits.ban_after:
                self._violations = 0
                self._banned_until = now + limits.ban_seconds
                raise self._banned(now)
            raise self._weight_429(self._weight_backoff_until - now)
        self._violations = 0
        wall = time.time()
        if self._weight.full(wall, weight):
            raise self._weight_429(self._weight.reset_in(wall))
        self._weight.used += weight

    def _count_order(self, endpoint: str, params: Mapping[str, str], headers: dict[str, str]) -> BinanceError | None:
        """Take one new order from the order-count windows; their counts go into `headers`.

        An exhausted window is a 429 -1015 with the window's Retry-After. A cancel-replace sent with
        `orderRateLimitExceededMode=CANCEL_ONLY` still cancels: the refusal is returned for its
        new-order leg instead of raised.
        """
        cancel_only = False
        if endpoint == CANCEL_REPLACE:
            mode = params.get("orderRateLimitExceededMode") or "DO_NOTHING"
            if mode not in ("DO_NOTHING", "CANCEL_ONLY"):
                raise BinanceError(400, -1100, "Illegal characters found in parameter 'orderRateLimitExceededMode'.")
            cancel_only = mode == "CANCEL_ONLY"
        wall = time.time()
        self._give_back_filled(wall)
        refusal = None
        for window, per in ((self._orders_10s, "10 SECOND"), (self._orders_day, "1 DAY")):
            if window.full(wall, 1):
                refusal = BinanceError(
                    429,
                    -1015,
                    f"Too many new orders; current limit is {window.limit} orders per {per}.",
                    headers={"Retry-After": _seconds(window.reset_in(wall))},
                )
                break
        else:
            self._orders_10s.used += 1
            self._orders_day.used += 1
        headers["X-MBX-ORDER-COUNT-10S"] = str(self._orders_10s.used)
        headers["X-MBX-ORDER-COUNT-1D"] = str(self._orders_day.used)
        if refusal is not None and not cancel_only:
            raise refusal
        if refusal is not None:
            self.codes[-1015] += 1  # answered inside the cancel-replace's 409, not as its own code
        return refusal

    def _await_fills(self, order_ids: list[int]) -> None:
        """Orders just counted whose first fill will give the count back (the ones that can still fill,
        or did already: an IOC or FOK order that expired untouched never will)."""
        for order_id in order_ids:
            order = self.engine.get_order(exchange_order_id=order_id)
            if order.is_open or order.filled:
                self._unfilled.add(order_id)

    def _uncount(self, headers: dict[str, str]) -> None:
        """Give back the count a refused new order took (Binance counts successful placements)."""
        wall = time.time()
        for window in (self._orders_10s, self._orders_day):
            window.roll(wall)
            window.used = max(0, window.used - 1)
        headers["X-MBX-ORDER-COUNT-10S"] = str(self._orders_10s.used)
        headers["X-MBX-ORDER-COUNT-1D"] = str(self._orders_day.used)

    def _give_back_filled(self, wall: float) -> None:
        """Binance's unfilled order count: each counted order's first fill since the last look gives
        one back to the current 10 s and day windows (never below zero)."""
        fills = self.engine.trades_after(self._fills_seen)
        if not fills:
            return
        self._fills_seen = fills[-1].id
        unfilled = self._unfilled
        for trade in fills:
            if trade.order_id in unfilled:
                unfilled.discard(trade.order_id)
                for window in (self._orders_10s, self._orders_day):
                    window.roll(wall)
                    window.used = max(0, window.used - 1)

    def _weight_429(self, retry_after: float) -> BinanceError:
        retry_after = max(retry_after, 0.001)
        self._weight_backoff_until = max(self._weight_backoff_until, time.monotonic() + retry_after)
        return BinanceError(
            429, -1003, _WEIGHT_MSG.format(self._weight.limit), headers={"Retry-After": _seconds(retry_after)}
        )

    def _banned(self, now: float) -> BinanceError:
        left = self._banned_until - now
        until_ms = int((time.time() + left) * 1000)
        return BinanceError(
            418,
            -1003,
            f"Way too much request weight used; IP banned until {until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            headers={"Retry-After": _seconds(left)},
        )

    def _authenticate(self, request: web.Request, raw_query: str, raw_body: str, params: dict[str, str]) -> None:
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key.encode(), self._api_key):
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signature = params.get("signature")
        if not signature:
            raise wire.mandatory("signature")
        # Binance signs totalParams: the query string followed by the body, without the signature.
        payload = _unsigned(raw_query) + _unsigned(raw_body)
        wanted = hmac.new(self._api_secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.lower().encode(), wanted.encode()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        timestamp = wire.int_param(params, "timestamp")
        if timestamp is None:
            raise wire.mandatory("timestamp")
        window = wire.int_param(params, "recvWindow", 5000) or 5000
        if window > 60_000:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        server = time.time() * 1000
        if timestamp >= server + 1000:
            raise BinanceError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - timestamp > window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # -- helpers for the handlers ---------------------------------------------------------------

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
            self.engine.validate_order(
                symbol,
                args.side,
                args.type,
                args.amount,
                args.price,
                time_in_force=args.time_in_force,
                post_only=args.post_only,
                quote_amount=args.quote_amount,
            )
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
            order = self.engine.create_order(
                args.client_order_id,
                symbol,
                args.side,
                args.type,
                args.amount,
                args.price,
                time_in_force=args.time_in_force,
                post_only=args.post_only,
                quote_amount=args.quote_amount,
            )
        except EngineError as exc:
            raise wire.engine_error(exc) from None
        ctx.created.append(order.id)
        # Binance's default: FULL for MARKET and LIMIT orders, ACK for the others (LIMIT_MAKER).
        resp_type = params.get("newOrderRespType") or ("ACK" if args.post_only else "FULL")
        if resp_type not in ("ACK", "RESULT", "FULL"):
            resp_type = "FULL"
        fills = self.engine.trades(exchange_order_id=order.id)
        return wire.new_order_json(order, self.info(symbol), fills, resp_type)

    def cancel(self, order: EngineOrder, cancel_client_id: str | None) -> dict[str, Any]:
        try:
            done = self.engine.cancel_order(exchange_order_id=order.id)
        except EngineError as exc:
            raise wire.engine_error(exc, cancel=True) from None
        if not done.filled:
            self._unfilled.discard(done.id)  # it stays counted, and can never fill any more
        if not cancel_client_id:
            self._cancel_ids += 1
            cancel_client_id = f"emu-cancel-{self._cancel_ids}"
        return wire.cancel_json(done, self.info(done.symbol), cancel_client_id)


EMULATOR = web.AppKey("emulator", Emulator)
_WEIGHT_MSG = (
    "Too much request weight used; current limit is {} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)


def _unsigned(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


def _seconds(value: float) -> str:
    """Retry-After as Binance sends it: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(value - 1e-9)))


# -- the app and its life -------------------------------------------------------------------------


def make_app(
    engine: PaperEngine,
    faults: EmulatorFaults | None = None,
    api_key: str = DEMO_API_KEY,
    api_secret: str = DEMO_API_SECRET,
    *,
    latency_ms: float = 0.0,
    percent_price: PercentPriceBySide | None = PercentPriceBySide(),
    max_orders_per_symbol: int = 0,
) -> web.Application:
    emulator = Emulator(
        engine,
        faults,
        api_key=api_key,
        api_secret=api_secret,
        latency_ms=latency_ms,
        percent_price=percent_price,
        max_orders_per_symbol=max_orders_per_symbol,
    )
    app = web.Application()
    app[EMULATOR] = emulator

    async def record(request: web.Request) -> web.Response:
        return web.json_response(emulator.record())

    async def release_held(app: web.Application) -> None:
        emulator.closing.set()  # held "timeout" answers must not hold up the shutdown

    app.router.add_get("/_emulator/record", record)
    app.router.add_route("*", "/{tail:.*}", emulator.handle)  # every other path: served, or a 404 -1020
    app.on_shutdown.append(release_held)
    return app


class RunningEmulator(NamedTuple):
    runner: web.AppRunner
    url: str
    emulator: Emulator

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int = 1,
    faults: EmulatorFaults | None = None,
    latency_ms: float = 0.0,
    markets: list[str] | None = None,
    balances: Mapping[str, Decimal | float | int | str] | None = None,
    fee_pct: Decimal | float = Decimal("0.1"),
    api_key: str = DEMO_API_KEY,
    api_secret: str = DEMO_API_SECRET,
    engine: PaperEngine | None = None,
    percent_price: PercentPriceBySide | None = PercentPriceBySide(),
    max_orders_per_symbol: int = 0,
) -> RunningEmulator:
    """Serve an emulator on `host:port` (0: a free port). Stop it with `await running.stop()`.

    Without an `engine`, one is built as Binance's venue behaves: a book of
    `EMULATOR_BOOK_LEVELS` levels a side and limit buys locking exactly quantity x price.
    """
    if engine is None:
        engine = PaperEngine(
            seed=seed,
            markets=markets or ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
            balances=dict(balances or {"USDT": 100_000, "BTC": 1, "ETH": 10, "SOL": 100}),
            fee_pct=fee_pct,
            book_levels=EMULATOR_BOOK_LEVELS,
            exact_locks=True,
        )
    app = make_app(
        engine,
        faults,
        api_key,
        api_secret,
        latency_ms=latency_ms,
        percent_price=percent_price,
        max_orders_per_symbol=max_orders_per_symbol,
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return RunningEmulator(runner, f"http://{host}:{bound}", app[EMULATOR])


def emulator_exchange(
    settings: Settings, url: str, *, api_key: str = DEMO_API_KEY, api_secret: str = DEMO_API_SECRET
) -> CcxtExchange:
    """The ccxt adapter (`binance`) pointed at an emulator at `url`, with the emulator's keys.

    Its mode is PAPER: the paper engine is behind it, whatever ccxt thinks it talks to.
    """
    from executor.exchanges.ccxt_adapter import CcxtExchange

    return CcxtExchange(
        "binance",
        api_key=api_key,
        api_secret=api_secret,
        api_url=url,
        markets=list(settings.exchange.markets),
        mode="PAPER",
    )


async def start_demo_emulator(
    settings: Settings, *, seed: int | None = None, faults: EmulatorFaults | None = None, latency_ms: float = 0.0
) -> tuple[RunningEmulator, CcxtExchange]:
    """An emulator on a free port with `[paper]`'s markets, balances and fees, and the adapter on it.

    For `demo --via-emulator`: pass the adapter to `TradingService.open(..., exchange=...)`;
    close the service (which closes the adapter), then `await running.stop()`.
    """
    running = await start_emulator(
        seed=settings.paper.seed if seed is None else seed,
        faults=faults,
        latency_ms=latency_ms,
        markets=list(settings.exchange.markets),
        balances={c: to_decimal(v) for c, v in settings.paper.balances.items()},
        fee_pct=settings.paper.fee_pct,
    )
    return running, emulator_exchange(settings, running.url)


def serve_cli(args: argparse.Namespace, settings: Settings) -> int:
    """`tradeconsole emulator`: serve until SIGINT/SIGTERM, then exit 0 (1 if it cannot start)."""
    from executor.config import API_KEY_ENV, API_SECRET_ENV, secrets_from_env

    try:
        faults = EmulatorFaults.load(args.faults) if args.faults else EmulatorFaults(seed=args.seed)
    except FaultsFileError as exc:
        print(f"tradeconsole emulator: {exc}", file=sys.stderr)
        return 2
    if (getattr(args, "max_orders_per_symbol", 0) or 0) < 0:
        print("tradeconsole emulator: --max-orders-per-symbol must not be negative", file=sys.stderr)
        return 2
    creds = secrets_from_env()
    if (creds.api_key is None) != (creds.api_secret is None):
        print(f"tradeconsole emulator: set both {API_KEY_ENV} and {API_SECRET_ENV}, or neither", file=sys.stderr)
        return 2
    from_env = creds.api_key is not None and creds.api_secret is not None
    api_key = creds.api_key.get_secret_value() if creds.api_key else DEMO_API_KEY
    api_secret = creds.api_secret.get_secret_value() if creds.api_secret else DEMO_API_SECRET
    return asyncio.run(_serve(args, settings, faults, api_key, api_secret, from_env))


async def _serve(
    args: argparse.Namespace,
    settings: Settings,
    faults: EmulatorFaults,
    api_key: str,
    api_secret: str,
    keys_from_env: bool,
) -> int:
    try:
        running = await start_emulator(
            "127.0.0.1",
            args.port,
            seed=args.seed,
            faults=faults,
            latency_ms=args.latency_ms,
            markets=list(settings.exchange.markets),
            balances={c: to_decimal(v) for c, v in settings.paper.balances.items()},
            fee_pct=settings.paper.fee_pct,
            api_key=api_key,
            api_secret=api_secret,
            max_orders_per_symbol=getattr(args, "max_orders_per_symbol", 0) or 0,
        )
    except OSError as exc:
        print(f"tradeconsole emulator: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"tradeconsole emulator: Binance spot REST on {running.url}", flush=True)
    if keys_from_env:
        print("  keys: the API key and secret from TRADECONSOLE_API_KEY / TRADECONSOLE_API_SECRET", flush=True)
    else:
        print(f"  keys: demo key {DEMO_API_KEY!r}, secret {DEMO_API_SECRET!r}", flush=True)
    print(
        f"  use: TRADECONSOLE_EXCHANGE__ID=binance TRADECONSOLE_EXCHANGE__API_URL={running.url}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        record = running.emulator.record()
        if getattr(args, "record", None):
            _write_record(args.record, record)
        await running.stop()
    audit = record["audit"]
    print(
        f"tradeconsole emulator: stopped; {audit['orders']} orders for {audit['signals']} signals, "
        f"audit {'clean' if audit['ok'] else 'FAILED'}",
        flush=True,
    )
    return 0


def _write_record(path: str, record: dict[str, Any]) -> None:
    import json

    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    os.replace(tmp, path)
