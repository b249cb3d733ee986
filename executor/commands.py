"""Commands on live orders: cancel, amend by cancel-and-replace, and the kill switch.

They come from the operator (console, control socket), from the timer (a timed-out order's
remainder) and from reconciliation (the extra order of a signal whose late original appeared).
A cancel waits for the order's final state, with the fills that raced it; one that may have
reached the venue stays `pending_cancel` and tracking sends it again. An amend cancels first and
sizes the replacement from every fill of the signal only once the cancel is final, so a signal
never fills past its amount. The kill switch blocks every create (`halted`), waits for the
creates in flight, and cancels until nothing of ours is live (or its deadline passes).

A mixin of `TradeExecutor` (`executor.executor` says why the executor's jobs are mixins): it
owns `halted` and `_cancel_sent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from decimal import Decimal

from executor.clientid import client_order_id
from executor.errors import ExecutionError
from executor.events import KillSwitchResult
from executor.exchanges.base import ExchangeError, ExchangeOrder, MaybePlaced, NotPlaced, OrderNotFound, Rejected
from executor.models import ZERO, JournalSource, Order, OrderStatus, OrderType
from executor.signals import fmt
from executor.tracking import states_fills

O = OrderStatus
J = JournalSource


class Commands:
    """Cancel, amend and the kill switch, each waiting for the venue's final word."""

    async def cancel_order(self, coid: str, *, source: str = J.OPERATOR, reason: str = "canceled") -> Order:
        """Cancel one order and wait for its final state, with the fills that raced the cancel.

        A cancel that certainly did not reach the venue (or ran out of retries without ever maybe
        reaching it) puts the order back where it was, so timeouts, the operator and the kill
        switch can act on it again; one that may have landed stays `pending_cancel` and tracking
        sends it again after `CANCEL_RESEND_AFTER`.
        """
        async with self.locks.hold(coid):
            order = self.current(coid)
            if order is None or not (order.status.is_live or order.status is O.PENDING_CANCEL):
                state = order.status if order else "final or unknown"
                raise ExecutionError(f"{coid} cannot be canceled in state {state}")
            live_state = O.PARTIALLY_FILLED if order.filled > 0 else O.OPEN
            if order.status is not O.PENDING_CANCEL:
                order = await self._commit(coid, O.PENDING_CANCEL, source=source, detail={"reason": reason},
                                           last_error=reason)
            self._cancel_sent[coid] = time.monotonic()
            maybe_reached = False

            async def cancel() -> ExchangeOrder | None:
                nonlocal maybe_reached
                try:
                    return await self.exchange.cancel_order(coid, order.symbol)
                except MaybePlaced:
                    maybe_reached = True
                    raise

            try:
                report = await self._call("cancel_order", cancel)
            except OrderNotFound:
                report = None  # already final on the venue (filled, or canceled): look it up below
            except (NotPlaced, MaybePlaced, Rejected) as exc:
                if maybe_reached or isinstance(exc, MaybePlaced):
                    self._error(f"{coid}: cancel not confirmed ({exc}); sent again if it stays open",
                                order=order, level="warning")
                    return self.current(coid) or order
                self._error(f"{coid}: cancel did not reach the venue ({exc}); the order stays {live_state}",
                            order=order)
                return await self._commit(coid, live_state, source=source, last_error=f"cancel failed: {exc}")
            if report is None or report.status.is_live or not states_fills(report):
                # A cancel answer is a fact only for what it states: fetch the fills it leaves out.
                try:
                    report = await self._call("fetch_order", self.exchange.fetch_order, coid, order.symbol)
                except ExchangeError as exc:
                    self._error(f"{coid}: state after cancel unknown ({exc})", order=order, level="warning")
                    return self.current(coid) or order
            return await self._fold(coid, report, source)

    async def kill_switch(self, *, source: str = J.OPERATOR, reason: str = "kill switch",
                          deadline: float = 60.0) -> KillSwitchResult:
        """Block every new create, wait for the creates in flight to settle, cancel every live
        order, and repeat until none is left (or `deadline` passes)."""
        self.halted = True
        canceled: list[Order] = []
        until = time.monotonic() + deadline
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), timeout=max(0.0, until - time.monotonic()))
            live = [c for c, o in self.active_orders.items() if o.status.is_live or o.status is O.PENDING_CANCEL]
            if (not live and not self.creating) or time.monotonic() >= until:
                break
            results = await asyncio.gather(*(self.cancel_order(c, source=source, reason=reason) for c in live),
                                           return_exceptions=True)
            for coid, result in zip(live, results, strict=True):
                if isinstance(result, Order) and result.status is O.CANCELED:
                    canceled.append(result)
                elif isinstance(result, Exception):
                    self._error(f"{coid}: cancel failed: {result}")
            if not self.creating and all(isinstance(r, Order) and not r.status.is_live for r in results):
                await asyncio.sleep(0)
        # Unresolved creates count as open: nobody can say yet that they are not.
        left = {c for c, o in self.active_orders.items() if o.status is not O.NEW} | set(self.creating)
        return KillSwitchResult(orders=tuple(canceled), left_open=len(left))

    def resume(self) -> None:
        self.halted = False

    async def amend_order(
        self, coid: str, *, price: Decimal | None = None, amount: Decimal | None = None, source: str = J.OPERATOR
    ) -> Order | None:
        """Cancel-and-replace. `amount` is the new total for the signal (filled part included).

        The replacement is sized only after the cancel is final and its fills are known (fetched
        when the cancel answer does not state them), from every fill of the signal, so a fill that
        races the cancel can never make the signal fill past its amount.
        Returns the replacement, or None when nothing remains to trade.
        """
        check = await self.check_amend(coid, price=price, amount=amount)
        if not check.ok:
            raise ExecutionError("; ".join(f"{k}: {v}" for k, v in check.errors.items()))
        order = self.current(coid)
        if order is None:
            raise ExecutionError(f"{coid} ended while the amend was checked")
        signal_key = order.signal_id or coid
        async with self.locks.hold(f"signal:{signal_key}"):
            signal_amount = await self._signal_amount(order)
            target = min(amount, signal_amount) if amount is not None else signal_amount
            canceled = await self.cancel_order(coid, source=source, reason="amend: cancel-and-replace")
            if canceled.status.is_active:
                raise ExecutionError(f"{coid}: cancel not confirmed; nothing replaced (try the amend again)")
            filled = await self._signal_filled(canceled)
            remaining = target - filled
            market = self.markets[order.symbol]
            if remaining < market.min_amount:
                self._error(
                    f"{coid}: amended; {fmt(filled)} filled of the new total {fmt(target)}, "
                    f"remaining {fmt(max(remaining, ZERO))} not replaced",
                    level="warning",
                    order=canceled,
                )
                return None
            if self.halted:
                raise ExecutionError("kill switch engaged: nothing replaced")
            siblings = await self.store.orders_for_signal(order.signal_id) if order.signal_id else [canceled]
            replacement_no = max(o.replacement for o in siblings) + 1
            now = self.clock()
            replacement = Order(
                client_order_id=client_order_id(self.client_id_prefix, signal_key, replacement_no),
                signal_id=order.signal_id,
                replacement=replacement_no,
                symbol=order.symbol,
                side=order.side,
                type=order.type,
                amount=remaining,
                price=check.price,
                created_at=now,
                updated_at=now,
                timeout_at=now + timedelta(seconds=self.execution_config.order_timeout_seconds)
                if order.type is OrderType.LIMIT
                else None,
            )
            await self._insert(replacement, source=source, detail={"intent": True, "replaces": coid})
        return await self.run(replacement.client_order_id)
