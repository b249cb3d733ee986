"""ConsoleState: the console's view folded from the event stream, keyed by stable ids."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from console_harness import T0
from hypothesis import given, settings
from hypothesis import strategies as st

from console.state import ConsoleState, EventBuffer
from executor.events import (
    BalancesUpdated,
    ErrorOccurred,
    EventBus,
    LogLine,
    OrderUpdated,
    RetryScheduled,
    SignalReceived,
)
from executor.models import (
    Balance,
    ExchangeMode,
    Order,
    OrderStatus,
    OrderType,
    Side,
    Signal,
    SignalRecord,
    SignalStatus,
)

D = Decimal


def order(coid: str, status: OrderStatus = OrderStatus.OPEN, filled: str = "0", **changes) -> Order:
    return Order(client_order_id=coid, signal_id=coid.split(":")[0], symbol="BTC/USDT", side=Side.BUY,
                 type=OrderType.LIMIT, amount=D("1"), price=D("100"), status=status, filled=D(filled),
                 created_at=T0, updated_at=T0, **changes)


def signal(signal_id: str, status: SignalStatus = SignalStatus.PENDING, reason: str = "") -> SignalRecord:
    payload = Signal(id=signal_id, symbol="BTC/USDT", side=Side.BUY, amount=1.0)
    return SignalRecord(id=signal_id, status=status, reason=reason, source="test", received_at=T0, raw="{}",
                        signal=payload, amount=D(1), reference_price=D(100))


def test_a_burst_of_updates_of_one_order_is_one_change_with_the_last_state():
    state = ConsoleState()
    events = [OrderUpdated(order("a", OrderStatus.PARTIALLY_FILLED, filled=f"0.{i:02d}")) for i in range(1, 100)]
    changes = state.apply(events, T0)
    assert list(changes.orders) == ["a"]
    assert state.orders["a"].filled == D("0.99")


def test_new_orders_keep_the_order_their_events_arrived_in():
    state = ConsoleState()
    changes = state.apply([OrderUpdated(order(c)) for c in ("c", "a", "b")], T0)
    assert list(changes.orders) == ["c", "a", "b"]


def test_a_finished_order_leaves_the_book_for_the_limited_history():
    state = ConsoleState(history_limit=2)
    state.apply([OrderUpdated(order(c)) for c in ("a", "b", "c")], T0)
    changes = state.apply([OrderUpdated(order(c, OrderStatus.FILLED, filled="1")) for c in ("a", "b", "c")], T0)
    assert list(changes.orders_done) == ["a", "b", "c"] and not changes.orders
    assert not state.orders
    assert list(state.history) == ["b", "c"]


def test_a_duplicate_never_removes_the_pending_signal_it_repeats():
    state = ConsoleState()
    state.apply([SignalReceived(signal("s1"))], T0)
    changes = state.apply([SignalReceived(signal("s1", SignalStatus.DUPLICATE, "id s1 seen before"))], T0)
    assert "s1" in state.signals and not changes.signals_gone
    assert "duplicate" in changes.log[0].reason


def test_decided_signals_leave_and_the_log_line_is_the_cores():
    """The core traces every decision (journaled, so every view shows the same); the console adds none."""
    state = ConsoleState()
    state.apply([SignalReceived(signal("s1")), SignalReceived(signal("s2"))], T0)
    changes = state.apply([SignalReceived(signal("s1", SignalStatus.APPROVED)),
                           SignalReceived(signal("s2", SignalStatus.EXPIRED, "TTL passed")),
                           LogLine("s2 expired: TTL passed (by ttl)", "ttl", ts=T0)], T0)
    assert set(changes.signals_gone) == {"s1", "s2"} and not state.signals
    assert [(e.level, e.reason) for e in changes.log] == [("info", "s2 expired: TTL passed (by ttl)")]
    assert not changes.alerts


def test_a_failure_in_the_trace_is_also_an_alert():
    state = ConsoleState()
    changes = state.apply([LogLine("tc-x rejected: insufficient balance (by exchange)", "exchange",
                                   level="warning", ts=T0)], T0)
    assert [e.level for e in changes.alerts] == ["warning"]


def test_retries_and_errors_reach_the_log_with_attempt_and_delay():
    state = ConsoleState()
    changes = state.apply([
        RetryScheduled("create_order", 2, 4, 1.5, "NotPlaced: connection refused", client_order_id="tc-x-0", ts=T0),
        ErrorOccurred("tc-x-0: rejected: insufficient funds", level="warning", ts=T0),
    ], T0)
    retry, error = changes.log
    assert (retry.level, retry.attempt, retry.delay) == ("retry", "2/4", "1.50s")
    assert "create_order tc-x-0" in retry.reason
    assert (error.level, error.reason) == ("warning", "tc-x-0: rejected: insufficient funds")


def test_equity_is_sampled_when_each_bucket_begins_and_values_what_has_a_price():
    state = ConsoleState(equity_bucket=5)

    def update(btc_price: int) -> BalancesUpdated:
        balances = {"USDT": Balance("USDT", D(100), D(0)), "BTC": Balance("BTC", D(1), D(0)),
                    "XYZ": Balance("XYZ", D(5), D(0))}
        return BalancesUpdated(balances, {"USDT": D(1), "BTC": D(btc_price)}, "USDT")

    state.apply([update(50)], T0)
    state.apply([update(60)], T0 + timedelta(seconds=2))  # same bucket: not a new point
    state.apply([update(70)], T0 + timedelta(seconds=6))
    assert not state.sample_equity(T0 + timedelta(seconds=7))
    assert state.sample_equity(T0 + timedelta(seconds=10))  # a clock tick in a new bucket
    assert [v for _, v in state.equity] == [D(150), D(170), D(170)]
    assert state.value("XYZ", D(5)) is None


def test_the_buffer_is_one_subscription_that_drains_in_order():
    bus = EventBus()
    buffer = EventBuffer(bus)
    bus.publish(OrderUpdated(order("a")))
    bus.publish(OrderUpdated(order("b")))
    assert [e.order.client_order_id for e in buffer.drain()] == ["a", "b"]
    assert buffer.drain() == []
    buffer.close()
    bus.publish(OrderUpdated(order("c")))
    assert len(buffer) == 0


def test_an_order_final_on_its_first_event_still_counts_as_just_finished_but_the_loaded_history_does_not():
    state = ConsoleState()
    changes = state.apply([OrderUpdated(order("r", OrderStatus.REJECTED))], T0)
    assert list(changes.orders_done) == ["r"] and "r" in state.history
    again = state.apply([OrderUpdated(order("r", OrderStatus.REJECTED))], T0)
    assert not again.orders_done


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.sampled_from(list(OrderStatus)), st.booleans()), max_size=60))
def test_the_order_counts_kept_as_orders_change_equal_a_recount(steps):
    """The status bar's counts are kept incrementally (no pass over 10,000 orders per repaint):
    after any sequence of updates, snapshots and reloads they equal a count over the orders."""
    from executor.events import Snapshot

    state = ConsoleState()
    for key, status, reload in steps:
        if reload:  # a reconnection: the snapshot keeps the even keys only
            kept = [o for k, o in state.orders.items() if int(k[1:]) % 2 == 0]
            state.reload(Snapshot(signals=[], orders=kept, balances={}, prices={}, quote="USDT", reconcile=None,
                                  paused=False, mode=ExchangeMode.PAPER, exchange="paper"), T0)
        state.apply([OrderUpdated(order(f"o{key}", status))], T0)
        orders = list(state.orders.values())
        assert state.live_orders == sum(1 for o in orders if o.status.is_live)
        assert state.open_orders == sum(1 for o in orders if o.status.is_live or o.status is OrderStatus.PENDING_CANCEL)
        assert state.unknown_orders == sum(1 for o in orders if o.status is OrderStatus.UNKNOWN)
