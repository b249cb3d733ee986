"""HTTP/1.1 requests and a WebSocket over the core's Unix socket, on asyncio streams: what
`RemoteClient` speaks of the control protocol, and nothing more.

An attached console imports this instead of aiohttp's client, whose import builds TLS contexts
(the system's certificates read twice) that a Unix socket never uses: a tenth of a second or
more of every `attach` and `ctl`. A request is one connection (`Connection: close`), its answer
read whole (Content-Length, chunked, or up to the end). The WebSocket is RFC 6455 as the core's
aiohttp server speaks it: text messages (fragments joined), the client's frames masked, pings
answered, the closing handshake; no extensions, no compression.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os

__all__ = ["ConnectError", "Disconnected", "HandshakeError", "WebSocket", "request"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
READ_LIMIT = 1 << 20  # bytes a stream buffers before it pauses the socket (a snapshot is megabytes)
CLOSE_WITHIN = 2.0  # seconds `close()` waits for the core's closing frame


class ConnectError(OSError):
    """Nothing took the connection (nothing was sent); `os_error` says why."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(os_error.errno, os_error.strerror or str(os_error))
        self.os_error = os_error


class Disconnected(ConnectionError):
    """The core closed the connection before its answer was complete."""


class HandshakeError(Exception):
    """The core did not take the WebSocket upgrade; `status` is its HTTP status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


async def _open(path: str | os.PathLike[str], timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(asyncio.open_unix_connection(os.fspath(path), limit=READ_LIMIT), timeout)
    except OSError as exc:
        raise ConnectError(exc) from None


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status and the headers (names in lower case) of an HTTP answer."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        raise Disconnected("the core closed the connection") from None
    except asyncio.LimitOverrunError:
        raise Disconnected("an answer with headers too large") from None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise Disconnected(f"not an HTTP answer: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            return b"".join(chunks)
        if "content-length" in headers:
            return await reader.readexactly(int(headers["content-length"]))
        return await reader.read()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        raise Disconnected("the core closed the connection mid-answer") from None


async def request(
    path: str | os.PathLike[str], method: str, target: str, body: bytes, *, connect_within: float, answer_within: float
) -> tuple[int, bytes]:
    """One request, its (status, body): `ConnectError` when nothing takes the connection, TimeoutError
    when it or the answer takes longer than allowed, `Disconnected` (or OSError) when it breaks off."""
    reader, writer = await _open(path, connect_within)
    try:
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: tradeconsole\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        async with asyncio.timeout(answer_within):
            await writer.drain()
            status, headers = await _head(reader)
            return status, await _body(reader, headers)
    finally:
        writer.close()


def _masked(data: bytes, mask: bytes) -> bytes:
    if not data:
        return data
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame."""
    n = len(payload)
    if n < 126:
        length = bytes([0x80 | n])
    elif n < 1 << 16:
        length = bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return bytes([0x80 | opcode]) + length + mask + _masked(payload, mask)


class WebSocket:
    """The client end of one WebSocket: `receive()` text messages until None (closed)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._sent_close = False
        self._got_close = False
        self.close_code: int | None = None
        self.close_reason = ""

    @classmethod
    async def connect(cls, path: str | os.PathLike[str], target: str, *, connect_within: float) -> WebSocket:
        """The upgraded connection: `ConnectError` when nothing takes it, `HandshakeError` when refused."""
        reader, writer = await _open(path, connect_within)
        try:
            key = base64.b64encode(os.urandom(16))
            writer.write(
                b"GET " + target.encode() + b" HTTP/1.1\r\nHost: tradeconsole\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            await writer.drain()
            status, headers = await _head(reader)
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
            if status != 101 or headers.get("sec-websocket-accept") != accept:
                raise HandshakeError(status)
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._sent_close or self._got_close or self._writer.is_closing()

    async def receive(self) -> str | None:
        """The next text message; None once the stream has ended (`close_code`, `close_reason` say how
        when the core closed it)."""
        parts: list[bytes] = []
        read = self._reader.readexactly
        try:
            while True:
                head = await read(2)
                final, opcode, n = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
                if n == 126:
                    n = int.from_bytes(await read(2), "big")
                elif n == 127:
                    n = int.from_bytes(await read(8), "big")
                mask = await read(4) if head[1] & 0x80 else b""
                payload = await read(n) if n else b""
                if mask:
                    payload = _masked(payload, mask)
                if opcode == _CLOSE:
                    self._got_close = True
                    if len(payload) >= 2:
                        self.close_code = int.from_bytes(payload[:2], "big")
                        self.close_reason = payload[2:].decode("utf-8", "replace")
                    await self._send_close(self.close_code or 1000)
                    self._writer.close()
                    return None
                if opcode == _PING:
                    self._writer.write(_frame(_PONG, payload))
                elif opcode in (0, _TEXT, _BINARY):
                    parts.append(payload)
                    if final:
                        return b"".join(parts).decode()
                elif opcode != _PONG:
                    raise ConnectionError(f"a frame of unknown opcode {opcode}")
        except (asyncio.IncompleteReadError, ConnectionError):
            self._got_close = True
            self._writer.close()
            return None

    async def send_str(self, text: str) -> None:
        if self.closed:
            raise ConnectionResetError("the event stream is closed")
        self._writer.write(_frame(_TEXT, text.encode()))
        await self._writer.drain()

    async def _send_close(self, code: int) -> None:
        if not self._sent_close and not self._writer.is_closing():
            self._sent_close = True
            self._writer.write(_frame(_CLOSE, code.to_bytes(2, "big")))
            try:
                await self._writer.drain()
            except ConnectionError:
                pass

    async def close(self, code: int = 1000) -> None:
        """The closing handshake: the core's closing frame awaited `CLOSE_WITHIN` seconds at most
        (whatever it still sends meanwhile is dropped), then the connection closed. Not while
        another task is in `receive()`."""
        if self._writer.is_closing():
            return
        await self._send_close(code)
        if not self._got_close:
            try:
                async with asyncio.timeout(CLOSE_WITHIN):
                    while await self.receive() is not None:
                        pass
            except TimeoutError:
                pass
        self._writer.close()
