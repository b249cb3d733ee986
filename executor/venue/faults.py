"""The venue simulation's one fault model: the kinds of fault, the faults file, and the draws.

Owns `Fault`, every kind of failure a venue throws at a client, for the paper exchange and the
emulator alike; `FaultPlan`, one pydantic model that is both the faults file `tradeconsole
emulator --faults FILE` reads and the plan either venue draws from (seeded draws per endpoint,
faults tests script for one endpoint, the count of what was injected); `Limits`, the emulator's
rate limits, in the same file; and the file's validation: every problem names its key.

Both venues name endpoints alike (`executor.venue.endpoints`): a port call names the endpoint it
requests, so `script("create_order", ...)` and `script("POST /api/v3/order", ...)` are one queue.

Faults file (JSON; every key optional, unknown keys are an error):

    {
      "seed": 1,                 # seeds the draws: same file, same requests -> same faults
      "invisible_ms": 300,       # how long an "invisible" order stays out of every query
      "retry_after": 1,          # back-off (seconds) of an injected 429; its header rounds up
      "timeout_hold_s": 12,      # how long a timeout-after-accept response is held (> client timeout)
      "limits": {"weight_per_minute": 6000, "orders_per_10s": 100, "orders_per_day": 200000,
                 "ban_after": 10, "ban_seconds": 5},     # Binance's spot limits; 0 switches one off
      "endpoints": {
        "POST /api/v3/order": {"timeout_after_accept": 0.1, "error_before": 0.1, "error_after": 0.1,
                               "rate_limit": 0.1, "reset_after_accept": 0.1, "invisible": 0.1},
        "*": {"error_before": 0.05}                      # every endpoint without its own table
      }
    }

The emulator draws, per request, one *response* fault from its endpoint's table (their
probabilities add up to at most 1): `timeout_after_accept` acts, then holds the answer for
`timeout_hold_s`; `error_before` answers 5xx without acting; `error_after` acts, then answers 5xx;
`rate_limit` answers a request-weight 429 (-1003) without acting (and, like a real limit, so does
every request inside its Retry-After, on the way to a 418); `reset_after_accept` acts, then drops
the connection without an answer. Independently, `invisible` hides an order a create made from
every query for `invisible_ms`: invisibility is a property of the accepted order, not of the
response, so it combines with any response fault (a script names both: "error_after+invisible").

The paper exchange draws one fault per request among its table's (`next`): the outcomes as its
client sees them, so invisibility is one of them, and three kinds are its own: `refused` (the
connection is refused before anything is sent), `reject` (a plain refusal) and
`timeout_after_accept_invisible` (both at once). A faults file names only the emulator's kinds.
Each venue draws from a seeded stream of its own.
"""

from __future__ import annotations

import json
import random
from collections import Counter, deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from executor.venue.endpoints import CREATING, ENDPOINTS, endpoint_of


class Fault(StrEnum):
    NONE = "none"
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # act, then hold the response past the client's timeout
    ERROR_BEFORE = "error_before"  # 5xx, nothing done (the client cannot know)
    ERROR_AFTER = "error_after"  # act, then 5xx
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After, nothing done
    RESET_AFTER_ACCEPT = "reset_after_accept"  # act, then drop the connection without a response
    INVISIBLE = "invisible"  # an order this request creates is not seen for `invisible_ms`
    REFUSED = "refused"  # paper exchange: connection refused before sending, nothing happens
    TIMEOUT_AFTER_ACCEPT_INVISIBLE = "timeout_after_accept_invisible"  # paper exchange: both at once
    REJECT = "reject"  # paper exchange: refused by the venue

    @property
    def invisible(self) -> bool:
        return self in (Fault.INVISIBLE, Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE)


# What the emulator injects, and so what a faults file may name.
EMULATOR_FAULTS = (
    Fault.NONE,
    Fault.TIMEOUT_AFTER_ACCEPT,
    Fault.ERROR_BEFORE,
    Fault.ERROR_AFTER,
    Fault.RATE_LIMIT,
    Fault.RESET_AFTER_ACCEPT,
    Fault.INVISIBLE,
)
RESPONSE_FAULTS = tuple(f for f in EMULATOR_FAULTS if f not in (Fault.NONE, Fault.INVISIBLE))


class FaultsFileError(ValueError):
    """A faults file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Draw:
    """What the emulator does to one request: a response fault, and whether a created order hides."""

    fault: Fault = Fault.NONE
    invisible: bool = False

    @classmethod
    def of(cls, fault: Fault) -> Draw:
        if fault is Fault.INVISIBLE:
            return cls(Fault.NONE, True)
        if fault is Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE:
            return cls(Fault.TIMEOUT_AFTER_ACCEPT, True)
        return cls(fault)

    @classmethod
    def parse(cls, text: str) -> Draw:
        """Parse "timeout_after_accept", "invisible", "error_after+invisible" or "none"."""
        fault, invisible = Fault.NONE, False
        for part in text.split("+"):
            draw = cls.of(Fault(part.strip()))
            invisible = invisible or draw.invisible
            if draw.fault is not Fault.NONE:
                fault = draw.fault
        return cls(fault, invisible)

    def as_fault(self) -> Fault:
        """The one paper-exchange fault this draw is."""
        if not self.invisible:
            return self.fault
        if self.fault in (Fault.NONE, Fault.TIMEOUT_AFTER_ACCEPT):
            return Fault.INVISIBLE if self.fault is Fault.NONE else Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE
        raise ValueError(f"the paper exchange has no fault {self.fault.value}+invisible")


def _from_file(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("faults_file"))


def _endpoint_key(name: Any, info: ValidationInfo) -> Any:
    if isinstance(name, str) and not _from_file(info):
        name = endpoint_of(name)
    if name == "*" or name in ENDPOINTS:
        return name
    known = ", ".join(ENDPOINTS)
    raise PydanticCustomError("unknown_endpoint", 'unknown endpoint (use "*" or one of: {known})', {"known": known})


def _fault_key(value: Any, info: ValidationInfo) -> Any:
    kinds = EMULATOR_FAULTS if _from_file(info) else tuple(Fault)
    if value in kinds:
        return Fault(value)
    known = ", ".join(f.value for f in kinds if f is not Fault.NONE)
    raise PydanticCustomError("unknown_fault", "unknown fault (known: {known})", {"known": known})


def _response_total(table: dict[Fault, float], info: ValidationInfo) -> dict[Fault, float]:
    total = sum(p for f, p in table.items() if f is not Fault.INVISIBLE)
    if _from_file(info) and total > 1 + 1e-9:
        raise PydanticCustomError(
            "too_likely", "the response faults add up to {total}, more than 1", {"total": f"{total:g}"}
        )
    return table


Count = Annotated[int, Strict(), Field(ge=0)]
Seconds = Annotated[float, Strict(), Field(ge=0)]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]
FaultTable = Annotated[
    dict[Annotated[Fault, BeforeValidator(_fault_key)], Probability], AfterValidator(_response_total)
]


class Limits(BaseModel):
    """The venue's rate limits, Binance spot's by default. A limit of 0 switches it off.

    exchangeInfo announces exactly the ones switched on (REQUEST_WEIGHT per 1 MINUTE, ORDERS per
    10 SECOND and per 1 DAY). `ban_after` counts requests sent inside a request-weight 429's
    Retry-After (an order-count 429 never leads to a ban); `ban_seconds` is the 418's length.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight_per_minute: Count = 6000
    orders_per_10s: Count = 100
    orders_per_day: Count = 200_000
    ban_after: Count = 10  # requests sent inside a request-weight 429's Retry-After before the 418 ban
    ban_seconds: Seconds = 5.0


class FaultPlan(BaseModel):
    """Which faults hit which endpoint: scripted ones first (FIFO), then seeded random draws.

    `endpoints` maps an endpoint (or "*" for every one without its own table; an empty table
    exempts its endpoint) to {fault: probability}. Built in Python, `probabilities` is another
    name for it and a port call (`"create_order"`) names its endpoint.
    """

    model_config = ConfigDict(extra="forbid")

    seed: Annotated[int, Strict()] = 0
    endpoints: dict[Annotated[str, BeforeValidator(_endpoint_key)], FaultTable] = Field(default_factory=dict)
    invisible_ms: Seconds = 500.0
    retry_after: Seconds = 1.0
    timeout_hold_s: Seconds = 12.0  # the adapter's ccxt timeout is 10 s
    limits: Limits = Field(default_factory=Limits)

    _scripts: dict[str, deque[Draw]] = PrivateAttr(default_factory=dict)
    _injected: Counter[Fault] = PrivateAttr(default_factory=Counter)
    _by_endpoint: Counter[tuple[str, Fault]] = PrivateAttr(default_factory=Counter)
    _log: list[tuple[str, Fault]] = PrivateAttr(default_factory=list)
    _paper_rng: random.Random = PrivateAttr()
    _emulator_rng: random.Random = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _probabilities(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and "probabilities" in data and not _from_file(info):
            data = {**data, "endpoints": data["probabilities"]}
            del data["probabilities"]
        return data

    @field_validator("seed")
    @classmethod
    def _seed(cls, seed: int, info: ValidationInfo) -> int:
        if seed < 0 and _from_file(info):
            raise PydanticCustomError("greater_than_equal", "must not be negative")
        return seed

    def model_post_init(self, context: Any) -> None:
        self._paper_rng = random.Random(f"faults:{self.seed}")
        self._emulator_rng = random.Random(f"emulator-faults:{self.seed}")

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> FaultPlan:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise FaultsFileError(f"{path}: cannot read the faults file ({exc.strerror})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FaultsFileError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
        try:
            return cls.from_json(data)
        except FaultsFileError as exc:
            raise FaultsFileError(f"{path}: {exc}") from None

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan:
        """A faults file's content (parsed JSON), validated; `FaultsFileError` names every problem."""
        try:
            return cls.model_validate(data, context={"faults_file": True})
        except ValidationError as exc:
            raise FaultsFileError("; ".join(_problem(e) for e in exc.errors())) from None

    def script(self, endpoint: str, *faults: Fault | Draw | str) -> Self:
        """Queue faults for the next requests to `endpoint` (or a port call's), before any random
        draw (tests): `Fault`s, `Draw`s or their text ("error_after+invisible")."""
        queue = self._scripts.setdefault(_scripted(endpoint), deque())
        for f in faults:
            queue.append(f if isinstance(f, Draw) else Draw.of(f) if isinstance(f, Fault) else Draw.parse(f))
        return self

    def pending(self, endpoint: str) -> int:
        """Scripted faults not yet drawn for `endpoint` (or a port call)."""
        return len(self._scripts.get(endpoint_of(endpoint), ()))

    # -- drawing --------------------------------------------------------------------------------

    @property
    def injected(self) -> Counter[Fault]:
        """Every fault injected so far, by kind."""
        return self._injected

    @property
    def log(self) -> list[tuple[str, Fault]]:
        """The paper exchange's faults in the order injected: (port call, fault)."""
        return self._log

    def next(self, operation: str) -> Fault:
        """The paper exchange's draw for one call of `operation`: one fault, or `Fault.NONE`."""
        endpoint = endpoint_of(operation)
        queue = self._scripts.get(endpoint)
        fault = queue.popleft().as_fault() if queue else self._paper_draw(endpoint)
        if fault is not Fault.NONE:
            self._count(endpoint, fault)
            self._log.append((operation, fault))
        return fault

    def draw(self, endpoint: str) -> Draw:
        """The emulator's draw for one request to `endpoint`."""
        queue = self._scripts.get(endpoint)
        result = queue.popleft() if queue else self._emulator_draw(endpoint)
        if result.fault is not Fault.NONE:
            self._count(endpoint, result.fault)
        return result

    def note_invisible(self, endpoint: str) -> None:
        """Counted when an order was actually hidden (a create that did not act hides nothing)."""
        self._count(endpoint, Fault.INVISIBLE)

    def summary(self) -> dict[str, dict[str, int]]:
        """What was injected, per endpoint and kind: `{"POST /api/v3/order": {"error_after": 2}}`."""
        out: dict[str, dict[str, int]] = {}
        for (endpoint, fault), n in sorted(self._by_endpoint.items()):
            out.setdefault(endpoint, {})[fault.value] = n
        return out

    def _count(self, endpoint: str, fault: Fault) -> None:
        self._injected[fault] += 1
        self._by_endpoint[(endpoint, fault)] += 1

    def _table(self, endpoint: str) -> dict[Fault, float] | None:
        # An endpoint's own table wins over "*", so an empty table exempts that endpoint.
        return self.endpoints.get(endpoint, self.endpoints.get("*"))

    def _paper_draw(self, endpoint: str) -> Fault:
        table = self._table(endpoint)
        if not table:
            return Fault.NONE
        # One draw per request keeps the sequence reproducible whatever the table holds.
        u = self._paper_rng.random()
        for fault, p in table.items():
            if u < p:
                return fault
            u -= p
        return Fault.NONE

    def _emulator_draw(self, endpoint: str) -> Draw:
        table = self._table(endpoint)
        if not table:
            return Draw()
        # Two draws per request whatever the table holds, so the sequence stays reproducible.
        u, v = self._emulator_rng.random(), self._emulator_rng.random()
        fault = Fault.NONE
        for kind in RESPONSE_FAULTS:
            p = table.get(kind, 0.0)
            if u < p:
                fault = kind
                break
            u -= p
        invisible = endpoint in CREATING and v < table.get(Fault.INVISIBLE, 0.0)
        return Draw(fault, invisible)


def _scripted(name: str) -> str:
    endpoint = endpoint_of(name)
    if endpoint not in ENDPOINTS:
        raise FaultsFileError(f"{name}: unknown endpoint (use one of: {', '.join(ENDPOINTS)})")
    return endpoint


def _problem(error: Any) -> str:
    """One pydantic error as the faults file's reader needs it: the key's path, then what is wrong."""
    loc = [str(part) for part in error["loc"] if part != "[key]"]
    path = ".".join(loc)
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        known = ", ".join(Limits.model_fields if loc[:1] == ["limits"] else sorted(FaultPlan.model_fields))
        return f"unknown key {loc[-1]!r} (known: {known})" if len(loc) == 1 else f"{path}: unknown key (known: {known})"
    if kind == "model_type" and not loc:
        return "the faults file must hold a JSON object"
    if kind in ("model_type", "dict_type"):
        shape = {
            "endpoints": 'an object of "METHOD /path" (or "*") -> {fault: probability}',
            "limits": "an object",
        }.get(path, "an object of fault -> probability")
        return f"{path}: must be {shape}"
    if kind == "int_type" and isinstance(value, float):
        why = "must be a whole number"
    elif kind in ("int_type", "float_type"):
        why = f"must be a number, not {json.dumps(value, default=str)}"
    elif kind == "greater_than_equal":
        why = "must not be negative"
    elif kind == "less_than_equal":
        why = "a probability is at most 1"
    else:
        why = error["msg"]
    return f"{path}: {why}"
