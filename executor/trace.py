"""The trace: every operator action and every outcome as one Log line with its actor.

Outcomes are derived here, in one place, from the events the core publishes anyway (`OrderUpdated`,
`SignalDecided`); the executor knows nothing about the trace. An order's outcome line is written
once per status change, never once per partial fill. Every Log line (the trace, errors, retries)
is journaled in the store's `log` table, a burst in one write, so that `inspect` (another
process, maybe hours later) shows the Log too; `executor.follower.log_event` reads a row back.

A mixin of `TradingService` (`executor.service` says why the service's jobs are mixins): it owns
`_order_seen` (the last status each active order was seen in) and `_log_buffer`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from executor.events import ErrorOccurred, Event, LogLine, OrderUpdated, RetryScheduled, SignalDecided, SignalReceived
from executor.models import Order, OrderStatus, SignalRecord, SignalStatus
from executor.signals import fmt

log = logging.getLogger("tradeconsole.service")

S = SignalStatus
O = OrderStatus


def _note(reason: str, plain: str) -> str:
    """A decision's reason, unless it only says what the line says anyway ("approved by ann")."""
    return f"; {reason.removeprefix(plain + '; ')}" if reason and reason != plain else ""


def _signal_words(record: SignalRecord) -> str:
    signal = record.signal
    if signal is None:
        return ""
    at = f" at {fmt(record.reference_price)}" if record.reference_price is not None else ""
    kind = signal.order_type.value if signal.order_type else "order"
    return f"{signal.side.value} {fmt(record.amount or 0)} {signal.symbol} {kind}{at}"


def _order_name(order: Order) -> str:
    """An order by its signal (the id an operator knows), its replacement number after an amend."""
    if order.signal_id is None:
        return order.client_order_id
    return f"{order.signal_id} order" + (f" #{order.replacement + 1}" if order.replacement else "")


def _order_words(order: Order) -> str:
    at = f" at {fmt(order.price)}" if order.price is not None else ""
    return f"{order.side.value} {fmt(order.amount)} {order.symbol} {order.type.value}{at}"


def log_row(event: ErrorOccurred | RetryScheduled | LogLine) -> dict[str, Any]:
    """A Log line as the row journaled for it (`executor.follower.log_event` reads it back)."""
    if isinstance(event, RetryScheduled):
        return {
            "ts": event.ts,
            "level": "retry",
            "message": event.reason,
            "operation": event.operation,
            "attempt": event.attempt,
            "max_attempts": event.max_attempts,
            "delay": event.delay,
            "client_order_id": event.client_order_id,
            "signal_id": event.signal_id,
        }
    return {
        "ts": event.ts,
        "level": event.level,
        "message": event.message,
        "client_order_id": event.client_order_id,
        "signal_id": event.signal_id,
    }


_ORDER, _SIGNAL, _LINE, _UNTRACED = "order", "signal", "line", "untraced"
# The events the trace reads, by exact type (an arrival, `SignalReceived`, makes no line).
TRACED: dict[type, str] = {
    OrderUpdated: _ORDER,
    SignalReceived: _UNTRACED,
    SignalDecided: _SIGNAL,
    LogLine: _LINE,
    ErrorOccurred: _LINE,
    RetryScheduled: _LINE,
}


class Trace:
    """The Log's lines for actions and outcomes, and their journal."""

    def trace(
        self,
        message: str,
        *,
        actor: str,
        level: str = "info",
        signal_id: str | None = None,
        client_order_id: str | None = None,
    ) -> None:
        self.bus.publish(LogLine(f"{message} (by {actor})", actor, level, client_order_id, signal_id, self.clock()))

    def _trace_event(self, event: Event) -> None:
        """A writing core's event, as the Log sees it: an outcome becomes a line, a line is journaled.
        Dispatched on the event's exact type (every event of every signal comes through here);
        a subclass of one of these types takes the `isinstance` way."""
        kind = TRACED.get(type(event))
        if kind is None:
            kind = next((k for t, k in TRACED.items() if isinstance(event, t)), _UNTRACED)
        if kind is _ORDER:
            self._trace_order(event.order)  # type: ignore[attr-defined]
        elif kind is _SIGNAL:
            self._trace_signal(event.record)  # type: ignore[attr-defined]
        elif kind is _LINE:
            self._log_buffer.append(log_row(event))  # type: ignore[arg-type]
            if len(self._log_buffer) == 1:  # the first of a burst: one write takes them all
                self._background(self._persist_log())

    def _trace_signal(self, record: SignalRecord) -> None:
        sid, reason, who = record.id or "(no id)", record.reason, record.decided_by or "executor"
        if record.status is S.APPROVED:
            self.trace(
                f"{sid} approved: {_signal_words(record)}{_note(reason, f'approved by {who}')}",
                actor=who,
                signal_id=record.id,
            )
        elif record.status is S.REJECTED:
            self.trace(f"{sid} rejected{_note(reason, f'rejected by {who}')}", actor=who, signal_id=record.id)
        elif record.status is S.EXPIRED:
            self.trace(f"{sid} expired: {reason}", actor=who, signal_id=record.id)
        elif record.status is S.PENDING and not reason.startswith("amended by "):
            if who == "executor":
                self.trace(f"{sid} back to pending: {reason}", actor=who, level="warning", signal_id=record.id)
            elif who == "auto":
                self.trace(f"{sid} waits for an operator: {reason}", actor=who, signal_id=record.id)

    def _trace_order(self, order: Order) -> None:
        coid, status = order.client_order_id, order.status
        before = self._order_seen.get(coid)
        if status.is_terminal:
            self._order_seen.pop(coid, None)
        else:
            self._order_seen[coid] = status
        if status is before:
            return  # more fills of a partially filled order: one line per status, not per fill
        was_placed = before in (O.OPEN, O.PARTIALLY_FILLED, O.PENDING_CANCEL)
        what, actor, level = "", "exchange", "info"

        def filled() -> str:  # formatted only for a line that says it (most updates say nothing)
            return f"{fmt(order.filled)} of {fmt(order.amount)} filled"

        if status is O.OPEN and before is not O.PENDING_CANCEL:
            what = "placed"
        elif status is O.PARTIALLY_FILLED and before is not O.PENDING_CANCEL:
            what = f"{'partially filled' if was_placed else 'placed, partially filled'}: {filled()}"
        elif status is O.FILLED:
            at = f" at {fmt(order.average)}" if order.average is not None else ""
            what = f"{'filled' if was_placed else 'placed and filled'}: {fmt(order.filled)}{at}"
        elif status is O.CANCELED:
            reason = order.last_error
            if reason.startswith("timeout"):
                what, actor = f"timed out ({reason}), canceled: {filled()}", "timer"
            else:
                what = f"canceled: {filled()}"
                actor = reason.rsplit(" by ", 1)[1] if " by " in reason else "exchange"
        elif status is O.EXPIRED:
            what = f"expired on the venue: {filled()}"
        elif status in (O.REJECTED, O.FAILED):
            actor = "exchange" if was_placed or before in (O.SUBMITTING, O.UNKNOWN) else "executor"
            what, level = f"{status.value}: {order.last_error or 'no reason given'}", "warning"
        if what:
            self.trace(
                f"{_order_name(order)} {what} ({_order_words(order)})",
                actor=actor,
                level=level,
                signal_id=order.signal_id,
                client_order_id=coid,
            )

    async def _persist_log(self) -> None:
        await asyncio.sleep(0)  # let a burst gather into one write
        rows, self._log_buffer = self._log_buffer, []
        if rows:
            try:
                await self.store.append_log(rows)
            except Exception:
                log.exception("could not journal %d log lines", len(rows))
