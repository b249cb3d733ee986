"""The event stream's clients as the server keeps them: one bounded queue per watcher, fed
synchronously by the bus and drained by its sender, each message encoded once for all of them
(and each order of a snapshot encoded once for as long as it does not change: `OrderTexts`).

A watcher that falls `limit` events behind loses its queue for a fresh snapshot at that place of
the stream; falling behind twice within `RESYNC_WINDOW` seconds marks it too slow and drops its
connection from outside its (possibly stuck) sender."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from executor.control.protocol import order_json
from executor.models import Order

RESYNC_WINDOW = 5.0


class Outgoing:
    """One message for every watcher, encoded once, by the first sender that needs it."""

    __slots__ = ("_encode", "_text")

    def __init__(self, encode: Callable[[], str]) -> None:
        self._encode: Callable[[], str] | None = encode
        self._text = ""

    def text(self) -> str:
        if self._encode is not None:
            self._text, self._encode = self._encode(), None
        return self._text


@dataclass(frozen=True, slots=True)
class SnapshotHere:
    """Take a snapshot at this place of the stream (`reason`: connect, reply or resync)."""

    history: int
    reason: str


class Watcher:
    """One event-stream client: its queue, fed synchronously by the bus, drained by its sender."""

    def __init__(self, limit: int, history: int) -> None:
        self.limit = limit
        self.history = history
        self.items: deque[Outgoing | SnapshotHere] = deque([SnapshotHere(history, "connect")])
        self.wake = asyncio.Event()
        self.wake.set()
        self.overflows: deque[float] = deque(maxlen=2)
        self.resyncing = False  # a resync snapshot is queued and not taken yet
        self.too_slow = False
        self.abort: Callable[[], None] = lambda: None  # drops the connection (set by its handler)

    def offer(self, item: Outgoing) -> None:
        if len(self.items) >= self.limit:
            # Behind by `limit` events: what it has queued is worth less than a fresh snapshot.
            self.items.clear()
            self.items.append(SnapshotHere(self.history, "resync"))
            if not self.resyncing:  # still behind before the last resync was even sent: the same one
                self.resyncing = True
                self.overflows.append(time.monotonic())
                if len(self.overflows) == 2 and self.overflows[1] - self.overflows[0] < RESYNC_WINDOW:
                    # Its sender may be stuck writing to a socket nobody reads: close from here.
                    self.too_slow = True
                    asyncio.get_running_loop().call_soon(self.abort)
        else:
            self.items.append(item)
        self.wake.set()

    def ask_snapshot(self, history: int) -> None:
        self.items.append(SnapshotHere(history, "reply"))
        self.wake.set()


class OrderTexts:
    """The JSON of each order as the last snapshot carried it, kept while the order stays the same
    object (the core replaces an order's model at every write, and never changes one in place):
    a console attaching to a core with 10,000 open orders costs it the encoding of those that
    changed since the last snapshot, not of all of them."""

    def __init__(self) -> None:
        self._texts: dict[str, tuple[Order, int, str]] = {}

    def __call__(self, orders: Iterable[Order]) -> list[str]:
        kept, texts, out = self._texts, {}, []
        for order in orders:
            hit = kept.get(order.client_order_id)
            if hit is None or hit[0] is not order or hit[1] != order.version:
                hit = (order, order.version, order_json(order))
            texts[order.client_order_id] = hit
            out.append(hit[2])
        self._texts = texts  # orders no snapshot carries any more are forgotten
        return out
