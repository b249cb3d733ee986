"""One writer per store (SPEC section 9): the exclusive lock a core holds for its lifetime.

The lock is an OS lock, `flock(LOCK_EX | LOCK_NB)`, on `<store path>.lock`, a file next to the
store. The file descriptor stays open for as long as the core runs, so the kernel drops the lock
when the process ends, however it ends (kill -9 included): a dead process never holds a store, and
the next core simply takes the lock and rewrites the file. The file's content (JSON: pid, host,
start time) only says who holds it, for the message a refused core prints; the lock itself is the
truth. The file is never deleted (deleting it would let two processes lock two different inodes
under the same name).

    lock = StoreLock.acquire(db_path)        # before the store is opened for writing
    try:
        ...
    finally:
        lock.release()

or `with StoreLock.acquire(db_path): ...`. A store held by another process raises `StoreLocked`
with the holder; a path that cannot hold a store raises `StorePathError`. `check_store` validates a
store path (before a core opens it, or before an export or `inspect` reads it) with one-line
problems. Readers (`inspect`, the exports) never take the lock.

Never imports console or textual.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sqlite3
import stat
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "LockHolder",
    "StoreLock",
    "StoreLocked",
    "StorePathError",
    "StoreUnavailable",
    "check_store",
    "lock_path_for",
]

SQLITE_HEADER = b"SQLite format 3\x00"
STORE_TABLES = frozenset({"signals", "orders"})
LOCK_SUFFIX = ".lock"
# A probe (`StoreLock.holder_of`) holds a shared lock for a few microseconds; a starting core
# retries this long before it calls the store taken, so a probe never refuses a core.
ACQUIRE_GRACE = 0.2
# A holder writes its details right after it takes the lock; a refused core waits this long to
# read them.
HOLDER_READ_GRACE = 1.0


def lock_path_for(db_path: str | os.PathLike[str]) -> Path:
    """`<store path>.lock`, next to the store."""
    return Path(os.fspath(db_path) + LOCK_SUFFIX)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LockHolder:
    """Who holds a store: what the lock file says."""

    pid: int
    host: str
    started_at: str  # ISO 8601, UTC, e.g. 2026-12-01T08:00:00Z

    @classmethod
    def current(cls) -> LockHolder:
        return cls(pid=os.getpid(), host=socket.gethostname(), started_at=_utc_now())

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The holder in a lock file's content, or None when it is empty or not ours."""
        try:
            data = json.loads(text)
            return cls(pid=int(data["pid"]), host=str(data["host"]), started_at=str(data["started_at"]))
        except (ValueError, TypeError, KeyError):
            return None

    def to_json(self, store: Path | None = None) -> str:
        data: dict[str, Any] = {"pid": self.pid, "host": self.host, "started_at": self.started_at}
        if store is not None:
            data["store"] = str(store)
        return json.dumps(data) + "\n"

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} since {self.started_at}"


class StoreUnavailable(Exception):
    """This process cannot use the store (the base of `StoreLocked` and `StorePathError`)."""


class StoreLocked(StoreUnavailable):
    """Another process holds the store. `holder` is None when its lock file says nothing readable."""

    def __init__(self, path: Path, holder: LockHolder | None) -> None:
        self.path = path
        self.lock_path = lock_path_for(path)
        self.holder = holder
        who = holder.describe() if holder is not None else f"another process (holder unknown, see {self.lock_path})"
        super().__init__(f"store {path} is in use by {who}")


class StorePathError(StoreUnavailable):
    """A path that cannot be (or is not) a store: `str()` is `<path>: <problem>`, one line."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _oserror_problem(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _nearest_existing(path: Path) -> Path | None:
    for parent in path.parents:
        try:
            os.stat(parent)
        except FileNotFoundError:
            continue
        except OSError:
            return parent
        return parent
    return None


def _not_a_directory(path: Path) -> StorePathError:
    """`path` has an ancestor that is a file (e.g. /etc/passwd/x)."""
    for parent in reversed(path.parents):  # from the root down: the first that is not a directory
        try:
            st = os.stat(parent)
        except OSError:
            break
        if not stat.S_ISDIR(st.st_mode):
            return StorePathError(path, f"{parent} is not a directory")
    return StorePathError(path, "a parent is not a directory")


def check_store(path: str | os.PathLike[str], *, must_exist: bool, writable: bool = False) -> Path:
    """Validate a store path before it is used; raises `StorePathError` naming the problem.

    `must_exist` (exports, `inspect`): the file exists, is a SQLite database and has tables.
    `writable` (a core): the file, if it exists, is a store or an empty SQLite database this
    process may write, or it can be created. Never creates, locks or modifies anything.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if must_exist:
            raise StorePathError(path, "no store (no such file; give --db PATH)") from None
        parent = _nearest_existing(path)
        if parent is not None:
            try:
                pst = os.stat(parent)
            except OSError as exc:
                raise StorePathError(path, _oserror_problem(exc)) from None
            if not stat.S_ISDIR(pst.st_mode):
                raise _not_a_directory(path) from None
            if writable and not os.access(parent, os.W_OK | os.X_OK):
                raise StorePathError(path, f"cannot create the store: {parent} is not writable") from None
        return path
    except NotADirectoryError:
        raise _not_a_directory(path) from None
    except OSError as exc:
        raise StorePathError(path, _oserror_problem(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise StorePathError(path, "is a directory, not a store file")
    if not stat.S_ISREG(st.st_mode):
        raise StorePathError(path, "not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StorePathError(path, _oserror_problem(exc)) from None
    if head != SQLITE_HEADER and (head or must_exist):
        problem = "empty file" if not head else "file is not a database"
        raise StorePathError(path, f"not a tradeconsole store ({problem})")
    if writable and not os.access(path, os.R_OK | os.W_OK):
        raise StorePathError(path, "permission denied (the store is not writable)")
    if must_exist or head:
        _probe_sqlite(path, must_exist=must_exist)
    return path


def _probe_sqlite(path: Path, *, must_exist: bool) -> None:
    """Open read-only the way the store does and look at its tables.

    A store has tables (exports, `inspect`); a core may also start on a database with no table
    at all (it runs the migrations), never on someone else's database.
    """
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if not must_exist:
            return  # a core: opening the store for writing decides (and says so in one line)
        if isinstance(exc, sqlite3.OperationalError):
            raise StorePathError(path, f"cannot open the store ({exc})") from None
        raise StorePathError(path, f"not a tradeconsole store ({exc})") from None
    if not tables:
        if must_exist:
            raise StorePathError(path, "not a tradeconsole store (an empty database)")
        return
    # Lenient on purpose (a real store must never be refused): a schema version, or the tables
    # every store has since its first migration.
    if version <= 0 and not STORE_TABLES <= tables:
        raise StorePathError(path, "not a tradeconsole store (a SQLite database without its tables)")


class StoreLock:
    """The exclusive lock of one store, held by this process until `release()` (or its end)."""

    def __init__(self, path: Path, lock_path: Path, fd: int, holder: LockHolder) -> None:
        self.path = path
        self.lock_path = lock_path
        self.holder = holder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db_path: str | os.PathLike[str], *, grace: float = ACQUIRE_GRACE) -> StoreLock:
        """Take the store's lock, or raise `StoreLocked` (held by a live process) or `StorePathError`.

        Creates the store's directory and the lock file if needed (not the store). A lock left by
        a dead process is no lock: it is taken over and the file rewritten.
        """
        path = Path(db_path)
        lock_path = lock_path_for(path)
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            # 0600: another user could otherwise hold a shared lock on it and block every core.
            # O_NOFOLLOW: never truncate what a planted symlink points to. O_CLOEXEC: a program
            # this process starts does not inherit (and keep) the lock.
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except (NotADirectoryError, FileExistsError):  # mkdir: a parent is a file
            raise _not_a_directory(path) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StorePathError(path, f"the lock file {lock_path} is a symbolic link") from None
            raise StorePathError(path, f"cannot open the lock file {lock_path}: {_oserror_problem(exc)}") from None
        try:
            cls._lock(fd, path, lock_path, grace)
            holder = LockHolder.current()
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.to_json(path).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, lock_path, fd, holder)

    @staticmethod
    def _lock(fd: int, path: Path, lock_path: Path, grace: float) -> None:
        deadline = time.monotonic() + grace
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLocked(path, _read_holder(lock_path, wait=HOLDER_READ_GRACE)) from None
                time.sleep(0.01)
            except OSError as exc:
                raise StorePathError(path, f"cannot lock {lock_path}: {_oserror_problem(exc)}") from None

    @classmethod
    def holder_of(cls, db_path: str | os.PathLike[str]) -> LockHolder | None:
        """Who holds the store now (None: nobody, a core may take it). Never creates anything.

        A holder whose lock file says nothing readable is reported with pid 0.
        """
        path = Path(db_path)
        lock_path = lock_path_for(path)
        try:
            fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # goes with the close below
            held = False
        except BlockingIOError:
            held = True
        except OSError:
            held = False
        finally:
            os.close(fd)
        if not held:
            return None
        return _read_holder(lock_path, wait=HOLDER_READ_GRACE) or LockHolder(0, "unknown", "unknown")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (closing the descriptor); the file stays. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:  # a lock nobody refers to any more is no one's lock
        with contextlib.suppress(Exception):
            self.release()

    def __repr__(self) -> str:
        return f"StoreLock({str(self.path)!r}, held={self.held})"


def _read_holder(lock_path: Path, *, wait: float) -> LockHolder | None:
    """The holder the lock file names; a holder that has just taken the lock gets `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            holder = LockHolder.parse(lock_path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.02)
