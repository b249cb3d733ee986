"""PaperExchange: the port over the paper engine, its error mapping and every injected fault."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from harness import BTC, ENGINE_T0, EPOCH, make_engine
from helpers import FakeClock

from executor.exchanges.base import (
    DuplicateOrder,
    ExchangeOrder,
    MaybePlaced,
    NotPlaced,
    OrderNotFound,
    Rejected,
)
from executor.exchanges.paper import PaperExchange
from executor.models import OrderStatus, OrderType, Side
from executor.venue.faults import Fault, FaultPlan

D = Decimal


def make_exchange(faults: FaultPlan | None = None, clock: FakeClock | None = None, **kwargs) -> PaperExchange:
    engine = make_engine(11, (BTC, "ETH/USDT"), clock, balances={"USDT": 100_000, "BTC": 1})
    return PaperExchange(engine, faults=faults, **kwargs)


async def place(exchange: PaperExchange, cid: str = "tc-1", price: Decimal = D(50000)) -> ExchangeOrder:
    """A buy limit far below the market: it rests, so it stays visible and cancelable."""
    return await exchange.create_order(
        client_order_id=cid, symbol=BTC, side=Side.BUY, type=OrderType.LIMIT, amount=D("0.1"), price=price
    )


def placed(exchange: PaperExchange) -> list[str]:
    return [o.client_order_id for o in exchange.engine.all_orders()]


async def place_into(fault: Fault, raises: type[Exception], *, plan: FaultPlan | None = None, match: str | None = None):
    """An exchange whose next order meets `fault` (scripted on `plan`), and what placing it raised."""
    exchange = make_exchange((plan or FaultPlan()).script("create_order", fault))
    with pytest.raises(raises, match=match) as info:
        await place(exchange)
    return exchange, info.value


async def test_port_identity_and_markets():
    exchange = make_exchange()
    assert (exchange.name, exchange.mode) == ("paper", "PAPER")
    markets = await exchange.load_markets()
    assert set(markets) == {BTC, "ETH/USDT"}
    assert markets[BTC].min_cost == 5


async def test_resting_limit_order_comes_back_open_with_the_venue_id():
    exchange = make_exchange()
    order = await place(exchange)
    assert order.status is OrderStatus.OPEN
    assert order.exchange_order_id == "paper-1"
    assert (order.amount, order.price, order.filled, order.average) == (D("0.1"), D(50000), 0, None)
    assert order.ts == datetime.fromtimestamp(EPOCH, UTC)
    assert await exchange.fetch_order("tc-1", BTC) == order


async def test_market_order_comes_back_filled_with_average_and_fee():
    exchange = make_exchange()
    order = await exchange.create_order(
        client_order_id="tc-m", symbol=BTC, side=Side.SELL, type=OrderType.MARKET, amount=D("0.5"), price=None
    )
    trades = await exchange.fetch_my_trades(BTC)
    assert order.status is OrderStatus.FILLED and order.filled == D("0.5")
    assert order.fee_currency == "USDT"
    assert order.fee == sum((t.fee for t in trades), D(0))
    assert order.average == sum((t.price * t.amount for t in trades), D(0)) / D("0.5")
    assert {t.client_order_id for t in trades} == {"tc-m"}
    assert trades[0].exchange_order_id == "paper-1" and trades[0].trade_id == "1"


async def test_ticker_and_balances_come_from_the_engine():
    exchange = make_exchange()
    await place(exchange)
    ticker = await exchange.fetch_ticker(BTC)
    balances = await exchange.fetch_balances()
    assert ticker.bid < ticker.ask and ticker.ts == EPOCH
    assert balances["USDT"].used == D("0.1") * 50000 * D("1.001")
    assert balances["USDT"].total == 100_000


async def test_each_request_brings_the_market_up_to_the_clock():
    clock = FakeClock(ENGINE_T0)
    exchange = make_exchange(clock=clock)
    clock.now += 2.5
    await exchange.fetch_ticker(BTC)
    assert exchange.engine.step == 10


@pytest.mark.parametrize(
    ("amount", "price", "symbol", "fragment"),
    [
        (D("0.000015"), D(50000), BTC, "Filter failure: LOT_SIZE"),
        (D("0.1"), D("50000.001"), BTC, "Filter failure: PRICE_FILTER"),
        (D("0.00001"), D(50000), BTC, "Filter failure: NOTIONAL"),
        (D(5), D(50000), BTC, "insufficient balance"),
        (D("0.1"), D(50000), "XRP/USDT", "Invalid symbol"),
    ],
)
async def test_venue_refusals_are_rejected(amount, price, symbol, fragment):
    exchange = make_exchange()
    with pytest.raises(Rejected) as info:
        await exchange.create_order(
            client_order_id="tc-r", symbol=symbol, side=Side.BUY, type=OrderType.LIMIT, amount=amount, price=price
        )
    assert type(info.value) is Rejected
    assert fragment in str(info.value)
    assert placed(exchange) == []


async def test_a_reused_client_order_id_is_duplicate_order():
    exchange = make_exchange()
    await place(exchange)
    with pytest.raises(DuplicateOrder):
        await place(exchange)


async def test_unknown_orders_are_order_not_found():
    exchange = make_exchange()
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order("nope", BTC)
    with pytest.raises(OrderNotFound):
        await exchange.cancel_order("nope", BTC)


async def test_an_order_looked_up_under_another_symbol_is_not_found():
    exchange = make_exchange()
    await place(exchange)
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order("tc-1", "ETH/USDT")


async def test_cancel_returns_the_canceled_order_and_a_second_cancel_is_not_found():
    exchange = make_exchange()
    await place(exchange)
    canceled = await exchange.cancel_order("tc-1", BTC)
    assert canceled is not None and canceled.status is OrderStatus.CANCELED
    assert await exchange.fetch_open_orders() == []
    with pytest.raises(OrderNotFound):
        await exchange.cancel_order("tc-1", BTC)


async def test_fills_made_by_the_engine_show_up_in_fetch_order():
    exchange = make_exchange()
    await place(exchange)
    exchange.engine.force_fill("tc-1", D("0.04"))
    order = await exchange.fetch_order("tc-1", BTC)
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled == D("0.04")


async def test_fault_none_lets_the_request_through():
    exchange = make_exchange(FaultPlan().script("create_order", Fault.NONE))
    assert (await place(exchange)).status is OrderStatus.OPEN
    assert exchange.faults.injected.total() == 0


async def test_refused_connection_is_not_placed_and_nothing_happens():
    exchange, error = await place_into(Fault.REFUSED, NotPlaced)
    assert not error.rate_limited
    assert placed(exchange) == []
    assert (await place(exchange)).status is OrderStatus.OPEN  # the script is used up


async def test_rate_limit_is_not_placed_and_trips_the_cooldown():
    exchange, error = await place_into(Fault.RATE_LIMIT, NotPlaced, plan=FaultPlan(retry_after=3.0))
    assert error.rate_limited and error.retry_after == 3.0
    assert exchange.cooldown.remaining == 3.0
    assert exchange.rate_limit_state().trips == 1
    assert placed(exchange) == []


async def test_cooldown_from_a_rate_limit_holds_back_the_next_request_until_it_ends():
    clock = FakeClock(ENGINE_T0)
    exchange = make_exchange(FaultPlan(retry_after=0.01).script("fetch_ticker", Fault.RATE_LIMIT), clock=clock)
    with pytest.raises(NotPlaced):
        await exchange.fetch_ticker(BTC)

    waiting = asyncio.create_task(place(exchange))
    for _ in range(20):
        await asyncio.sleep(0)
    # the fake clock has not moved, so the cooldown cannot have ended: the order must not exist yet
    assert not waiting.done()
    assert placed(exchange) == []

    clock.now += 0.01
    order = await asyncio.wait_for(waiting, timeout=5)
    assert order.status is OrderStatus.OPEN
    assert exchange.cooldown.remaining == 0


async def test_error_before_acting_is_maybe_placed_and_nothing_happens():
    exchange, _ = await place_into(Fault.ERROR_BEFORE, MaybePlaced)
    assert placed(exchange) == []


async def test_error_after_acting_is_maybe_placed_and_the_order_exists():
    exchange, _ = await place_into(Fault.ERROR_AFTER, MaybePlaced)
    assert (await exchange.fetch_order("tc-1", BTC)).status is OrderStatus.OPEN


async def test_timeout_after_accept_is_maybe_placed_and_the_order_exists():
    exchange, _ = await place_into(Fault.TIMEOUT_AFTER_ACCEPT, MaybePlaced, match="request timed out")
    assert [o.client_order_id for o in await exchange.fetch_open_orders(BTC)] == ["tc-1"]


async def test_connection_reset_after_accept_is_maybe_placed_and_the_order_exists():
    exchange, _ = await place_into(Fault.RESET_AFTER_ACCEPT, MaybePlaced, match="connection reset")
    assert placed(exchange) == ["tc-1"]


async def test_resubmitting_after_a_lost_accept_is_duplicate_order():
    exchange, _ = await place_into(Fault.TIMEOUT_AFTER_ACCEPT, MaybePlaced)
    with pytest.raises(DuplicateOrder):
        await place(exchange)


async def test_a_fault_after_a_refusal_hides_the_refusal_behind_maybe_placed():
    exchange = make_exchange(FaultPlan().script("create_order", Fault.TIMEOUT_AFTER_ACCEPT))
    with pytest.raises(MaybePlaced):
        await exchange.create_order(
            client_order_id="tc-big", symbol=BTC, side=Side.BUY, type=OrderType.LIMIT, amount=D(9), price=D(50000)
        )
    assert placed(exchange) == []


async def test_injected_reject_is_rejected_and_nothing_happens():
    exchange, _ = await place_into(Fault.REJECT, Rejected)
    assert placed(exchange) == []


async def test_invisible_order_is_accepted_but_cannot_be_seen_fetched_or_canceled():
    exchange = make_exchange(FaultPlan(invisible_ms=800).script("create_order", Fault.INVISIBLE))
    order = await place(exchange)
    assert order.status is OrderStatus.OPEN
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order("tc-1", BTC)
    assert await exchange.fetch_open_orders() == []
    with pytest.raises(OrderNotFound):
        await exchange.cancel_order("tc-1", BTC)
    assert exchange.engine.get_order("tc-1").status is OrderStatus.OPEN  # the cancel never reached it


async def test_invisible_order_becomes_visible_when_the_window_ends():
    clock = FakeClock(ENGINE_T0)
    exchange = make_exchange(FaultPlan(invisible_ms=800).script("create_order", Fault.INVISIBLE), clock=clock)
    await place(exchange)
    clock.now += 0.79
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order("tc-1", BTC)
    clock.now += 0.01
    assert (await exchange.fetch_order("tc-1", BTC)).client_order_id == "tc-1"
    assert len(await exchange.fetch_open_orders(BTC)) == 1


async def test_fills_of_an_invisible_order_are_hidden_with_it():
    clock = FakeClock(ENGINE_T0)
    exchange = make_exchange(FaultPlan(invisible_ms=500).script("create_order", Fault.INVISIBLE), clock=clock)
    await place(exchange)
    exchange.engine.force_fill("tc-1", D("0.1"))
    assert await exchange.fetch_my_trades(BTC) == []
    clock.now += 0.5
    assert len(await exchange.fetch_my_trades(BTC)) == 1


async def test_timeout_after_accept_and_invisible_is_maybe_placed_then_absent_then_found():
    clock = FakeClock(ENGINE_T0)
    plan = FaultPlan(invisible_ms=1500).script("create_order", Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE)
    exchange = make_exchange(plan, clock=clock)
    with pytest.raises(MaybePlaced, match="timed out"):
        await place(exchange)
    with pytest.raises(OrderNotFound):
        await exchange.fetch_order("tc-1", BTC)
    clock.now += 1.5
    assert (await exchange.fetch_order("tc-1", BTC)).status is OrderStatus.OPEN


async def test_timeout_on_cancel_still_cancels():
    exchange = make_exchange(FaultPlan().script("cancel_order", Fault.TIMEOUT_AFTER_ACCEPT))
    await place(exchange)
    with pytest.raises(MaybePlaced):
        await exchange.cancel_order("tc-1", BTC)
    assert exchange.engine.get_order("tc-1").status is OrderStatus.CANCELED


async def test_faults_on_reads_follow_the_same_classes():
    plan = (
        FaultPlan()
        .script("fetch_balances", Fault.ERROR_BEFORE)
        .script("fetch_open_orders", Fault.REFUSED)
        .script("fetch_order", Fault.RESET_AFTER_ACCEPT)
        .script("fetch_ticker", Fault.REJECT)
    )
    exchange = make_exchange(plan)
    await place(exchange)
    with pytest.raises(MaybePlaced):
        await exchange.fetch_balances()
    with pytest.raises(NotPlaced):
        await exchange.fetch_open_orders()
    with pytest.raises(MaybePlaced):
        await exchange.fetch_order("tc-1", BTC)
    with pytest.raises(Rejected):
        await exchange.fetch_ticker(BTC)
    assert all(plan.pending(op) == 0 for op in ("fetch_balances", "fetch_open_orders", "fetch_order"))


async def test_scripted_faults_are_consumed_in_order_and_counted_per_kind():
    plan = FaultPlan().script(
        "create_order", Fault.REFUSED, Fault.NONE, Fault.REFUSED, Fault.ERROR_BEFORE, Fault.INVISIBLE
    )
    exchange = make_exchange(plan)
    outcomes = []
    for n in range(6):
        try:
            await place(exchange, cid=f"tc-{n}")
            outcomes.append("ok")
        except (NotPlaced, MaybePlaced) as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes == ["NotPlaced", "ok", "NotPlaced", "MaybePlaced", "ok", "ok"]
    assert plan.injected == {Fault.REFUSED: 2, Fault.ERROR_BEFORE: 1, Fault.INVISIBLE: 1}
    assert plan.log[0] == ("create_order", Fault.REFUSED)


async def test_random_faults_are_reproducible_from_the_seed():
    def run() -> list[Fault]:
        plan = FaultPlan(seed=5, probabilities={"*": {Fault.REFUSED: 0.3, Fault.ERROR_AFTER: 0.2}})
        return [plan.next("fetch_ticker") for _ in range(200)]

    first = run()
    assert first == run()
    share = first.count(Fault.REFUSED) / len(first)
    assert 0.2 < share < 0.4
    assert Fault.ERROR_AFTER in first and Fault.NONE in first


async def test_per_operation_probabilities_win_over_the_wildcard():
    plan = FaultPlan(probabilities={"*": {Fault.REFUSED: 1.0}, "fetch_ticker": {}})
    exchange = make_exchange(plan)
    with pytest.raises(NotPlaced):
        await exchange.fetch_balances()
    assert plan.next("create_order") is Fault.REFUSED
    assert await exchange.fetch_ticker(BTC)  # its own, empty, table exempts it


async def test_latency_delays_every_request():
    exchange = make_exchange(latency_ms=20)
    start = time.monotonic()
    await exchange.fetch_ticker(BTC)
    assert time.monotonic() - start >= 0.019
