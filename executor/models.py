"""Domain models: signals, orders, fills, balances, and their states.

One name for one thing: the enum values below are the states of SPEC sections 5 and 6, the values
stored in SQLite and the words shown on screen. Quantities and prices are `Decimal` everywhere
inside the core so that "never fill more than the signal asked" is exact arithmetic, not floats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

ZERO = Decimal(0)
M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


def updated(model: M, changes: Mapping[str, Any]) -> M:
    """`model.model_copy(update=changes)`, the same shallow unvalidated copy at half the cost: the
    write path copies an order or a signal several times per signal."""
    if model.__pydantic_extra__ is not None or model.__pydantic_private__ is not None:
        return model.model_copy(update=dict(changes))
    copy = object.__new__(type(model))
    values = model.__dict__.copy()
    values.update(changes)
    _set(copy, "__dict__", values)
    _set(copy, "__pydantic_extra__", None)
    _set(copy, "__pydantic_fields_set__", model.__pydantic_fields_set__ | changes.keys())
    _set(copy, "__pydantic_private__", None)
    return copy


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Exact decimal for a JSON number: 0.1 stays 0.1, not 0.1000000000000000055."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class SignalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    INVALID = "invalid"
    DUPLICATE = "duplicate"


class OrderStatus(StrEnum):
    NEW = "new"
    SUBMITTING = "submitting"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_ORDER_STATES

    @property
    def is_active(self) -> bool:
        """Not terminal: the executor still tracks it (new, submitting, live, canceling or unknown)."""
        return self not in TERMINAL_ORDER_STATES

    @property
    def is_live(self) -> bool:
        """Resting on the exchange (as far as we know), so it can fill, be canceled or amended."""
        return self in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


TERMINAL_ORDER_STATES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED, OrderStatus.FAILED}
)


class OrderOrigin(StrEnum):
    """Who created an order: this executor, or found on the venue (adopted: our client id prefix
    but not in the store; external: not ours at all)."""

    EXECUTOR = "executor"
    ADOPTED = "adopted"
    EXTERNAL = "external"


class JournalSource(StrEnum):
    """What caused a state change, as the event journal's `source` column records it."""

    INTAKE = "intake"  # a signal arrived
    AUTO = "auto"  # the auto-approval policy decided a signal
    TTL = "ttl"  # a signal's TTL passed
    EXECUTOR = "executor"  # the executor sent a signal back to pending
    OPERATOR = "operator"  # an operator's command
    REQUEST = "request"  # the executor's own request to the exchange and its answer
    RECONCILE = "reconcile"  # the reconciler's look at the exchange
    TIMER = "timer"  # an order's timeout or a cancel not confirmed in time


class ExchangeMode(StrEnum):
    """Which exchange the core trades on, as the status bar shows it; READ_ONLY: none (inspect)."""

    PAPER = "PAPER"
    SANDBOX = "SANDBOX"
    LIVE = "LIVE"
    READ_ONLY = "READ-ONLY"


# Magnitudes no spot market trades: a price of 1e30 is a strategy's bug, refused at the door with
# a reason naming the field, not an arithmetic error deep in execution (the schema says the same).
MAX_PRICE = 1e15
MAX_AMOUNT = 1e12
MAX_TTL_SECONDS = 1e10  # ~300 years: still a date; 1e30 would overflow one
_Positive = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
_Price = Annotated[float, Field(gt=0, le=MAX_PRICE, strict=True, allow_inf_nan=False)]


_ISO_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _iso_string(value: Any) -> Any:
    # The schema says a date-time *string*: a bare number must not pass as a unix timestamp, nor
    # a string of digits ("1700000000", which pydantic would read as one).
    if isinstance(value, str) and _ISO_DATE_TIME.match(value) is None:
        raise ValueError("must be an ISO 8601 date-time string with a timezone")
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time string with a timezone")
    return value


_Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_string)]


class Signal(BaseModel):
    """One signal exactly as `signal.schema.json` describes it; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    symbol: Annotated[str, Field(strict=True, pattern=r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")]
    side: Side
    amount: Annotated[_Positive, Field(le=MAX_AMOUNT)] | None = None
    quote_amount: _Price | None = None
    order_type: OrderType | None = None
    price: _Price | None = None
    stop_loss: _Price | None = None
    take_profit: _Price | None = None
    strategy: Annotated[str, Field(strict=True, max_length=64)] | None = None
    note: Annotated[str, Field(strict=True, max_length=280)] | None = None
    created_at: _Timestamp | None = None
    ttl_seconds: Annotated[_Positive, Field(le=MAX_TTL_SECONDS)] | None = None
    meta: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exactly_one_size(self) -> Signal:
        if self.amount is None and self.quote_amount is None:
            raise ValueError("one of amount and quote_amount is required")
        if self.amount is not None and self.quote_amount is not None:
            raise ValueError("give only one of amount and quote_amount, not both")
        return self

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]


class SignalRecord(BaseModel):
    """A received signal as the store keeps it: every arrival is its own row, duplicates included."""

    model_config = ConfigDict(extra="forbid")

    seq: int | None = None
    id: str | None
    status: SignalStatus
    reason: str = ""
    source: str
    received_at: datetime
    raw: str
    signal: Signal | None = None
    reference_price: Decimal | None = None
    amount: Decimal | None = None  # base amount, quote_amount converted at the reference price
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None

    @field_validator("signal", mode="before")
    @classmethod
    def _signal_from_text(cls, value: Any) -> Any:
        # A store row keeps the signal as the JSON text it was written as (its `payload` column).
        if isinstance(value, str):
            return Signal.model_validate_json(value) if value else None
        return value

    @property
    def notional(self) -> Decimal | None:
        if self.amount is None or self.reference_price is None:
            return None
        return self.amount * self.reference_price


class Order(BaseModel):
    """One exchange order (one client order id). A signal may own several over time (amends)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    client_order_id: str
    signal_id: str | None
    replacement: int = 0
    exchange_order_id: str | None = None
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None = None
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = ZERO
    average: Decimal | None = None
    fee: Decimal = ZERO
    fee_currency: str | None = None
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    timeout_at: datetime | None = None
    last_error: str = ""
    origin: OrderOrigin = OrderOrigin.EXECUTOR
    version: int = 0  # bumped by every write: the store's compare-and-set key

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def notional(self) -> Decimal | None:
        price = self.average if self.average is not None else self.price
        return None if price is None else self.amount * price


# What an order is from its intent on: no write changes these (the store's UPDATE leaves them out).
ORDER_FIXED = frozenset({"client_order_id", "signal_id", "replacement", "symbol", "side", "type", "created_at"})


class Fill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fill_id: str
    client_order_id: str
    signal_id: str | None
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal = ZERO
    fee_currency: str | None = None
    ts: datetime = Field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    free: Decimal
    used: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.used


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """What the executor needs to know about a market to size and check an order."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal
    price_tick: Decimal
    min_amount: Decimal
    min_cost: Decimal
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    max_amount: Decimal | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def distance_pct(price: Decimal, market: Decimal) -> Decimal:
    """How far `price` is from `market`, in % of the market (positive: above it)."""
    return (price - market) / market * 100
