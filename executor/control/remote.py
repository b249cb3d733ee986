"""`RemoteClient`: a `CoreClient` for a core in another process, over its control socket.

Commands are `POST /v1/command` requests (one connection each, so a restarted core is never
asked over a dead keep-alive connection); events come over the `GET /v1/events` WebSocket and are
published on `bus` in the order the core published them. `ctl` uses the commands alone, without
`start()`; a console calls `start()`, which waits for the core's first snapshot.

Liveness: the core sends its status every second; nothing for `liveness` seconds, or a dropped
connection, and the client publishes `ConnectionChanged(False, "core disconnected, reconnecting…")`
and reconnects with a capped exponential backoff. Once back it publishes `ConnectionChanged(True)`:
the console then reloads with `snapshot()`, whose answer sits at its place in the event stream
(events published after it come after it). The same `ConnectionChanged(True)` follows a resync,
when the core had to drop events this client was too slow to take.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import socket
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired

from pydantic import ValidationError
from typing_extensions import TypedDict

from executor.control import protocol as wire
from executor.control.client import (
    ConnectionChanged,
    CoreClient,
    CoreStatus,
    NeedsConfirmation,
    Refused,
    SubmitResult,
)
from executor.control.transport import ConnectError, Disconnected, HandshakeError, WebSocket, request
from executor.events import EventBus, Snapshot
from executor.models import MarketInfo

if TYPE_CHECKING:
    from executor.executor import AmendCheck, KillSwitchResult

__all__ = ["CoreUnreachable", "Forbidden", "ProtocolError", "RemoteClient"]

log = logging.getLogger("tradeconsole.control.remote")


class CoreUnreachable(Refused):
    """No core answers on `path`; `reason` says what happened ("no socket there", "refused")."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"no core answers on {self.path}: {reason}")


class Forbidden(Refused):
    """The core does not take this command from this client (read-only role, or not allowed)."""


class ProtocolError(Refused):
    """The core did not understand the request, or the client did not understand the answer."""


class BadRequest(ProtocolError):
    """The core could not take the request as sent (a bad argument): bad usage, not a refusal."""


ANSWER_WITHIN = 20.0  # seconds a command waits for the core's answer
KILL_SWITCH_WITHIN = 120.0  # the kill switch answers once its cancels are done (or given up)
SUBMIT_WITHIN_PER_LINE = 0.1  # a submit waits this much longer a line (each may ask the venue a price)
YIELD_AFTER = 0.005  # seconds of buffered messages handled before the loop gets a turn
CONNECT_WITHIN = 5.0  # seconds a connection to the socket may take


def _reason(exc: BaseException, *, sent: bool = False) -> str:
    if isinstance(exc, ConnectError):
        exc, sent = exc.os_error, False
    if isinstance(exc, FileNotFoundError):
        return "no socket there (is a core running on this store?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (the socket of a core that is gone)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    text = "no answer in time" if isinstance(exc, TimeoutError) else (
        "the core closed the connection" if isinstance(exc, Disconnected)
        else str(exc) or type(exc).__name__)
    return text + ("; the command may have been carried out: check before sending it again" if sent else "")


class _SnapshotMessage(TypedDict):
    """A snapshot message as `protocol.snapshot_text` writes it (its `reason` is not read here)."""

    v: int
    type: str
    data: Snapshot
    markets: NotRequired[dict[str, MarketInfo] | None]


SNAPSHOT_HEAD = f'{{"v":{wire.VERSION},"type":"snapshot",'  # how `protocol.snapshot_text` begins


def _read_snapshot(message: str) -> tuple[Snapshot, dict[str, MarketInfo]]:
    """The snapshot and markets of the stream's first message. One written by `snapshot_text`
    is parsed and validated in one pass of pydantic's JSON decoder (10,000 orders: no dicts in
    between); any other message is read as JSON first, and what is wrong with it said as before."""
    if message.startswith(SNAPSHOT_HEAD):
        with contextlib.suppress(ValidationError):
            decoded = wire.adapter(_SnapshotMessage).validate_json(message)
            return decoded["data"], decoded.get("markets") or {}
    data = json.loads(message)
    if data.get("v") != wire.VERSION or data.get("type") != "snapshot":
        raise ProtocolError(f"the core's first message is not a version {wire.VERSION} snapshot")
    return wire.decode(Snapshot, data["data"]), wire.decode_markets(data.get("markets"))


def _client_info(read_only: bool, env: Mapping[str, str]) -> dict[str, str]:
    host = re.sub(r"[^A-Za-z0-9._-]", "", socket.gethostname())[:253]
    ssh = env.get("SSH_CONNECTION", "").split()
    address = re.sub(r"[^0-9A-Za-z:.%_-]", "", ssh[0])[:64] if ssh else ""
    return {"host": host, "ssh": address, "role": "read_only" if read_only else "operator"}


class RemoteClient(CoreClient):
    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, history: int = 200,
                 env: Mapping[str, str] | None = None, liveness: float = 5.0, max_backoff: float = 2.0,
                 connect_timeout: float = 10.0, answer_within: float = ANSWER_WITHIN) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.bus = EventBus()
        self.read_only = read_only
        self.markets = {}
        self.connected = False
        self.liveness = liveness
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.answer_within = answer_within  # seconds a command waits for the core's answer
        self._client = _client_info(read_only, os.environ if env is None else env)
        self._history = history
        self._ws: WebSocket | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self._ids = itertools.count(1)
        self._status: CoreStatus | None = None
        self._waiters: deque[asyncio.Future[Snapshot]] = deque()
        self._fresh: tuple[int, Snapshot] | None = None  # the last stream snapshot, while no event followed it
        self._heard = 0.0  # loop time of the stream's last message
        self._opened: WebSocket | None = None  # by `open_stream`, not read yet

    # -- connection ---------------------------------------------------------------------------

    async def open_stream(self) -> None:
        """Open the event stream without reading it yet (CoreUnreachable or Forbidden when no core
        takes it): the core builds and sends its snapshot meanwhile, and `start()` reads it."""
        if self._task is None and (self._opened is None or self._opened.closed):
            self._opened = await self._handshake()

    async def _handshake(self) -> WebSocket:
        target = f"/v1/events?history={int(self._history)}&role={self._client['role']}"
        try:
            return await WebSocket.connect(self.path, target, connect_within=CONNECT_WITHIN)
        except HandshakeError as exc:
            if exc.status == 403:
                raise Forbidden(f"{self.path}: this user may not use the core's control socket") from None
            raise CoreUnreachable(self.path, f"the event stream was refused (HTTP {exc.status})") from None
        except (OSError, TimeoutError) as exc:
            raise CoreUnreachable(self.path, _reason(exc)) from None

    async def _connect(self) -> WebSocket:
        """Open the event stream (unless `open_stream` did) and take its first snapshot;
        CoreUnreachable when nothing answers."""
        ws, self._opened = self._opened, None
        if ws is None or ws.closed:
            ws = await self._handshake()
        try:
            message = await asyncio.wait_for(ws.receive(), self.connect_timeout)
            if message is None:
                raise CoreUnreachable(self.path, "the core closed the event stream before its snapshot")
            try:
                snapshot, self.markets = _read_snapshot(message)
            except ProtocolError as exc:
                raise ProtocolError(f"{self.path}: {exc}") from None
        except TimeoutError:
            await ws.close()
            raise CoreUnreachable(self.path, f"no snapshot within {self.connect_timeout:g} s") from None
        except (ValueError, KeyError, ValidationError) as exc:
            await ws.close()
            raise ProtocolError(f"{self.path}: the core's snapshot is not understood: {exc}") from None
        except BaseException:
            await ws.close()
            raise
        self._fresh = (self._history, snapshot)
        self._ws = ws
        self.connected = True
        return ws

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        ws = await self._connect()
        self._task = asyncio.create_task(self._follow(ws), name=f"control-client:{self.path.name}")

    async def _follow(self, ws: WebSocket) -> None:
        while not self._closing:
            await self._read(ws)
            if self._closing:
                return
            self.connected, self._ws, self._fresh = False, None, None
            self._fail_waiters("the core went away before the snapshot came")
            self.bus.publish(ConnectionChanged(False, "core disconnected, reconnecting…"))
            ws = await self._reconnect()
            self.bus.publish(ConnectionChanged(True, f"core reconnected at {self.where}"))

    async def _reconnect(self) -> WebSocket:
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            try:
                return await self._connect()
            except Refused as exc:  # not there yet, or not yet ours again: keep trying
                log.debug("reconnecting to %s: %s", self.path, exc)
            except Exception:  # whatever it is, the console waits for its core: keep trying
                log.exception("reconnecting to %s failed", self.path)
            delay = min(delay * 2, self.max_backoff)

    async def _read(self, ws: WebSocket) -> None:
        """Publish what the stream brings until it ends (closed, broken, or silent too long).

        Messages are read without a timeout each (a timer per message costs about as much as
        reading it): this watches for silence instead, waking once per `liveness` seconds."""
        loop = asyncio.get_running_loop()
        self._heard = loop.time()
        receiving = asyncio.ensure_future(self._receive(ws))
        try:
            while not receiving.done():
                # A snapshot asked for may take the core a while to build: more patience meanwhile.
                patience = self.liveness * (3 if self._waiters else 1)
                silent = loop.time() - self._heard
                if silent >= patience:
                    raise TimeoutError
                await asyncio.wait({receiving}, timeout=patience - silent)
            receiving.result()
        except TimeoutError:
            log.warning("no word from the core at %s for %g s: reconnecting", self.path, self.liveness)
        except OSError as exc:
            log.info("the event stream from %s broke: %s", self.path, exc)
        except Exception:
            log.exception("reading the event stream from %s failed", self.path)
        finally:
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _receive(self, ws: WebSocket) -> None:
        """Handle messages until the stream ends. Buffered messages are read without a pause, so
        a burst yields to the loop every `YIELD_AFTER` seconds: the console draws meanwhile."""
        loop = asyncio.get_running_loop()
        ran = loop.time()
        while True:
            message = await ws.receive()
            self._heard = now = loop.time()
            if message is None:
                if ws.close_reason:
                    log.info("the core closed the event stream: %s", ws.close_reason)
                return
            if self._handle(message) or now - ran >= YIELD_AFTER:
                await asyncio.sleep(0)  # a snapshot's waiter applies it before later events, or a pause
                ran = loop.time()

    def _handle(self, text: str) -> bool:
        """One stream message; True when it answered a snapshot request."""
        try:
            if text.startswith(wire.EVENT_HEAD):  # most of the stream: decoded in one pass
                event = wire.decode_event_text(text)
                self._fresh = None
                self.bus.publish(event)
                return False
            data = json.loads(text)
            kind = data.get("type")
            if kind == "event":
                event = wire.decode_event(data)
                self._fresh = None
                self.bus.publish(event)
            elif kind == "status":
                self._status = wire.decode(CoreStatus, data["data"])
            elif kind == "snapshot":
                return self._snapshot_arrived(wire.decode(Snapshot, data["data"]), data.get("reason"))
            elif kind == "error":
                log.warning("the core says: %s", (data.get("error") or {}).get("message"))
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            log.warning("a message from the core was not understood and is skipped: %s", exc)
        return False

    def _snapshot_arrived(self, snapshot: Snapshot, reason: str | None) -> bool:
        if reason == "resync":
            # The core dropped events this client was too slow for: this snapshot replaces them.
            if self._waiters:
                self._resolve_waiters(snapshot, every=True)
                return True
            self._fresh = (self._history, snapshot)
            self.bus.publish(ConnectionChanged(True, "events fell behind: reloading"))
            return False
        return self._resolve_waiters(snapshot, every=False)  # a reply nobody waits for any more: dropped

    def _resolve_waiters(self, snapshot: Snapshot, *, every: bool) -> bool:
        resolved = False
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(snapshot)
                resolved = True
                if not every:
                    break
        return resolved

    def _fail_waiters(self, reason: str) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(CoreUnreachable(self.path, reason))

    # -- the CoreClient API -------------------------------------------------------------------

    async def snapshot(self, *, history: int = 200) -> Snapshot:
        fresh, self._fresh = self._fresh, None
        if fresh is not None and fresh[0] == history:
            return fresh[1]
        ws = self._ws
        if self._task is None:
            return await self._call("snapshot", history=history)  # no stream (ctl): a one-off
        if ws is None or ws.closed or not self.connected:
            raise CoreUnreachable(self.path, "core disconnected, reconnecting…")
        waiter: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await ws.send_str(wire.dumps({"v": wire.VERSION, "type": "resnapshot", "history": history}))
        except OSError as exc:
            raise CoreUnreachable(self.path, _reason(exc)) from None
        return await waiter

    def rate_limit(self) -> str | None:
        return self._status.rate_limit if self._status is not None and self.connected else None

    async def status(self) -> CoreStatus:
        return await self._call("status")

    async def approve(self, signal_id: str, *, confirm: bool = False) -> None:
        await self._call("approve", signal_id=signal_id, confirm=confirm)

    async def reject(self, signal_id: str, *, reason: str = "") -> None:
        await self._call("reject", signal_id=signal_id, reason=reason)

    async def check_signal_amend(self, signal_id: str, *, price: Decimal | None = None,
                                 amount: Decimal | None = None) -> AmendCheck:
        return await self._call("check_signal_amend", signal_id=signal_id, price=price, amount=amount)

    async def amend_signal(self, signal_id: str, *, price: Decimal | None = None, amount: Decimal | None = None,
                           confirm: bool = False) -> None:
        await self._call("amend_signal", signal_id=signal_id, price=price, amount=amount, confirm=confirm)

    async def check_order_amend(self, coid: str, *, price: Decimal | None = None,
                                amount: Decimal | None = None) -> AmendCheck:
        return await self._call("check_order_amend", coid=coid, price=price, amount=amount)

    async def amend_order(self, coid: str, *, price: Decimal | None = None, amount: Decimal | None = None,
                          confirm: bool = False) -> None:
        await self._call("amend_order", coid=coid, price=price, amount=amount, confirm=confirm)

    async def cancel_order(self, coid: str) -> None:
        await self._call("cancel_order", coid=coid)

    async def pause(self) -> None:
        await self._call("pause")

    async def resume(self) -> None:
        await self._call("resume")

    async def kill_switch(self) -> KillSwitchResult:
        return await self._call("kill_switch")

    async def submit(self, lines: Sequence[str]) -> list[SubmitResult]:
        """Sent in `wire.batches`, one request each, in order (nothing sent twice: when one fails, the
        batches before it were recorded). No line at all still asks the core (it answers [])."""
        results: list[SubmitResult] = []
        for batch in list(wire.batches(lines)) or [[]]:
            results.extend(await self._call("submit", **wire.submit_args(batch)))
        return results

    async def stop_core(self) -> None:
        await self._call("stop")

    async def close(self) -> None:
        """Detach: the core goes on."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for ws in (self._ws, self._opened):
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
        self._ws = self._opened = None
        self._fail_waiters("the client was closed")
        self.connected = False

    async def _call(self, command: str, **args: Any) -> Any:
        """Send one command; its decoded result, or the core's refusal raised."""
        body = {
            "v": wire.VERSION,
            "id": next(self._ids),
            "command": command,
            "args": {k: str(v) if isinstance(v, Decimal) else v for k, v in args.items() if v is not None},
            "client": self._client,
        }
        # A core that accepts the connection and never answers (stopped, wedged) is no core: after
        # `ANSWER_WITHIN` seconds (the kill switch may take its cancels' time) the call gives up.
        wait = max(KILL_SWITCH_WITHIN, self.answer_within) if command == "kill_switch" else self.answer_within
        if command == "submit":
            wait += SUBMIT_WITHIN_PER_LINE * len(args["lines"])
        try:
            status, raw = await request(self.path, "POST", "/v1/command", wire.dumps(body).encode(),
                                        connect_within=CONNECT_WITHIN, answer_within=wait)
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                raise CoreUnreachable(self.path, f"no answer to {command} within {wait:g} s (sent; the core may "
                                      f"still carry it out)") from None
            raise CoreUnreachable(self.path, _reason(exc, sent=True)) from None
        text = raw.decode("utf-8", "replace")
        try:
            answer = wire.Answer.model_validate_json(text)
        except ValidationError:
            raise ProtocolError(f"the core's answer to {command} is not understood (HTTP {status}): "
                                f"{text[:200]}") from None
        if answer.ok:
            result_type = wire.COMMANDS[command].result
            return None if result_type is None or answer.result is None else wire.decode(result_type, answer.result)
        error = answer.error
        if error is None:
            raise ProtocolError(f"the core refused {command} without saying why")
        if error.kind == "needs_confirmation":
            raise NeedsConfirmation(error.message, error.subject)
        if error.kind == "refused":
            raise Refused(error.message)
        if error.kind == "forbidden":
            raise Forbidden(error.message)
        if error.kind in ("bad_request", "unknown_command"):
            raise BadRequest(f"{error.kind}: {error.message}")
        raise ProtocolError(f"{error.kind}: {error.message}")
