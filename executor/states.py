"""The order and signal state machines, each one explicit transition table.

Every state change in the core goes through `transition_order` / `transition_signal`; a
transition that is not in the table is a bug and raises `IllegalTransition`. A state may move to
itself only where the table says so (more fills while partially filled).
"""

from __future__ import annotations

from executor.models import OrderStatus as O
from executor.models import SignalStatus as S


class IllegalTransition(RuntimeError):
    def __init__(self, kind: str, key: str | None, old: str, new: str) -> None:
        super().__init__(f"illegal {kind} transition {old} -> {new} ({key})")
        self.old, self.new, self.key = old, new, key


ORDER_TRANSITIONS: dict[O, frozenset[O]] = {
    # intent journaled; a pre-trade check can still refuse it, a restart can still give up on it
    O.NEW: frozenset({O.SUBMITTING, O.REJECTED, O.FAILED}),
    O.SUBMITTING: frozenset(
        {
            O.SUBMITTING,  # not placed (refused connection, 429): retried with the same client order id
            O.OPEN,
            O.PARTIALLY_FILLED,
            O.FILLED,
            O.CANCELED,  # an IOC/market order the venue canceled straight away
            O.EXPIRED,
            O.REJECTED,
            O.FAILED,
            O.UNKNOWN,
        }
    ),
    O.UNKNOWN: frozenset(
        {
            O.SUBMITTING,  # certainly absent after the lookup: resubmit with the same client order id
            O.OPEN,
            O.PARTIALLY_FILLED,
            O.FILLED,
            O.CANCELED,
            O.EXPIRED,
            O.REJECTED,
            O.FAILED,
        }
    ),
    O.OPEN: frozenset({O.PARTIALLY_FILLED, O.FILLED, O.PENDING_CANCEL, O.CANCELED, O.EXPIRED}),
    O.PARTIALLY_FILLED: frozenset({O.PARTIALLY_FILLED, O.FILLED, O.PENDING_CANCEL, O.CANCELED, O.EXPIRED}),
    O.PENDING_CANCEL: frozenset(
        {
            O.CANCELED,
            O.FILLED,  # the fill won the race against our cancel
            O.EXPIRED,
            O.OPEN,  # the cancel certainly did not reach the venue
            O.PARTIALLY_FILLED,
        }
    ),
    O.FILLED: frozenset(),
    O.CANCELED: frozenset(),
    O.EXPIRED: frozenset(),
    O.REJECTED: frozenset(),
    O.FAILED: frozenset(),
}

SIGNAL_TRANSITIONS: dict[S, frozenset[S]] = {
    # "pending" may be re-entered: a market order whose price moved goes back to the operator
    S.PENDING: frozenset({S.APPROVED, S.REJECTED, S.EXPIRED}),
    S.APPROVED: frozenset({S.PENDING}),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.INVALID: frozenset(),
    S.DUPLICATE: frozenset(),
}


def can_transition_order(old: O, new: O) -> bool:
    return new in ORDER_TRANSITIONS[old]


def check_order_transition(old: O, new: O, key: str | None = None) -> None:
    if new not in ORDER_TRANSITIONS[old]:
        raise IllegalTransition("order", key, old, new)


def check_signal_transition(old: S, new: S, key: str | None = None) -> None:
    if new not in SIGNAL_TRANSITIONS[old]:
        raise IllegalTransition("signal", key, old, new)
