"""The emulator's own record of every order it accepted, and the audit the acceptance runs read.

Owns the shape of one order in the record (`order_record`) and `audit_orders`.

The record is plain JSON (`GET /_emulator/record`, or `tradeconsole emulator --record FILE` on
exit) so a test in another process can audit it. `audit_orders` checks the two promises of SPEC
section 6 from the venue's side, without trusting the client's store:

- no signal is filled past its amount (the amount of its first exchange order, or the amount a
  caller passes in `expected`), and no exchange order past its own amount;
- never two live orders for one signal: the live intervals (accepted -> final) of a signal's
  orders never overlap.

A signal's orders are recognised by their client order ids (see `executor.clientid`):
they share everything but the replacement number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from executor.clientid import replacement_number, signal_key
from executor.venue.orders import EngineOrder

__all__ = ["Audit", "audit_orders", "order_record", "replacement_number", "signal_key"]


def order_record(o: EngineOrder) -> dict[str, Any]:
    """One order the venue accepted, as the record lists it (and `audit_orders` reads it)."""
    return {
        "client_order_id": o.client_order_id,
        "order_id": o.id,
        "symbol": o.symbol,
        "side": o.side.value,
        "type": o.type.value,
        "amount": str(o.amount),
        "price": None if o.price is None else str(o.price),
        "filled": str(o.filled),
        "status": o.status.value,
        "created_at": o.created_at,
        "ended_at": None if o.is_open else o.updated_at,
    }


@dataclass(frozen=True, slots=True)
class Audit:
    orders: int
    signals: int
    overfilled: list[dict[str, Any]] = field(default_factory=list)
    concurrent: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.overfilled and not self.concurrent

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "orders": self.orders,
            "signals": self.signals,
            "overfilled": self.overfilled,
            "concurrent": self.concurrent,
        }


def audit_orders(
    orders: Iterable[Mapping[str, Any]], expected: Mapping[str, Decimal | str | float] | None = None
) -> Audit:
    """Audit records shaped like `Emulator.record()["orders"]`.

    Orders are keyed by their venue order id (`order_id`; a record without one by its place in
    `orders`) and grouped by signal (see `signal_key`): a client order id reused once its first
    order ended, as Binance allows, is two orders of one signal, each with its own fills and live
    interval, never one order counted twice or mistaken for the other. `expected` maps a signal key
    to the amount its signal asked for; signals not in it are held to the amount of their first
    order.
    """
    by_id: dict[Any, Mapping[str, Any]] = {}
    for n, order in enumerate(orders):
        order_id = order.get("order_id")
        by_id[("row", n) if order_id is None else order_id] = order
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for order in by_id.values():
        groups[signal_key(order["client_order_id"])].append(order)
    overfilled: list[dict[str, Any]] = []
    concurrent: list[dict[str, Any]] = []
    for key, members in sorted(groups.items()):
        # Oldest first; the venue's order id breaks ties of equal timestamps.
        members.sort(key=lambda o: (o["created_at"], _order_id(o)))
        for o in members:
            if Decimal(str(o["filled"])) > Decimal(str(o["amount"])):
                overfilled.append(
                    {
                        "signal": key,
                        "client_order_ids": [o["client_order_id"]],
                        "order_ids": [o.get("order_id")],
                        "filled": o["filled"],
                        "limit": o["amount"],
                    }
                )
        if expected is not None and key in expected:
            limit = Decimal(str(expected[key]))
        else:
            first = min(members, key=lambda o: replacement_number(o["client_order_id"]) or 0)
            limit = Decimal(str(first["amount"]))
        filled = sum((Decimal(str(o["filled"])) for o in members), Decimal(0))
        if filled > limit:
            overfilled.append(
                {
                    "signal": key,
                    "client_order_ids": [o["client_order_id"] for o in members],
                    "order_ids": [o.get("order_id") for o in members],
                    "filled": str(filled),
                    "limit": str(limit),
                }
            )
        for i, a in enumerate(members):
            a_end = a["ended_at"] if a["ended_at"] is not None else float("inf")
            for b in members[i + 1 :]:
                if b["created_at"] >= a_end:
                    break
                concurrent.append(
                    {
                        "signal": key,
                        "client_order_ids": [a["client_order_id"], b["client_order_id"]],
                        "order_ids": [a.get("order_id"), b.get("order_id")],
                    }
                )
    return Audit(orders=len(by_id), signals=len(groups), overfilled=overfilled, concurrent=concurrent)


def _order_id(order: Mapping[str, Any]) -> int:
    order_id = order.get("order_id")
    return order_id if isinstance(order_id, int) else -1
