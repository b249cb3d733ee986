"""Folding what the venue reports about an order into our `Order`, monotonically.

The venue's view arrives late, repeated and out of order (a poll, a cancel response, a lookup
after a timeout). `apply_report` is the one place that turns such a report into a legal state
transition plus the fills it implies, and it is idempotent: the same report twice changes
nothing, a stale report never moves an order backwards, and the filled amount never decreases
and never exceeds the order's amount. `effect` (what an order's fills did to each balance) lives
here too: reconciliation's drift check and the executor's running total share it. Pure functions,
no I/O: property-tested with hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from executor.exchanges.base import ExchangeOrder
from executor.models import ZERO, Fill, MarketInfo, Order, Side, updated
from executor.models import OrderStatus as O
from executor.states import can_transition_order


@dataclass(frozen=True, slots=True)
class Applied:
    order: Order
    old: O
    fills: tuple[Fill, ...]
    overfill: Decimal = ZERO  # what the venue reported beyond the order's amount (a venue bug; logged)

    @property
    def changed(self) -> bool:
        return self.order.status != self.old or bool(self.fills)


def target_status(current: O, reported: O, filled: Decimal, amount: Decimal) -> O:
    """The state an order should move to on this report, or `current` if the report is stale."""
    if filled >= amount:
        wanted = O.FILLED
    elif reported in (O.OPEN, O.PARTIALLY_FILLED):
        if current is O.PENDING_CANCEL:
            return current  # our cancel is in flight; an "open" report predates it
        wanted = O.PARTIALLY_FILLED if filled > 0 else O.OPEN
    else:
        wanted = reported
    if wanted == current and wanted is not O.PARTIALLY_FILLED:
        return current
    if current.is_terminal:
        return current
    return wanted if can_transition_order(current, wanted) else current


def states_fills(report: ExchangeOrder) -> bool:
    """Whether the report can end an order: a final state is a fact only with its filled amount
    (a bare cancel acknowledgement says nothing about the fills that came before it)."""
    return report.filled is not None or report.status in (O.OPEN, O.PARTIALLY_FILLED)


def apply_report(order: Order, report: ExchangeOrder, now: datetime) -> Applied:
    """Fold one venue report into `order`. Never raises on what the venue says.

    A final report that does not state the filled amount changes nothing but the exchange order
    id: the caller must fetch the order to learn how it ended.
    """
    old = order.status
    if not states_fills(report):
        if report.exchange_order_id and not order.exchange_order_id:
            order = updated(order, {"exchange_order_id": report.exchange_order_id, "updated_at": now})
        return Applied(order=order, old=old, fills=())
    reported_filled = report.filled if report.filled is not None else ZERO
    overfill = max(ZERO, reported_filled - order.amount)
    new_filled = min(max(order.filled, reported_filled), order.amount)
    fills: list[Fill] = []
    updates: dict[str, object] = {}
    if report.exchange_order_id and not order.exchange_order_id:
        updates["exchange_order_id"] = report.exchange_order_id
    if new_filled > order.filled:
        delta = new_filled - order.filled
        price = _fill_price(order, report, new_filled, delta)
        fee_delta = max(ZERO, (report.fee or ZERO) - order.fee)
        fills.append(
            Fill(
                # deterministic id: replaying the same report can never record the fill twice
                fill_id=f"{order.client_order_id}:{new_filled}",
                amount=delta,
                price=price,
                fee=fee_delta,
                fee_currency=report.fee_currency,  # None: not stated, learned from the trades later
                ts=now,
                # and whose fill it is
                client_order_id=order.client_order_id,
                signal_id=order.signal_id,
                symbol=order.symbol,
                side=order.side,
            )
        )
        total_cost = (order.average or ZERO) * order.filled + price * delta
        updates["filled"] = new_filled
        updates["average"] = total_cost / new_filled
        updates["fee"] = max(order.fee, report.fee or ZERO)
        if report.fee_currency:
            updates["fee_currency"] = report.fee_currency
    status = target_status(order.status, report.status, new_filled, order.amount)
    if status != order.status:
        updates["status"] = status
    if updates:
        updates["updated_at"] = now
        order = updated(order, updates)
    return Applied(order=order, old=old, fills=tuple(fills), overfill=overfill)


def _fill_price(order: Order, report: ExchangeOrder, new_filled: Decimal, delta: Decimal) -> Decimal:
    # Derive this fill's price from the change in the venue's average; fall back to the limit.
    if report.average is not None and report.average > 0:
        old_cost = (order.average or ZERO) * order.filled
        price = (report.average * new_filled - old_cost) / delta
        if price > 0:
            return price
        return report.average
    return report.price or order.price or ZERO


def effect(order: Order, market: MarketInfo | None) -> dict[str, Decimal]:
    """What the order's fills did to balances, per currency (fees in the currency charged)."""
    out: dict[str, Decimal] = {}
    if order.filled:
        base, quote = (market.base, market.quote) if market else order.symbol.split("/", 1)
        sign = 1 if order.side is Side.BUY else -1
        price = order.average if order.average is not None else (order.price or ZERO)
        out[base] = sign * order.filled
        out[quote] = -sign * order.filled * price
    if order.fee and order.fee_currency:
        out[order.fee_currency] = out.get(order.fee_currency, ZERO) - order.fee
    return out
