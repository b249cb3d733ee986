"""The `kv` table: flags, and the state a writing core saves for readers in other processes.

A flag is a short text under a key (`paused` is "1" or "0"). Saved state is JSON under a key,
written and read through the pydantic `TypeAdapter` of its `StateKey`: decimals as strings,
datetimes ISO 8601. A core saves its balances, last reconciliation, market view and market
precision (`BALANCES`, `LAST_RECONCILE`, `MARKETS`, `MARKET_INFO`) for `inspect` and the
exports; a writing core never reads them back. The values are the core's own types (the
`ReconcileResult`, `MarketQuote`s and `MarketInfo`s it publishes) but for the balances, saved as
(free, used) pairs. The shapes are those every store has held, so the state an older core saved
reads the same (the `exchange` and `mode` it saved with the last reconciliation are ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, TypeAdapter

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
        return BalancesUpdated(
            {c: Balance(c, free, used) for c, (free, used) in self.balances.items()}, dict(self.prices), self.quote
        )


def _with_symbols(saved: Any) -> Any:
    """Saved quotes with the symbol each one leaves out (it is their key)."""
    if not isinstance(saved, dict):
        return saved  # not a mapping: the dict's own validation says so
    return {s: {**q, "symbol": s} if isinstance(q, dict) else q for s, q in saved.items()}


BALANCES: StateKey[SavedBalances] = StateKey("balances", SavedBalances)
LAST_RECONCILE: StateKey[ReconcileResult] = StateKey("last_reconcile", ReconcileResult)
# The writer's market view (saved every few seconds), each quote under its symbol.
MARKETS: StateKey[dict[str, MarketQuote]] = StateKey(
    "markets",
    Annotated[dict[str, MarketQuote], BeforeValidator(_with_symbols)],
    exclude={"__all__": {"symbol"}},
)
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
