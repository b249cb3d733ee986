"""The store's writes: the statements of each logical write, each with its journal entry.

A signal arrival, a signal's decision, an order change (with its new fills), an audit row, log
lines. Every method that returns statements (`signal_insert`, `signal_update`, `order_write`,
`intent_sent_write`, `fills_replace`) lets a caller commit several of them as one transaction
(`transact`); the `async` ones write at once. Rows come from the models (`schema.as_row`); the
journal entry of a row change is written in the same transaction as the row, and says where the
change came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from executor.models import ORDER_FIXED, Fill, JournalSource, Order, OrderStatus, SignalRecord, SignalStatus, updated
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
_NOT_UPDATED = ORDER_FIXED - {"client_order_id"}  # what an order's UPDATE leaves as it is (the key it finds it by)
_UNACCEPTED = (SignalStatus.INVALID.value, SignalStatus.DUPLICATE.value)  # rows the unique index lets repeat


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode  # one encoder, not one per entry


_JSON_KNOWN: dict[tuple, str] = {}  # a journal entry's detail, by its items and their types: its JSON
_JSON_KNOWN_MAX = 4096
_KEPT = frozenset({str, int, bool, type(None)})  # values whose equal ones write the same text


def _json(detail: dict[str, Any] | None) -> str:
    """`detail` as JSON. Most details repeat ({"filled": "0"}, {"intent": true, ...}): the text of
    one of plain values is kept, keyed by each value's type as well as the value (True == 1, but
    writes as `true`). A detail holding anything else (a Decimal: 1.0 == 1.00) is encoded each time."""
    if not detail:
        return "{}"
    key = tuple((k, type(v), v) for k, v in detail.items())
    if not all(type(k) is str and t in _KEPT for k, t, _ in key):
        return _encode(detail)
    text = _JSON_KNOWN.get(key)
    if text is None:
        text = _encode(detail)
        if len(_JSON_KNOWN) >= _JSON_KNOWN_MAX:
            _JSON_KNOWN.clear()
        _JSON_KNOWN[key] = text
    return text


def _signal_row(record: SignalRecord) -> dict[str, Any]:
    sig = record.signal
    row = as_row(record, exclude=_NOT_STORED)
    row["seq"] = record.seq
    row["payload"] = sig.model_dump_json(exclude_none=True) if sig else None
    row["symbol"] = sig.symbol if sig else None
    row["side"] = sig.side if sig else None  # a str enum: SQLite binds it as its value
    return row


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
        return updated(record, {"seq": ids[0]})

    def signal_insert(
        self, record: SignalRecord, *, journal: Sequence[tuple[SignalStatus | None, SignalStatus, str, dict]] = ()
    ) -> list[Statement]:
        row = _signal_row(record)
        statements: list[Statement] = [(SIGNAL_INSERT, row)]
        arrival = [(None, record.status, JournalSource.INTAKE, {"reason": record.reason})]
        for old, new, source, detail in journal or arrival:
            statements.append(self._event("signal", record.id, old, new, source, detail, row["received_at"] or ""))
        return statements

    @staticmethod
    def inserts_signal(statements: Sequence[Statement], signal_id: str | None) -> bool:
        """Whether `statements` insert an accepted row of signal `signal_id`. A transaction that
        does has no order of that signal before it: had the id been accepted before, the unique
        index on accepted ids would refuse the whole transaction."""
        for sql, row, *_ in statements:
            if sql == SIGNAL_INSERT and row["id"] == signal_id and row["status"] not in _UNACCEPTED:
                return True
        return False

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
                "signal",
                record.id,
                old.value,
                record.status.value,
                source,
                {"reason": record.reason, "by": record.decided_by},
                now or "",
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
            row = as_row(order)
            head: Statement = (ORDER_INSERT, row)
        else:
            assert order.version == expect_version + 1, "the new version is one past the expected one"
            row = as_row(order, exclude=_NOT_UPDATED)
            row["expected_version"] = expect_version
            head = (ORDER_UPDATE, row, True)
        return [head, *self._order_journal(order, old, source, detail, fills, row["updated_at"])]

    def intent_sent_write(
        self, intent: Order, sent: Order, *, source: str, detail: dict[str, Any] | None = None
    ) -> list[Statement]:
        """An intent and its `submitting` as one write (a create that goes at once): the row as
        `sent`, the intent one version on, with both journal entries (none -> new with `detail`,
        new -> submitting), as an intent and its `submitting` written in one transaction leave it."""
        assert intent.status is OrderStatus.NEW and sent.status is OrderStatus.SUBMITTING
        assert sent.version == intent.version + 1 and sent.client_order_id == intent.client_order_id
        row = as_row(sent)
        return [
            (ORDER_INSERT, row),
            *self._order_journal(intent, None, source, detail, ()),
            *self._order_journal(sent, OrderStatus.NEW, source, None, (), row["updated_at"]),
        ]

    def _order_journal(
        self,
        order: Order,
        old: OrderStatus | None,
        source: str,
        detail: dict[str, Any] | None,
        fills: Sequence[Fill],
        ts: str | None = None,
    ) -> list[Statement]:
        """The fill rows and the journal entry of one order change; `ts`: `order.updated_at` as
        stored, when the caller has it."""
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
                    old,  # a state is a str enum: SQLite binds it as its value
                    order.status,
                    source,
                    info,
                    ts or _ts(order.updated_at) or "",
                )
            )
        return statements

    @staticmethod
    def _fill_rows(fills: Sequence[Fill]) -> list[Statement]:
        return [(FILL_INSERT, as_row(fill)) for fill in fills]

    def fills_replace(self, client_order_id: str, fills: Sequence[Fill]) -> list[Statement]:
        """An order's fill rows replaced by `fills` (the venue's own trades, once all are known)."""
        return [("DELETE FROM fills WHERE client_order_id=?", (client_order_id,)), *self._fill_rows(fills)]

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
        await self._write(
            [
                (
                    _LOG_INSERT,
                    (
                        _ts(e["ts"]),
                        e.get("level"),
                        e.get("message"),
                        e.get("operation"),
                        e.get("attempt"),
                        e.get("max_attempts"),
                        e.get("delay"),
                        e.get("client_order_id"),
                        e.get("signal_id"),
                    ),
                )
                for e in entries
            ]
        )


_LOG_COLUMNS = (
    "ts", "level", "message", "operation", "attempt", "max_attempts", "delay", "client_order_id", "signal_id"
)  # fmt: skip
_LOG_INSERT = f"INSERT INTO log ({', '.join(_LOG_COLUMNS)}) VALUES ({','.join('?' * len(_LOG_COLUMNS))})"


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
