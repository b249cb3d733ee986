"""The helpers every test folder shares: waiting for a condition, settings with some keys changed,
an approved signal as intake and approval would store it, a TradeExecutor whose events are recorded,
a hand-moved clock, the data folder, and the command line run in a clean environment.

Imported as `from helpers import ...`: `tests/` has no `__init__.py`, so pytest puts it on
`sys.path` for `tests/conftest.py` (the same way `from conftest import ...` resolves), whichever
way pytest is started (`pytest`, `python -m pytest`, `-n 2 --dist loadfile`) and from any folder.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from executor.config import Settings, load_config
from executor.events import Event, EventBus
from executor.executor import TradeExecutor
from executor.models import Signal, SignalRecord, SignalStatus, to_decimal, utcnow

DEADLINE = 10.0  # seconds a test waits for a condition before it fails (generous: the machine is shared)
DATA = Path(__file__).parent / "data"
VALID_SIGNALS = DATA / "signals.valid.jsonl"
AUTO = {"TRADECONSOLE_APPROVAL__MODE": "auto"}  # the environment of a run that approves every signal


class FakeClock:
    """A monotonic clock that moves only when told (paper market frozen unless advanced)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _label(predicate: Callable[..., object], what: str | None) -> str:
    return what or getattr(predicate, "__name__", repr(predicate))


async def eventually(
    predicate: Callable[[], object | Awaitable[object]],
    timeout: float = DEADLINE,
    interval: float = 0.01,
    *,
    pause: Callable[[], Awaitable[object]] | None = None,
    what: str | None = None,
) -> Any:
    """Wait until `predicate` (sync or async) holds and return its value; fail loudly at the deadline.

    Between tries it sleeps `interval`, or awaits `pause()` instead (a pilot's pause, in the console).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {_label(predicate, what)}")
        if pause is not None:
            await pause()
        else:
            await asyncio.sleep(interval)


def wait_for(
    predicate: Callable[[], Any], what: str | None = None, timeout: float = DEADLINE, interval: float = 0.05
) -> Any:
    """`eventually` for code outside an event loop (a subprocess, a socket): blocks the thread."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {_label(predicate, what)}")
        time.sleep(interval)


def make_settings(**sections: Mapping[str, Any]) -> Settings:
    """Defaults (no file, no environment) with some keys changed, e.g. execution={"max_retries": 2}."""
    settings = load_config(None, env={})
    updates = {name: getattr(settings, name).model_copy(update=dict(changes)) for name, changes in sections.items()}
    return settings.model_copy(update=updates)


def approved_signal(markets: Mapping[str, Any], ticker: Callable[[str], Any], **fields: Any) -> SignalRecord:
    """The record of an approved signal (as intake and approval would make it), not yet stored.

    `markets` are the executor's markets (for the amount step), `ticker(symbol)` the venue's ticker
    (the reference price of an order without a price), e.g. `engine.ticker`. `side` defaults to
    "buy"; a `quote_amount` becomes an amount at the reference price, rounded down to the step.
    """
    fields.setdefault("side", "buy")
    signal = Signal.model_validate(fields)
    market = markets[signal.symbol]
    quote = ticker(signal.symbol)
    reference = to_decimal(signal.price) if signal.price else (quote.ask if signal.side == "buy" else quote.bid)
    amount = to_decimal(signal.amount) if signal.amount else to_decimal(signal.quote_amount) / reference
    amount = (amount / market.amount_step).to_integral_value() * market.amount_step
    return SignalRecord(
        id=signal.id,
        status=SignalStatus.APPROVED,
        source="test",
        received_at=utcnow(),
        raw=signal.model_dump_json(),
        signal=signal,
        reference_price=reference,
        amount=amount,
    )


def recorded_executor(
    exchange: Any,
    store: Any,
    execution: Any,
    *,
    prefix: str,
    poll_interval: float,
    balance_interval: float,
    lookup_window: float,
) -> tuple[TradeExecutor, list[Event]]:
    """A TradeExecutor on an event bus of its own, and the list each event it publishes is appended to."""
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    executor = TradeExecutor(
        exchange,
        store,
        execution,
        bus=bus,
        client_id_prefix=prefix,
        poll_interval=poll_interval,
        balance_interval=balance_interval,
        lookup_window=lookup_window,
    )
    return executor, events


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any TRADECONSOLE_ key and without the user's config, `extra` added."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRADECONSOLE_")}
    return base | {"XDG_CONFIG_HOME": "/nonexistent-config", "PYTHONUNBUFFERED": "1"} | extra


def tradeconsole(
    *args: str, env: Mapping[str, str] | None = None, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `tradeconsole ARGS` (as `python -m console`) in a clean environment with `env` added."""
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        env=clean_env(**(env or {})),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_until_idle(
    db: Path, signals: Path | str = VALID_SIGNALS, *, env: Mapping[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`tradeconsole run --headless --until-idle --signals SIGNALS --db DB` (the valid signals file by default)."""
    return tradeconsole(
        "run", "--headless", "--until-idle", "--signals", str(signals), "--db", str(db), env=env, input=input
    )
