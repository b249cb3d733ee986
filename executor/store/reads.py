"""The store's queries: signals, orders, fills, the journal, the audit trail and the log.

Rows come back as their models (`Model.model_validate(dict(row))`, see `schema`); the journal,
audit and log rows as dicts, their `detail` parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from executor.models import TERMINAL_ORDER_STATES, Fill, Order, SignalRecord, SignalStatus
from executor.store.connection import StoreConnection
from executor.store.schema import FILL_ROW, ORDER_ROW, SIGNAL_ROW


class StoreReads(StoreConnection):
    """Every query but following the journal (`journal`) and the kv table (`state`)."""

    # -- signals ------------------------------------------------------------------------------

    async def accepted_signal_ids(self) -> list[str]:
        """The ids of every accepted signal, oldest first (for the intake's `SeenIds`)."""
        async with self._conn.execute(
            "SELECT id FROM signals WHERE status NOT IN ('invalid', 'duplicate') ORDER BY rowid"
        ) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def signal_accepted(self, signal_id: str) -> bool:
        """Whether a signal with this id was accepted (any status but invalid or duplicate)."""
        async with self._conn.execute(
            "SELECT 1 FROM signals WHERE id=? AND status NOT IN ('invalid', 'duplicate') LIMIT 1", (signal_id,)
        ) as cur:
            return await cur.fetchone() is not None

    async def get_signal(self, signal_id: str) -> SignalRecord | None:
        async with self._conn.execute(
            f"SELECT {SIGNAL_ROW} FROM signals WHERE id=? AND status NOT IN ('invalid', 'duplicate') LIMIT 1",
            (signal_id,),
        ) as cur:
            row = await cur.fetchone()
        return SignalRecord.model_validate(dict(row)) if row else None

    async def signals(
        self, statuses: Iterable[SignalStatus] | None = None, limit: int | None = None
    ) -> list[SignalRecord]:
        sql, params = _with_status(f"SELECT {SIGNAL_ROW} FROM signals", statuses)
        return await self._signals(*_last(sql, params, "seq", limit))

    async def approved_needing_order(self) -> list[SignalRecord]:
        """Approved signals with no active order whose orders are none at all, or end in one given
        up as certainly absent: a crash came before their (next) intent. Re-driven (SPEC 7)."""
        terminal = ",".join(f"'{s.value}'" for s in TERMINAL_ORDER_STATES)
        return await self._signals(
            f"SELECT {SIGNAL_ROW} FROM signals s WHERE s.status = 'approved' "
            f"AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.signal_id = s.id AND o.status NOT IN ({terminal})) "
            "AND (NOT EXISTS (SELECT 1 FROM orders o WHERE o.signal_id = s.id) OR EXISTS ("
            "  SELECT 1 FROM orders o WHERE o.signal_id = s.id AND o.status = 'failed' "
            "  AND o.last_error LIKE 'certainly absent%' "
            "  AND o.replacement = (SELECT MAX(replacement) FROM orders m WHERE m.signal_id = s.id))) "
            "ORDER BY s.seq"
        )

    async def recent_rejects(self, limit: int = 200) -> list[SignalRecord]:
        """The newest invalid and duplicate arrivals, oldest first (the Log's warnings about them)."""
        return await self._signals(
            f"SELECT * FROM (SELECT {SIGNAL_ROW} FROM signals WHERE status IN ('invalid', 'duplicate') "
            "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (limit,),
        )

    async def _signals(self, sql: str, params: Iterable[Any] = ()) -> list[SignalRecord]:
        async with self._conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [SignalRecord.model_validate(dict(r)) for r in rows]

    # -- orders -------------------------------------------------------------------------------

    async def orders(self, *, include_terminal: bool = True, limit: int | None = None) -> list[Order]:
        sql, params = _with_status(
            f"SELECT {ORDER_ROW} FROM orders", None if include_terminal else TERMINAL_ORDER_STATES, negate=True
        )
        return await self._orders(*_last(sql, params, "created_at, client_order_id", limit))

    async def get_order(self, client_order_id: str) -> Order | None:
        found = await self._orders(f"SELECT {ORDER_ROW} FROM orders WHERE client_order_id=?", (client_order_id,))
        return found[0] if found else None

    async def orders_for_signal(self, signal_id: str) -> list[Order]:
        return await self._orders(
            f"SELECT {ORDER_ROW} FROM orders WHERE signal_id=? ORDER BY replacement", (signal_id,)
        )

    async def orders_fee_unknown(self, since: datetime) -> list[Order]:
        """Orders updated since `since` with a fill whose fee the venue has not stated yet (a fill
        row without a fee currency): their fees and fills are learned from the trades."""
        return await self._orders(
            f"SELECT {ORDER_ROW} FROM orders o WHERE o.updated_at >= ? AND EXISTS ("
            "SELECT 1 FROM fills f WHERE f.client_order_id = o.client_order_id AND f.fee_currency IS NULL)",
            (since.isoformat(),),
        )

    async def orders_failed_absent(self, since: datetime) -> list[Order]:
        """Orders given up as certainly absent since `since`: watched for a late original."""
        return await self._orders(
            f"SELECT {ORDER_ROW} FROM orders WHERE status = 'failed' AND last_error LIKE 'certainly absent%' "
            "AND updated_at >= ?",
            (since.isoformat(),),
        )

    async def filled_orders(self) -> list[tuple[str, str, Decimal, Decimal | None, Decimal, str | None]]:
        """(symbol, side, filled, average, fee, fee currency) of every order with a fill."""
        async with self._conn.execute(
            "SELECT symbol, side, filled, average, fee, fee_currency FROM orders WHERE filled NOT IN ('0', '0.0')"
        ) as cur:
            rows = await cur.fetchall()
        out = []
        for r in rows:
            filled = Decimal(r[2])
            if filled:
                out.append((r[0], r[1], filled, None if r[3] is None else Decimal(r[3]), Decimal(r[4]), r[5]))
        return out

    async def _orders(self, sql: str, params: Iterable[Any] = ()) -> list[Order]:
        async with self._conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [Order.model_validate(dict(r)) for r in rows]

    # -- fills, the journal, the audit trail, the log -----------------------------------------

    async def fills(self, client_order_id: str | None = None) -> list[Fill]:
        sql, params = f"SELECT {FILL_ROW} FROM fills", ()
        if client_order_id is not None:
            sql, params = sql + " WHERE client_order_id=?", (client_order_id,)
        async with self._conn.execute(sql + " ORDER BY ts, fill_id", params) as cur:
            rows = await cur.fetchall()
        return [Fill.model_validate(dict(r)) for r in rows]

    async def events(self, entity_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM events", []
        if entity_id is not None:
            sql += " WHERE entity_id=?"
            params.append(entity_id)
        async with self._conn.execute(*_last(sql, params, "seq", limit)) as cur:
            rows = await cur.fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    async def audit(self) -> list[dict[str, Any]]:
        async with self._conn.execute("SELECT * FROM audit ORDER BY seq") as cur:
            rows = await cur.fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    async def log_entries(self, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        """Log lines with seq > `after`, the newest `limit` of them, oldest first."""
        async with self._conn.execute(
            "SELECT * FROM (SELECT * FROM log WHERE seq > ? ORDER BY seq DESC LIMIT ?) ORDER BY seq", (after, limit)
        ) as cur:
            rows = await cur.fetchall()
        return [dict(r) | {"ts": datetime.fromisoformat(r["ts"])} for r in rows]


def _with_status(sql: str, statuses: Iterable[Any] | None, *, negate: bool = False) -> tuple[str, list[Any]]:
    """`sql` (a SELECT of one table) keeping only rows whose status is among `statuses` (with
    `negate`: is none of them); all rows when `statuses` is None."""
    if statuses is None:
        return sql, []
    values = [s.value for s in statuses]
    return f"{sql} WHERE status {'NOT IN' if negate else 'IN'} ({','.join('?' * len(values))})", values


def _last(sql: str, params: list[Any], order: str, limit: int | None) -> tuple[str, list[Any]]:
    """`sql` ordered by `order` (columns, ascending), only its last `limit` rows when given."""
    if limit is not None:
        newest_first = ", ".join(f"{column} DESC" for column in order.split(", "))
        sql, params = f"SELECT * FROM ({sql} ORDER BY {newest_first} LIMIT ?)", [*params, limit]
    return f"{sql} ORDER BY {order}", params
