"""The control endpoint of a core: its public API on a Unix socket (SPEC sections 2 and 12).

`ControlServer` serves `protocol.py` with aiohttp on a socket it binds itself (mode 0600 in a
directory only its owner enters; see `paths.py`): `POST /v1/command` carries out one command as
the connecting user, `GET /v1/events` streams a snapshot then every event of the service's bus.

Who is acting: the peer's uid, read from the socket (SO_PEERCRED), names the user; the host and
SSH client address the client sends complete the actor (`ann@desk from 10.0.0.5`), which the
service writes into the audit trail and the Log line. A peer that is neither the owner nor in
`[control] allow` is answered 403 and audited, and nothing else happens. A client announcing the
read-only role may snapshot, ask the status and follow events, nothing more (no submit either).
Submitted signals are recorded with the source `ctl`; who sent them is on the Log line. The socket file is
0600; 0660 and given to the group when `allow` names one group; 0666 when it names single uids
or several groups (no one file group fits them: the peer check above is then the gate). Other
users reach it only on a configured `[control] socket`: the default runtime directory is private.

The core never waits for a console: the bus hands each event to every watcher's bounded queue
and returns. A watcher that falls `queue_limit` events behind loses its queue and gets a fresh
snapshot at that point of the stream; one that falls behind twice within `RESYNC_WINDOW` seconds
is closed (code 1013) and reconnects on its own. A malformed or unknown message gets an error
answer; nothing a client sends raises into the core. Messages are read strictly (`protocol.loads`:
a key given twice, NaN, Infinity, a number a float cannot hold and nesting too deep are bad
requests, never "last one wins"), and a body sent with a Content-Encoding is one too. Stopping,
the server refuses new commands (`refused`: the core is stopping) and first waits for those under
way, so that a `submit` batch is recorded whole and answered before the store closes.

Why one module of over 500 lines: the command endpoint and the event stream share the peer check,
the stop protocol and the per-connection actor, and each command's handler is a few lines; who
may connect (`peers`) and the watchers' queues (`watchers`) are already apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from executor.control import protocol as wire
from executor.control.client import NeedsConfirmation, SubmitResult, _refusal, core_status, submitted_line
from executor.control.paths import ControlError, check_length, default_socket_path, prepare_directory
from executor.control.peers import Peer, actor_of, socket_peer
from executor.control.watchers import OrderTexts, Outgoing, SnapshotHere, Watcher

if TYPE_CHECKING:
    from executor.config import Settings
    from executor.service import TradingService

__all__ = ["ControlError", "ControlServer", "Peer", "serve"]

log = logging.getLogger("tradeconsole.control")

PeerCredentials = Callable[[web.Request], "tuple[int, int, int]"]
MAX_REQUEST = wire.MAX_REQUEST  # bytes of any request but submit's (up to wire.MAX_SUBMIT_REQUEST)
SUBMIT_SOURCE = "ctl"  # the source of submitted signals in the store
COMMANDS_FINISH_WITHIN = 30.0  # seconds `close()` waits for commands under way (a kill switch's cancels, say)
_HTTP_STATUS = {"bad_request": 400, "unknown_command": 400, "forbidden": 403, "refused": 409,
                "needs_confirmation": 409, "internal": 500}



class ControlServer:
    def __init__(
        self,
        service: TradingService,
        path: str | os.PathLike[str],
        *,
        allow: Iterable[int | str] = (),
        owner_uid: int | None = None,
        peer_credentials: PeerCredentials | None = None,
        own_directory: bool = False,
        heartbeat: float = 1.0,
        queue_limit: int = 10_000,
    ) -> None:
        self.service = service
        self.path = Path(path)
        self.allow = tuple(allow)
        self.owner_uid = os.getuid() if owner_uid is None else owner_uid
        self._peer_credentials = peer_credentials or socket_peer
        self._own_directory = own_directory  # the default location: this program's directory
        self.heartbeat = heartbeat
        self.queue_limit = queue_limit
        self._uids: set[int] = set()
        self._gids: set[int] = set()
        self._watchers: set[Watcher] = set()
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._inode: tuple[int, int] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._beat: asyncio.Task | None = None
        self._refusals: dict[int, float] = {}
        self._closing = False
        self._running: set[asyncio.Task] = set()  # commands under way (shielded from their clients)
        self._order_texts = OrderTexts()  # each order's JSON, kept from one snapshot to the next

    # -- setting up ---------------------------------------------------------------------------

    def _resolve_allow(self) -> None:
        for entry in self.allow:
            if isinstance(entry, int):
                self._uids.add(entry)
                continue
            try:
                self._gids.add(grp.getgrnam(entry).gr_gid)
            except KeyError:
                raise ControlError(f"[control] allow: there is no group {entry!r} on this system") from None

    def _modes(self) -> tuple[int, int, int | None]:
        """(socket mode, directory mode, group) for `allow`: 0600/0700 for the owner alone."""
        others = self._uids - {self.owner_uid}
        if not others and not self._gids:
            return 0o600, 0o700, None
        if not others and len(self._gids) == 1:
            gid = next(iter(self._gids))
            return 0o660, 0o710, gid
        # Several groups or single uids cannot all be given the file: the peer uid check is the gate.
        return 0o666, 0o711, None

    async def _clear_stale(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlError(f"{self.path} exists and is not a socket: remove it or set another [control] socket")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(self.path)), timeout=2.0)
        except (ConnectionRefusedError, FileNotFoundError):
            # Left by a core that died without closing it (kill -9): nobody listens, replace it.
            log.info("replacing the stale control socket %s", self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        except (OSError, TimeoutError) as exc:
            raise ControlError(f"cannot tell whether {self.path} is in use ({exc}): remove it if no core runs "
                               f"there") from None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        raise ControlError(f"another process answers on the control socket {self.path}: stop that core first, "
                           f"or set another [control] socket")

    def _bind(self, mode: int, gid: int | None) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound = False
        try:
            sock.bind(os.fspath(self.path))
            bound = True
            # Until the chmod the file has the umask's mode; nobody is served before the peer check.
            if gid is not None:
                os.chown(self.path, -1, gid)
            os.chmod(self.path, mode)
            info = os.stat(self.path)
            self._inode = (info.st_dev, info.st_ino)
        except OSError as exc:
            sock.close()
            if bound:  # ours, half set up; a socket another process bound meanwhile is left alone
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                self._inode = None
            raise ControlError(f"cannot create the control socket {self.path}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        check_length(self.path)
        self._resolve_allow()
        mode, dir_mode, gid = self._modes()
        prepare_directory(self.path.parent, dir_mode, ours=self._own_directory, gid=gid)
        await self._clear_stale()
        sock = self._bind(mode, gid)
        app = web.Application(client_max_size=wire.MAX_SUBMIT_REQUEST)
        app.router.add_post("/v1/command", self._command)
        app.router.add_get("/v1/events", self._events)
        # auto_decompress off: a body that claims an encoding (gzip, deflate) is refused by the
        # handler with a reason, never half-decoded by the HTTP parser (which answers bare and logs
        # a traceback for a body that does not decode).
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                                     auto_decompress=False)
        try:
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            await self.close()
            raise
        self._unsubscribe = self.service.bus.subscribe(self._fan_out)
        self._beat = asyncio.create_task(self._heartbeat(), name="control-heartbeat")
        log.info("control socket: %s (mode %04o)", self.path, mode)

    async def close(self) -> None:
        """Stop serving: new commands are refused, those under way finish and are answered (a
        `submit` batch records every line it carries before the store closes), watchers are told
        the core goes away, the socket file is removed."""
        self._closing = True
        if self._running:
            _, late = await asyncio.wait(list(self._running), timeout=COMMANDS_FINISH_WITHIN)
            if late:
                log.warning("control: %d command(s) still running after %g s at shutdown", len(late),
                            COMMANDS_FINISH_WITHIN)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._beat is not None:
            self._beat.cancel()
            await asyncio.gather(self._beat, return_exceptions=True)
            self._beat = None
        async def goodbye(ws: web.WebSocketResponse) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1001, message=b"core stopping"), timeout=1.0)

        # All at once, and a client that does not read its goodbye is cut off: never a wait per client.
        await asyncio.gather(*(goodbye(ws) for ws in list(self._sockets)))
        for watcher in list(self._watchers):
            watcher.abort()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._inode is not None:
            # Only our own socket: a successor may already have replaced a stale one here.
            with contextlib.suppress(OSError):
                info = os.lstat(self.path)
                if (info.st_dev, info.st_ino) == self._inode:
                    os.unlink(self.path)
            self._inode = None

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- who may connect ----------------------------------------------------------------------

    def allowed(self, peer: Peer) -> bool:
        if peer.uid == self.owner_uid or peer.uid in self._uids:
            return True
        if not self._gids:
            return False
        if peer.gid in self._gids:
            return True
        try:
            entry = pwd.getpwuid(peer.uid)
            groups = set(os.getgrouplist(entry.pw_name, entry.pw_gid))
        except (KeyError, OSError):
            return False
        return bool(groups & self._gids)

    async def _admit(self, request: web.Request) -> Peer | web.Response:
        """The peer of `request` when it may use the socket, else the 403 answer (audited)."""
        try:
            peer = Peer(*self._peer_credentials(request))
        except Exception as exc:  # no credentials, no entry
            log.warning("control: cannot read the peer's credentials: %s", exc)
            peer = Peer(0, -1, -1)
        if self.allowed(peer):
            return peer
        await self._refused(peer, request.path)
        answer = wire.Answer.failure(None, "forbidden", f"uid {peer.uid} may not use this core's control socket")
        return web.json_response(text=answer.model_dump_json(), status=403)

    async def _refused(self, peer: Peer, path: str) -> None:
        log.warning("control: refused %s (uid %d, pid %d) on %s", peer.user, peer.uid, peer.pid, path)
        now = time.monotonic()
        if now - self._refusals.get(peer.uid, -10.0) < 1.0:
            return  # one audit row a second per uid: a refused peer cannot flood the store
        self._refusals[peer.uid] = now
        try:
            await self.service.store.record_audit(
                f"{peer.user} (uid {peer.uid})", "control_refused", path,
                {"uid": peer.uid, "gid": peer.gid, "pid": peer.pid}, self.service.clock(),
            )
        except Exception:
            log.exception("control: could not audit a refused connection")

    # -- commands -----------------------------------------------------------------------------

    async def _command(self, request: web.Request) -> web.Response:
        peer = await self._admit(request)
        if isinstance(peer, web.Response):
            return peer
        if (encoding := _encoding(request)) is not None:
            answer = wire.Answer.failure(None, "bad_request", f"Content-Encoding {encoding[:40]!r}: a request is "
                                         f"sent as it is, not encoded")
            return web.json_response(text=answer.model_dump_json(), status=400)
        try:
            raw = await request.read()
        except (ConnectionResetError, aiohttp_client_reset()):
            return web.Response(status=400)  # the client went away mid-request: nothing to answer
        except web.HTTPRequestEntityTooLarge:
            answer = wire.Answer.failure(None, "bad_request", f"request larger than {wire.MAX_SUBMIT_REQUEST} bytes")
            return web.json_response(text=answer.model_dump_json(), status=413)
        except web.RequestPayloadError as exc:  # a body that breaks off mid-chunk, say
            answer = wire.Answer.failure(None, "bad_request",
                                         f"the request body cannot be read: {exc.__cause__ or exc}")
            return web.json_response(text=answer.model_dump_json(), status=400)
        if len(raw) > MAX_REQUEST and not _submits(raw):
            answer = wire.Answer.failure(None, "bad_request", f"request larger than {MAX_REQUEST} bytes (only "
                                         f"submit may send up to {wire.MAX_SUBMIT_REQUEST})")
            return web.json_response(text=answer.model_dump_json(), status=413)
        answer = await self.dispatch(raw, peer)
        status = 200 if answer.ok else _HTTP_STATUS[answer.error.kind if answer.error else "internal"]
        return web.json_response(text=answer.model_dump_json(), status=status)

    async def dispatch(self, raw: bytes | str, peer: Peer) -> wire.Answer:
        """The answer to one request from `peer`; never raises."""
        try:
            request, args = wire.parse_request(raw)
        except wire.BadMessage as exc:
            return exc.answer
        command = wire.COMMANDS[request.command]
        if request.client.role == "read_only" and not command.read_only:
            return wire.Answer.failure(request.id, "forbidden",
                                       f"{request.command}: a read-only client cannot command the core")
        if self._closing:
            return wire.Answer.failure(request.id, "refused", f"{request.command}: the core is stopping")
        actor = actor_of(peer, request.client)
        from executor.exchanges.base import ExchangeError
        from executor.executor import ExecutionError

        work = asyncio.ensure_future(self._run(request.command, args, actor))
        self._running.add(work)
        work.add_done_callback(self._running.discard)
        try:
            # Shielded: a client that goes away mid-command does not cut the core's work short,
            # and `close()` waits for it, so the store it writes to is still open.
            result = await asyncio.shield(work)
        except (ExecutionError, ExchangeError) as exc:
            refusal = _refusal(exc)
            if isinstance(refusal, NeedsConfirmation):
                return wire.Answer.failure(request.id, "needs_confirmation", str(refusal), refusal.subject)
            return wire.Answer.failure(request.id, "refused", str(refusal))
        except ArithmeticError as exc:  # a number the wire admits and the arithmetic cannot hold (1e999999)
            return wire.Answer.failure(request.id, "bad_request", f"{request.command}: a number out of range ({exc})")
        except Exception as exc:
            log.exception("control: %s by %s failed", request.command, actor)
            return wire.Answer.failure(request.id, "internal", f"{request.command} failed in the core: {exc}")
        data = None if command.result is None or result is None else wire.encode(result, command.result)
        return wire.Answer(id=request.id, ok=True, result=data)

    async def _run(self, command: str, args: Any, actor: str) -> Any:
        service = self.service
        if command == "approve":
            return await service.approve(args.signal_id, confirm=args.confirm, actor=actor)
        if command == "reject":
            return await service.reject(args.signal_id, reason=args.reason, actor=actor)
        if command == "check_signal_amend":
            record = await service._pending(args.signal_id)
            return service.check_signal_amend(record, price=args.price, amount=args.amount)
        if command == "amend_signal":
            await service.amend_signal(args.signal_id, price=args.price, amount=args.amount, confirm=args.confirm,
                                       actor=actor)
            return None
        if command == "check_order_amend":
            return await service.check_order_amend(args.coid, price=args.price, amount=args.amount)
        if command == "amend_order":
            await service.amend_order(args.coid, price=args.price, amount=args.amount, confirm=args.confirm,
                                      actor=actor)
            return None
        if command == "cancel_order":
            await service.cancel_order(args.coid, actor=actor)
            return None
        if command == "pause":
            return await service.pause(actor=actor)
        if command == "resume":
            return await service.resume(actor=actor)
        if command == "kill_switch":
            return await service.kill_switch(actor=actor)
        if command == "snapshot":
            return await service.snapshot(history=args.history)
        if command == "status":
            return await core_status(service)
        if command == "submit":
            return await self._submit(args, actor)
        if command == "stop":
            service._writable()
            await service._audit("stop", None, None, actor)
            service.trace("core stop requested: intake stops, open orders stay", actor=actor, level="warning")
            service.request_stop()
            return None
        raise AssertionError(f"command {command} has no handler")  # COMMANDS and this list disagree

    async def _submit(self, args: wire.SubmitArgs, actor: str) -> list[SubmitResult]:
        service = self.service
        cut = set(args.too_long)
        lines = [submitted_line(text, i in cut) for i, text in enumerate(args.lines)]
        records = await service.submit(lines, source=SUBMIT_SOURCE)  # a Line: recorded invalid, unparsed
        results = [SubmitResult(r.id, r.status, r.reason) for r in records]
        if results:
            counts: dict[str, int] = {}
            for result in results:
                counts[result.status.value] = counts.get(result.status.value, 0) + 1
            words = ", ".join(f"{n} {status}" for status, n in counts.items())
            service.trace(f"{len(results)} signal{'s' if len(results) != 1 else ''} submitted over the control "
                          f"socket: {words}", actor=actor)
        return results

    # -- the event stream ---------------------------------------------------------------------

    def _fan_out(self, event: Any) -> None:
        if not self._watchers:
            return
        item = Outgoing(lambda: wire.event_text(event))
        for watcher in self._watchers:
            watcher.offer(item)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            if not self._watchers:
                continue
            try:
                status = await core_status(self.service)
            except Exception:
                log.exception("control: the status for the heartbeat failed")
                continue
            item = Outgoing(lambda status=status: wire.status_text(status))
            for watcher in list(self._watchers):
                watcher.offer(item)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        peer = await self._admit(request)
        if isinstance(peer, web.Response):
            return peer
        try:
            history = max(0, min(int(request.query.get("history", "200")), 100_000))
        except ValueError:
            history = 200
        ws = web.WebSocketResponse(max_msg_size=MAX_REQUEST, compress=False, heartbeat=None)
        try:
            await ws.prepare(request)
        except (ConnectionResetError, aiohttp_client_reset()):
            return ws  # the client went away during the handshake
        watcher = Watcher(self.queue_limit, history)
        transport = request.transport
        if transport is not None:
            watcher.abort = transport.abort
        self._watchers.add(watcher)
        self._sockets.add(ws)
        sender = asyncio.create_task(self._send(ws, watcher), name="control-events")
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._client_message(ws, watcher, message.data)
                elif message.type is WSMsgType.BINARY:
                    await self._client_message(ws, watcher, None)  # answered as a bad message
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            self._watchers.discard(watcher)
            self._sockets.discard(ws)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    async def _client_message(self, ws: web.WebSocketResponse, watcher: Watcher, text: str | None) -> None:
        try:
            if text is None:
                raise ValueError("binary message: the event stream takes JSON text messages only")
            data = wire.loads(text)
            if not isinstance(data, dict) or data.get("v") != wire.VERSION or isinstance(data.get("v"), bool) \
                    or data.get("type") != "resnapshot":
                raise ValueError("expected {\"v\": 1, \"type\": \"resnapshot\", \"history\": N}")
            history = data.get("history", watcher.history)
            if isinstance(history, bool) or not isinstance(history, int) or not 0 <= history <= 100_000:
                raise ValueError(f"history must be a whole number from 0 to 100000 (got {json.dumps(history)[:24]})")
        except ValueError as exc:
            error = wire.ErrorInfo(kind="bad_request", message=str(exc))
            with contextlib.suppress(Exception):
                await ws.send_str(wire.dumps({"v": wire.VERSION, "type": "error", "error": error.model_dump()}))
            return
        watcher.ask_snapshot(history)

    async def _send(self, ws: web.WebSocketResponse, watcher: Watcher) -> None:
        try:
            while not ws.closed:
                await watcher.wake.wait()
                watcher.wake.clear()
                while watcher.items and not ws.closed:
                    if watcher.too_slow:
                        await ws.close(code=1013, message=b"too slow: events were dropped, reconnect")
                        return
                    item = watcher.items.popleft()
                    if isinstance(item, SnapshotHere):
                        # Events published while the snapshot is read queue up behind this point.
                        if item.reason == "resync":
                            watcher.resyncing = False
                        snapshot = await self.service.snapshot(history=item.history)
                        orders = self._order_texts(snapshot.orders)
                        await ws.send_str(wire.snapshot_text(snapshot, self.service.markets, item.reason, orders))
                        if item.reason == "connect":
                            await ws.send_str(wire.status_text(await core_status(self.service)))
                    else:
                        await ws.send_str(item.text())
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            if not self._closing:
                log.exception("control: the event stream of a client failed")
            with contextlib.suppress(Exception):
                await ws.close(code=1011, message=b"internal error")


async def serve(service: TradingService, settings: Settings, db: str | os.PathLike[str]) -> ControlServer:
    """Start the control endpoint of `service` (the core on store `db`) where `[control]` says."""
    path = default_socket_path(db, settings)
    server = ControlServer(service, path, allow=settings.control.allow, own_directory=not settings.control.socket)
    await server.start()
    return server


def _encoding(request: web.Request) -> str | None:
    """The Content-Encoding a request claims, None when none (or `identity`)."""
    encoding = request.headers.get("Content-Encoding", "").strip()
    return None if encoding.lower() in ("", "identity") else encoding


def _submits(raw: bytes) -> bool:
    """Whether a request larger than `MAX_REQUEST` is a submit, the one command that may be."""
    try:
        data = wire.loads(raw)
    except ValueError:  # UnicodeDecodeError, nesting too deep, ...
        return False
    return isinstance(data, dict) and data.get("command") == "submit"


def aiohttp_client_reset() -> type[BaseException]:
    """aiohttp's own "connection reset" (a ConnectionResetError subclass in 3.10+; there for older)."""
    import aiohttp

    return getattr(aiohttp, "ClientConnectionResetError", ConnectionResetError)
