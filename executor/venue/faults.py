"""The emulator's fault plan and rate limits: what `tradeconsole emulator --faults FILE` reads.

Owns the JSON format (documented in `executor.exchanges.emulator`), its validation (every problem
names its key), the seeded draws that decide which request meets which fault, the scripted
faults tests queue for one endpoint, and the count of what was injected.

A request meets at most one *response* fault (drawn once from its endpoint's table) and,
independently, an order it creates may be *invisible* for `invisible_ms`: invisibility is a
property of the accepted order, not of the response, so it combines with any response fault.
"""

from __future__ import annotations

import json
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class EmulatorFault(StrEnum):
    NONE = "none"
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # act, then hold the response past the client's timeout
    ERROR_BEFORE = "error_before"  # 5xx, nothing done
    ERROR_AFTER = "error_after"  # act, then 5xx
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After, nothing done
    RESET_AFTER_ACCEPT = "reset_after_accept"  # act, then drop the connection without a response
    INVISIBLE = "invisible"  # an order this request creates is not seen for `invisible_ms`


RESPONSE_FAULTS = tuple(f for f in EmulatorFault if f not in (EmulatorFault.NONE, EmulatorFault.INVISIBLE))
# Requests whose fault happens after the venue acted: their outcome is unknown to the client.
ACTS_FIRST = frozenset(
    {EmulatorFault.TIMEOUT_AFTER_ACCEPT, EmulatorFault.ERROR_AFTER, EmulatorFault.RESET_AFTER_ACCEPT}
)

# Every endpoint the emulator serves, as "METHOD /path": the keys of the faults file's "endpoints".
ENDPOINTS = (
    "GET /api/v3/ping",
    "GET /api/v3/time",
    "GET /api/v3/exchangeInfo",
    "GET /api/v3/ticker/24hr",
    "GET /api/v3/ticker/bookTicker",
    "GET /api/v3/ticker/price",
    "GET /api/v3/depth",
    "GET /api/v3/avgPrice",
    "GET /api/v3/klines",
    "GET /api/v3/trades",
    "GET /api/v3/aggTrades",
    "GET /api/v3/account",
    "POST /api/v3/order",
    "GET /api/v3/order",
    "DELETE /api/v3/order",
    "GET /api/v3/openOrders",
    "DELETE /api/v3/openOrders",
    "GET /api/v3/allOrders",
    "GET /api/v3/myTrades",
    "POST /api/v3/order/cancelReplace",
    "GET /sapi/v1/system/status",
    "GET /sapi/v1/asset/tradeFee",
)
NEW_ORDER = "POST /api/v3/order"
CANCEL_REPLACE = "POST /api/v3/order/cancelReplace"
# The endpoints that place orders: they take from the order count, and only they can hide one.
CREATING = frozenset({NEW_ORDER, CANCEL_REPLACE})


class FaultsFileError(ValueError):
    """A faults file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Draw:
    fault: EmulatorFault = EmulatorFault.NONE
    invisible: bool = False

    @classmethod
    def parse(cls, text: str) -> Draw:
        """Parse "timeout_after_accept", "invisible", "error_after+invisible" or "none"."""
        fault, invisible = EmulatorFault.NONE, False
        for part in text.split("+"):
            kind = EmulatorFault(part.strip())
            if kind is EmulatorFault.INVISIBLE:
                invisible = True
            elif kind is not EmulatorFault.NONE:
                fault = kind
        return cls(fault, invisible)


@dataclass(frozen=True, slots=True)
class Limits:
    """The venue's rate limits, Binance spot's by default. A limit of 0 switches it off.

    exchangeInfo announces exactly the ones switched on (REQUEST_WEIGHT per 1 MINUTE, ORDERS per
    10 SECOND and per 1 DAY). `ban_after` counts requests sent inside a request-weight 429's
    Retry-After (an order-count 429 never leads to a ban); `ban_seconds` is the 418's length.
    """

    weight_per_minute: int = 6000
    orders_per_10s: int = 100
    orders_per_day: int = 200_000
    ban_after: int = 10  # requests sent inside a request-weight 429's Retry-After before the 418 ban
    ban_seconds: float = 5.0


@dataclass
class EmulatorFaults:
    seed: int = 0
    endpoints: dict[str, dict[EmulatorFault, float]] = field(default_factory=dict)
    invisible_ms: float = 500.0
    retry_after: float = 1.0
    timeout_hold_s: float = 12.0  # the adapter's ccxt timeout is 10 s
    limits: Limits = field(default_factory=Limits)
    injected: Counter[tuple[str, EmulatorFault]] = field(default_factory=Counter)
    _scripts: dict[str, deque[Draw]] = field(default_factory=dict, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"emulator-faults:{self.seed}")

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> EmulatorFaults:
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
    def from_json(cls, data: Any) -> EmulatorFaults:
        if not isinstance(data, dict):
            raise FaultsFileError("the faults file must hold a JSON object")
        known = {"seed", "endpoints", "invisible_ms", "retry_after", "timeout_hold_s", "limits"}
        for key in data:
            if key not in known:
                raise FaultsFileError(f"unknown key {key!r} (known: {', '.join(sorted(known))})")
        kwargs: dict[str, Any] = {}
        if "seed" in data:
            kwargs["seed"] = _number(data["seed"], "seed", integer=True)
        for key in ("invisible_ms", "retry_after", "timeout_hold_s"):
            if key in data:
                kwargs[key] = float(_number(data[key], key))
        if "limits" in data:
            kwargs["limits"] = _limits(data["limits"])
        endpoints = data.get("endpoints", {})
        if not isinstance(endpoints, dict):
            raise FaultsFileError('"endpoints" must be an object of "METHOD /path" (or "*") -> {fault: probability}')
        kwargs["endpoints"] = {name: _table(name, table) for name, table in endpoints.items()}
        return cls(**kwargs)

    def script(self, endpoint: str, *draws: str | EmulatorFault | Draw) -> EmulatorFaults:
        """Queue faults for the next requests to `endpoint`, before any random draw (tests)."""
        _check_endpoint(endpoint, allow_star=False)
        queue = self._scripts.setdefault(endpoint, deque())
        for d in draws:
            queue.append(d if isinstance(d, Draw) else Draw.parse(str(d)))
        return self

    def pending(self, endpoint: str) -> int:
        return len(self._scripts.get(endpoint, ()))

    # -- drawing --------------------------------------------------------------------------------

    def draw(self, endpoint: str) -> Draw:
        queue = self._scripts.get(endpoint)
        if queue:
            result = queue.popleft()
        else:
            result = self._random(endpoint)
        if result.fault is not EmulatorFault.NONE:
            self.injected[(endpoint, result.fault)] += 1
        return result

    def note_invisible(self, endpoint: str) -> None:
        """Counted when an order was actually hidden (a create that did not act hides nothing)."""
        self.injected[(endpoint, EmulatorFault.INVISIBLE)] += 1

    def _random(self, endpoint: str) -> Draw:
        # An endpoint's own table wins over "*", so an empty table exempts that endpoint.
        table = self.endpoints.get(endpoint, self.endpoints.get("*"))
        if not table:
            return Draw()
        # Two draws per request whatever the table holds, so the sequence stays reproducible.
        u, v = self._rng.random(), self._rng.random()
        fault = EmulatorFault.NONE
        for kind in RESPONSE_FAULTS:
            p = table.get(kind, 0.0)
            if u < p:
                fault = kind
                break
            u -= p
        invisible = endpoint in CREATING and v < table.get(EmulatorFault.INVISIBLE, 0.0)
        return Draw(fault, invisible)

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (endpoint, fault), n in sorted(self.injected.items()):
            out.setdefault(endpoint, {})[fault.value] = n
        return out


def _number(value: Any, key: str, *, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultsFileError(f"{key}: must be a number, not {json.dumps(value)}")
    if integer and not isinstance(value, int):
        raise FaultsFileError(f"{key}: must be a whole number")
    if value < 0:
        raise FaultsFileError(f"{key}: must not be negative")
    return value


def _limits(data: Any) -> Limits:
    if not isinstance(data, dict):
        raise FaultsFileError('"limits" must be an object')
    fields = Limits.__dataclass_fields__
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise FaultsFileError(f"limits.{key}: unknown key (known: {', '.join(fields)})")
        values[key] = _number(value, f"limits.{key}", integer=key != "ban_seconds")
    return Limits(**values)


def _check_endpoint(name: str, *, allow_star: bool = True) -> None:
    if (allow_star and name == "*") or name in ENDPOINTS:
        return
    raise FaultsFileError(f'endpoints.{name}: unknown endpoint (use "*" or one of: {", ".join(ENDPOINTS)})')


def _table(name: str, table: Any) -> dict[EmulatorFault, float]:
    _check_endpoint(name)
    if not isinstance(table, dict):
        raise FaultsFileError(f"endpoints.{name}: must be an object of fault -> probability")
    out: dict[EmulatorFault, float] = {}
    for key, p in table.items():
        try:
            fault = EmulatorFault(key)
        except ValueError:
            names = ", ".join(f.value for f in EmulatorFault if f is not EmulatorFault.NONE)
            raise FaultsFileError(f"endpoints.{name}.{key}: unknown fault (known: {names})") from None
        p = float(_number(p, f"endpoints.{name}.{key}"))
        if p > 1:
            raise FaultsFileError(f"endpoints.{name}.{key}: a probability is at most 1")
        out[fault] = p
    total = sum(p for f, p in out.items() if f is not EmulatorFault.INVISIBLE)
    if total > 1 + 1e-9:
        raise FaultsFileError(f"endpoints.{name}: the response faults add up to {total:g}, more than 1")
    return out
