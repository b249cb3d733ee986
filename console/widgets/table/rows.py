"""`RowIndex`: a keyed table's rows in display order, with their heights in lines.

The table keeps its rows in the order they were first upserted. This index answers key → index,
index → key, key → first line and line → row in O(log n) however many rows came and went, which
is what lets `KeyedTable` draw only the rows in view of a table of tens of thousands.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

BULK = 64  # more rows than this leaving at once (or most slots dead): the order is rebuilt in one pass


class RowIndex:
    """The rows in display order, with their heights in lines.

    Each row has a slot, in the order rows arrive; two Fenwick trees over the slots count the rows
    and their lines, so key → index, index → key, key → first line and line → row are O(log n),
    appending is O(log n) and removing k rows is O(k log n), or one O(n) pass when k is large
    (which also drops the slots of rows that left).
    """

    __slots__ = ("_cap", "_count", "_heights", "_keys", "_len", "_lines", "_slot", "_top", "total")

    def __init__(self, rows: Iterable[tuple[str, int]] = ()) -> None:
        self._build(list(rows))

    def _build(self, rows: list[tuple[str, int]]) -> None:
        n = len(rows)
        cap = 64
        while cap < 2 * n:
            cap *= 2
        keys: list[str | None] = [k for k, _ in rows]
        heights = [h for _, h in rows]
        count = [0] + [1] * n + [0] * (cap - n)
        lines = [0, *heights] + [0] * (cap - n)
        for i in range(1, cap + 1):  # the trees in O(n)
            j = i + (i & -i)
            if j <= cap:
                count[j] += count[i]
                lines[j] += lines[i]
        self._keys = keys + [None] * (cap - n)
        self._heights = heights + [0] * (cap - n)
        self._slot = {k: i for i, (k, _) in enumerate(rows)}
        self._count, self._lines, self._cap = count, lines, cap
        self._top = self._len = n
        self.total = sum(heights)

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._keys[: self._top] if k is not None)

    def _add(self, slot: int, count: int, lines: int) -> None:
        i, cap, counts, tree = slot + 1, self._cap, self._count, self._lines
        while i <= cap:
            counts[i] += count
            tree[i] += lines
            i += i & -i

    @staticmethod
    def _prefix(tree: list[int], i: int) -> int:
        total = 0
        while i:
            total += tree[i]
            i &= i - 1
        return total

    def _search(self, tree: list[int], target: int) -> tuple[int, int]:
        """The slot holding unit `target` of `tree` (0-based), and the offset of that unit in it."""
        pos, step = 0, self._cap
        while step:
            nxt = pos + step
            if nxt <= self._cap and tree[nxt] <= target:
                pos = nxt
                target -= tree[nxt]
            step >>= 1
        return pos, target

    def append(self, key: str, height: int) -> None:
        if self._top == self._cap:
            self._build([(k, self._heights[s]) for s, k in enumerate(self._keys) if k is not None])
        slot = self._top
        self._top += 1
        self._keys[slot], self._heights[slot], self._slot[key] = key, height, slot
        self._add(slot, 1, height)
        self._len += 1
        self.total += height

    def extend(self, rows: list[tuple[str, int]]) -> None:
        """Append `rows` (keys not in the index) in order: one O(n) pass when they are many."""
        if len(rows) <= BULK:
            for key, height in rows:
                self.append(key, height)
            return
        heights = self._heights
        self._build([(k, heights[s]) for s, k in enumerate(self._keys[: self._top]) if k is not None] + rows)

    def remove(self, keys: Iterable[str]) -> None:
        slots = [s for s in (self._slot.pop(k, None) for k in keys) if s is not None]
        if not slots:
            return
        keys_, heights = self._keys, self._heights
        dead = self._top - self._len + len(slots)
        if len(slots) > BULK or dead > max(BULK, self._len - len(slots)):
            for s in slots:
                keys_[s] = None
            self._build([(k, heights[s]) for s, k in enumerate(keys_[: self._top]) if k is not None])
            return
        for s in slots:
            height = heights[s]
            keys_[s], heights[s] = None, 0
            self._add(s, -1, -height)
            self.total -= height
        self._len -= len(slots)

    def index(self, key: str) -> int:
        return self._prefix(self._count, self._slot[key])

    def key_at(self, index: int) -> str:
        slot, _ = self._search(self._count, index)
        key = self._keys[slot] if 0 <= index < self._len else None
        if key is None:
            raise IndexError(index)
        return key

    def line(self, key: str) -> int:
        """The row's first line."""
        return self._prefix(self._lines, self._slot[key])

    def at_line(self, line: int) -> tuple[str, int]:
        """The row on `line`, and the line within the row."""
        if not 0 <= line < self.total:
            raise IndexError(line)
        slot, offset = self._search(self._lines, line)
        key = self._keys[slot]
        assert key is not None
        return key, offset

    def height(self, key: str) -> int:
        return self._heights[self._slot[key]]

    def set_height(self, key: str, height: int) -> None:
        slot = self._slot[key]
        delta = height - self._heights[slot]
        if delta:
            self._heights[slot] = height
            self._add(slot, 0, delta)
            self.total += delta

    def from_index(self, index: int) -> Iterator[str]:
        """The keys from row `index` on, in order."""
        if not 0 <= index < self._len:
            return
        slot, _ = self._search(self._count, index)
        keys = self._keys
        for s in range(slot, self._top):
            key = keys[s]
            if key is not None:
                yield key

    def before(self, index: int) -> Iterator[str]:
        """The keys from row `index` back to the first, in reverse order."""
        if not 0 <= index < self._len:
            return
        slot, _ = self._search(self._count, index)
        keys = self._keys
        for s in range(slot, -1, -1):
            key = keys[s]
            if key is not None:
                yield key
