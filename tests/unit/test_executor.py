"""The TradeExecutor against the paper exchange: one test per row of SPEC section 6's error table,
timeouts with partial fills under both policies, amend racing a fill, cancel, and reconciliation."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from harness import make_harness, running
from helpers import FakeClock, eventually, make_settings

from executor.clientid import client_order_id
from executor.events import ErrorOccurred, Reconciled, RetryScheduled
from executor.executor import ExecutionError, PriceMoved
from executor.models import OrderStatus, OrderType, Side
from executor.store import Store
from executor.venue.faults import Fault

O = OrderStatus


@pytest.fixture
async def h(settings, db_path):
    harness = await make_harness(settings, db_path)
    async with running(harness, watch=False):
        yield harness


def coid(signal_id: str, n: int = 0) -> str:
    return client_order_id("tc", signal_id, n)


# -- success ----------------------------------------------------------------------------------


async def test_market_order_fills_and_is_journaled(h):
    record = await h.approved(id="s1", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.FILLED and order.filled == Decimal("0.01")
    assert order.client_order_id == coid("s1")
    stored = await h.store.get_order(order.client_order_id)
    assert stored.status is O.FILLED
    states = [e["to_state"] for e in await h.store.events(order.client_order_id)]
    assert states == ["new", "submitting", "filled"]
    assert sum(f.amount for f in await h.store.fills(order.client_order_id)) == Decimal("0.01")


async def test_limit_order_far_from_the_market_rests_open(h):
    record = await h.approved(id="s2", symbol="BTC/USDT", amount=0.01, price=30000)
    order = await h.executor.execute_signal(record)
    assert order.status is O.OPEN
    # the slippage rule: buy price = reference * (1 + 0.1 %), on the grid, never past the tolerance
    assert order.price == Decimal("30030.00")
    assert h.executor.active_orders[order.client_order_id].status is O.OPEN


async def test_intent_is_committed_before_the_create_request(settings, db_path):
    h = await make_harness(settings, db_path)
    async with running(h, watch=False):
        seen = {}
        real_create = h.exchange.create_order

        async def spying_create(**kw):
            # Another connection must already see the intent when the request leaves.
            other = await Store.open(db_path, read_only=True)
            seen["row"] = await other.get_order(kw["client_order_id"])
            await other.close()
            return await real_create(**kw)

        h.exchange.create_order = spying_create
        record = await h.approved(id="s3", symbol="ETH/USDT", amount=0.1, order_type="market")
        await h.executor.execute_signal(record)
        assert seen["row"] is not None and seen["row"].status is O.SUBMITTING


# -- certainly not placed: rejected, no retry -----------------------------------------------------


async def test_venue_rejection_is_final_and_never_retried(h):
    h.faults.script("create_order", Fault.REJECT)
    record = await h.approved(id="r1", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.REJECTED and order.attempts == 1
    assert "rejected" in order.last_error
    assert h.engine_orders() == []
    assert not h.of(RetryScheduled)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"symbol": "BTC/USDT", "amount": 5.0}, "insufficient free USDT"),  # 5 BTC ~ 300k USDT
        ({"symbol": "BTC/USDT", "amount": 2.0, "side": "sell"}, "insufficient free BTC"),
    ],
)
async def test_pre_trade_check_rejects_with_a_clear_reason(h, fields, reason):
    record = await h.approved(id="r2", order_type="market", **fields)
    order = await h.executor.execute_signal(record)
    assert order.status is O.REJECTED
    assert reason in order.last_error and order.attempts == 0
    assert h.engine_orders() == []


async def test_venue_insufficient_funds_is_rejected_once(h):
    # The cached balance says yes, the venue says no: still final, still one attempt.
    h.engine._free["USDT"] = Decimal(1)
    record = await h.approved(id="r3", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.REJECTED and order.attempts == 1
    assert "insufficient" in order.last_error.lower() or "balance" in order.last_error.lower()


# -- not placed: retry ----------------------------------------------------------------------------


async def test_rate_limit_then_success_cools_down_and_retries(h):
    h.faults.script("create_order", Fault.RATE_LIMIT)
    record = await h.approved(id="q1", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.FILLED and order.attempts == 2
    assert h.exchange.cooldown.trips == 1
    retries = h.of(RetryScheduled)
    assert [(r.attempt, r.max_attempts) for r in retries] == [(1, 4)]
    assert "429" in retries[0].reason
    assert len(h.engine_orders()) == 1


async def test_refused_connection_is_retried_with_backoff(h):
    h.faults.script("create_order", Fault.REFUSED, Fault.REFUSED)
    record = await h.approved(id="q2", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.FILLED and order.attempts == 3
    delays = [r.delay for r in h.of(RetryScheduled)]
    assert len(delays) == 2 and all(d > 0 for d in delays)
    assert len(h.engine_orders()) == 1


async def test_retries_exhausted_fails_without_placing(h):
    h.faults.script("create_order", *[Fault.REFUSED] * 4)
    record = await h.approved(id="q3", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.FAILED and order.attempts == 4
    assert "not placed after 4 attempts" in order.last_error
    assert h.engine_orders() == []


# -- maybe placed: look up by client order id ----------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.TIMEOUT_AFTER_ACCEPT, Fault.RESET_AFTER_ACCEPT, Fault.ERROR_AFTER])
async def test_ambiguous_failure_after_accept_adopts_the_order_exactly_once(h, fault):
    h.faults.script("create_order", fault)
    record = await h.approved(id=f"m-{fault.value}", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.FILLED and order.attempts == 1
    assert len(h.engine_orders()) == 1
    states = [e["to_state"] for e in await h.store.events(order.client_order_id)]
    assert states == ["new", "submitting", "unknown", "filled"]


async def test_timeout_with_the_order_invisible_for_a_while_still_finds_it(h):
    h.faults.script("create_order", Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE)
    record = await h.approved(id="m-inv", symbol="BTC/USDT", amount=0.01, price=30000)
    order = await h.executor.execute_signal(record)
    assert order.status is O.OPEN and order.attempts == 1
    assert len(h.engine_orders()) == 1
    lookups = [r for r in h.of(RetryScheduled) if r.operation == "lookup"]
    assert lookups, "the first lookups ran into the visibility window"


async def test_error_before_acting_resubmits_under_the_next_replacement_number(h):
    # SPEC 6: certainly absent after the lookups -> the next replacement number, so that a late
    # original would stay distinguishable (Binance accepts an id again once its order ended).
    h.faults.script("create_order", Fault.ERROR_BEFORE)
    record = await h.approved(id="m-before", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.FILLED and order.client_order_id == coid("m-before", 1) and order.attempts == 1
    first = await h.store.get_order(coid("m-before", 0))
    assert first.status is O.FAILED and first.last_error.startswith("certainly absent")
    placed = h.engine_orders()
    assert [o.client_order_id for o in placed] == [coid("m-before", 1)]


async def test_duplicate_client_order_id_is_treated_as_placed(h):
    record = await h.approved(id="dup", symbol="BTC/USDT", amount=0.01, price=30000)
    h.engine.create_order(coid("dup"), "BTC/USDT", Side.BUY, OrderType.LIMIT, Decimal("0.01"), Decimal("30030"))
    order = await h.executor.execute_signal(record)
    assert order.status is O.OPEN
    assert len(h.engine_orders()) == 1


async def test_unresolvable_lookup_leaves_the_order_unknown_for_reconciliation(h):
    h.faults.script("create_order", Fault.TIMEOUT_AFTER_ACCEPT)
    h.faults.script("fetch_order", *[Fault.ERROR_BEFORE] * 10)
    record = await h.approved(id="m-unres", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.UNKNOWN
    assert any("reconciliation will resolve" in e.message for e in h.of(ErrorOccurred))
    h.faults._scripts.clear()
    result = await h.executor.reconcile()
    assert result.resolved_unknown == 1
    assert (await h.store.get_order(order.client_order_id)).status is O.FILLED
    assert len(h.engine_orders()) == 1


async def test_executing_the_same_signal_twice_places_one_order(h):
    record = await h.approved(id="twice", symbol="BTC/USDT", amount=0.01, order_type="market")
    first = await h.executor.execute_signal(record)
    second = await h.executor.execute_signal(record)
    assert first.client_order_id == second.client_order_id
    assert len(h.engine_orders()) == 1


# -- slippage ---------------------------------------------------------------------------------


async def test_market_order_is_not_sent_when_the_price_moved(h):
    record = await h.approved(id="pm", symbol="BTC/USDT", amount=0.01, order_type="market", price=50000)
    with pytest.raises(PriceMoved, match="price moved"):
        await h.executor.execute_signal(record)
    assert h.engine_orders() == [] and await h.store.orders() == []


async def test_sell_limit_price_is_moved_down_by_the_tolerance_and_rounded_up(h):
    record = await h.approved(id="sl", symbol="BTC/USDT", amount=0.01, side="sell", price=90000.004)
    order = await h.executor.execute_signal(record)
    assert order.price == Decimal("89910.01")  # 90000.004 * 0.999 = 89910.003996 -> up to the tick
    assert order.status is O.OPEN


# -- limit timeouts and partial fills -------------------------------------------------------------


@contextlib.asynccontextmanager
async def _resting_then_partial(settings, db_path, partial_fill):
    """A running harness whose limit order rests with 0.5 of 2.0 filled until its timeout."""
    settings = make_settings(
        execution={"retry_delay_seconds": 0.01, "order_timeout_seconds": 0.2, "partial_fill": partial_fill}
    )
    h = await make_harness(settings, db_path, clock=FakeClock())
    async with running(h):
        record = await h.approved(id=f"t-{partial_fill}", symbol="SOL/USDT", amount=2.0, price=100)
        order = await h.executor.execute_signal(record)
        assert order.status is O.OPEN
        h.engine.force_fill(order.client_order_id, Decimal("0.5"))
        yield h, order.client_order_id


async def test_limit_timeout_with_partial_fill_cancels_the_remainder(settings, db_path):
    async with _resting_then_partial(settings, db_path, "cancel_remainder") as (h, c):
        await eventually(lambda: c not in h.executor.active_orders)
        order = await h.store.get_order(c)
        assert order.status is O.CANCELED and order.filled == Decimal("0.5")
        assert "timeout" in order.last_error
        assert h.engine.get_order(client_order_id=c).status.value == "canceled"


async def test_limit_timeout_with_partial_fill_keeps_it_open(settings, db_path):
    async with _resting_then_partial(settings, db_path, "keep_open") as (h, c):
        await eventually(lambda: c in h.executor._keep_open)
        order = h.executor.active_orders[c]
        assert order.status is O.PARTIALLY_FILLED and order.filled == Decimal("0.5")
        assert order.timeout_at is None
        assert h.engine.get_order(client_order_id=c).status.value == "partially_filled"
        assert any("keep_open" in e.message for e in h.of(ErrorOccurred))


async def test_limit_timeout_without_fill_cancels_under_keep_open_too(settings, db_path):
    settings = make_settings(
        execution={"retry_delay_seconds": 0.01, "order_timeout_seconds": 0.1, "partial_fill": "keep_open"}
    )
    h = await make_harness(settings, db_path, clock=FakeClock())
    async with running(h):
        record = await h.approved(id="t-none", symbol="SOL/USDT", amount=2.0, price=100)
        order = await h.executor.execute_signal(record)
        await eventually(lambda: order.client_order_id not in h.executor.active_orders)
        assert (await h.store.get_order(order.client_order_id)).status is O.CANCELED


# -- cancel and amend -------------------------------------------------------------------------


async def test_cancel_an_open_order(h):
    record = await h.approved(id="c1", symbol="BTC/USDT", amount=0.01, price=30000)
    order = await h.executor.execute_signal(record)
    canceled = await h.executor.cancel_order(order.client_order_id)
    assert canceled.status is O.CANCELED
    states = [e["to_state"] for e in await h.store.events(order.client_order_id)]
    assert states[-2:] == ["pending_cancel", "canceled"]
    with pytest.raises(ExecutionError, match="cannot be canceled"):
        await h.executor.cancel_order(order.client_order_id)


async def test_amend_replaces_the_remaining_amount_at_the_new_price(h):
    order = await h.placed(id="a1", symbol="SOL/USDT", amount=2.0, price=100, fill=Decimal("0.5"))
    replacement = await h.executor.amend_order(order.client_order_id, price=Decimal("101.00"))
    assert replacement.client_order_id == coid("a1", 1)
    assert replacement.amount == Decimal("1.5") and replacement.price == Decimal("101.00")
    assert (await h.store.get_order(order.client_order_id)).status is O.CANCELED


async def test_amend_racing_a_fill_never_fills_past_the_signal(h):
    record = await h.approved(id="race", symbol="SOL/USDT", amount=2.0, price=100)
    order = await h.executor.execute_signal(record)
    c = order.client_order_id
    h.engine.force_fill(c, Decimal("0.5"))  # seen by nobody yet
    real_cancel = h.exchange.cancel_order

    async def cancel_after_a_racing_fill(client_order_id, symbol):
        h.engine.force_fill(client_order_id, Decimal("0.7"))  # lands just before our cancel
        return await real_cancel(client_order_id, symbol)

    h.exchange.cancel_order = cancel_after_a_racing_fill
    replacement = await h.executor.amend_order(c, price=Decimal("100.50"))
    h.exchange.cancel_order = real_cancel
    assert replacement.amount == Decimal("0.8")  # 2.0 - 0.5 - 0.7
    h.engine.force_fill(replacement.client_order_id, Decimal("0.8"))
    await h.executor.poll()
    orders = await h.store.orders_for_signal("race")
    assert sum(o.filled for o in orders) == Decimal("2.0")
    assert [o.status for o in orders] == [O.CANCELED, O.FILLED]


async def test_amend_when_the_racing_fill_completes_the_order_places_nothing(h):
    record = await h.approved(id="race2", symbol="SOL/USDT", amount=2.0, price=100)
    order = await h.executor.execute_signal(record)
    real_cancel = h.exchange.cancel_order

    async def cancel_after_full_fill(client_order_id, symbol):
        h.engine.force_fill(client_order_id, Decimal("2.0"))
        return await real_cancel(client_order_id, symbol)

    h.exchange.cancel_order = cancel_after_full_fill
    assert await h.executor.amend_order(order.client_order_id, price=Decimal("100.50")) is None
    orders = await h.store.orders_for_signal("race2")
    assert [(o.status, o.filled) for o in orders] == [(O.FILLED, Decimal("2.0"))]
    assert len(h.engine_orders()) == 1


async def test_amend_above_the_signal_amount_is_refused(h):
    record = await h.approved(id="a2", symbol="SOL/USDT", amount=2.0, price=100)
    order = await h.executor.execute_signal(record)
    check = await h.executor.check_amend(order.client_order_id, amount=Decimal("3"))
    assert not check.ok and "at most 2" in check.errors["amount"]
    check = await h.executor.check_amend(order.client_order_id, price=Decimal("100.001"))
    assert "off the price grid" in check.errors["price"]
    with pytest.raises(ExecutionError):
        await h.executor.amend_order(order.client_order_id, amount=Decimal("3"))
    assert h.executor.active_orders[order.client_order_id].status is O.OPEN


# -- reconciliation -------------------------------------------------------------------------------


async def test_restart_adopts_an_order_left_submitting(settings, db_path):
    h = await make_harness(settings, db_path)
    await h.executor.start(watch=False)
    record = await h.approved(id="crash", symbol="BTC/USDT", amount=0.01, price=30000)
    order = await h.executor.execute_signal(record)
    # Simulate a crash between the venue's acceptance and our journaling of it.
    await h.store.save_order(order.model_copy(update={"status": O.SUBMITTING}), old=O.OPEN, source="request")
    await h.close()

    again = await make_harness(settings, db_path, engine=h.engine)
    async with running(again, watch=False) as result:
        assert result.checked == 1 and result.resolved_unknown == 1
        assert (await again.store.get_order(order.client_order_id)).status is O.OPEN
        assert len(again.engine_orders()) == 1
        assert again.of(Reconciled)


async def test_restart_places_an_intent_that_was_never_sent_exactly_once(settings, db_path):
    h = await make_harness(settings, db_path)
    await h.executor.start(watch=False)
    record = await h.approved(id="never-sent", symbol="BTC/USDT", amount=0.01, order_type="market")
    intent = await h.executor.execute_signal(record)
    assert intent.status is O.FILLED
    engine = h.engine
    await h.close()
    # a second store whose intent row never reached the venue
    other_db = db_path.with_name("other.db")
    h2 = await make_harness(settings, other_db, engine=engine)
    await h2.store.insert_signal(record)
    fresh = intent.model_copy(
        update={
            "client_order_id": coid("never-sent-2"),
            "status": O.NEW,
            "filled": 0,
            "average": None,
            "fee": 0,
            "attempts": 0,
            "exchange_order_id": None,
        }
    )
    await h2.store.save_order(fresh, old=None, source="request")
    async with running(h2, watch=False):
        await eventually(lambda: h2.executor.idle)
        assert (await h2.store.get_order(fresh.client_order_id)).status is O.FILLED
        assert len(h2.engine_orders(coid("never-sent-2"))) == 1


async def test_reconcile_adopts_prefixed_orders_and_leaves_external_ones(h):
    h.engine.create_order(coid("stray"), "BTC/USDT", Side.BUY, OrderType.LIMIT, Decimal("0.01"), Decimal("30000"))
    h.engine.create_order("manual-1", "BTC/USDT", Side.BUY, OrderType.LIMIT, Decimal("0.01"), Decimal("30000"))
    result = await h.executor.reconcile()
    assert result.adopted == 1 and result.external == 1
    adopted = await h.store.get_order(coid("stray"))
    assert adopted.origin == "adopted" and adopted.status is O.OPEN
    assert await h.store.get_order("manual-1") is None
    assert h.engine.get_order(client_order_id="manual-1").status.value == "open"


async def test_reconcile_records_fills_missed_while_away(h):
    order = await h.placed(id="missed", symbol="SOL/USDT", amount=2.0, price=100, fill=Decimal("2.0"))
    result = await h.executor.reconcile()
    assert result.updated == 1
    stored = await h.store.get_order(order.client_order_id)
    assert stored.status is O.FILLED and stored.filled == Decimal("2.0")
    assert sum(f.amount for f in await h.store.fills(order.client_order_id)) == Decimal("2.0")


async def test_reconcile_reports_balance_drift(h):
    h.engine._free["USDT"] += Decimal(5)  # money that no fill explains
    result = await h.executor.reconcile()
    assert result.drift == {"USDT": Decimal(5)}
