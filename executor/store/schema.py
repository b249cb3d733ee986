"""The store on disk: its tables, their migrations, and how a model maps onto its row.

`MIGRATIONS[n]` takes a store from schema n-1 to n (`PRAGMA user_version`). A released migration
never changes: a store written by any version opens in every later one.

A row is its model (executor/models.py): an `orders` row has one column per field of `Order`, a
`fills` row one per field of `Fill`, named alike; a `signals` row one per field of `SignalRecord`,
the signal itself as the JSON text it was stored as (`payload`, read back as `signal`), with its
symbol and side beside it for queries. Rows are read with `Model.model_validate(dict(row))` and
written from `as_row(model)`, the model's fields as `model_dump(mode="json")` writes them:
decimals as their `str()` ("0.0100" stays "0.0100"), enums as their values, datetimes as
`isoformat()`. Those are the formats
every store has been written in, and the SQL compares timestamps as text (`updated_at >= ?`), so
their spelling never changes.
"""

from __future__ import annotations

import typing
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from executor.models import ORDER_FIXED

SCHEMA_VERSION = 3

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE signals (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT,
        status          TEXT NOT NULL,
        reason          TEXT NOT NULL DEFAULT '',
        source          TEXT NOT NULL,
        received_at     TEXT NOT NULL,
        raw             TEXT NOT NULL,
        payload         TEXT,
        symbol          TEXT,
        side            TEXT,
        amount          TEXT,
        reference_price TEXT,
        expires_at      TEXT,
        decided_at      TEXT,
        decided_by      TEXT
    );
    -- one accepted row per id: a repeat is stored too, but as 'duplicate' (or 'invalid')
    CREATE UNIQUE INDEX signals_accepted_id ON signals(id) WHERE status NOT IN ('invalid', 'duplicate');
    CREATE INDEX signals_status ON signals(status);

    CREATE TABLE orders (
        client_order_id   TEXT PRIMARY KEY,
        signal_id         TEXT,
        replacement       INTEGER NOT NULL DEFAULT 0,
        exchange_order_id TEXT,
        symbol            TEXT NOT NULL,
        side              TEXT NOT NULL,
        type              TEXT NOT NULL,
        amount            TEXT NOT NULL,
        price             TEXT,
        status            TEXT NOT NULL,
        filled            TEXT NOT NULL,
        average           TEXT,
        fee               TEXT NOT NULL,
        fee_currency      TEXT,
        attempts          INTEGER NOT NULL DEFAULT 0,
        created_at        TEXT NOT NULL,
        updated_at        TEXT NOT NULL,
        timeout_at        TEXT,
        last_error        TEXT NOT NULL DEFAULT '',
        origin            TEXT NOT NULL DEFAULT 'executor'
    );
    CREATE INDEX orders_status ON orders(status);
    CREATE INDEX orders_signal ON orders(signal_id);

    CREATE TABLE fills (
        fill_id         TEXT PRIMARY KEY,
        client_order_id TEXT NOT NULL,
        signal_id       TEXT,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL,
        amount          TEXT NOT NULL,
        price           TEXT NOT NULL,
        fee             TEXT NOT NULL,
        fee_currency    TEXT,
        ts              TEXT NOT NULL
    );
    CREATE INDEX fills_order ON fills(client_order_id);

    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        ts         TEXT NOT NULL,
        entity     TEXT NOT NULL,
        entity_id  TEXT,
        from_state TEXT,
        to_state   TEXT,
        source     TEXT NOT NULL,
        detail     TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_entity ON events(entity, entity_id);

    CREATE TABLE audit (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        ts     TEXT NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    );

    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;
    CREATE TRIGGER events_append_only_d BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;
    CREATE TRIGGER audit_append_only_u BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_append_only_d BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    """,
    # v2: the retry/error log, so that `inspect` in another process shows what went wrong and why.
    2: """
    CREATE TABLE log (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        ts              TEXT NOT NULL,
        level           TEXT NOT NULL,
        message         TEXT NOT NULL,
        operation       TEXT,
        attempt         INTEGER,
        max_attempts    INTEGER,
        delay           REAL,
        client_order_id TEXT,
        signal_id       TEXT
    );
    """,
    # v3: every order write is a compare-and-set on `version`, so a stale copy can never overwrite
    # a newer state (reconciliation racing a fill, two paths folding the same report).
    3: """
    ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX orders_symbol_status ON orders(symbol, status);
    """,
}

# Each model's columns, named as its fields.
_ORDER = (
    "client_order_id", "signal_id", "replacement", "exchange_order_id", "symbol", "side", "type", "amount", "price",
    "status", "filled", "average", "fee", "fee_currency", "attempts", "created_at", "updated_at", "timeout_at",
    "last_error", "origin", "version",
)  # fmt: skip
_FILL = ("fill_id", "client_order_id", "signal_id", "symbol", "side", "amount", "price", "fee", "fee_currency", "ts")
_SIGNAL = (
    "id", "status", "reason", "source", "received_at", "raw", "payload", "symbol", "side", "amount",
    "reference_price", "expires_at", "decided_at", "decided_by",
)  # fmt: skip

# What a `SELECT` reads for one model, as `Model.model_validate(dict(row))` takes it.
ORDER_ROW = ", ".join(_ORDER)
FILL_ROW = ", ".join(_FILL)
SIGNAL_ROW = (
    "seq, id, status, reason, source, received_at, raw, payload AS signal, reference_price, amount, "
    "expires_at, decided_at, decided_by"
)


def _insert(table: str, columns: tuple[str, ...], verb: str = "INSERT") -> str:
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


# Statements with named parameters, taking a model's row (`as_row`).
ORDER_INSERT = _insert("orders", _ORDER)
ORDER_UPSERT = _insert("orders", _ORDER, "INSERT OR REPLACE")
ORDER_UPDATE = (  # a compare-and-set: `expected_version` is the version the row must still have
    # Only what can change: an index none of whose columns is set is left alone.
    f"UPDATE orders SET {', '.join(f'{c}=:{c}' for c in _ORDER[1:] if c not in ORDER_FIXED)} "
    "WHERE client_order_id=:client_order_id AND version=:expected_version"
)
FILL_INSERT = _insert("fills", _FILL, "INSERT OR IGNORE")
SIGNAL_INSERT = _insert("signals", _SIGNAL)
SIGNAL_UPDATE = (  # a compare-and-set on the status the row must still have, `old_status`
    "UPDATE signals SET status=:status, reason=:reason, amount=:amount, reference_price=:reference_price, "
    "payload=:payload, decided_at=:decided_at, decided_by=:decided_by WHERE seq=:seq AND status=:old_status"
)


_PLAIN = (str, int, bool, type(None))


@cache
def _plan(model: type[BaseModel], exclude: frozenset[str]) -> tuple[frozenset[str], tuple[tuple[str, Any], ...]]:
    """For `as_row`: the fields left out, and each field that needs converting with its converter
    (a decimal's `str()`, an enum's value, a datetime's `isoformat()`; anything else as pydantic
    writes it in JSON). Fields of plain types (str, int, bool) and str enums (SQLite binds a
    member as the text of its value) pass as they are."""
    convert = []
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        kinds = set(typing.get_args(info.annotation) or (info.annotation,)) - {type(None)}
        if kinds <= set(_PLAIN):
            continue
        only = next(iter(kinds)) if len(kinds) == 1 else None
        if only is Decimal:
            convert.append((name, str))
        elif only is datetime:
            convert.append((name, datetime.isoformat))
        elif isinstance(only, type) and issubclass(only, Enum):
            if not issubclass(only, str):  # a str enum's member is the text of its value already
                convert.append((name, _enum_value))
        else:
            convert.append((name, to_jsonable_python))
    return frozenset(exclude & set(model.model_fields)), tuple(convert)


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def as_row(model: BaseModel, *, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`model` as the named parameters of its row: what `model_dump(mode="json")` gives (decimals
    as their `str()`, enums as their values), but datetimes as `isoformat()`, the spelling every
    stored timestamp has (pydantic's JSON writes UTC as "Z" and cuts an offset to the minute).
    Read straight from the model's fields, converting only those that need it: a row is written
    several times per signal, and a pydantic dump costs several times as much."""
    left_out, convert = _plan(type(model), exclude)
    row = model.__dict__.copy()
    for name in left_out:
        del row[name]
    for name, to_cell in convert:
        value = row[name]
        if value is not None:
            row[name] = to_cell(value) if type(value) is not str else value
    return row
