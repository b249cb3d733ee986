"""The ids of accepted signals, in fixed memory: the intake's duplicate check.

A core that runs for months must not hold every id it ever accepted (B9: at most 10 MB growth from
10,000 to 100,000 signals). `SeenIds` keeps the most recent ids exactly, in insertion order, and
every id ever added as a few bits of a fixed-size Bloom filter. `check` answers:

- `SEEN`: a recent id, certainly accepted before (also an id reserved by a copy still racing
  through intake: the reservation is taken before the first await).
- `NEW`: the filter has never seen it, so it is certainly new.
- `MAYBE`: an older id, or a false positive of the filter (about 1 in 100 at 1.7 million ids,
  more beyond); the caller asks the store, whose unique index is the final word.

Nothing here is ever wrong in the unsafe direction: a duplicate is never answered `NEW`.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum
from hashlib import blake2b


class Seen(StrEnum):
    SEEN = "seen"
    NEW = "new"
    MAYBE = "maybe"


class SeenIds:
    """Recent accepted ids exactly (at most `recent`), all of them in a Bloom filter of 2**`bits` bits."""

    HASHES = 7

    def __init__(self, ids=(), *, recent: int = 20_000, bits: int = 24) -> None:
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._limit = recent
        self._mask = (1 << bits) - 1
        self._bits = bytearray(1 << (bits - 3))
        self._last_id: str | None = None
        self._last_positions: list[int] = []
        for signal_id in ids:
            self.add(signal_id)

    def _positions(self, signal_id: str) -> list[int]:
        if signal_id == self._last_id:  # `check` then `add` of one id: hashed once
            return self._last_positions
        digest = blake2b(signal_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        h1 = int.from_bytes(digest[:8], "little")
        h2 = int.from_bytes(digest[8:], "little") | 1
        positions = [(h1 + i * h2) & self._mask for i in range(self.HASHES)]
        self._last_id, self._last_positions = signal_id, positions
        return positions

    def check(self, signal_id: str) -> Seen:
        if signal_id in self._recent:
            return Seen.SEEN
        bits = self._bits
        if all(bits[p >> 3] & (1 << (p & 7)) for p in self._positions(signal_id)):
            return Seen.MAYBE
        return Seen.NEW

    def add(self, signal_id: str) -> None:
        """Take `signal_id` (accepted, or reserved by a copy on its way through intake)."""
        recent = self._recent
        recent[signal_id] = None
        recent.move_to_end(signal_id)
        if len(recent) > self._limit:
            recent.popitem(last=False)
        bits = self._bits
        for p in self._positions(signal_id):
            bits[p >> 3] |= 1 << (p & 7)

    def discard(self, signal_id: str) -> None:
        """Give a reservation back (its signal was not stored). The filter keeps its bits: a later
        copy of the id is then answered MAYBE and confirmed with the store, never wrongly SEEN."""
        self._recent.pop(signal_id, None)

    def __contains__(self, signal_id: str) -> bool:
        """Only the exact part: whether `signal_id` is a recent (or reserved) id."""
        return signal_id in self._recent
