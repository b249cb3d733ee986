"""Who is at the other end of the control socket: the peer's process, user and group, read from
the socket itself (SO_PEERCRED), and the actor name the audit trail and the Log give it."""

from __future__ import annotations

import pwd
import socket
import struct
from dataclasses import dataclass

from aiohttp import web

from executor.control import protocol as wire


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return f"uid{self.uid}"


def socket_peer(request: web.Request) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of the request's Unix socket."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        raise OSError("no socket under this request")
    size = struct.calcsize("3i")
    return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))


def actor_of(peer: Peer, client: wire.ClientInfo) -> str:
    """`user@host`, plus ` from <ip>` when the client came in over SSH."""
    actor = f"{peer.user}@{client.host or socket.gethostname()}"
    return actor + (f" from {client.ssh}" if client.ssh else "")
