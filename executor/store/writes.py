"""The store's writes: the statements of each logical write, each with its journal entry.

A signal arrival, a signal's decision, an order change (with its new fills), an audit row, log
lines. Every method that returns statements (`signal_insert`, `signal_update`, `order_write`,
`fills_replace`) lets a caller commit several of them as one transaction (`transact`); the
`async` ones write at once. Rows come from the models (`schema.as_row`); the journal entry of a
row change is written in the same transaction as the row, and says where the change came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from executor.models import Fill, Order, OrderStatus, SignalRecord, SignalStatus
from executor.store.connection import Statement, StoreConnection
from executor.store.schema import (
    FILL_INSERT,
    ORDER_INSERT,
    ORDER_UPDATE,
    ORDER_UPSERT,
    SIGNAL_INSERT,
    SIGNAL_UPDATE,
    as_row,
)

_NOT_STORED = frozenset({"seq", "signal"})  # the row's own key, and the signal (stored as `payload`)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _json(detail: dict[str, Any] | None) -> str:
    return json.dumps(detail or {}, default=str, separators=(",", ":"))


def _signal_row(record: SignalRecord) -> dict[str, Any]:
    sig = record.signal
    return as_row(record, exclude=_NOT_STORED) | {
        "seq": record.seq,
        "payload": sig.model_dump_json(exclude_none=True) if sig else None,
        "symbol": sig.symbol if sig else None,
        "side": sig.side.value if sig else None,
    }


class StoreWrites(StoreConnection):
    """Signals, orders and fills, audit and log: written with their journal entries."""

    @staticmethod
    def _event(
        entity: str, entity_id: str | None, old: str | None, new: str | None, source: str, detail: dict | None, ts: str
    ) -> tuple[str, Sequence[Any]]:
        return (
            "INSERT INTO events (ts, entity, entity_id, from_state, to_state, source, detail) VALUES (?,?,?,?,?,?,?)",
            (ts, entity, entity_id, old, new, source, _json(detail)),
        )

    # -- signals ------------------------------------------------------------------------------

    async def insert_signal(
        self, record: SignalRecord, *, journal: Sequence[tuple[SignalStatus | None, SignalStatus, str, dict]] = ()
    ) -> SignalRecord:
        """Insert one arrival. `journal` overrides the single (none -> status, intake) entry, for
        an arrival decided at once (auto-approval): both steps land in the same transaction."""
        try:
            ids = await self._write(self.signal_insert(record, journal=journal))
        except aiosqlite.IntegrityError:
            return await self.insert_signal(_as_duplicate(record))
        return record.model_copy(update={"seq": ids[0]})

    def signal_insert(
        self, record: SignalRecord, *, journal: Sequence[tuple[SignalStatus | None, SignalStatus, str, dict]] = ()
    ) -> list[Statement]:
        row = _signal_row(record)
        statements: list[Statement] = [(SIGNAL_INSERT, row)]
        for old, new, source, detail in journal or [(None, record.status, "intake", {"reason": record.reason})]:
            statements.append(
                self._event("signal", record.id, old.value if old else None, new.value, source, detail,
                            row["received_at"] or "")
            )
        return statements

    async def update_signal(self, record: SignalRecord, old: SignalStatus, source: str) -> None:
        """Write `record` if the stored row is still `old` (else StaleWrite: an expiry that
        raced an approval can never mark an executed signal expired)."""
        await self._write(self.signal_update(record, old, source))

    def signal_update(self, record: SignalRecord, old: SignalStatus, source: str) -> list[Statement]:
        assert record.seq is not None, "update_signal needs a stored record"
        row = _signal_row(record) | {"old_status": old.value}
        now = row["decided_at"] or row["received_at"]
        return [
            (SIGNAL_UPDATE, row, True),
            self._event(
                "signal", record.id, old.value, record.status.value, source,
                {"reason": record.reason, "by": record.decided_by}, now or "",
            ),
        ]

    # -- orders and fills ---------------------------------------------------------------------

    async def save_order(
        self,
        order: Order,
        *,
        old: OrderStatus | None,
        source: str,
        detail: dict[str, Any] | None = None,
        fills: Sequence[Fill] = (),
    ) -> None:
        """Upsert the order, append its journal entry and any new fills, in one transaction.

        Unchecked: for tests that set a store up as a crash would leave it. The executor writes
        through `order_write` (insert-only intents, compare-and-set updates) instead.
        """
        statements: list[Statement] = [(ORDER_UPSERT, as_row(order))]
        await self._write(statements + self._order_journal(order, old, source, detail, fills))

    def order_write(
        self,
        order: Order,
        *,
        old: OrderStatus | None,
        expect_version: int | None,
        source: str,
        detail: dict[str, Any] | None = None,
        fills: Sequence[Fill] = (),
    ) -> list[Statement]:
        """The statements of one order change. `expect_version` None: a new row (an intent; fails
        if the client order id exists). Else a compare-and-set on the stored version, which
        `order.version` must already be one past."""
        if expect_version is None:
            head: Statement = (ORDER_INSERT, as_row(order))
        else:
            assert order.version == expect_version + 1, "the new version is one past the expected one"
            head = (ORDER_UPDATE, as_row(order) | {"expected_version": expect_version}, True)
        return [head, *self._order_journal(order, old, source, detail, fills)]

    def _order_journal(
        self,
        order: Order,
        old: OrderStatus | None,
        source: str,
        detail: dict[str, Any] | None,
        fills: Sequence[Fill],
    ) -> list[Statement]:
        statements = self._fill_rows(fills)
        if old != order.status or detail or fills:
            info = dict(detail or {})
            info.setdefault("filled", str(order.filled))
            if order.last_error and order.status in (OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.UNKNOWN):
                info.setdefault("error", order.last_error)
            statements.append(
                self._event(
                    "order",
                    order.client_order_id,
                    old.value if old else None,
                    order.status.value,
                    source,
                    info,
                    _ts(order.updated_at) or "",
                )
            )
        return statements

    @staticmethod
    def _fill_rows(fills: Sequence[Fill]) -> list[Statement]:
        return [(FILL_INSERT, as_row(fill)) for fill in fills]

    def fills_replace(self, client_order_id: str, fills: Sequence[Fill]) -> list[Statement]:
        """An order's fill rows replaced by `fills` (the venue's own trades, once all are known)."""
        return [("DELETE FROM fills WHERE client_order_id=?", (client_order_id,)),
                *self._fill_rows(fills)]

    # -- the audit trail and the log ----------------------------------------------------------

    async def record_audit(
        self, actor: str, action: str, target: str | None, detail: dict[str, Any] | None, ts: datetime
    ) -> None:
        await self._write(
            [
                (
                    "INSERT INTO audit (ts, actor, action, target, detail) VALUES (?,?,?,?,?)",
                    (_ts(ts), actor, action, target, _json(detail)),
                )
            ]
        )

    async def append_log(self, entries: Sequence[dict[str, Any]]) -> None:
        """Append retry/error lines (keys: ts, level, message, operation, attempt, max_attempts,
        delay, client_order_id, signal_id)."""
        cols = (
            "ts",
            "level",
            "message",
            "operation",
            "attempt",
            "max_attempts",
            "delay",
            "client_order_id",
            "signal_id",
        )
        await self._write(
            [
                (
                    f"INSERT INTO log ({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                    tuple(_ts(e[c]) if c == "ts" else e.get(c) for c in cols),
                )
                for e in entries
            ]
        )


def _as_duplicate(record: SignalRecord) -> SignalRecord:
    # A second accepted row with the same id: the caller raced itself; store it as a duplicate.
    return record.model_copy(
        update={
            "status": SignalStatus.DUPLICATE,
            "reason": f"id {record.id} seen before",
            "decided_at": None,
            "decided_by": None,
        }
    )
