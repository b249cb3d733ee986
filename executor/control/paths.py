"""Where a core's control socket lives, and the checks on its directory (SPEC section 12).

One store, one socket: the default path is derived from the store's absolute path, so `attach --db
PATH` and `ctl --db PATH` find the core that holds that store without being told more. The
default lives in the user's runtime directory (`$XDG_RUNTIME_DIR`, private to the user and
cleaned at logout), or, without one, in a private directory of the user's cache directory; never
in a shared /tmp. `[control] socket` overrides it (needed when `[control] allow` lets other users
in: their runtime directory is not this one, and this one is closed to them).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from executor.config import Settings

__all__ = ["MAX_SOCKET_PATH", "ControlError", "check_length", "default_socket_path",
           "prepare_directory", "store_key"]

APP_DIR = "tradeconsole"
MAX_SOCKET_PATH = 100  # bytes; sun_path holds 108 on Linux, 104 on macOS


class ControlError(Exception):
    """The control endpoint cannot be set up as configured; the message says why and what to do."""


def store_key(db_path: str | os.PathLike[str]) -> str:
    """12 hex digits naming a store: the sha256 of its absolute, symlink-free path."""
    absolute = Path(db_path).expanduser().resolve()
    return hashlib.sha256(os.fsencode(absolute)).hexdigest()[:12]


def default_socket_path(db_path: str | os.PathLike[str], settings: Settings | None = None,
                        *, env: Mapping[str, str] | None = None) -> Path:
    """The socket of the core on `db_path`: `[control] socket` when set, else
    `$XDG_RUNTIME_DIR/tradeconsole/<key>.sock`, else `<cache dir>/tradeconsole/run-<uid>/<key>.sock`."""
    if settings is not None and settings.control.socket:
        return Path(settings.control.socket).expanduser()
    environ = os.environ if env is None else env
    name = f"{store_key(db_path)}.sock"
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):  # the XDG spec: a relative value is to be ignored
        return Path(runtime) / APP_DIR / name
    cache = environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and os.path.isabs(cache) else Path(environ.get("HOME") or Path.home()) / ".cache"
    return base.expanduser() / APP_DIR / f"run-{os.getuid()}" / name


def check_length(path: Path) -> None:
    if len(os.fsencode(path)) >= MAX_SOCKET_PATH:
        raise ControlError(
            f"control socket path {path} is {len(os.fsencode(path))} bytes, over the {MAX_SOCKET_PATH}-byte limit "
            f"of a Unix socket path: set a shorter [control] socket (env TRADECONSOLE_CONTROL__SOCKET)"
        )


def prepare_directory(directory: Path, mode: int, *, ours: bool, gid: int | None = None) -> None:
    """Make sure `directory` exists, belongs to this user and is writable by nobody else.

    Created with `mode` when missing. An existing one is refused when another user owns it or it
    is group- or world-writable (someone else could swap the socket); when `ours` (the default
    location, a directory this program owns by construction) its mode is also set to `mode`.
    """
    created = False
    if not directory.exists():
        try:
            directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            directory.mkdir(mode=mode)
            created = True
        except FileExistsError:
            pass  # another process made it meanwhile: checked below like any existing one
        except OSError as exc:
            raise ControlError(f"cannot create the control socket directory {directory}: "
                                   f"{exc.strerror or exc}") from None
    try:
        info = os.stat(directory)
    except OSError as exc:
        raise ControlError(f"control socket directory {directory}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ControlError(f"control socket directory {directory} is not a directory")
    if info.st_uid != os.getuid():
        raise ControlError(
            f"control socket directory {directory} belongs to uid {info.st_uid}, not to this user "
            f"(uid {os.getuid()}): refusing to put the socket there; set [control] socket to a path in a "
            f"directory of yours"
        )
    if not created and info.st_mode & 0o022:
        raise ControlError(
            f"control socket directory {directory} is writable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"refusing to put the socket there; chmod go-w it or set [control] socket elsewhere"
        )
    try:
        if gid is not None and (created or ours) and info.st_gid != gid:
            os.chown(directory, -1, gid)
        if (created or ours) and stat.S_IMODE(info.st_mode) != mode:
            os.chmod(directory, mode)  # mkdir's mode went through the umask
    except OSError as exc:
        raise ControlError(f"cannot set the mode of {directory}: {exc.strerror or exc}") from None
