"""Every known way to over-fill, lose, stall or mis-account an order (issue 8), one scenario per
test on the paper exchange, each failing before its fix."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from harness import NoFeesInOrders, make_harness, order_row, running
from helpers import FakeClock, eventually, make_settings

from executor.clientid import client_order_id, has_prefix, replacement_number, signal_key
from executor.events import ErrorOccurred
from executor.exchanges.paper import PaperExchange
from executor.executor import ExecutionError
from executor.models import OrderStatus, OrderType, Side, SignalStatus, utcnow
from executor.service import TradingService
from executor.signals import SignalError, parse_signal
from executor.store import StoreError
from executor.venue.faults import Fault, FaultPlan

O = OrderStatus
S = SignalStatus


def coid(signal_id: str, n: int = 0) -> str:
    return client_order_id("tc", signal_id, n)


@pytest.fixture
async def h(settings, db_path):
    harness = await make_harness(settings, db_path)
    async with running(harness, watch=False):
        yield harness


class BareCancelAck(PaperExchange):
    """A venue whose cancel answer is a bare acknowledgement (HTX): canceled, filled not stated."""

    async def cancel_order(self, client_order_id, symbol):
        report = await super().cancel_order(client_order_id, symbol)
        stated = {"status": O.CANCELED, "filled": None, "average": None, "fee": Decimal(0), "fee_currency": None}
        return dataclasses.replace(report, client_order_id=client_order_id, **stated, ts=None, created=None)


# -- 1. over-fill on amend or timeout after a bare cancel acknowledgement -----------------------


async def test_amend_after_a_bare_cancel_ack_sizes_the_replacement_from_the_real_fills(h):
    h.exchange = h.executor.exchange = BareCancelAck(h.engine, faults=h.faults)  # after the start
    order = await h.placed(id="htx", symbol="SOL/USDT", amount=2.0, price=100, fill=Decimal("1.5"))  # seen by nobody
    replacement = await h.executor.amend_order(order.client_order_id, price=Decimal("100.50"))
    assert replacement.amount == Decimal("0.5")  # not 2.0: the cancel answer said nothing of fills
    canceled = await h.store.get_order(order.client_order_id)
    assert canceled.status is O.CANCELED and canceled.filled == Decimal("1.5")
    h.engine.force_fill(replacement.client_order_id, Decimal("0.5"))
    assert sum(o.filled for o in h.engine.all_orders()) == Decimal("2.0")


async def test_a_timeout_after_a_bare_cancel_ack_records_the_fills_made_before_it(settings, db_path):
    settings = make_settings(execution={"retry_delay_seconds": 0.01, "order_timeout_seconds": 0.1})
    h = await make_harness(settings, db_path, clock=FakeClock(), exchange_cls=BareCancelAck)
    async with running(h):
        order = await h.placed(id="htx-t", symbol="SOL/USDT", amount=2.0, price=100, fill=Decimal("1.5"))
        await eventually(lambda: order.client_order_id not in h.executor.active_orders)
        stored = await h.store.get_order(order.client_order_id)
        assert stored.status is O.CANCELED and stored.filled == Decimal("1.5")


# -- 2. pending_cancel is no trap -----------------------------------------------------------------


async def test_a_cancel_that_never_reached_the_venue_puts_the_order_back_open(h):
    record = await h.approved(id="refused-cancel", symbol="BTC/USDT", amount=0.01, price=30000)
    order = await h.executor.execute_signal(record)
    h.faults.script("cancel_order", *[Fault.REFUSED] * 4)  # every attempt refused before sending
    back = await h.executor.cancel_order(order.client_order_id)
    assert back.status is O.OPEN and "cancel failed" in back.last_error
    canceled = await h.executor.cancel_order(order.client_order_id)  # the operator can try again
    assert canceled.status is O.CANCELED


async def test_a_cancel_out_of_retries_is_sent_again_and_the_run_goes_idle(settings, db_path):
    h = await make_harness(settings, db_path)
    h.executor.cancel_resend_after = 0.2
    async with running(h):
        record = await h.approved(id="lost-cancel", symbol="BTC/USDT", amount=0.01, price=30000)
        order = await h.executor.execute_signal(record)
        h.faults.script("cancel_order", *[Fault.ERROR_BEFORE] * 4)  # maybe reached, in fact did not
        pending = await h.executor.cancel_order(order.client_order_id)
        assert pending.status is O.PENDING_CANCEL
        await eventually(lambda: h.executor.idle)  # sent again by tracking, and it landed
        assert (await h.store.get_order(order.client_order_id)).status is O.CANCELED
        assert h.engine.get_order(client_order_id=order.client_order_id).status.value == "canceled"


async def test_the_kill_switch_cancels_an_order_left_pending_cancel(h):
    record = await h.approved(id="ks-pending", symbol="BTC/USDT", amount=0.01, price=30000)
    order = await h.executor.execute_signal(record)
    h.faults.script("cancel_order", *[Fault.ERROR_BEFORE] * 4)
    await h.executor.cancel_order(order.client_order_id)
    result = await h.executor.kill_switch()
    assert result.left_open == 0 and result.canceled == 1


# -- 3. reconcile never folds a stale copy or report ----------------------------------------------


async def test_reconcile_never_folds_a_stale_report_into_an_order_that_already_ended(h):
    record = await h.approved(id="stale-fold", symbol="SOL/USDT", amount=2.0, price=100)
    order = await h.executor.execute_signal(record)
    c = order.client_order_id
    real = h.exchange.fetch_open_orders

    async def open_orders_then_a_fill(symbol=None):
        reports = await real(symbol)  # the order as open, unfilled ...
        h.exchange.fetch_open_orders = real
        h.engine.force_fill(c, Decimal("2.0"))  # ... then it fills, and tracking sees that first
        await h.executor.poll()
        return reports

    h.exchange.fetch_open_orders = open_orders_then_a_fill
    await h.executor.reconcile()
    states = [(e["from_state"], e["to_state"]) for e in await h.store.events(c)]
    assert states[-1] == ("open", "filled") and ("filled", "partially_filled") not in states
    assert sum(f.amount for f in await h.store.fills(c)) == Decimal("2.0")
    result = await h.executor.reconcile()
    assert result.drift == {}


async def test_a_write_from_a_stale_copy_is_refused_by_the_store(h):
    from executor.store import StaleWrite

    record = await h.approved(id="cas", symbol="BTC/USDT", amount=0.01, price=30000)
    order = await h.executor.execute_signal(record)
    stale = order.model_copy(update={"status": O.CANCELED, "version": order.version + 1})
    newer = order.model_copy(update={"last_error": "x", "version": order.version + 1})
    await h.store.transact(h.store.order_write(newer, old=O.OPEN, expect_version=order.version, source="test"))
    with pytest.raises(StaleWrite):
        await h.store.transact(h.store.order_write(stale, old=O.OPEN, expect_version=order.version, source="t"))
    assert (await h.store.get_order(order.client_order_id)).status is O.OPEN


# -- 4. no signal lost between approval and intent ------------------------------------------------


def _line(**fields) -> str:
    import json

    base = {"id": "s1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "price": 30000}
    return json.dumps(base | fields)


@pytest.fixture
async def manual(db_path):
    settings = make_settings(execution={"retry_delay_seconds": 0.01})
    engine_faults = FaultPlan(seed=3)
    from executor.venue.engine import PaperEngine

    engine = PaperEngine(
        seed=3, markets=list(settings.exchange.markets), balances={"USDT": 100000, "BTC": 1, "ETH": 10, "SOL": 100}
    )
    service = await TradingService.open(
        settings, db_path, exchange=PaperExchange(engine, faults=engine_faults), poll_interval=0.02
    )
    service.faults = engine_faults
    await service.start()
    yield service
    await service.close()


async def test_a_ticker_error_at_approval_leaves_the_signal_pending_with_no_order(manual):
    await manual.receive(
        _line(id="no-ticker", price=None, order_type="limit").replace(', "price": null', ""), source="t"
    )
    manual.faults.script("fetch_ticker", *[Fault.ERROR_BEFORE] * 8)
    manual.executor._tickers.clear()
    with pytest.raises(ExecutionError, match="not approved"):
        await manual.approve("no-ticker")
    assert (await manual.store.get_signal("no-ticker")).status is S.PENDING
    assert await manual.store.orders_for_signal("no-ticker") == []


async def test_a_store_failure_at_approval_leaves_the_signal_pending_with_no_order(manual, monkeypatch):
    await manual.receive(_line(id="no-disk"), source="t")
    real = manual.store.transact

    async def failing(*groups):
        raise StoreError("write failed: disk I/O error")

    monkeypatch.setattr(manual.store, "transact", failing)
    with pytest.raises(StoreError):
        await manual.approve("no-disk", confirm=True)
    monkeypatch.setattr(manual.store, "transact", real)
    assert (await manual.store.get_signal("no-disk")).status is S.PENDING
    assert await manual.store.orders_for_signal("no-disk") == []


async def test_an_approval_and_its_intent_are_one_transaction(manual):
    await manual.receive(_line(id="atomic"), source="t")
    await manual.approve("atomic", confirm=True)
    events = [e for e in await manual.store.events() if e["entity_id"] in ("atomic", coid("atomic"))]
    approval = next(e for e in events if e["entity"] == "signal" and e["to_state"] == "approved")
    intent = next(e for e in events if e["entity"] == "order" and e["to_state"] == "new")
    assert intent["seq"] == approval["seq"] + 1  # written together, in one commit


async def test_an_expiry_racing_an_approval_never_expires_an_executed_signal(manual, monkeypatch):
    await manual.receive(_line(id="race-ttl"), source="t")
    stale = await manual.store.signals([S.PENDING])  # the expiry loop read it pending ...
    await manual.approve("race-ttl", confirm=True)  # ... the operator approved it meanwhile
    stale = [r.model_copy(update={"expires_at": utcnow() - timedelta(seconds=1)}) for r in stale]

    async def signals(statuses=None, limit=None):
        return stale

    monkeypatch.setattr(manual.store, "signals", signals)
    assert await manual.expire_due() == 0
    assert (await manual.store.get_signal("race-ttl")).status is S.APPROVED


# -- 6. a late original is adopted for its signal ----------------------------------------------


async def test_a_late_original_is_adopted_for_its_signal_and_the_extra_order_canceled(settings, db_path):
    faults = FaultPlan(seed=7, invisible_ms=60_000, retry_after=0.05)  # invisible far past the lookups
    h = await make_harness(settings, db_path, faults=faults)
    async with running(h, watch=False):
        h.faults.script("create_order", Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE)
        record = await h.approved(id="late", symbol="BTC/USDT", amount=0.01, price=30000)
        replacement = await h.executor.execute_signal(record)
        assert replacement.client_order_id == coid("late", 1) and replacement.status is O.OPEN
        given_up = await h.store.get_order(coid("late", 0))
        assert given_up.status is O.FAILED
        h.exchange._hidden_until.clear()  # the original shows up after all
        result = await h.executor.reconcile()
        assert result.updated >= 1
        original = await h.store.get_order(coid("late", 0))
        assert original.status is O.OPEN
        assert (original.signal_id, original.origin, original.attempts) == ("late", "executor", 1)
        await eventually(lambda: not h.executor.tasks_named("late-original"))
        assert (await h.store.get_order(coid("late", 1))).status is O.CANCELED
        live = [o for o in h.engine.all_orders() if o.is_open]
        assert [o.client_order_id for o in live] == [coid("late", 0)]


# -- 7. balance drift and fees ------------------------------------------------------------------


async def test_no_false_drift_after_a_restart_with_fills_made_while_down(settings, db_path):
    h = await make_harness(settings, db_path)
    await h.executor.start(watch=False)
    record = await h.approved(id="down", symbol="SOL/USDT", amount=2.0, price=100)
    order = await h.executor.execute_signal(record)
    await h.close()
    h.engine.force_fill(order.client_order_id, Decimal("2.0"))  # filled while we were down
    again = await make_harness(settings, db_path, engine=h.engine)
    async with running(again, watch=False) as first:
        assert first.drift == {} and (await again.store.get_order(order.client_order_id)).status is O.FILLED
        second = await again.executor.reconcile()
        assert second.drift == {}


async def test_fees_come_from_the_trades_when_order_answers_carry_none(settings, db_path):
    h = await make_harness(settings, db_path, exchange_cls=NoFeesInOrders)
    async with running(h, watch=False):
        order = await h.placed(id="fees", symbol="SOL/USDT", amount=2.0, price=100, fill=Decimal("2.0"))
        await h.executor.poll()
        assert (await h.store.get_order(order.client_order_id)).fee == 0  # the answer said nothing
        result = await h.executor.reconcile()
        charged = sum(t.fee for t in h.engine.trades(client_order_id=order.client_order_id))
        stored = await h.store.get_order(order.client_order_id)
        assert charged > 0 and stored.fee == charged
        assert result.drift == {}


async def test_a_fill_landing_between_two_requests_never_shows_as_drift(h):
    record = await h.approved(id="racing-fill", symbol="SOL/USDT", amount=2.0, price=100)
    order = await h.executor.execute_signal(record)
    real = h.exchange.fetch_balances

    async def balances_after_a_fill():
        h.engine.force_fill(order.client_order_id, Decimal("1.0"))  # after our order fetch, before this
        h.exchange.fetch_balances = real
        return await real()

    h.exchange.fetch_balances = balances_after_a_fill
    racing = await h.executor.reconcile()
    settled = await h.executor.reconcile()
    assert racing.drift == {} and settled.drift == {}


# -- 8. the kill switch misses nothing in flight ----------------------------------------------


async def test_the_kill_switch_blocks_creates_in_backoff_and_cancels_those_found_by_lookup(settings, db_path):
    settings = make_settings(execution={"retry_delay_seconds": 0.2, "max_retries": 3})
    faults = FaultPlan(seed=7, invisible_ms=300, retry_after=0.05)
    h = await make_harness(settings, db_path, faults=faults)
    async with running(h, watch=False):
        h.faults.script("create_order", Fault.REFUSED, Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE)
        backing_off = await h.approved(id="ks-backoff", symbol="BTC/USDT", amount=0.01, price=30000)
        in_lookup = await h.approved(id="ks-lookup", symbol="BTC/USDT", amount=0.01, price=30000)
        first = asyncio.create_task(h.executor.execute_signal(backing_off))
        await eventually(lambda: h.faults.pending("create_order") == 1)
        second = asyncio.create_task(h.executor.execute_signal(in_lookup))
        await eventually(lambda: h.faults.pending("create_order") == 0)
        result = await h.executor.kill_switch()
        await asyncio.gather(first, second)
        assert result.left_open == 0 and result.canceled == 1
        assert (await h.store.get_order(coid("ks-backoff"))).status is O.FAILED  # never sent
        assert (await h.store.get_order(coid("ks-lookup"))).status is O.CANCELED
        assert [o for o in h.engine.all_orders() if o.is_open] == []
        assert [o.client_order_id for o in h.engine.all_orders()] == [coid("ks-lookup")]


# -- 9. an open order the venue does not know still ends ----------------------------------------


async def test_an_open_order_the_venue_does_not_know_still_times_out_and_ends(settings, db_path):
    settings = make_settings(execution={"retry_delay_seconds": 0.01, "order_timeout_seconds": 0.05})
    h = await make_harness(settings, db_path)
    now = utcnow()
    five_minutes_ago = now - timedelta(minutes=5)
    ghost = order_row(
        "ghost",
        status=O.OPEN,
        created_at=five_minutes_ago,
        updated_at=five_minutes_ago,
        timeout_at=now - timedelta(seconds=1),
    )
    await h.store.save_order(ghost, old=None, source="test")
    async with running(h):
        await eventually(lambda: h.executor.idle)
        stored = await h.store.get_order(ghost.client_order_id)
        assert stored.status.is_terminal and "unknown to the venue" in stored.last_error


# -- 10. magnitudes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("price", 1e30), ("amount", 1e30), ("quote_amount", 1e30)])
def test_a_huge_number_is_refused_at_intake_with_a_reason_naming_its_field(field, value):
    fields = {"id": "huge", "symbol": "BTC/USDT", "side": "buy", field: value}
    if field != "amount" and field != "quote_amount":
        fields["amount"] = 0.01
    with pytest.raises(SignalError) as caught:
        parse_signal(fields)
    assert caught.value.reason.startswith(f"{field}: must be at most")


async def test_an_amount_above_the_market_maximum_is_refused_naming_the_field(h):
    check = h.executor.check_order("BTC/USDT", Side.BUY, OrderType.LIMIT, Decimal("1e11"), Decimal("30000"))
    assert "amount" in check.errors


# -- 11. bounded memory ---------------------------------------------------------------------------


async def test_no_lock_outlives_its_signal(h):
    for n in range(50):
        record = await h.approved(id=f"mem-{n}", symbol="BTC/USDT", amount=0.01, order_type="market")
        await h.executor.execute_signal(record)
    assert len(h.executor.locks) == 0


# -- 12. races found by reading -------------------------------------------------------------------


async def test_amend_of_an_order_that_ended_during_its_check_is_refused_cleanly(h, monkeypatch):
    record = await h.approved(id="ended", symbol="SOL/USDT", amount=2.0, price=100)
    order = await h.executor.execute_signal(record)
    real = h.executor.check_amend

    async def check_then_fill(coid_, **kw):
        result = await real(coid_, **kw)
        h.engine.force_fill(coid_, Decimal("2.0"))
        await h.executor.poll()
        return result

    monkeypatch.setattr(h.executor, "check_amend", check_then_fill)
    with pytest.raises(ExecutionError, match="ended"):
        await h.executor.amend_order(order.client_order_id, price=Decimal("100.50"))


async def test_a_refusal_in_the_timeout_path_is_a_warning_not_an_internal_error(h, monkeypatch):
    record = await h.approved(id="t-refused", symbol="BTC/USDT", amount=0.01, price=30000)
    order = await h.executor.execute_signal(record)

    async def refused(*a, **kw):
        raise ExecutionError("cannot be canceled in state filled")

    monkeypatch.setattr(h.executor, "cancel_order", refused)
    await h.executor._on_timeout(order.client_order_id)
    messages = [(e.level, e.message) for e in h.of(ErrorOccurred)]
    assert any(level == "warning" and "cannot be canceled" in m for level, m in messages)
    assert not any("internal error" in m for _, m in messages)


# -- error policy -----------------------------------------------------------------------------


async def test_rate_limited_attempts_do_not_count_against_max_retries(h):
    h.faults.script("create_order", *[Fault.RATE_LIMIT] * 5)  # more 429s than max_retries + 1
    record = await h.approved(id="many-429", symbol="BTC/USDT", amount=0.01, order_type="market")
    order = await h.executor.execute_signal(record)
    assert order.status is O.FILLED and order.attempts == 6


# -- client order ids -------------------------------------------------------------------------


def test_client_order_ids_are_letters_and_digits_at_most_32_characters():
    for signal_id in ("a", "x" * 64, "ünïcode-is-not-allowed-but-hashed", "2026-11-23T10:00:00.000:abc"):
        for n in (0, 1, 9999):
            value = client_order_id("tc12ABCD", signal_id, n)
            assert value.isalnum() and value.isascii() and len(value) <= 32
            assert has_prefix(value, "tc12ABCD") and replacement_number(value) == n
            assert signal_key(value) == signal_key(client_order_id("tc12ABCD", signal_id, 0))
    assert client_order_id("tc", "s1", 0) != client_order_id("tc", "s2", 0)


@pytest.mark.parametrize("prefix", ["t-c", "t_c", "toolongprefix", ""])
def test_a_prefix_that_a_venue_would_refuse_is_a_config_error_naming_the_rule(prefix):
    from executor.config import ConfigError, load_config

    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"TRADECONSOLE_EXCHANGE__CLIENT_ID_PREFIX": prefix})
    assert "letters and digits" in str(caught.value)


def test_ids_in_the_first_versions_form_stay_recognised():
    old = "tc-abcdefghijklmnop-2"
    assert has_prefix(old, "tc") and replacement_number(old) == 2 and signal_key(old) == "tc-abcdefghijklmnop"
    assert not has_prefix("manual-1", "tc")


async def test_a_run_goes_idle_only_once_the_trades_have_told_every_fee(settings, db_path):
    h = await make_harness(settings, db_path, exchange_cls=NoFeesInOrders)
    async with running(h):
        record = await h.approved(id="fee-idle", symbol="BTC/USDT", amount=0.01, order_type="market")
        order = await h.executor.execute_signal(record)
        assert order.status is O.FILLED and order.fee == 0 and not h.executor.idle  # fee still unknown
        await eventually(lambda: h.executor.idle)
        stored = await h.store.get_order(order.client_order_id)
        trades = h.engine.trades(client_order_id=order.client_order_id)
        assert stored.fee == sum(t.fee for t in trades) > 0
        fills = await h.store.fills(order.client_order_id)
        assert sorted((f.amount, f.fee, f.fee_currency) for f in fills) == sorted(
            (t.amount, t.fee, t.fee_currency) for t in trades
        )


async def test_a_signal_whose_orders_keep_being_certainly_absent_goes_back_to_the_operator(h, monkeypatch):
    import executor.placement as executor_module

    monkeypatch.setattr(executor_module, "MAX_RESUBMISSIONS", 2)
    h.faults.script("create_order", *[Fault.ERROR_BEFORE] * 6)  # maybe placed, each time in fact not
    record = await h.approved(id="keeps-vanishing", symbol="BTC/USDT", amount=0.01, order_type="market")
    await h.executor.execute_signal(record)
    signal = await h.store.get_signal("keeps-vanishing")
    assert signal.status is S.PENDING and "certainly absent: back to the operator" in signal.reason
    assert h.engine_orders() == [] and h.executor.idle
