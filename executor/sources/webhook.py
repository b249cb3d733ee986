"""The signal webhook (SPEC sections 5 and 12): `POST /signals` on 127.0.0.1, for strategies and
charting tools that can send an HTTP request but not write a file.

A request carries one signal, a JSON array of them, or `{"token": ..., "signals": [...]}`. The
token may come in the body as a top-level `"token"` field, because a TradingView alert can send
only a URL and a body (no header); it is removed before the signal is validated, so it never
reaches the store or a log. It may also come as `Authorization: Bearer ...` or
`X-Tradeconsole-Token`. Tokens are compared in constant time, as fixed-size digests, so neither a
wrong token's content nor its length shows in the answer's timing. The token is also taken out of
the signals themselves (a copy of the alert template inside an array, a `meta` field) before they
are recorded: never stored, logged or echoed in a reason.

What is checked, in order, and what each refusal records: a sender over its rate (token bucket,
`webhook_rate` per second, bursts of `webhook_burst`; an IPv6 sender counted by its /64) gets 429
with Retry-After; an X-Forwarded-For that names no address 400; a sender outside `webhook_allow`
403; a body over 64 KiB 413; a body with a Content-Encoding (gzip...) 400; a body that is not
JSON 400 with the reason (a leading UTF-8 byte order mark is no part of it); no valid token 401.
None of these records anything. Past them, every signal is recorded and decided by intake
exactly as a file's line is (`TradingService.submit`): invalid with a reason, duplicate, pending,
or approved by the policy. The answer lists one result per signal, in order: 202, or 400 when any
is invalid (the valid ones are still recorded and decided); 503 with Retry-After when the store
failed to record them (those it did record keep their result, the rest are `not_recorded`).

The answer is due within 3 s of the request's arrival whatever the core is doing (TradingView
cancels after 3 s; reading and decoding the body count too): execution runs after intake, never
inside the request, and a signal whose check is still running when the answer is due (a venue
slow to quote) is answered `received`; its outcome is in `tradeconsole signals`. The sender's
address is the last `X-Forwarded-For` entry, the one the local reverse proxy appends (a port
after it dropped, an IPv4-mapped IPv6 address read as the IPv4 one): the webhook listens on
loopback only, so outside senders always come through one. A local process can claim any address
there; the token is the real gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from executor.events import ErrorOccurred
from executor.signals import load_json

if TYPE_CHECKING:
    from pydantic import SecretStr

    from executor.config import Settings
    from executor.service import TradingService

__all__ = ["MAX_BODY", "Webhook", "WebhookError", "start_webhook"]

log = logging.getLogger("tradeconsole.webhook")

MAX_BODY = 64 * 1024
MAX_SIGNALS = 1000  # a request's signals at most, as `ctl submit`'s: intake after the answer stays short
ANSWER_WITHIN = 2.5  # seconds from a request's arrival to its answer, at most: TradingView gives up at 3
TOKEN_HEADER = "X-Tradeconsole-Token"
WHERE_TOKEN = 'a valid token is needed: a top-level "token" field, Authorization: Bearer, or X-Tradeconsole-Token'
_NOTICE_EVERY = 10.0  # seconds between two warnings about one sender's refused requests


class WebhookError(Exception):
    """The webhook could not start (its port is taken, say): the message says where."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per sender: `rate` requests a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_senders: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_senders = max_senders
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, sender: str) -> float:
        """0 when `sender` may go on (one token spent), else the seconds until it may."""
        now = self.clock()
        bucket = self._buckets.get(sender)
        if bucket is None:
            if len(self._buckets) >= self.max_senders:
                self._forget_full(now)
            bucket = self._buckets[sender] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket refilled to the brim says nothing a new one would not: forget those first.
        refill = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.stamp >= refill]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_senders:  # a flood of distinct senders: oldest first
            del self._buckets[next(iter(self._buckets))]


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


class Webhook:
    """The webhook of one core. `start()` binds `host:port` (port 0: any free one, see `port`)."""

    def __init__(
        self,
        service: TradingService,
        token: str,
        *,
        port: int,
        host: str = "127.0.0.1",
        allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None,
        rate: float = 20.0,
        burst: int = 40,
        answer_within: float = ANSWER_WITHIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token:
            raise ValueError("the webhook needs a token")
        self.service = service
        self.host = host
        self.port = port
        self.allow = list(allow or [])
        self.answer_within = answer_within
        self.limiter = RateLimiter(rate, burst, clock)
        self._digest = hashlib.sha256(token.encode()).digest()
        self._token = token  # only to take it out of what is recorded (`_redacted`), never compared as text
        self._runner: web.AppRunner | None = None
        self._work: set[asyncio.Task] = set()
        self._noticed: dict[tuple[str, int], float] = {}
        self._clock = clock

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/signals"

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/signals", self._signals)
        app.router.add_get("/health", self._health)
        # auto_decompress off: a body that claims an encoding is refused with a reason (below),
        # never half-decoded by the HTTP parser, which answers 500 and logs a traceback for one
        # that does not decode.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                                     auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise WebhookError(f"webhook: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        server = site._server  # the bound port, when 0 asked for any free one
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        log.info("webhook listening on %s", self.url)

    async def close(self) -> None:
        """Stop taking requests; intake already under way finishes (its signals are journaled)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._work:
            await asyncio.gather(*list(self._work), return_exceptions=True)

    # -- requests ----------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        service = self.service
        return _answer(200, {"ok": not service.stopping, "paused": service.paused, "mode": service.mode})

    async def _signals(self, request: web.Request) -> web.Response:
        # The deadline runs from here: reading and decoding a 64 KiB body count against it too.
        due = asyncio.get_running_loop().time() + self.answer_within
        sender = self._sender(request)
        # Rate-limited by its network (an IPv6 sender by its /64, which one host holds whole);
        # one with no address it could be known by shares a bucket with every such one.
        wait = self.limiter.admit(_rate_key(sender) if sender is not None else "?")
        if wait:
            return _answer(429, {"reason": "too many requests from this sender"},
                           {"Retry-After": str(max(1, math.ceil(wait)))})
        if sender is None:
            return self._refuse(request, 400, "X-Forwarded-For: not an address", "?")
        if self.allow and not self._allowed(sender):
            return self._refuse(request, 403, f"{sender} is not in [signals] webhook_allow", sender)
        if self.service.stopping:
            return _answer(503, {"reason": "the core is stopping"}, {"Retry-After": "5"})
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _answer(413, {"reason": f"body over {MAX_BODY // 1024} KiB"})
        encoding = request.headers.get("Content-Encoding", "").strip()
        if encoding.lower() not in ("", "identity"):
            return _answer(400, {"reason": f"Content-Encoding {encoding[:40]!r} is not taken: send the JSON as it is"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer(413, {"reason": f"body over {MAX_BODY // 1024} KiB"})
        except web.RequestPayloadError as exc:  # a chunked body that breaks off, say
            return _answer(400, {"reason": f"body cannot be read: {exc.__cause__ or exc}"})
        try:
            # utf-8-sig: a byte order mark some Windows tools write first is no part of the JSON.
            text = body.decode("utf-8-sig")
            data = load_json(text)
        except UnicodeDecodeError as exc:
            return _answer(400, {"reason": f"body is not UTF-8 text: {exc.reason} at byte {exc.start}"})
        except ValueError as exc:
            return _answer(400, {"reason": f"body is not JSON: {exc}"})
        try:
            token, signals = _unwrap(data)
        except ValueError as exc:
            # The shape is wrong, and no token in it was found valid either: a sender without a
            # token learns only that it needs one.
            if not self._authentic(request, data.get("token") if isinstance(data, dict) else None):
                return self._refuse(request, 401, WHERE_TOKEN, sender)
            return _answer(400, {"reason": str(exc)})
        if not self._authentic(request, token):
            return self._refuse(request, 401, WHERE_TOKEN, sender)
        return await self._intake(signals, sender, due)

    async def _intake(self, signals: list[Any], sender: str, due: float) -> web.Response:
        # The token is taken out of the signals too (a copy of the alert template inside an
        # array, say): it never reaches the store, a reason or the log.
        signals = [_redacted(s, self._token) for s in signals]
        raws = [json.dumps(s, ensure_ascii=False, separators=(",", ":")) for s in signals]
        results: list[dict[str, Any] | None] = [None] * len(raws)

        async def record() -> None:
            for i, raw in enumerate(raws):  # in order: the second copy of an id is its duplicate
                (rec,) = await self.service.submit([raw], source=f"webhook:{sender}")
                results[i] = {"id": rec.id, "status": rec.status.value, "reason": rec.reason or None}

        task = asyncio.create_task(record(), name="webhook-intake")
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        with contextlib.suppress(Exception):
            # Shielded: an answer that is due, or a sender that hangs up, never stops intake.
            await asyncio.wait_for(asyncio.shield(task), max(0.0, due - asyncio.get_running_loop().time()))
        if task.done() and not task.cancelled() and task.exception() is not None:
            # The store refused a row (disk full, say): what was not recorded is not "received".
            log.error("webhook intake failed: %s", task.exception())
            done = sum(r is not None for r in results)
            answered = [r if r is not None else _not_recorded(s) for r, s in zip(results, signals, strict=True)]
            return _answer(503, {"reason": f"the core could not record the signals ({done} of {len(results)} "
                                           f"recorded; its log says why): send the rest again later",
                                 "results": answered}, {"Retry-After": "5"})
        answered = [r if r is not None else _still_checking(s) for r, s in zip(results, signals, strict=True)]
        invalid = any(r["status"] == "invalid" for r in answered)
        return _answer(400 if invalid else 202, {"results": answered})

    # -- who is asking -----------------------------------------------------------------------

    def _sender(self, request: web.Request) -> str | None:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        if forwarded:
            # The last entry is the one the local proxy appended; earlier ones are the sender's own word.
            return _address(",".join(forwarded).split(",")[-1])
        return (_address(request.remote) if request.remote else None) or request.remote or "unknown"

    def _allowed(self, sender: str) -> bool:
        try:
            address = ipaddress.ip_address(sender)
        except ValueError:
            return False
        return any(address in network for network in self.allow)

    def _authentic(self, request: web.Request, body_token: Any) -> bool:
        offered: list[str] = []
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            offered.append(auth[7:].strip())
        if TOKEN_HEADER in request.headers:
            offered.append(request.headers[TOKEN_HEADER])
        if isinstance(body_token, str):
            offered.append(body_token)
        good = False
        for candidate in offered:  # every one compared: which one matched never shows in the timing
            digest = hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).digest()
            good |= hmac.compare_digest(digest, self._digest)
        return good

    def _refuse(self, request: web.Request, status: int, reason: str, sender: str) -> web.Response:
        now = self._clock()
        key = (sender, status)
        if now - self._noticed.get(key, -math.inf) >= _NOTICE_EVERY:
            if len(self._noticed) > 10_000:
                self._noticed.clear()
            self._noticed[key] = now
            # To the bus only: the Log pane, the store's log and a headless core's stderr all get it there.
            self.service.bus.publish(ErrorOccurred(f"webhook refused {sender} ({status}): {reason}", level="warning"))
        headers = {"WWW-Authenticate": 'Bearer realm="tradeconsole"'} if status == 401 else None
        return _answer(status, {"reason": reason}, headers)


def _unwrap(data: Any) -> tuple[Any, list[Any]]:
    """(the body's token, its signals) from any of the three shapes. Raises ValueError."""
    if isinstance(data, list):
        signals, token = data, None
    elif isinstance(data, dict) and "signals" in data:
        extra = sorted(set(data) - {"token", "signals"})
        if extra:
            raise ValueError(f"{extra[0]}: unknown field beside \"signals\" (only \"token\" may be there)")
        signals, token = data["signals"], data.get("token")
        if not isinstance(signals, list):
            raise ValueError('signals: must be a JSON array of signals')
    elif isinstance(data, dict):
        token = data.pop("token", None)
        signals = [data]
    else:
        shapes = 'a signal, an array of signals or {"signals": [...]}'
        raise ValueError(f"body must be {shapes}, got {type(data).__name__}")
    if not signals:
        raise ValueError("signals: the body holds no signal")
    if len(signals) > MAX_SIGNALS:
        raise ValueError(f"signals: at most {MAX_SIGNALS} signals a request, not {len(signals)}: send them in batches")
    return token, signals


def _address(entry: str) -> str | None:
    """The address an X-Forwarded-For entry names, as `ipaddress` writes it, or None. A port some
    proxies add (`203.0.113.7:4711`, `[2001:db8::7]:4711`) is dropped, and an IPv4 address a
    dual-stack proxy reports mapped (`::ffff:203.0.113.7`) is the IPv4 address it is, so that
    `webhook_allow` and the rate limit see one sender, however the proxy writes it."""
    text = entry.strip().strip('"')
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0] if "%" in text else text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def _rate_key(sender: str) -> str:
    """The rate limiter's bucket of a sender: its address; an IPv6 one's /64 network."""
    try:
        address = ipaddress.ip_address(sender)
    except ValueError:
        return sender
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return sender


_REDACT_INSIDE = 16  # a token at least this long is also taken out of longer text ("key=<token>")


def _redacted(value: Any, token: str) -> Any:
    """`value` with the token replaced by `[token]` wherever it stands (keys too): a string that
    is the token, and, for a token of `_REDACT_INSIDE` characters or more, one that holds it (a
    short test token such as "test" must not change an id "test-1" or a note). Nesting is
    bounded (`load_json` refuses more than 32 levels), so recursion is safe."""
    if isinstance(value, str):
        if value == token:
            return "[token]"
        return value.replace(token, "[token]") if len(token) >= _REDACT_INSIDE and token in value else value
    if isinstance(value, list):
        return [_redacted(v, token) for v in value]
    if isinstance(value, dict):
        return {_redacted(k, token): _redacted(v, token) for k, v in value.items()}
    return value


def _not_recorded(signal: Any) -> dict[str, Any]:
    signal_id = signal.get("id") if isinstance(signal, dict) and isinstance(signal.get("id"), str) else None
    return {"id": signal_id, "status": "not_recorded",
            "reason": "the core could not record it (its log says why): send it again"}


def _still_checking(signal: Any) -> dict[str, Any]:
    signal_id = signal.get("id") if isinstance(signal, dict) and isinstance(signal.get("id"), str) else None
    return {"id": signal_id, "status": "received",
            "reason": "still being checked when the answer was due: `tradeconsole signals` shows its outcome"}


async def start_webhook(service: TradingService, settings: Settings, token: SecretStr | None) -> Webhook | None:
    """The webhook `[signals] webhook_port` asks for, started; None when the port is 0.
    Raises `WebhookError` when it cannot listen (`check_webhook` already made sure of a token)."""
    config = settings.signals
    if not config.webhook_port:
        return None
    if token is None:
        raise WebhookError("webhook: no token (TRADECONSOLE_WEBHOOK_TOKEN) set")
    hook = Webhook(service, token.get_secret_value(), port=config.webhook_port, allow=config.webhook_networks(),
                   rate=config.webhook_rate, burst=config.webhook_burst)
    await hook.start()
    return hook
