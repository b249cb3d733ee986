"""The `kv` table: flags, and the state a writing core saves for readers in other processes.

A flag is a short text under a key (`paused` is "1" or "0"). Saved state is JSON under a key,
written and read through the pydantic `TypeAdapter` of its `StateKey`: decimals as strings,
datetimes ISO 8601. A core saves its balances, last reconciliation, market view and market
precision (`BALANCES`, `LAST_RECONCILE`, `MARKETS`, `MARKET_INFO`) for `inspect` and the
exports; nothing in the core reads them back. The shapes are those every store has held, so the
state an older core saved reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, TypeAdapter

from executor.events import BalancesUpdated, MarketQuote, ReconcileResult
from executor.models import Balance, MarketInfo
from executor.store.connection import StoreConnection

T = TypeVar("T")


class StateKey(Generic[T]):
    """One key of saved state, holding a `T` as JSON."""

    def __init__(self, name: str, kind: Any, *, exclude: Any = None, exclude_none: bool = False) -> None:
        self.name = name
        self._adapter: TypeAdapter[T] = TypeAdapter(kind)
        self._exclude = exclude
        self._exclude_none = exclude_none

    def dump(self, value: T) -> str:
        return self._adapter.dump_json(value, exclude=self._exclude, exclude_none=self._exclude_none).decode()

    def parse(self, text: str) -> T:
        """The value saved as `text`; ValueError (pydantic's ValidationError) when it is not one."""
        return self._adapter.validate_json(text)

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


class SavedBalances(BaseModel):
    """The last balances, and the prices they were valued at (the marks of `positions`)."""

    quote: str
    balances: dict[str, tuple[Decimal, Decimal]] = {}  # currency -> (free, used)
    # currency -> price in `quote`; a reader skips one that is not finite and positive
    prices: dict[str, Annotated[Decimal, Field(allow_inf_nan=True)]] = {}

    @classmethod
    def of(cls, balances: Mapping[str, Balance], prices: Mapping[str, Decimal], quote: str) -> SavedBalances:
        return cls(quote=quote, balances={c: (b.free, b.used) for c, b in balances.items()}, prices=dict(prices))

    def event(self) -> BalancesUpdated:
        return BalancesUpdated({c: Balance(c, free, used) for c, (free, used) in self.balances.items()},
                               dict(self.prices), self.quote)


class SavedReconcile(BaseModel):
    """The last reconciliation's result, with the venue and mode it ran against."""

    at: datetime
    checked: int = 0
    updated: int = 0
    resolved_unknown: int = 0
    adopted: int = 0
    external: int = 0
    open: int = 0
    unknown: int = 0
    drift: dict[str, Decimal] = {}
    errors: list[str] = []
    exchange: str = ""
    mode: str = ""

    @classmethod
    def of(cls, result: ReconcileResult, *, exchange: str, mode: str) -> SavedReconcile:
        return cls(at=result.at, checked=result.checked, updated=result.updated,
                   resolved_unknown=result.resolved_unknown, adopted=result.adopted, external=result.external,
                   open=result.open, unknown=result.unknown, drift=dict(result.drift), errors=list(result.errors),
                   exchange=exchange, mode=mode)

    def result(self) -> ReconcileResult:
        return ReconcileResult(at=self.at, checked=self.checked, updated=self.updated,
                               resolved_unknown=self.resolved_unknown, adopted=self.adopted, external=self.external,
                               open=self.open, unknown=self.unknown, drift=dict(self.drift), errors=list(self.errors))


class SavedQuote(BaseModel):
    """One market of the writer's market view (saved every few seconds), keyed by its symbol."""

    last: Decimal
    bid: Decimal
    ask: Decimal
    change_pct: Decimal | None
    ts: datetime
    change_since: datetime | None = None

    @classmethod
    def of(cls, quote: MarketQuote) -> SavedQuote:
        return cls(last=quote.last, bid=quote.bid, ask=quote.ask, change_pct=quote.change_pct, ts=quote.ts,
                   change_since=quote.change_since)

    def quote(self, symbol: str) -> MarketQuote:
        return MarketQuote(symbol, self.last, self.bid, self.ask, self.change_pct, self.ts, self.change_since)


BALANCES: StateKey[SavedBalances] = StateKey("balances", SavedBalances)
LAST_RECONCILE: StateKey[SavedReconcile] = StateKey("last_reconcile", SavedReconcile)
MARKETS: StateKey[dict[str, SavedQuote]] = StateKey("markets", dict[str, SavedQuote])
# The markets' precision, so a reader shows amounts and prices as the core does (`extra`, the
# venue's raw description, stays behind).
MARKET_INFO: StateKey[dict[str, MarketInfo]] = StateKey(
    "market_info", dict[str, MarketInfo], exclude={"__all__": {"extra"}}, exclude_none=True
)


class SavedState(StoreConnection):
    """Flags and saved state, in the `kv` table."""

    async def set_flag(self, key: str, value: str) -> None:
        await self._write([("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))])

    async def get_flag(self, key: str) -> str | None:
        async with self._conn.execute("SELECT value FROM kv WHERE key=?", (key,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def save_state(self, key: StateKey[T], value: T) -> None:
        await self.set_flag(key.name, key.dump(value))

    async def load_state(self, key: StateKey[T]) -> T | None:
        """The state saved under `key`, None when there is none; ValueError when it is unreadable."""
        text = await self.get_flag(key.name)
        return None if text is None else key.parse(text)
