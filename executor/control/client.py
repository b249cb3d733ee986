"""The console's one way to a core: `CoreClient`, commands in, events out (SPEC sections 2 and 12).

Whether the core runs in the console's own process (`demo`, `inspect` on a store no core holds)
or in another one behind its control socket (`attach`, `run` with the UI), the console holds a
`CoreClient` and nothing else of the core: it never imports the executor, the exchanges or the
store. Two implementations:

- `LocalClient` (here): wraps a `TradingService` in this process;
- `RemoteClient` (`executor/control/remote.py`): talks to a core's control socket.

Events arrive on `bus` exactly as the core publishes them, plus `ConnectionChanged` when a remote
core goes away or comes back. A command the core refuses raises `Refused` with the core's reason;
one that needs the operator's confirmation first (far from the market) raises `NeedsConfirmation`,
and the same command sent again with `confirm=True` goes ahead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from executor.events import Event, EventBus, Snapshot
from executor.models import ExchangeMode, MarketInfo, SignalStatus
from executor.sources.lines import MAX_LINE, Line

if TYPE_CHECKING:
    from executor.events import AmendCheck, KillSwitchResult
    from executor.service import TradingService

__all__ = ["ConnectionChanged", "CoreClient", "CoreStatus", "LocalClient", "NeedsConfirmation", "Refused",
           "SubmitResult"]


class Refused(Exception):
    """The core refused a command; the message is its reason, for the operator."""


class NeedsConfirmation(Refused):
    """The core asks for a confirmation first (e.g. far from the market). `subject` names the row
    ("signal sig-7", "order tc…0001"); the same command with `confirm=True` goes ahead."""

    def __init__(self, message: str, subject: str = "") -> None:
        super().__init__(message)
        self.subject = subject


@dataclass(frozen=True, slots=True)
class ConnectionChanged(Event):
    """A remote core went away (`connected` False, `detail` says why) or is back (a fresh
    snapshot follows). Never published by a `LocalClient`."""

    connected: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CoreStatus:
    """What `ctl status` prints and the status bar's rate-limit part shows."""

    mode: ExchangeMode
    exchange: str
    paused: bool
    open: int
    unknown: int
    pending_signals: int
    last_reconcile: str | None  # ISO time of the last reconciliation, None before the first
    reconcile_age_seconds: float | None
    drift: dict[str, str]
    rate_limit: str | None
    read_only: bool
    pid: int
    store: str

    def as_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What became of one submitted line: the signal's id (None when the line has none the core
    could read), its status on arrival (`pending`, `approved`, `invalid`, `duplicate`...) and why."""

    id: str | None
    status: SignalStatus
    reason: str = ""

    @property
    def accepted(self) -> bool:
        """Recorded `pending` or `approved`: the line is a signal the core took."""
        return self.status in (SignalStatus.PENDING, SignalStatus.APPROVED)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status.value, "reason": self.reason}


# A submitted line longer than `MAX_LINE` bytes (UTF-8) is never sent or recorded whole: its first
# `TOO_LONG_KEPT` bytes go to the core, which records it `invalid` with `TOO_LONG` as the reason.
TOO_LONG_KEPT = 4096
TOO_LONG = f"line longer than {MAX_LINE / (1 << 20):g} MiB ({MAX_LINE} bytes): not read further"


def cut_line(text: str) -> tuple[str, bool]:
    """(`text` as it goes to the core, whether it was too long and cut to its first bytes).

    Lone surrogates, which no UTF-8 text can carry, become `?`."""
    data = text.encode("utf-8", "replace")
    if len(data) > MAX_LINE:
        return data[:TOO_LONG_KEPT].decode("utf-8", "ignore"), True
    return (text if text.isascii() else data.decode("utf-8")), False


def submitted_line(text: str, too_long: bool = False) -> str | Line:
    """A submitted line for `TradingService.submit`: over `MAX_LINE` bytes (or cut by the client
    for being so), a `Line` recorded invalid with `TOO_LONG` and never parsed."""
    if not too_long:
        text, too_long = cut_line(text)
    return Line(text, error=TOO_LONG) if too_long else text


class CoreClient(ABC):
    """One core, as a console sees it. Every command is carried out by the core, audited there with
    this client's actor; the client keeps no state of its own but the connection."""

    bus: EventBus
    read_only: bool
    markets: dict[str, MarketInfo]  # the configured markets (precision, minimums), empty before start
    where: str  # "in this process" or the socket path, for messages
    # True when this console's own command started the core in another process (`run` with the
    # UI): quitting with nothing open then stops it by default; an `attach`ed core is left running.
    started_here: bool = False

    @abstractmethod
    async def start(self) -> None:
        """Start the core (local) or connect to it (remote). Events published from here on are kept."""

    @abstractmethod
    async def snapshot(self, *, history: int = 200) -> Snapshot: ...

    @abstractmethod
    def rate_limit(self) -> str | None:
        """The venue's rate-limit state in words ("cooling down 12 s"), None when nothing to say."""

    @abstractmethod
    async def status(self) -> CoreStatus: ...

    @abstractmethod
    async def approve(self, signal_id: str, *, confirm: bool = False) -> None: ...

    @abstractmethod
    async def reject(self, signal_id: str, *, reason: str = "") -> None: ...

    @abstractmethod
    async def check_signal_amend(self, signal_id: str, *, price: Decimal | None = None,
                                 amount: Decimal | None = None) -> AmendCheck: ...

    @abstractmethod
    async def amend_signal(self, signal_id: str, *, price: Decimal | None = None,
                           amount: Decimal | None = None, confirm: bool = False) -> None: ...

    @abstractmethod
    async def check_order_amend(self, coid: str, *, price: Decimal | None = None,
                                amount: Decimal | None = None) -> AmendCheck: ...

    @abstractmethod
    async def amend_order(self, coid: str, *, price: Decimal | None = None, amount: Decimal | None = None,
                          confirm: bool = False) -> None: ...

    @abstractmethod
    async def cancel_order(self, coid: str) -> None: ...

    @abstractmethod
    async def pause(self) -> None: ...

    @abstractmethod
    async def resume(self) -> None: ...

    @abstractmethod
    async def kill_switch(self) -> KillSwitchResult: ...

    @abstractmethod
    async def submit(self, lines: Sequence[str]) -> list[SubmitResult]:
        """Hand signals to the core, one JSONL line each: one result per line, in order, whatever
        the line holds (bad input is recorded `invalid`, never raised). A line longer than
        `MAX_LINE` bytes is recorded `invalid` (`TOO_LONG`) from its first bytes only."""

    @abstractmethod
    async def stop_core(self) -> None:
        """Ask the core to stop (intake stops, requests in flight finish, open orders stay)."""

    @abstractmethod
    async def close(self) -> None:
        """The console is done with the core: a local core is stopped, a remote one is left running."""

    @property
    def owns_core(self) -> bool:
        """True when closing this client stops the core (an in-process core)."""
        return False


def _refusal(exc: Exception) -> Refused:
    from executor.markets import FarFromMarket

    if isinstance(exc, FarFromMarket):
        return NeedsConfirmation(str(exc), exc.subject)
    return Refused(str(exc))


async def _command(call: Awaitable[Any]) -> Any:
    """Run a service command; an operator-facing refusal becomes `Refused` / `NeedsConfirmation`."""
    from executor.exchanges.base import ExchangeError
    from executor.executor import ExecutionError

    try:
        return await call
    except (ExecutionError, ExchangeError) as exc:
        raise _refusal(exc) from None


class LocalClient(CoreClient):
    """A core in this process: the client owns it, starts it and stops it."""

    where = "in this process"

    def __init__(self, open_service: Callable[[], Awaitable[TradingService]],
                 *, on_started: Callable[[TradingService], object] | None = None) -> None:
        self._open = open_service
        self._on_started = on_started
        self.service: TradingService | None = None
        self.bus = EventBus()
        self.read_only = False
        self.markets = {}
        self._unsubscribe: Callable[[], None] | None = None

    async def open(self) -> TradingService:
        """Open the service (once) without starting it: its bus is this client's bus from now on."""
        if self.service is None:
            self.service = await self._open()
            self.bus = self.service.bus
            self.read_only = self.service.read_only
        return self.service

    async def start(self) -> None:
        service = await self.open()
        await service.start()
        self.markets = dict(service.markets)
        if self._on_started is not None and not service.read_only:
            self._on_started(service)

    def _service(self) -> TradingService:
        if self.service is None:
            raise Refused("the core is not started yet")
        return self.service

    async def snapshot(self, *, history: int = 200) -> Snapshot:
        return await self._service().snapshot(history=history)

    def rate_limit(self) -> str | None:
        exchange = self.service.exchange if self.service is not None else None
        return exchange.rate_limit_state().describe() if exchange is not None else None

    async def status(self) -> CoreStatus:
        return await core_status(self._service())

    async def approve(self, signal_id: str, *, confirm: bool = False) -> None:
        await _command(self._service().approve(signal_id, confirm=confirm))

    async def reject(self, signal_id: str, *, reason: str = "") -> None:
        await _command(self._service().reject(signal_id, reason=reason))

    async def check_signal_amend(self, signal_id, *, price=None, amount=None) -> AmendCheck:
        service = self._service()
        record = await _command(service._pending(signal_id))
        return service.check_signal_amend(record, price=price, amount=amount)

    async def amend_signal(self, signal_id, *, price=None, amount=None, confirm=False) -> None:
        await _command(self._service().amend_signal(signal_id, price=price, amount=amount, confirm=confirm))

    async def check_order_amend(self, coid, *, price=None, amount=None) -> AmendCheck:
        return await _command(self._service().check_order_amend(coid, price=price, amount=amount))

    async def amend_order(self, coid, *, price=None, amount=None, confirm=False) -> None:
        await _command(self._service().amend_order(coid, price=price, amount=amount, confirm=confirm))

    async def cancel_order(self, coid: str) -> None:
        await _command(self._service().cancel_order(coid))

    async def pause(self) -> None:
        await _command(self._service().pause())

    async def resume(self) -> None:
        await _command(self._service().resume())

    async def kill_switch(self) -> KillSwitchResult:
        return await _command(self._service().kill_switch())

    async def submit(self, lines: Sequence[str]) -> list[SubmitResult]:
        service = self._service()
        records = await _command(service.submit([submitted_line(line) for line in lines], source="console"))
        return [SubmitResult(r.id, r.status, r.reason) for r in records]

    async def stop_core(self) -> None:
        await self.close()

    async def stopped(self) -> None:
        """Returns once the core was asked to stop (by SIGTERM, or `ctl`/another console's stop)."""
        await self._service().wait_stopped()

    async def close(self) -> None:
        service, self.service = self.service, None
        if service is not None:
            await service.close()

    @property
    def owns_core(self) -> bool:
        return True


async def core_status(service: TradingService) -> CoreStatus:
    """The status of a service in this process (what `ctl status` answers)."""
    import os

    from executor.models import OrderStatus, SignalStatus, utcnow

    orders = service.executor.active_orders.values() if service.executor is not None else ()
    result = service._last_reconcile
    exchange = service.exchange
    rate = exchange.rate_limit_state().describe() if exchange is not None else None
    pending = len(await service.store.signals([SignalStatus.PENDING]))
    return CoreStatus(
        mode=service.mode,
        exchange=service.exchange_name,
        paused=service.paused,
        open=sum(1 for o in orders if o.status.is_live),
        unknown=sum(1 for o in orders if o.status is OrderStatus.UNKNOWN),
        pending_signals=pending,
        last_reconcile=result.at.isoformat() if result is not None else None,
        reconcile_age_seconds=(utcnow() - result.at).total_seconds() if result is not None else None,
        drift={k: str(v) for k, v in (result.drift if result is not None else {}).items()},
        rate_limit=rate,
        read_only=service.read_only,
        pid=os.getpid(),
        store=str(service.store.path),
    )
