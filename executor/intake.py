"""Intake: signals in from sources, checked, journaled, decided by the approval policy.

A source (a followed file, the demo strategy, stdin) is read to its end by `add_source`; the
webhook and `ctl submit` hand lines over in one piece (`submit`). Every line becomes one signal
record, whatever it holds, and bad input never stops intake:
- the schema (`parse_signal`): invalid, with the reason;
- duplicates: an id accepted before is a duplicate, decided in arrival order before the first
  await, so two copies racing through intake are never both accepted;
- the semantic checks (`size_signal`: a known market, an amount its minimums allow), against a
  reference price from the signal or, when it has none, the venue's touch;
- the TTL: a signal stale on arrival is expired at once; one left pending past its TTL is
  expired by `expire_due` (every second);
- the approval policy (`_policy`): auto-approval within `auto_max_notional`, never while paused,
  never confirming a price far from the market. An approved signal is stored with its approval
  and its order's intent in one transaction (`TradeExecutor.commit_intent`).

A mixin of `TradingService` (`executor.service` says why the service's jobs are mixins): it owns
`_sources`, `_seen` (the accepted ids, `SeenIds`) and `intake_done`, and waits on `_resume` while paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from decimal import Decimal

from executor.config import ApprovalMode
from executor.errors import ExecutionError, PriceMoved
from executor.events import ErrorOccurred, SignalDecided, SignalReceived
from executor.exchanges.base import ExchangeError
from executor.models import JournalSource, Signal, SignalRecord, SignalStatus, to_decimal, updated
from executor.operator import ReadOnlyError
from executor.seen import Seen
from executor.signals import SignalError, fmt, parse_signal, size_signal
from executor.sources.lines import Line

log = logging.getLogger("tradeconsole.service")

S = SignalStatus
J = JournalSource


class Intake:
    """Sources and submitted lines in, one signal record per line, the approval policy applied."""

    def add_source(self, lines: AsyncIterator[str] | AsyncIterator[Line], name: str) -> asyncio.Task:
        task = asyncio.create_task(self._consume(lines, name), name=f"source:{name}")
        self._sources.append(task)
        self.intake_done = False
        return task

    async def _consume(self, lines: AsyncIterator[str], name: str, window: int = 256) -> None:
        """Read a source to its end. Lines are checked and journaled concurrently (up to `window`
        at a time) so that one commit carries many signals; duplicates are still decided in
        arrival order, synchronously, before any line yields."""
        slots = asyncio.Semaphore(window)
        inflight: set[asyncio.Task] = set()

        def done(task: asyncio.Task) -> None:
            inflight.discard(task)
            slots.release()

        try:
            async for line in lines:
                await self._resume.wait()
                if isinstance(line, Line):
                    if not line.text.strip() and line.error is None:
                        line.recorded()  # nothing to record: the source may move past it
                        continue
                elif not line.strip():
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._receive_line(line, name))
                inflight.add(task)
                task.add_done_callback(done)
        except Exception as exc:
            log.exception("signal source %s failed", name)
            self.bus.publish(ErrorOccurred(f"signal source {name} failed: {exc}"))
        finally:
            if inflight:
                await asyncio.gather(*list(inflight), return_exceptions=True)
            close = getattr(lines, "aclose", None)
            if close is not None:  # a followed file journals its last place once its lines are in
                with contextlib.suppress(Exception):
                    await close()
            if all(t.done() or t is asyncio.current_task() for t in self._sources):
                self.intake_done = True
                self._publish_state()

    async def _receive_line(self, line: str | Line, name: str) -> SignalRecord:
        """Record one line, whatever it holds: its record, never an exception for bad input. A
        `Line` is told once it is recorded, so that its source may journal its place."""
        text = line.text if isinstance(line, Line) else line
        try:
            if isinstance(line, Line) and line.error is not None:
                record = await self._record(text, name, S.INVALID, line.error)
            else:
                record = await self.receive(text, source=name)
        except ExchangeError as exc:
            # The venue could not be asked for a reference price: record the signal as
            # invalid with that reason rather than dropping it.
            record = await self._record(text, name, S.INVALID, f"could not check against the exchange: {exc}")
        except ReadOnlyError:
            raise
        except Exception as exc:  # bad input never stops intake; the line is kept with the reason
            log.exception("intake of a line from %s failed", name)
            record = await self._record(text, name, S.INVALID, f"internal error while checking: {exc}")
        if isinstance(line, Line):
            line.recorded()
        return record

    async def submit(self, lines: Sequence[str | Line], *, source: str) -> list[SignalRecord]:
        """Record signals handed over in one piece (the webhook, `ctl submit`), in order, each
        decided before the next is read: one record per line, blank lines included (invalid).
        Bad input never raises; paused or not, every signal is recorded (paused, none is
        auto-approved), because a sender that is not a file cannot be made to wait."""
        self._writable()
        return [await self._receive_line(line, source) for line in lines]

    async def sources_done(self) -> None:
        if self._sources:
            await asyncio.gather(*self._sources, return_exceptions=True)
        self.intake_done = True

    async def receive(self, raw: str, *, source: str) -> SignalRecord:
        """Record one incoming signal: invalid, duplicate, or pending (then the approval policy)."""
        if self.read_only:
            raise ReadOnlyError("inspect mode is read-only")
        # A byte order mark (what some Windows editors write first in a file) is no part of the JSON.
        raw = raw.strip().removeprefix("\ufeff").strip()
        try:
            signal = parse_signal(raw)
        except SignalError as exc:
            return await self._record(raw, source, S.INVALID, exc.reason, signal_id=exc.signal_id)
        # The duplicate decision is taken and the id reserved before the first await, so two
        # copies of one id racing through intake can never both be accepted.
        seen = self._seen.check(signal.id)
        if seen is Seen.SEEN:
            return await self._record(raw, source, S.DUPLICATE, f"id {signal.id} seen before", signal_id=signal.id)
        self._seen.add(signal.id)
        if self.exchange is not None and self.settings.approval.mode == ApprovalMode.AUTO and not self.paused:
            self.exchange.expect_order()  # the create may follow: its place in the venue's pace now
        try:
            known = seen is Seen.MAYBE and await self.store.signal_accepted(signal.id)
        except BaseException:
            self._seen.discard(signal.id)  # not decided: the id must not stay taken
            raise
        if known:
            # An id older than the exact part of `_seen` (or a false positive of its filter,
            # which the store clears): the store's answer is the final word.
            return await self._record(raw, source, S.DUPLICATE, f"id {signal.id} seen before", signal_id=signal.id)
        assert self.executor is not None
        try:
            reference: Decimal | None = to_decimal(signal.price) if signal.price else None
            if reference is None and signal.symbol in self.executor.markets:
                reference = (await self.executor.ticker(signal.symbol)).touch(signal.side)
            amount = size_signal(signal, self.executor.markets, reference)
        except SignalError as exc:
            self._seen.discard(signal.id)
            return await self._record(raw, source, S.INVALID, exc.reason, signal_id=signal.id, signal=signal)
        except BaseException:
            self._seen.discard(signal.id)
            raise
        try:
            return await self._admit(signal, raw, source, reference, amount)
        except BaseException:
            # Each way through `_admit` stores the signal in one transaction as its last await:
            # failing, nothing of it is stored, and the id must not stay taken.
            self._seen.discard(signal.id)
            raise

    async def _admit(
        self, signal: Signal, raw: str, source: str, reference: Decimal | None, amount: Decimal
    ) -> SignalRecord:
        """Store a checked signal as pending, or decided at once: expired on arrival, or by the policy."""
        assert self.executor is not None
        received = self.clock()
        ttl = signal.ttl_seconds or self.settings.approval.signal_ttl_seconds
        record = SignalRecord(
            id=signal.id,
            status=S.PENDING,
            source=source,
            received_at=received,
            raw=raw,
            signal=signal,
            reference_price=reference,
            amount=amount,
            expires_at=(signal.created_at or received) + timedelta(seconds=ttl),
        )
        by = J.AUTO
        if record.expires_at is not None and record.expires_at <= received:
            # Stale on arrival (an old created_at, a tiny ttl_seconds): no policy may approve it.
            decision: tuple[SignalStatus, str] | None = (S.EXPIRED, "its TTL had passed when it arrived")
            by = J.TTL
        else:
            decision = self._policy(record)
        if decision is not None and decision[0] is S.APPROVED and (far := await self._far(record)) is not None:
            decision = S.PENDING, far.reason  # auto-approval never confirms: an operator decides
        if decision is None:
            record = await self.store.insert_signal(record)
            self.bus.publish(SignalReceived(record))
            return record
        status, reason = decision
        decided = updated(record, {"status": status, "reason": reason, "decided_at": received, "decided_by": by})
        journal = [(None, S.PENDING, J.INTAKE, {}), (S.PENDING, status, by, {"reason": reason})]
        if status is not S.APPROVED:
            decided = await self.store.insert_signal(decided, journal=journal)
        else:
            # Arrival, approval and the order's intent: one transaction, so none is ever lost.
            try:
                _, ids = await self.executor.commit_intent(
                    decided, extra=self.store.signal_insert(decided, journal=journal)
                )
            except PriceMoved as exc:
                held = record.model_copy(update={"reason": str(exc), "reference_price": exc.live_price})
                decided = await self.store.insert_signal(held)
                self.bus.publish(SignalReceived(decided))
                self.trace(
                    f"{record.id} back to pending: {exc}", actor="executor", level="warning", signal_id=record.id
                )
                return decided
            decided = updated(decided, {"seq": ids[0]})
        self.bus.publish(SignalReceived(updated(record, {"seq": decided.seq})))
        self.bus.publish(SignalDecided(decided))
        return decided

    async def _record(
        self, raw: str, source: str, status: SignalStatus, reason: str, *, signal_id=None, signal=None
    ) -> SignalRecord:
        record = SignalRecord(
            id=signal_id,
            status=status,
            reason=reason,
            source=source,
            received_at=self.clock(),
            # What arrived, as far as text can hold it: a lone surrogate (from a client's JSON
            # string) is written as its escape, so that the row can be stored at all.
            raw=raw[:4096].encode("utf-8", "backslashreplace").decode("utf-8"),
            signal=signal,
        )
        record = await self.store.insert_signal(record)
        log.warning("signal %s from %s %s: %s", signal_id or "(no id)", source, status, reason)
        self.bus.publish(SignalReceived(record))
        return record

    def _policy(self, record: SignalRecord) -> tuple[SignalStatus, str] | None:
        """The approval policy's verdict on a new signal: approve, hold with a reason, or None."""
        approval = self.settings.approval
        if approval.mode != ApprovalMode.AUTO or self.paused:
            return None
        cap = to_decimal(approval.auto_max_notional)
        notional = record.notional
        if cap > 0 and (notional is None or notional > cap):
            return S.PENDING, f"notional {fmt(notional or 0)} above auto_max_notional {fmt(cap)}: waits for an operator"
        return S.APPROVED, "approved by auto"

    async def expire_due(self) -> int:
        now = self.clock()
        expired = 0
        for record in await self.store.signals([S.PENDING]):
            if record.expires_at and record.expires_at <= now:
                with contextlib.suppress(ExecutionError):  # approved or rejected meanwhile: that stands
                    await self._decide(record, S.EXPIRED, actor=J.TTL, reason="TTL passed before approval")
                    expired += 1
        return expired

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.expire_due()
            except Exception as exc:
                log.exception("expiring signals failed")
                self.bus.publish(ErrorOccurred(f"expiring signals failed: {exc}"))
