"""The order and signal state machines, each one explicit transition table.

Every state change in the core is checked here: an order's by `check_order_transition`, called
by the executor's one write path (`TradeExecutor._commit`), a signal's by
`check_signal_transition`. A transition that is not in the table is a bug and raises
`IllegalTransition`. `can_transition_order` asks without raising (`executor.tracking` folds a
venue report only into a state the table allows). A state may move to itself only where the
table says so (more fills while partially filled).
"""

from __future__ import annotations

from executor.models import OrderStatus as O
from executor.models import SignalStatus as S


class IllegalTransition(RuntimeError):
    def __init__(self, kind: str, key: str | None, old: str, new: str) -> None:
        super().__init__(f"illegal {kind} transition {old} -> {new} ({key})")
        self.old, self.new, self.key = old, new, key


# The states a venue report can move a placed order to.
_PLACED = frozenset({O.OPEN, O.PARTIALLY_FILLED, O.FILLED, O.CANCELED, O.EXPIRED})

ORDER_TRANSITIONS: dict[O, frozenset[O]] = {
    # intent journaled, certainly not sent: the pacer admits it (submitting), a pre-trade check
    # refuses it, or a restart's re-check or the kill switch gives up on it (failed)
    O.NEW: frozenset({O.SUBMITTING, O.REJECTED, O.FAILED}),
    O.SUBMITTING: _PLACED
    | {
        O.NEW,  # certainly not placed (refused connection, 429, -1021): back to the pacer for a retry
        O.REJECTED,
        O.FAILED,  # certainly not placed and out of retries
        O.UNKNOWN,  # maybe placed: looked up before anything else
    },
    # Resolved by looking the order up: found (a placed state) or certainly absent (failed; the
    # signal's next order then carries the next replacement number, never this id again).
    O.UNKNOWN: _PLACED | {O.REJECTED, O.FAILED},
    O.OPEN: frozenset({O.PARTIALLY_FILLED, O.FILLED, O.PENDING_CANCEL, O.CANCELED, O.EXPIRED}),
    O.PARTIALLY_FILLED: frozenset({O.PARTIALLY_FILLED, O.FILLED, O.PENDING_CANCEL, O.CANCELED, O.EXPIRED}),
    O.PENDING_CANCEL: frozenset(
        {
            O.CANCELED,
            O.FILLED,  # the fill won the race against our cancel
            O.EXPIRED,
            O.OPEN,  # the cancel certainly did not reach the venue, or ran out of retries
            O.PARTIALLY_FILLED,
            O.PENDING_CANCEL,  # a fill while the cancel is in flight
        }
    ),
    O.FILLED: frozenset(),
    O.CANCELED: frozenset(),
    O.EXPIRED: frozenset(),
    O.REJECTED: frozenset(),
    # The one way out of a terminal state: an order given up as certainly absent that the venue
    # shows after all (a late original). It is adopted for its signal, never sent again.
    O.FAILED: _PLACED,
}

SIGNAL_TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING: frozenset({S.APPROVED, S.REJECTED, S.EXPIRED}),
    # back to pending: a market order whose price moved, an intent stale after a restart;
    # expired: stale after a restart once its TTL had passed
    S.APPROVED: frozenset({S.PENDING, S.EXPIRED}),
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
