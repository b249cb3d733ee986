"""`tradeconsole emulator`, exactly as the CLI serves it, with two more things in its record.

The soak compares every order's fills and fees in the store with what the venue executed, and
tells the 429s the fault plan injected from those a client draws; the emulator's record (`GET
/_emulator/record`, `--record FILE`) has neither. This runner adds, read from the emulator and
the paper engine behind it:

- `"fills"`: per venue order id (a client order id may be reused once its order ended), its
  trades, the amount they executed and their fees per asset:
  `{"17": {"client_order_id": "tc...0000", "trades": 2, "amount": "0.0012", "fees": {"USDT": "0.0721"}}}`
- `"rate_limited"`: every 429 and 418 answered, by cause and by path (see `RateLimits.cause`):
  `{"by_cause": {"injected": 3, "weight limit": 1}, "by_path": {"GET /api/v3/myTrades": {...}}}`

Everything else is `tradeconsole emulator` itself: same arguments, output, keys and exit codes.
It hooks into two methods only, `Emulator.handle` (every request) and `EmulatorFaults.draw`
(the fault plan's draw), and reads answers as a client would (status, body, Retry-After).

    python -m tests.chaos.venue --port 0 --seed 3 --faults faults.json --record record.json
"""

from __future__ import annotations

import contextvars
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from executor.venue.emulator.app import Emulator
from executor.venue.faults import Fault
from executor.venue.faults import FaultPlan as EmulatorFaults

INJECTED = "injected"
INSIDE_INJECTED = "inside an injected 429's Retry-After"  # sent before the client heard of it, or ignoring it
INSIDE_LIMIT = "inside a limit's Retry-After"
WEIGHT = "weight limit"
ORDER_COUNT = "order count limit (-1015)"
BANNED = "banned"  # every 418

# Per request (each aiohttp request is a task of its own): did the fault plan draw a 429 for it?
_drawn: contextvars.ContextVar[dict[str, bool] | None] = contextvars.ContextVar("drawn", default=None)


def venue_fills(emulator: Emulator) -> dict[str, dict[str, Any]]:
    """Per venue order id: its client order id, number of trades, executed amount, fees per asset."""
    fills: dict[str, dict[str, Any]] = {}
    amounts: dict[str, Decimal] = {}
    fees: dict[str, dict[str, Decimal]] = {}
    for trade in emulator.engine.trades():
        key = str(trade.order_id)
        entry = fills.setdefault(key, {"client_order_id": trade.client_order_id, "trades": 0})
        entry["trades"] += 1
        amounts[key] = amounts.get(key, Decimal(0)) + trade.amount
        per_asset = fees.setdefault(key, {})
        per_asset[trade.fee_currency] = per_asset.get(trade.fee_currency, Decimal(0)) + trade.fee
    for key, entry in fills.items():
        entry["amount"] = format(amounts[key], "f")
        entry["fees"] = {asset: format(fee, "f") for asset, fee in sorted(fees[key].items())}
    return fills


class RateLimits:
    """Every 429/418 the emulator answers, by cause and by path."""

    def __init__(self) -> None:
        self.by_path: dict[str, Counter[str]] = {}
        self.window_cause = INJECTED  # what opened the Retry-After window last
        self.window_until = 0.0  # monotonic

    def cause(self, status: int, body: Any, *, injected: bool, now: float) -> str:
        """Why the venue answered 429 or 418: the fault plan, a Retry-After still running, or a limit."""
        if status == 418:
            return BANNED
        if injected:
            return INJECTED
        if now < self.window_until:
            return INSIDE_INJECTED if self.window_cause == INJECTED else INSIDE_LIMIT
        return ORDER_COUNT if isinstance(body, dict) and body.get("code") == -1015 else WEIGHT

    def note(self, endpoint: str, status: int, body: Any, retry_after: float, *, injected: bool) -> None:
        now = time.monotonic()
        cause = self.cause(status, body, injected=injected, now=now)
        if cause in (INJECTED, WEIGHT):  # these open (or extend) the window every request waits out
            self.window_cause, self.window_until = cause, max(self.window_until, now + retry_after)
        self.by_path.setdefault(endpoint, Counter())[cause] += 1

    def to_json(self) -> dict[str, Any]:
        by_cause: Counter[str] = Counter()
        for causes in self.by_path.values():
            by_cause.update(causes)
        return {
            "by_cause": dict(sorted(by_cause.items())),
            "by_path": {path: dict(sorted(c.items())) for path, c in sorted(self.by_path.items())},
        }


def _answer_of(response: Any) -> tuple[Any, float]:
    """The JSON body and Retry-After of an answer, as far as they can be read."""
    try:
        body = json.loads(response.body)
    except (AttributeError, TypeError, ValueError):
        body = None
    try:
        retry_after = float(response.headers.get("Retry-After", 0))
    except (AttributeError, TypeError, ValueError):
        retry_after = 0.0
    return body, retry_after


def hook(emulator_cls: type[Emulator] = Emulator, faults_cls: type[EmulatorFaults] = EmulatorFaults) -> None:
    """Extend the record of every emulator made from now on, and count its 429s and 418s."""
    record_of, handle, draw = emulator_cls.record, emulator_cls.handle, faults_cls.draw
    logs: dict[int, RateLimits] = {}

    def record(self: Emulator) -> dict[str, Any]:
        out = record_of(self)
        out["fills"] = venue_fills(self)
        out["rate_limited"] = logs.setdefault(id(self), RateLimits()).to_json()
        return out

    async def handle_request(self: Emulator, request):
        drawn = {"rate_limit": False}
        token = _drawn.set(drawn)
        try:
            response = await handle(self, request)
        finally:
            _drawn.reset(token)
        if response.status in (429, 418):
            body, retry_after = _answer_of(response)
            log = logs.setdefault(id(self), RateLimits())
            log.note(
                f"{request.method} {request.path}", response.status, body, retry_after, injected=drawn["rate_limit"]
            )
        return response

    def draw_fault(self: EmulatorFaults, endpoint: str):
        result = draw(self, endpoint)
        drawn = _drawn.get()
        if drawn is not None and result.fault is Fault.RATE_LIMIT:
            drawn["rate_limit"] = True
        return result

    emulator_cls.record = record
    emulator_cls.handle = handle_request
    faults_cls.draw = draw_fault


def main(argv: Sequence[str] | None = None) -> int:
    from console.cli import main as cli

    hook()
    return cli(["emulator", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
