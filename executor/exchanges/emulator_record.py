"""The emulator's own record of every order it accepted, and the audit the acceptance runs read.

The record is plain JSON (`GET /_emulator/record`, or `tradeconsole emulator --record FILE` on
exit) so a test in another process can audit it. `audit_orders` checks the two promises of SPEC
section 6 from the venue's side, without trusting the client's store:

- no signal is filled past its amount (the amount of its first exchange order, or the amount a
  caller passes in `expected`), and no exchange order past its own amount;
- never two live orders for one signal: the live intervals (accepted -> final) of a signal's
  orders never overlap.

A signal's orders are recognised by their client order ids (see `executor.clientid`):
`<prefix>-<hash>-<replacement>` share everything up to the last `-`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_REPLACEMENT = re.compile(r"^(?P<key>.+)-(?P<n>\d+)$")


def signal_key(client_order_id: str) -> str:
    """The part of a client order id shared by every order of one signal."""
    match = _REPLACEMENT.match(client_order_id)
    return match.group("key") if match else client_order_id


def replacement_number(client_order_id: str) -> int | None:
    match = _REPLACEMENT.match(client_order_id)
    return int(match.group("n")) if match else None


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

    `expected` maps a signal key (see `signal_key`) to the amount its signal asked for; signals
    not in it are held to the amount of their first order.
    """
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    count = 0
    for order in orders:
        groups[signal_key(order["client_order_id"])].append(order)
        count += 1
    overfilled: list[dict[str, Any]] = []
    concurrent: list[dict[str, Any]] = []
    for key, members in sorted(groups.items()):
        for o in members:
            if Decimal(str(o["filled"])) > Decimal(str(o["amount"])):
                overfilled.append(
                    {
                        "signal": key,
                        "client_order_ids": [o["client_order_id"]],
                        "filled": o["filled"],
                        "limit": o["amount"],
                    }
                )
        if expected is not None and key in expected:
            limit = Decimal(str(expected[key]))
        else:
            first = min(members, key=lambda o: (replacement_number(o["client_order_id"]) or 0, o["created_at"]))
            limit = Decimal(str(first["amount"]))
        filled = sum((Decimal(str(o["filled"])) for o in members), Decimal(0))
        if filled > limit:
            overfilled.append(
                {
                    "signal": key,
                    "client_order_ids": [o["client_order_id"] for o in members],
                    "filled": str(filled),
                    "limit": str(limit),
                }
            )
        live = sorted(members, key=lambda o: o["created_at"])
        for i, a in enumerate(live):
            a_end = a["ended_at"] if a["ended_at"] is not None else float("inf")
            for b in live[i + 1 :]:
                if b["created_at"] >= a_end:
                    break
                concurrent.append({"signal": key, "client_order_ids": [a["client_order_id"], b["client_order_id"]]})
    return Audit(orders=count, signals=len(groups), overfilled=overfilled, concurrent=concurrent)
