"""Following live orders: polling, fills and partial fills, timeouts, cancels sent again.

`_watch` runs as long as the executor does. Each round `poll`s the open orders of every market
with a live order (one request per market), folds what changed through the write path, and
looks up the orders missing from the answers, as many as a share of the request budget allows
(`_fetch_missing`: an order the venue does not know across the visibility window ends
`expired`). Then it starts what time makes due (`_due`): a limit order's timeout, which cancels
the remainder (or, under `partial_fill = keep_open`, leaves a partly filled order open), and a
cancel not confirmed within `CANCEL_RESEND_AFTER`, sent again. Between rounds it refreshes the
balances and, once nothing else is active, learns the fees. Rounds are spaced to the venue's
request budget.

A mixin of `TradeExecutor` (`executor.executor` says why the executor's jobs are mixins): it
owns `_keep_open`, `_timing_out` and `_missing`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from executor.errors import ExecutionError
from executor.exchanges.base import ExchangeError, ExchangeOrder, OrderNotFound
from executor.models import JournalSource, Order, OrderStatus
from executor.signals import fmt
from executor.tracking import apply_report

log = logging.getLogger("tradeconsole.executor")

O = OrderStatus
J = JournalSource
CANCEL_RESEND_AFTER = 10.0  # seconds a cancel may stay unconfirmed before it is sent again
# Shares of the venue's request-weight budget the periodic work may plan for (orders need the rest).
POLL_SHARE, BALANCE_SHARE, LOOKUP_SHARE = 0.30, 0.05, 0.30
POLL_SLICE = 200  # tracked orders folded between two yields to the event loop


def _unchanged(order: Order, report: ExchangeOrder, now: datetime) -> bool:
    """A report that would change nothing of `order` (most of a poll's answers): no lock, no fold.
    The same pure fold `_fold` runs, so what it skips is exactly what `_fold` would return as is."""
    if order.status.is_terminal:
        return True
    applied = apply_report(order, report, now)
    return not applied.changed and applied.order.exchange_order_id == order.exchange_order_id


class Following:
    """Tracking of every live order until it ends, within the venue's request budget."""

    async def _watch(self) -> None:
        last_balances = last_fees = time.monotonic()
        interval = self.poll_interval
        while True:
            await asyncio.sleep(interval)
            try:
                markets = await self.poll()
                fees_every = self.budget_interval("fetch_my_trades", BALANCE_SHARE, self.balance_interval)
                if self.fee_unknown and not self.active_orders and time.monotonic() - last_fees >= fees_every:
                    last_fees = time.monotonic()  # nothing else to track: the fees need not wait a round
                    await self.reconciler.learn_fees()
                interval = self.budget_interval("fetch_open_orders", POLL_SHARE, self.poll_interval, markets)
                every = self.budget_interval("fetch_balances", BALANCE_SHARE, self.balance_interval)
                if time.monotonic() - last_balances >= every:
                    last_balances = time.monotonic()
                    await self.refresh_balances()
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                self._error(f"order tracking: {exc}", level="warning")
            except Exception as exc:  # never let tracking die silently
                log.exception("order tracking failed")
                self._error(f"order tracking failed: {exc}")

    async def poll(self) -> int:
        """One round of tracking: fills, final states, timeouts. Returns the markets it asked."""
        tracked = [o for o in self.active_orders.values() if o.status.is_live or o.status is O.PENDING_CANCEL]
        if not tracked:
            return 0
        symbols = sorted({o.symbol for o in tracked})
        answers = await asyncio.gather(*(self.exchange.fetch_open_orders(s) for s in symbols), return_exceptions=True)
        open_reports: dict[str, ExchangeOrder] = {}
        asked: set[str] = set()
        for symbol, answer in zip(symbols, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, ExchangeError):
                    raise answer
                self._error(f"order tracking: {symbol} open orders: {answer}", level="warning")
                continue
            asked.add(symbol)
            open_reports.update((r.client_order_id, r) for r in answer)
        lookups = self.exchange.budget().affordable(self.exchange.request_cost("fetch_order"), LOOKUP_SHARE)
        now = self.clock()
        # The (order, report) pairs found unchanged last round: the same order object and the same
        # report object (the paper exchange answers an unchanged order with the same one) are
        # unchanged again, so 10,000 resting orders cost no fold a round (`_unchanged` is pure).
        last, self._polled_unchanged = self._polled_unchanged, {}
        for i, order in enumerate(tracked):
            if i % POLL_SLICE == POLL_SLICE - 1:
                await asyncio.sleep(0)  # 10,000 tracked orders: commands and events are not held up
            coid = order.client_order_id
            if order.symbol not in asked or self.locks.locked(coid):
                continue  # no answer for its market this round, or a cancel or amend owns it right now
            report = open_reports.get(coid)
            if report is None and lookups > 0:
                lookups -= 1
                report = await self._fetch_missing(order)
            current = self.current(coid)
            if report is not None and current is not None:
                seen = last.get(coid)
                if (seen is not None and seen[0] is current and seen[1] is report) or _unchanged(current, report, now):
                    self._polled_unchanged[coid] = (current, report)
                else:
                    async with self.locks.hold(coid):
                        if self.current(coid) is not None:
                            await self._fold(coid, report, J.REQUEST)
            self._due(coid)
        return len(symbols)

    async def _fetch_missing(self, order: Order) -> ExchangeOrder | None:
        """A tracked order missing from the open orders: ended, invisible for a moment, or unknown
        to the venue (then it ends `expired` once that has held across the visibility window)."""
        coid = order.client_order_id
        try:
            report = await self.exchange.fetch_order(coid, order.symbol)
        except OrderNotFound:
            misses, first = self._missing.get(coid, (0, time.monotonic()))
            self._missing[coid] = (misses + 1, first)
            if misses + 1 >= self.lookup_attempts and time.monotonic() - first >= self.lookup_window:
                async with self.locks.hold(coid):
                    if (current := self.current(coid)) is not None and current.status.is_active:
                        await self._commit(
                            coid,
                            O.EXPIRED,
                            source=J.RECONCILE,
                            last_error=f"{current.status} in the store but unknown to the venue",
                        )
                        self._error(f"{coid}: unknown to the venue; ended expired", order=current)
            return None
        except ExchangeError as exc:
            self._error(f"order tracking: {coid}: {exc}", level="warning", order=order)
            return None
        self._missing.pop(coid, None)
        return report

    def _due(self, coid: str) -> None:
        """Start what time makes due for a tracked order: its timeout, or a cancel sent again."""
        order = self.current(coid)
        if order is None or coid in self._timing_out:
            return
        now = self.clock()
        if (
            order.status.is_live
            and order.timeout_at is not None
            and order.timeout_at <= now
            and coid not in self._keep_open
        ):
            self._timing_out.add(coid)
            self.spawn(self._on_timeout(coid), name=f"timeout:{coid}")
        elif (
            order.status is O.PENDING_CANCEL
            and time.monotonic() - self._cancel_sent.get(coid, 0.0) >= self.cancel_resend_after
        ):
            self._timing_out.add(coid)
            self.spawn(self._on_timeout(coid, resend=True), name=f"cancel-again:{coid}")

    async def _on_timeout(self, coid: str, *, resend: bool = False) -> None:
        try:
            if resend:
                await self.cancel_order(coid, source=J.TIMER, reason="cancel not confirmed: sent again")
            else:
                await self._time_out(coid)
        except ExecutionError as exc:
            self._error(f"{coid}: timeout: {exc}", level="warning")
        finally:
            self._timing_out.discard(coid)

    async def _time_out(self, coid: str) -> None:
        timeout = self.execution_config.order_timeout_seconds
        async with self.locks.hold(coid):
            order = self.current(coid)
            if order is None or not order.status.is_live:
                return
            if order.filled > 0 and self.execution_config.partial_fill == "keep_open":
                order = await self._commit(
                    coid, source=J.TIMER, detail={"timeout": timeout, "partial_fill": "keep_open"}, timeout_at=None
                )
                self._keep_open.add(coid)
                self._error(
                    f"{coid}: not filled after {timeout:g}s; {fmt(order.filled)} of {fmt(order.amount)} filled, "
                    "the rest stays open (partial_fill = keep_open)",
                    level="warning",
                    order=order,
                )
                return
        await self.cancel_order(coid, source=J.TIMER, reason=f"timeout after {timeout:g}s")
