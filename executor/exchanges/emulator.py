"""`tradeconsole emulator`: a Binance-spot-compatible REST venue on 127.0.0.1 over the paper engine.

Owns the aiohttp app (`make_app`), starting and stopping it (`start_emulator`, `serve_cli`), the
request pipeline (rate limits and bans, `X-MBX-APIKEY` and HMAC-SHA256 signature checks, the
fault plan, the engine call) and the helpers endpoints share (visibility, lookup, place, cancel).
The endpoints live in `emulator_endpoints`, wire formats in `emulator_binance`, the fault plan in
`emulator_faults`, the order record and its audit in `emulator_record`.

Endpoints (what ccxt 4.5's `binance` calls for spot): `GET /api/v3/ping`, `time`, `exchangeInfo`,
`ticker/24hr`, `ticker/bookTicker`, `ticker/price`, `depth`, `account`; `POST|GET|DELETE
/api/v3/order`; `GET|DELETE /api/v3/openOrders`; `GET /api/v3/allOrders`, `myTrades`;
`POST /api/v3/order/cancelReplace`. Plus `GET /_emulator/record` (no auth, no limits, no faults).

Binance behaviour kept: error codes and HTTP statuses (-2010 insufficient balance / duplicate
order, -1013 filter failure, -2013 / -2011 unknown order, -1022 bad signature, -2014 / -2015 bad
key, -1021 timestamp outside recvWindow, -1127 a time window over 24 hours, -1128 a bad parameter
combination, -1001 / -1007 with 5xx); a client order id unique among open orders only (reused
once its order ended; a lookup by it finds the most recent order); fees in the asset received
(see `paper_engine`); request weights per endpoint (`emulator_binance.request_weight`) counted
per minute, and new orders per 10 s and per day, in fixed windows aligned to the epoch, Binance's
default limits unless the faults file says otherwise, announced exactly in exchangeInfo; a
cancel-replace checks its new order's filters and the order count before it cancels anything.

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
from executor.exchanges.emulator_binance import BinanceError
from executor.exchanges.emulator_endpoints import ROUTES, Ctx
from executor.exchanges.emulator_faults import (
    CANCEL_REPLACE,
    CREATING,
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


class Emulator:
    """One venue: the engine, the fault plan, the limits and everything counted along the way."""

    def __init__(
        self,
        engine: PaperEngine,
        faults: EmulatorFaults | None = None,
        *,
        api_key: str = DEMO_API_KEY,
        api_secret: str = DEMO_API_SECRET,
        latency_ms: float = 0.0,
    ) -> None:
        self.engine = engine
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
            return self._answer(endpoint, 404, {"code": -1000, "msg": f"Unknown endpoint {endpoint}."})
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
            if endpoint in CREATING:
                ctx.order_refusal = self._count_order(endpoint, params, headers)
            self.engine.sync()
            outcome: Any
            try:
                outcome = (200, handler(self, ctx))
            except BinanceError as exc:
                outcome = exc
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

    def order_args(self, params: Mapping[str, str]) -> tuple[Side, OrderType, Decimal, Decimal | None, str | None]:
        """A new order's side, type, quantity, price and client order id, as Binance reads them."""
        side = wire.side_param(params)
        type_ = wire.type_param(params)
        if "quoteOrderQty" in params:
            raise BinanceError(400, -1014, "Unsupported order combination.")
        amount = wire.decimal_param(params, "quantity")
        assert amount is not None
        price = wire.decimal_param(params, "price", required=False)
        if type_ is OrderType.LIMIT:
            if price is None:
                raise wire.mandatory("price")
            tif = params.get("timeInForce")
            if not tif:
                raise wire.mandatory("timeInForce")
            if tif != "GTC":  # the engine's orders rest until canceled; nothing else is honest
                raise BinanceError(400, -1115, "Invalid timeInForce.")
        elif price is not None:
            raise BinanceError(400, -1106, "Parameter 'price' sent when not required.")
        return side, type_, amount, price, params.get("newClientOrderId") or None

    def check_filters(self, params: Mapping[str, str], symbol: str) -> None:
        """Refuse a new order that breaks its market's filters, before anything is done (cancel-replace)."""
        side, type_, amount, price, _ = self.order_args(params)
        try:
            self.engine.validate_order(symbol, side, type_, amount, price)
        except EngineError as exc:
            raise wire.engine_error(exc) from None

    def place(self, ctx: Ctx, params: Mapping[str, str], symbol: str) -> dict[str, Any]:
        side, type_, amount, price, coid = self.order_args(params)
        try:
            order = self.engine.create_order(coid, symbol, side, type_, amount, price)
        except EngineError as exc:
            raise wire.engine_error(exc) from None
        ctx.created.append(order.id)
        resp_type = params.get("newOrderRespType") or "FULL"
        if resp_type not in ("ACK", "RESULT", "FULL"):
            resp_type = "FULL"
        fills = self.engine.trades(exchange_order_id=order.id)
        return wire.new_order_json(order, self.info(symbol), fills, resp_type)

    def cancel(self, order: EngineOrder, cancel_client_id: str | None) -> dict[str, Any]:
        try:
            done = self.engine.cancel_order(exchange_order_id=order.id)
        except EngineError as exc:
            raise wire.engine_error(exc, cancel=True) from None
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
) -> web.Application:
    emulator = Emulator(engine, faults, api_key=api_key, api_secret=api_secret, latency_ms=latency_ms)
    app = web.Application()
    app[EMULATOR] = emulator

    async def record(request: web.Request) -> web.Response:
        return web.json_response(emulator.record())

    async def release_held(app: web.Application) -> None:
        emulator.closing.set()  # held "timeout" answers must not hold up the shutdown

    app.router.add_get("/_emulator/record", record)
    app.router.add_route("*", "/api/v3/{tail:.*}", emulator.handle)
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
) -> RunningEmulator:
    """Serve an emulator on `host:port` (0: a free port). Stop it with `await running.stop()`."""
    if engine is None:
        engine = PaperEngine(
            seed=seed,
            markets=markets or ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
            balances=dict(balances or {"USDT": 100_000, "BTC": 1, "ETH": 10, "SOL": 100}),
            fee_pct=fee_pct,
        )
    app = make_app(engine, faults, api_key, api_secret, latency_ms=latency_ms)
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
