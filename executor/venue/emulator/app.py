"""The emulator's aiohttp app: the request pipeline, and starting and stopping it.

Owns `Emulator`'s request pipeline (`handle`: the request-weight gate and bans, `X-MBX-APIKEY`
and HMAC-SHA256 signature checks, the fault plan's draw, the order count, the handler's engine
call, the answer and what is counted of it), its record (`record`, `GET /_emulator/record`),
`make_app` and `start_emulator` (a served venue on 127.0.0.1, `RunningEmulator`). What the
emulator serves and how Binance's behaviour is kept: see the package's docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import time
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from aiohttp import web

from executor.venue.emulator import wire
from executor.venue.emulator.handlers import ROUTES, Ctx
from executor.venue.emulator.limits import RateLimits
from executor.venue.emulator.record import Audit, audit_orders, order_record
from executor.venue.emulator.trading import Trading
from executor.venue.emulator.wire import BinanceError, PercentPriceBySide
from executor.venue.endpoints import CREATING, NEW_ORDER
from executor.venue.engine import PaperEngine
from executor.venue.faults import Fault, FaultPlan

# Not secrets: what the emulator accepts when TRADECONSOLE_API_KEY/SECRET are unset (demos, tests).
DEMO_API_KEY = "tradeconsole-emulator-demo-key"
DEMO_API_SECRET = "tradeconsole-emulator-demo-secret"
# Levels a side of the book of the engines the emulator builds itself: Binance's default depth.
EMULATOR_BOOK_LEVELS = 100

_SERVER_ERRORS = (
    (500, -1001, "Internal error; unable to process your request. Please try again."),
    (503, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
    (502, None, "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"),
)


class Emulator(Trading):
    """One venue: the engine, the fault plan, the limits and everything counted along the way.

    The request pipeline (`handle`) is here; the helpers the handlers share are `Trading`'s, the
    limits `RateLimits`'. `percent_price` is the PERCENT_PRICE_BY_SIDE filter (None: none),
    `max_orders_per_symbol` the MAX_NUM_ORDERS filter (0: none, the default).
    """

    def __init__(
        self,
        engine: PaperEngine,
        faults: FaultPlan | None = None,
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
        self.faults = faults or FaultPlan()
        self._api_key = api_key.encode()
        self._api_secret = api_secret.encode()
        self.latency_ms = latency_ms
        self.limits = RateLimits(self.faults.limits, engine)
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
        self.limits.ban(seconds)

    @property
    def too_many_orders(self) -> int:
        """How many answers refused a new order for the order count (-1015)."""
        return self.codes[-1015]

    def record(self) -> dict[str, Any]:
        """Every order the venue accepted (that its engine keeps: `start_emulator`'s own keeps every
        one), what was injected and answered: plain JSON.

        `statuses_by_path` counts answers per endpoint and HTTP status (`{"GET /api/v3/order":
        {"200": 3, "429": 1}}`), `error_codes` per Binance error code (`{"-2010": 1}`, a -1015
        inside a cancel-replace answer included), `too_many_orders` the -1015 answers alone.
        """
        orders = [order_record(o) for o in self.engine.all_orders()]
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
            self.limits.gate(wire.request_weight(endpoint, params))
            if signed:
                self._authenticate(request, raw_query, raw_body, params)
            draw = self.faults.draw(endpoint)
            if draw.fault is Fault.RATE_LIMIT:
                raise self.limits.weight_429(self.faults.retry_after)
            if draw.fault is Fault.ERROR_BEFORE:
                return self._server_error(endpoint)
            ctx = Ctx(endpoint, params)
            self.engine.sync()
            counted = False
            if endpoint in CREATING:
                ctx.order_refusal = self.limits.count_order(endpoint, params, headers)
                counted = ctx.order_refusal is None
                if not counted:
                    self.codes[-1015] += 1  # answered inside the cancel-replace's 409, not as its own code
            outcome: Any
            try:
                outcome = (200, handler(self, ctx))
            except BinanceError as exc:
                outcome = exc
            if counted and ctx.created:
                self.limits.await_fills(ctx.created)
            elif counted and endpoint == NEW_ORDER:
                self.limits.uncount(headers)  # only an accepted order counts (a cancel-replace's always does)
            if draw.invisible and ctx.created:
                for order_id in ctx.created:
                    self.hide(order_id, self.faults.invisible_ms / 1000)
                self.faults.note_invisible(endpoint)
            if draw.fault is Fault.ERROR_AFTER:
                return self._server_error(endpoint)
            if draw.fault is Fault.RESET_AFTER_ACCEPT:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)  # never written: the connection is gone
            if draw.fault is Fault.TIMEOUT_AFTER_ACCEPT:
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
        return web.json_response(payload, status=status, headers={**self.limits.weight_header(), **(headers or {})})

    def _server_error(self, endpoint: str) -> web.Response:
        status, code, msg = self._rng.choice(_SERVER_ERRORS)
        self._count_answer(endpoint, status)
        if code is None:
            return web.Response(status=status, text=msg, content_type="text/html", headers=self.limits.weight_header())
        self.codes[code] += 1
        return web.json_response({"code": code, "msg": msg}, status=status, headers=self.limits.weight_header())

    def _count_answer(self, endpoint: str, status: int) -> None:
        self.statuses[status] += 1
        by_path = self.statuses_by_path.get(endpoint)
        if by_path is None:
            by_path = self.statuses_by_path[endpoint] = Counter()
        by_path[status] += 1

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


EMULATOR = web.AppKey("emulator", Emulator)


def _unsigned(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


# -- the app and its life -------------------------------------------------------------------------


def make_app(emulator: Emulator) -> web.Application:
    """The aiohttp app that serves `emulator`: its record, and every other path through `handle`."""
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
    faults: FaultPlan | None = None,
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
    `EMULATOR_BOOK_LEVELS` levels a side and limit buys locking exactly quantity x price; and one
    that keeps every order (`keep_closed=None`), for the record.
    """
    if engine is None:
        engine = PaperEngine(
            seed=seed,
            markets=markets or ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
            balances=dict(balances or {"USDT": 100_000, "BTC": 1, "ETH": 10, "SOL": 100}),
            fee_pct=fee_pct,
            book_levels=EMULATOR_BOOK_LEVELS,
            exact_locks=True,
            keep_closed=None,
        )
    emulator = Emulator(
        engine,
        faults,
        api_key=api_key,
        api_secret=api_secret,
        latency_ms=latency_ms,
        percent_price=percent_price,
        max_orders_per_symbol=max_orders_per_symbol,
    )
    app = make_app(emulator)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return RunningEmulator(runner, f"http://{host}:{bound}", emulator)
