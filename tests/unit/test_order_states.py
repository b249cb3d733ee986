"""The order state machine: the table itself, and hypothesis driving arbitrary venue reports
through `apply_report` (no sequence reaches an illegal state or fills past the amount)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from harness import order_row
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.exchanges.base import ExchangeOrder
from executor.models import TERMINAL_ORDER_STATES, Order, OrderStatus, OrderType, Side, SignalStatus
from executor.states import (
    ORDER_TRANSITIONS,
    SIGNAL_TRANSITIONS,
    IllegalTransition,
    check_order_transition,
    check_signal_transition,
)
from executor.tracking import apply_report

O = OrderStatus
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_every_state_has_a_row_in_the_table():
    assert set(ORDER_TRANSITIONS) == set(OrderStatus)
    assert set(SIGNAL_TRANSITIONS) == set(SignalStatus)


def test_terminal_states_have_no_way_out_but_a_late_original():
    for state in TERMINAL_ORDER_STATES - {O.FAILED}:
        assert ORDER_TRANSITIONS[state] == frozenset()
    # given up as certainly absent, then shown by the venue after all: only to what the venue says
    assert ORDER_TRANSITIONS[O.FAILED] == {O.OPEN, O.PARTIALLY_FILLED, O.FILLED, O.CANCELED, O.EXPIRED}
    assert {s for s in OrderStatus if s.is_terminal} == {"filled", "canceled", "expired", "rejected", "failed"}
    assert {s for s in OrderStatus if s.is_active} == set(OrderStatus) - TERMINAL_ORDER_STATES
    assert {s for s in OrderStatus if s.is_live} == {"open", "partially_filled"}


def test_every_state_is_reachable_from_new():
    seen, frontier = {O.NEW}, [O.NEW]
    while frontier:
        for nxt in ORDER_TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(OrderStatus)


def test_an_illegal_transition_raises():
    with pytest.raises(IllegalTransition, match="filled -> open"):
        check_order_transition(O.FILLED, O.OPEN, "tc-x-0")
    with pytest.raises(IllegalTransition):
        check_order_transition(O.NEW, O.OPEN)  # nothing is open before it was submitted
    with pytest.raises(IllegalTransition):
        check_signal_transition(SignalStatus.REJECTED, SignalStatus.APPROVED)


def test_an_order_is_never_open_without_having_been_submitted():
    assert O.OPEN not in ORDER_TRANSITIONS[O.NEW]
    # a certainly absent order is never sent again: its signal's next order has the next replacement number
    assert O.SUBMITTING not in ORDER_TRANSITIONS[O.UNKNOWN]
    assert O.NEW in ORDER_TRANSITIONS[O.SUBMITTING]  # certainly not placed: back to `new`, honestly


# -- hypothesis: whatever the venue says --------------------------------------------------------

AMOUNT = Decimal("2.000")
venue_states = st.sampled_from([O.OPEN, O.PARTIALLY_FILLED, O.FILLED, O.CANCELED, O.EXPIRED, O.REJECTED])
filled_amounts = st.integers(min_value=0, max_value=2500).map(lambda n: Decimal(n) / 1000)  # may exceed 2.0
prices = st.integers(min_value=9000, max_value=11000).map(lambda n: Decimal(n) / 100)


@st.composite
def reports(draw):
    return ExchangeOrder(
        client_order_id="tc-prop-0",
        exchange_order_id=draw(st.sampled_from(["x1", None])),
        symbol="SOL/USDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        amount=AMOUNT,
        price=Decimal(100),
        status=draw(venue_states),
        filled=draw(filled_amounts | st.none()),  # None: the answer did not say (a bare cancel ack)
        average=draw(st.none() | prices),
        fee=draw(st.integers(0, 500).map(lambda n: Decimal(n) / 1000)),
        fee_currency="USDT",
    )


def prop_order(status: OrderStatus) -> Order:
    """The order the property tests drive: a buy limit of AMOUNT SOL/USDT at 100, in `status`."""
    return order_row(
        "prop", client_order_id="tc-prop-0", symbol="SOL/USDT", amount=AMOUNT, price=Decimal(100), status=status
    )


start_states = st.sampled_from([O.SUBMITTING, O.UNKNOWN, O.OPEN, O.PARTIALLY_FILLED, O.PENDING_CANCEL])


@settings(max_examples=400, deadline=None)
@given(start=start_states, sequence=st.lists(reports(), max_size=25))
def test_no_sequence_of_venue_reports_breaks_the_order(start, sequence):
    order = prop_order(start)
    recorded = Decimal(0)
    for report in sequence:
        before = order
        applied = apply_report(order, report, NOW)
        order = applied.order
        # every change is a transition of the table (or no change at all)
        if order.status != before.status:
            check_order_transition(before.status, order.status)
        # filled is monotonic, capped at the amount, and fully explained by the recorded fills
        assert before.filled <= order.filled <= order.amount
        recorded += sum(f.amount for f in applied.fills)
        assert recorded == order.filled
        assert all(f.amount > 0 for f in applied.fills)
        # once terminal, always terminal
        if before.status.is_terminal:
            assert order.status == before.status
        if order.filled == order.amount and not before.status.is_terminal:
            assert order.status is O.FILLED
        # a report that does not state the filled amount never ends an order
        if report.filled is None and not before.status.is_terminal:
            assert not order.status.is_terminal and order.filled == before.filled
    # replaying the whole sequence changes nothing more: reports are idempotent
    for report in sequence:
        again = apply_report(order, report, NOW)
        assert again.fills == () and again.order.filled == order.filled


@settings(max_examples=200, deadline=None)
@given(sequence=st.lists(reports(), min_size=1, max_size=10))
def test_an_open_report_never_undoes_a_pending_cancel(sequence):
    order = prop_order(O.PENDING_CANCEL)
    for report in sequence:
        order = apply_report(order, report, NOW).order
        assert order.status not in (O.OPEN, O.PARTIALLY_FILLED)
