"""The TradeExecutor trading through the real ccxt client against the emulator, one fault class at a
time and then all of them at random: afterwards the emulator holds exactly one order per signal,
none filled past the signal's amount, and never two live at once."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest
from helpers import eventually

from executor.clientid import client_order_id
from executor.models import OrderStatus
from executor.venue.faults import EMULATOR_FAULTS, RESPONSE_FAULTS, Fault

from .support import HOLD_S, PREFIX, RETRY_AFTER_S, Rig, make_rig, rig_settings

pytestmark = pytest.mark.integration

O = OrderStatus
ORDER = "POST /api/v3/order"


@pytest.fixture
async def rig(emulator, tmp_path):
    rig = await make_rig(emulator, tmp_path / "store.db")
    await rig.executor.start()
    try:
        yield rig
    finally:
        await rig.close()


def assert_one_clean_order(rig: Rig, signal_id: str) -> None:
    orders = rig.venue_orders(signal_id)
    assert len(orders) == 1, [o.client_order_id for o in orders]
    audit = rig.audit()
    assert audit.ok, audit.to_json()


async def market_buy(rig: Rig, signal_id: str, amount: float = 0.001):
    record = await rig.approved(id=signal_id, symbol="BTC/USDT", amount=amount, order_type="market")
    return await rig.executor.execute_signal(record)


# -- one fault class at a time, on the create -----------------------------------------------------


async def test_timeout_after_accept_is_looked_up_and_adopted(rig, faults):
    faults.script(ORDER, "timeout_after_accept")
    order = await market_buy(rig, "timeout")
    assert order.status is O.FILLED and order.filled == Decimal("0.001")
    assert rig.emulator.emulator.requests[ORDER] == 1  # found, never re-sent
    assert_one_clean_order(rig, "timeout")


async def test_timeout_after_accept_of_an_order_still_invisible_is_found_across_the_window(rig, faults):
    faults.script(ORDER, "timeout_after_accept+invisible")
    faults.invisible_ms = HOLD_S * 1000 + 200  # still hidden when the client gives up and looks
    order = await market_buy(rig, "timeout-invisible")
    assert order.status is O.FILLED
    assert rig.emulator.emulator.requests[ORDER] == 1
    assert rig.emulator.emulator.requests["GET /api/v3/order"] >= 2  # it took more than one lookup
    assert_one_clean_order(rig, "timeout-invisible")


async def test_5xx_before_acting_is_resubmitted_under_the_next_replacement_number_once_absent(rig, faults):
    faults.script(ORDER, "error_before")
    order = await market_buy(rig, "before")
    assert order.status is O.FILLED and order.replacement == 1 and order.attempts == 1
    assert rig.emulator.emulator.requests[ORDER] == 2
    first = await rig.store.get_order(client_order_id(PREFIX, "before", 0))
    assert first.status is O.FAILED and first.last_error.startswith("certainly absent")
    assert_one_clean_order(rig, "before")


async def test_5xx_after_acting_on_an_invisible_order_is_adopted_not_resent(rig, faults):
    faults.script(ORDER, "error_after+invisible")
    order = await market_buy(rig, "after")
    assert order.status is O.FILLED and order.attempts == 1
    assert rig.emulator.emulator.requests[ORDER] == 1
    assert_one_clean_order(rig, "after")


async def test_429_waits_out_retry_after_then_places_the_order(rig, faults):
    faults.script(ORDER, "rate_limit")
    order = await market_buy(rig, "limited")
    assert order.status is O.FILLED and order.attempts == 2
    emulator = rig.emulator.emulator
    assert emulator.statuses[429] == 1 and emulator.statuses[418] == 0
    assert rig.exchange.rate_limit_state().trips == 1
    assert_one_clean_order(rig, "limited")


async def test_a_ban_holds_every_request_then_the_order_goes_through(rig):
    rig.emulator.emulator.ban(RETRY_AFTER_S * 2)
    order = await market_buy(rig, "banned")
    assert order.status is O.FILLED
    assert rig.emulator.emulator.statuses[418] == 1
    assert_one_clean_order(rig, "banned")


async def test_connection_reset_after_accept_is_looked_up_and_adopted(rig, faults):
    faults.script(ORDER, "reset_after_accept")
    order = await market_buy(rig, "reset")
    assert order.status is O.FILLED and rig.emulator.emulator.requests[ORDER] == 1
    assert_one_clean_order(rig, "reset")


async def test_an_invisible_resting_order_is_tracked_timed_out_and_canceled(rig, faults):
    faults.script(ORDER, "invisible")
    record = await rig.approved(id="resting", symbol="BTC/USDT", amount=0.001, price=30000)
    order = await rig.executor.execute_signal(record)
    assert order.status is O.OPEN
    await eventually(lambda: rig.executor.idle, timeout=20)
    final = await rig.store.get_order(order.client_order_id)
    assert final.status is O.CANCELED  # order_timeout_seconds = 2
    assert rig.venue_orders("resting")[0].status is O.CANCELED
    assert_one_clean_order(rig, "resting")


# -- faults on the reads and cancels around a create ------------------------------------------------


@pytest.mark.parametrize("lookup_fault", ["timeout_after_accept", "error_before", "rate_limit", "reset_after_accept"])
async def test_lookups_survive_their_own_faults(rig, faults, lookup_fault):
    faults.script(ORDER, "error_after")
    faults.script("GET /api/v3/order", lookup_fault, lookup_fault)
    order = await market_buy(rig, f"lookup-{lookup_fault}")
    assert order.status is O.FILLED
    assert rig.emulator.emulator.requests[ORDER] == 1
    assert_one_clean_order(rig, f"lookup-{lookup_fault}")


@pytest.mark.parametrize("cancel_fault", ["timeout_after_accept", "error_after", "error_before", "reset_after_accept"])
async def test_a_cancel_with_an_unknown_outcome_ends_in_the_venues_state(rig, faults, cancel_fault):
    record = await rig.approved(id=f"cancel-{cancel_fault}", symbol="BTC/USDT", amount=0.001, price=30000)
    order = await rig.executor.execute_signal(record)
    faults.script("DELETE /api/v3/order", cancel_fault)
    await rig.executor.cancel_order(order.client_order_id, reason="test")
    await eventually(lambda: rig.executor.idle, timeout=20)
    final = await rig.store.get_order(order.client_order_id)
    venue = rig.venue_orders(f"cancel-{cancel_fault}")[0]
    assert final.status is venue.status is O.CANCELED
    assert_one_clean_order(rig, f"cancel-{cancel_fault}")


# -- everything at once -------------------------------------------------------------------------------


async def test_thirty_signals_through_every_fault_at_random(emulator, tmp_path):
    faults = emulator.emulator.faults
    # 10 % of each fault on the create, 5 % on the lookups and cancels around it (the CLI test
    # and the acceptance run put 10 % everywhere; here the suite stays quick)
    faults.endpoints = {
        ORDER: {fault: 0.1 for fault in EMULATOR_FAULTS if fault is not Fault.NONE},
        "GET /api/v3/order": {fault: 0.05 for fault in RESPONSE_FAULTS},
        "DELETE /api/v3/order": {fault: 0.05 for fault in RESPONSE_FAULTS},
    }
    rig = await make_rig(emulator, tmp_path / "store.db", settings=rig_settings(max_retries=6))
    try:
        await rig.executor.start()
        rng = random.Random(5)
        records = []
        for n in range(30):
            symbol = rng.choice(["BTC/USDT", "ETH/USDT", "SOL/USDT"])
            kind = n % 3  # market; limit that crosses; limit that rests and times out
            fields = {"id": f"mix-{n}", "symbol": symbol, "side": rng.choice(["buy", "sell"]), "quote_amount": 40}
            if kind == 0:
                fields["order_type"] = "market"
            elif kind == 2:
                ticker = rig.engine.ticker(symbol)
                fields["price"] = float(
                    ticker.bid * Decimal("0.97") if fields["side"] == "buy" else ticker.ask * Decimal("1.03")
                )
            records.append(await rig.approved(**fields))
        await asyncio.gather(*(rig.executor.execute_signal(r) for r in records))

        async def settled() -> bool:
            await rig.executor.reconcile()  # resolves what lookups left unknown
            return rig.executor.idle

        deadline = asyncio.get_running_loop().time() + 60
        while not await settled():
            assert asyncio.get_running_loop().time() < deadline, rig.executor.active_orders
            await asyncio.sleep(0.2)

        injected = faults.summary()
        assert sum(injected[ORDER].values()) >= 8  # the faults really happened
        stored = {o.client_order_id: o for o in await rig.store.orders()}
        venue = {o.client_order_id: o for o in rig.engine.all_orders()}
        for record in records:
            # one logical order; a second exchange order only after the first was certainly absent
            mine = sorted((o for o in stored.values() if o.signal_id == record.id), key=lambda o: o.replacement)
            assert mine, record.id
            for given_up in mine[:-1]:
                assert given_up.status is O.FAILED and given_up.last_error.startswith("certainly absent")
            placed = rig.venue_orders(record.id)
            last = mine[-1]
            if last.status in (O.REJECTED, O.FAILED):
                assert placed == [], f"{record.id} is {last.status} but the venue has it"
            else:
                assert [o.client_order_id for o in placed] == [last.client_order_id], f"{record.id}: {placed}"
                assert venue[last.client_order_id].filled == last.filled
        assert sum(1 for o in stored.values() if o.status is O.FILLED) >= 15
        audit = rig.audit()
        assert audit.ok, audit.to_json()
    finally:
        await rig.close()
