"""The operator's commands: approve, reject, amend, cancel, pause, resume, the kill switch.

Each command is refused on a read-only service (`ReadOnlyError`), acts only on a signal that is
still pending as read (of two operators deciding at once, one gets "decided meanwhile"), is
written to the audit log with its actor and becomes a line of the trace. An approval commits the
signal's decision and its order's intent in one transaction (SPEC 9). The far-from-market rule
(`[approval] far_from_market_pct`) is here too: an approval or an amend at an order price beyond
it is refused with `FarFromMarket` unless confirmed, and auto-approval (intake) never confirms.

A mixin of `TradingService` (`executor.service` says why the service's jobs are mixins): it owns
`paused` (with `_resume`, which intake waits on).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from executor.errors import ExecutionError, PriceMoved
from executor.events import AmendCheck, ErrorOccurred, KillSwitchResult, SignalDecided
from executor.exchanges.base import ExchangeError
from executor.markets import FarFromMarket, distance_pct
from executor.models import JournalSource, Order, OrderType, SignalRecord, SignalStatus, to_decimal
from executor.pretrade import limit_price
from executor.signals import fmt
from executor.states import check_signal_transition
from executor.store import StaleWrite

S = SignalStatus
J = JournalSource


class ReadOnlyError(ExecutionError):
    """A command sent to a read-only (inspect) service."""


class OperatorCommands:
    """The operator's commands on signals, orders and the whole core, each audited and traced."""

    def _writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError("inspect mode is read-only: no action is possible here")

    async def _audit(self, action: str, target: str | None, detail: dict | None = None, actor: str | None = None):
        await self.store.record_audit(actor or self.actor, action, target, detail, self.clock())

    async def _pending(self, signal_id: str) -> SignalRecord:
        record = await self.store.get_signal(signal_id)
        if record is None:
            raise ExecutionError(f"no signal {signal_id}")
        if record.status is not S.PENDING:
            raise ExecutionError(f"signal {signal_id} is {record.status}, not pending")
        if record.expires_at and record.expires_at <= self.clock():
            await self._decide(record, S.EXPIRED, actor=J.TTL, reason="TTL passed before approval")
            raise ExecutionError(f"signal {signal_id} expired")
        return record

    async def approve(self, signal_id: str, *, confirm: bool = False, actor: str | None = None) -> None:
        """Approve a pending signal. Its order price beyond `[approval] far_from_market_pct` from
        the market raises `FarFromMarket` unless `confirm` (the client asked its operator)."""
        self._writable()
        record = await self._pending(signal_id)
        far = await self._far(record)
        if far is not None and not confirm:
            raise far
        note = f"; confirmed {fmt(abs(far.distance).quantize(Decimal('0.01')))} % from the market" if far else ""
        await self._approve(record, actor=actor or self.actor, note=note)
        # Audited once it is done: of two operators approving at once, only the one that did is named.
        await self._audit("approve", signal_id, {"notional": str(record.notional), "confirmed": confirm}, actor)

    async def _approve(self, record: SignalRecord, *, actor: str, note: str = "") -> None:
        """The approval and the order's intent, in one transaction (SPEC 9)."""
        assert self.executor is not None
        approved = self._decided(record, S.APPROVED, actor=actor, reason=f"approved by {actor}{note}")
        try:
            await self.executor.commit_intent(
                approved, extra=self.store.signal_update(approved, record.status, "operator")
            )
        except PriceMoved as exc:
            # Nothing was sent. Back to the operator, with the live price as the new reference
            # when the strategy gave none, so that approving again means "at today's price".
            changes: dict[str, Any] = {}
            if record.signal is not None and record.signal.price is None:
                changes["reference_price"] = exc.live_price
            await self._decide(record.model_copy(update=changes), S.PENDING, actor=J.EXECUTOR, reason=str(exc))
            return
        except StaleWrite:
            raise ExecutionError(f"signal {record.id} was decided meanwhile") from None
        except ExchangeError as exc:
            self.bus.publish(ErrorOccurred(f"{record.id}: not approved: {exc}", signal_id=record.id))
            raise ExecutionError(f"{record.id}: could not be priced, not approved: {exc}") from None
        self.bus.publish(SignalDecided(approved))

    def _decided(self, record: SignalRecord, status: SignalStatus, *, actor: str, reason: str) -> SignalRecord:
        if status != record.status:
            check_signal_transition(record.status, status, record.id)
        return record.model_copy(
            update={"status": status, "reason": reason, "decided_at": self.clock(), "decided_by": actor}
        )

    async def _decide(self, record: SignalRecord, status: SignalStatus, *, actor: str, reason: str) -> SignalRecord:
        """Write a decision if the signal is still as read (else ExecutionError: decided meanwhile)."""
        decided = self._decided(record, status, actor=actor, reason=reason)
        try:
            await self.store.update_signal(
                decided, record.status, source=J(actor) if actor in (J.AUTO, J.TTL, J.EXECUTOR) else J.OPERATOR
            )
        except StaleWrite:
            raise ExecutionError(f"signal {record.id} was decided meanwhile") from None
        self.bus.publish(SignalDecided(decided))
        return decided

    async def reject(self, signal_id: str, *, reason: str = "", actor: str | None = None) -> None:
        self._writable()
        record = await self._pending(signal_id)
        who = actor or self.actor
        await self._decide(record, S.REJECTED, actor=who, reason=reason or f"rejected by {who}")
        await self._audit("reject", signal_id, {"reason": reason}, actor)

    def check_signal_amend(
        self,
        record: SignalRecord,
        *,
        amount: Decimal | None = None,
        price: Decimal | None = None,
        order_type: OrderType | None = None,
    ) -> AmendCheck:
        """Validate an amended pending signal (precision, minimums, balance) without changing it."""
        assert record.signal is not None
        if self.executor is None:
            return AmendCheck({"signal": "read-only"}, amount, price, None, None)
        signal = record.signal
        type_ = order_type or OrderType(signal.order_type or self.settings.execution.order_type)
        amount = amount if amount is not None else record.amount
        # The order price a limit order would get; a market order is checked at its reference.
        check_price = self.order_price(record, price, order_type)
        if check_price is None:
            check_price = price if price is not None else record.reference_price
        check = self.executor.check_order(signal.symbol, signal.side, type_, amount, check_price)
        errors = dict(check.errors)
        errors.pop("price", None) if type_ is OrderType.MARKET else None
        if price is not None and price <= 0:
            errors["price"] = "must be greater than 0"
        return AmendCheck(errors, amount, check_price, check.notional, check.fee)

    async def amend_signal(
        self,
        signal_id: str,
        *,
        amount: Decimal | None = None,
        price: Decimal | None = None,
        order_type: OrderType | None = None,
        confirm: bool = False,
        actor: str | None = None,
    ) -> SignalRecord:
        self._writable()
        record = await self._pending(signal_id)
        check = self.check_signal_amend(record, amount=amount, price=price, order_type=order_type)
        if not check.ok:
            raise ExecutionError("; ".join(f"{k}: {v}" for k, v in check.errors.items()))
        if (
            (price is not None or order_type is not None)
            and not confirm
            and (far := await self._far(record, price=price, order_type=order_type)) is not None
        ):
            raise far
        assert record.signal is not None
        changes: dict[str, Any] = {}
        if amount is not None:
            changes["amount"] = float(amount)
            changes["quote_amount"] = None
        if price is not None:
            changes["price"] = float(price)
        if order_type is not None:
            changes["order_type"] = order_type
        signal = record.signal.model_copy(update=changes)
        who = actor or self.actor
        await self._audit(
            "amend_signal",
            signal_id,
            {
                k: (str(v) if v is not None else None)
                for k, v in {"amount": amount, "price": price, "order_type": order_type}.items()
                if v is not None
            },
            actor,
        )
        updated = record.model_copy(
            update={
                "signal": signal,
                "amount": amount if amount is not None else record.amount,
                "reference_price": price if price is not None else record.reference_price,
                "reason": f"amended by {who}",
            }
        )
        await self.store.update_signal(updated, record.status, source=J.OPERATOR)
        self.bus.publish(SignalDecided(updated))
        changed = ", ".join(
            f"{k} {fmt(v) if isinstance(v, Decimal) else v.value}"
            for k, v in {"reference price": price, "amount": amount, "type": order_type}.items()
            if v is not None
        )
        self.trace(f"{signal_id} amended: {changed}", actor=who, signal_id=signal_id)
        return updated

    async def check_order_amend(self, coid: str, *, price=None, amount=None) -> AmendCheck:
        if self.executor is None:
            return AmendCheck({"order": "read-only"}, amount, price, None, None)
        return await self.executor.check_amend(coid, price=price, amount=amount)

    async def amend_order(
        self, coid: str, *, price=None, amount=None, confirm: bool = False, actor: str | None = None
    ) -> Order | None:
        """Replace an open order. A new order price beyond `far_from_market_pct` raises
        `FarFromMarket` unless `confirm`."""
        self._writable()
        assert self.executor is not None
        order = self.executor.current(coid)
        if price is not None and order is not None and not confirm:
            await self._market_price(order.symbol)
            if (far := self.far_from_market(order.symbol, price, f"order {coid}")) is not None:
                raise far
        who = actor or self.actor
        await self._audit("amend_order", coid, {"price": str(price), "amount": str(amount)}, actor)
        changed = ", ".join(
            f"{k} {fmt(v)}" for k, v in {"order price": price, "total amount": amount}.items() if v is not None
        )
        self.trace(
            f"{coid} amend requested: {changed}",
            actor=who,
            client_order_id=coid,
            signal_id=order.signal_id if order else None,
        )
        return await self.executor.amend_order(coid, price=price, amount=amount, source=J.OPERATOR)

    async def cancel_order(self, coid: str, *, actor: str | None = None) -> Order:
        self._writable()
        assert self.executor is not None
        who = actor or self.actor
        await self._audit("cancel_order", coid, None, actor)
        self.trace(f"{coid} cancel requested", actor=who, client_order_id=coid)
        return await self.executor.cancel_order(coid, source=J.OPERATOR, reason=f"canceled by {who}")

    async def pause(self, *, actor: str | None = None) -> None:
        self._writable()
        await self._audit("pause", None, None, actor)
        await self._set_paused(True)
        self.trace("paused: no intake, no auto-approval", actor=actor or self.actor)

    async def resume(self, *, actor: str | None = None) -> None:
        self._writable()
        await self._audit("resume", None, None, actor)
        if self.executor is not None:
            self.executor.resume()  # lifts the kill switch's block on new orders too
        await self._set_paused(False)
        self.trace("resumed: intake and auto-approval", actor=actor or self.actor)

    async def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        await self.store.set_flag("paused", "1" if paused else "0")
        (self._resume.clear if paused else self._resume.set)()
        self._publish_state()

    async def kill_switch(self, *, actor: str | None = None) -> KillSwitchResult:
        """Pause intake and auto-approval, block new orders, cancel every open order, and say how
        many it canceled and, only once it is true, that none is left open."""
        self._writable()
        assert self.executor is not None
        who = actor or self.actor
        await self._audit("kill_switch", None, {"active": len(self.executor.active_orders)}, actor)
        live = sum(1 for o in self.executor.active_orders.values() if o.status.is_live)
        self.trace(f"kill switch: pausing intake and auto-approval, canceling {live} open", actor=who, level="warning")
        await self._set_paused(True)
        result = await self.executor.kill_switch(source=J.OPERATOR, reason=f"kill switch by {who}")
        self.trace(result.describe(), actor=who, level="error" if result.left_open else "warning")
        return result

    # -- the far-from-market rule ----------------------------------------------------------------

    def far_from_market(self, symbol: str, price: Decimal | None, subject: str) -> FarFromMarket | None:
        """The refusal an approval or amend at order price `price` earns, or None: within
        `[approval] far_from_market_pct` of the market (or the rule is off, or no market known)."""
        limit = to_decimal(self.settings.approval.far_from_market_pct)
        market = self.market_view.price(symbol) if self.market_view is not None else None
        if not limit or price is None or not market:
            return None
        distance = distance_pct(price, market)
        return FarFromMarket(subject, price, market, distance, limit) if abs(distance) > limit else None

    async def _market_price(self, symbol: str) -> None:
        """Make sure the market view knows `symbol` (a quote at most a few seconds old)."""
        view = self.market_view
        if (
            view is not None
            and symbol not in view.quotes
            and self.executor is not None
            and symbol in self.executor.markets
        ):
            await view.refresh()

    def order_price(
        self, record: SignalRecord, price: Decimal | None = None, order_type: OrderType | None = None
    ) -> Decimal | None:
        """The limit price a signal's order gets (the slippage rule applied to its reference), or
        None for a market order."""
        signal = record.signal
        if signal is None or self.executor is None:
            return None
        type_ = order_type or OrderType(signal.order_type or self.settings.execution.order_type)
        ref = price if price is not None else record.reference_price
        market = self.executor.markets.get(signal.symbol)
        if type_ is not OrderType.LIMIT or ref is None or market is None:
            return None
        return limit_price(ref, self.settings.execution.slippage_tolerance_pct, market.price_tick, signal.side)

    async def _far(
        self, record: SignalRecord, *, price: Decimal | None = None, order_type: OrderType | None = None
    ) -> FarFromMarket | None:
        """The far-from-market refusal for the order this signal would get (with an amended price)."""
        if record.signal is None or not self.settings.approval.far_from_market_pct:
            return None
        await self._market_price(record.signal.symbol)
        return self.far_from_market(
            record.signal.symbol, self.order_price(record, price, order_type), f"signal {record.id}"
        )
