"""The read-only follower behind `inspect`: republishes, as events, what another process writes.

A `StoreFollower` reads a store opened read-only and publishes on the service's bus the same
events the writing core publishes on its own, so the console draws an inspected store exactly as
it draws a live one. It follows the store incrementally by journal sequence:

- at start it takes the position (the newest `events.seq`, `signals.seq` and `log.seq`) and
  publishes what a view cannot get from `snapshot()`: the published balances, the last
  reconciliation, the pause flag, and the Log from before it opened (the journaled `log` table
  merged, by time, with the invalid and duplicate arrivals the Log warns about);
- then, whenever SQLite's `data_version` says another connection committed, it reads only what
  was written after its position (`Store.changes_since`: new signal rows by seq, the signals and
  orders named by newer journal entries, newer log lines, three kv flags) in one read transaction,
  publishes it and moves on (an order with fills comes with all of them, as the store has them
  now, so a view's positions follow too). Every order is followed, not the newest few: an order
  opened hours ago that fills now is named by its journal entry. A poll costs what changed, not
  the size of the store: with 10,000 open orders one fill reads one order row (and its fills).

What the journal does not record is not seen until the next journaled change of that row: every
order write with a new status, a fill or a detail is journaled (`Store._order_journal`); a write
that changes none of these (rare: a fold that only learns an exchange id) is not.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from executor.events import (
    ErrorOccurred,
    MarketQuote,
    MarketsUpdated,
    OrderUpdated,
    Reconciled,
    RetryScheduled,
    SignalDecided,
    SignalReceived,
)
from executor.store import JournalChanges, JournalPosition
from executor.store.state import BALANCES, LAST_RECONCILE, MARKETS

if TYPE_CHECKING:
    from executor.service import TradingService

log = logging.getLogger("tradeconsole.follower")

FLAGS = (BALANCES.name, LAST_RECONCILE.name, "paused", MARKETS.name)
LOG_BACKLOG = 200  # Log lines from before opening that are published at start


def log_event(row: dict[str, Any]) -> ErrorOccurred | RetryScheduled:
    """A journaled `log` row as the event that wrote it."""
    if row["level"] == "retry":
        return RetryScheduled(
            operation=row["operation"] or "",
            attempt=row["attempt"] or 0,
            max_attempts=row["max_attempts"] or 0,
            delay=row["delay"] or 0.0,
            reason=row["message"],
            client_order_id=row["client_order_id"],
            signal_id=row["signal_id"],
            ts=row["ts"],
        )
    return ErrorOccurred(
        message=row["message"],
        level=row["level"],
        client_order_id=row["client_order_id"],
        signal_id=row["signal_id"],
        ts=row["ts"],
    )


def parse_markets(raw: str) -> dict[str, MarketQuote]:
    """The `markets` flag (the writer's market view, saved every few seconds) as quotes."""
    try:
        return MARKETS.parse(raw)
    except ValueError:
        log.warning("the store's markets flag is unreadable")
        return {}


class StoreFollower:
    """Follows `service.store` (read-only) and publishes on `service.bus`; sets `service.paused`."""

    def __init__(self, service: TradingService, *, interval: float = 0.5) -> None:
        self.service = service
        self.store = service.store
        self.bus = service.bus
        self.interval = interval
        self.position = JournalPosition()
        self._version: int | None = None
        self._flags: dict[str, str | None] = {}
        self.polls = 0  # reads that found a commit (for tests and benchmarks)

    async def start(self) -> None:
        """Take the position, then publish the state and the Log as they were at opening."""
        # The position first: a commit landing after it is read again by the first poll.
        self._version = await self.store.data_version()
        self.position = await self.store.journal_position()
        flags = {k: await self.store.get_flag(k) for k in FLAGS}
        self._publish_flags(flags)
        await self._publish_backlog()

    async def _publish_backlog(self) -> None:
        """The Log from before opening: journaled lines and the arrivals it warns about, by time."""
        lines: list[tuple[datetime, int, Any]] = []
        for row in await self.store.log_entries(after=0, limit=LOG_BACKLOG):
            if row["seq"] <= self.position.log_seq:
                lines.append((row["ts"], 0, log_event(row)))
        for record in await self.store.recent_rejects(LOG_BACKLOG):
            if record.seq is not None and record.seq <= self.position.signal_seq:
                lines.append((record.received_at, 1, SignalReceived(record)))
        lines.sort(key=lambda item: (item[0], item[1]))
        for _, _, event in lines[-LOG_BACKLOG:]:
            self.bus.publish(event)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a locked or vanished store: say so, keep trying
                log.exception("following the store failed")
                self.bus.publish(ErrorOccurred(f"following the store failed: {exc}", level="warning"))

    async def poll(self) -> bool:
        """Read and publish what was committed since the last poll; False if nothing was."""
        version = await self.store.data_version()
        if version == self._version:
            return False
        self._version = version
        self.polls += 1
        while True:
            changes = await self.store.changes_since(self.position, flags=FLAGS)
            self.position = changes.position
            self._publish(changes)
            if not changes.more:
                break
        return True

    def _publish(self, changes: JournalChanges) -> None:
        publish = self.bus.publish
        for record in changes.new_signals:
            publish(SignalReceived(record))
        for record in changes.changed_signals:
            publish(SignalDecided(record))
        for order in changes.orders:
            fills = changes.fills.get(order.client_order_id)
            # The order's fills as the store has them now (the writer may have replaced them).
            publish(OrderUpdated(order, tuple(fills), fills_replaced=True) if fills else OrderUpdated(order))
        for row in changes.log:
            publish(log_event(row))
        self._publish_flags(changes.flags)

    def _publish_flags(self, flags: dict[str, str | None]) -> None:
        """Balances, reconciliation and pause: published only when the writer changed them."""
        changed = {k: v for k, v in flags.items() if self._flags.get(k, "") != v}
        self._flags.update(flags)
        if changed.get(BALANCES.name):
            self.bus.publish(BALANCES.parse(changed[BALANCES.name]).event())
        if changed.get(LAST_RECONCILE.name):
            self.bus.publish(Reconciled(LAST_RECONCILE.parse(changed[LAST_RECONCILE.name])))
        if changed.get(MARKETS.name) and (quotes := parse_markets(changed[MARKETS.name])):
            self.bus.publish(MarketsUpdated(quotes))
        if "paused" in changed:
            self.service.paused = changed["paused"] == "1"
            self.service._publish_state()
