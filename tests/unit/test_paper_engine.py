"""PaperEngine: the synthetic market, matching, fills, locked funds and refusals."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest
from harness import BTC, EPOCH, make_engine, order_op, place_drawn, refusal
from helpers import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.models import Balance, OrderStatus, OrderType, Side
from executor.venue.engine import PaperEngine
from executor.venue.market import BOOK_LEVELS
from executor.venue.orders import EngineError, ErrorKind

D = Decimal


def advance_until(engine: PaperEngine, condition, limit: int = 20_000) -> int:
    for step in range(limit):
        if condition():
            return step
        engine.advance(1)
    raise AssertionError(f"condition not met within {limit} steps")


def test_same_seed_and_same_calls_give_identical_prices_and_trades():
    def run() -> tuple[list, list, dict]:
        engine = make_engine(seed=42)
        tickers = []
        for i in range(60):
            tickers.append(engine.ticker(BTC))
            if i % 10 == 0:
                engine.create_order(f"m{i}", BTC, Side.BUY, OrderType.MARKET, D("0.1"), None)
                bid = engine.ticker(BTC).bid
                engine.create_order(f"l{i}", BTC, Side.SELL, OrderType.LIMIT, D("0.01"), bid + D(10))
            engine.advance(3)
        return tickers, engine.trades(), engine.balances()

    first, second = run(), run()
    assert first == second
    assert len(first[1]) > 6  # the scenario really traded, makers included
    assert any(t.maker for t in first[1])


def test_another_seed_walks_another_path():
    a, b = make_engine(seed=1), make_engine(seed=2)
    a.advance(50)
    b.advance(50)
    assert a.ticker(BTC).bid != b.ticker(BTC).bid


def test_adding_a_market_does_not_change_another_markets_path():
    alone = make_engine(markets=[BTC])
    crowded = make_engine(markets=["ETH/USDT", "DOGE/USDT", BTC])
    for _ in range(30):
        alone.advance(1)
        crowded.advance(1)
        assert alone.ticker(BTC).bid == crowded.ticker(BTC).bid
        assert alone.ticker(BTC).ask == crowded.ticker(BTC).ask


def test_sync_advances_whole_steps_of_the_clock():
    clock = FakeClock(100.0)
    engine = make_engine(clock=clock, step_seconds=0.25)
    clock.now += 0.6
    assert engine.sync() == 2
    assert engine.step == 2
    clock.now += 0.15
    assert engine.sync() == 1
    assert engine.sync() == 0


def test_spread_is_one_to_two_basis_points():
    engine = make_engine()
    for _ in range(200):
        t = engine.ticker(BTC)
        assert t.bid < t.ask
        assert D("0.8") <= (t.ask - t.bid) / t.bid * 10_000 <= D("2.2")
        engine.advance(1)


def test_book_has_ten_levels_of_growing_size_and_a_deep_last_level():
    engine = make_engine()
    depth = engine.depth(BTC, 50)
    assert len(depth.bids) == len(depth.asks) == BOOK_LEVELS
    for levels, worse in ((depth.asks, lambda a, b: a < b), (depth.bids, lambda a, b: a > b)):
        prices = [p for p, _ in levels]
        sizes = [s for _, s in levels]
        assert all(worse(x, y) for x, y in pairwise(prices))
        assert all(x < y for x, y in pairwise(sizes))
        assert sizes[-1] == engine.market(BTC).max_amount
    assert engine.depth(BTC, 3).asks == depth.asks[:3]


def test_market_buy_walks_the_book_level_by_level_and_fills_fully():
    engine = make_engine()
    asks = engine.depth(BTC).asks
    amount = asks[0][1] + asks[1][1] + D("0.01")
    order = engine.create_order("walk", BTC, Side.BUY, OrderType.MARKET, amount, None)

    trades = engine.trades(client_order_id="walk")
    assert order.status is OrderStatus.FILLED and order.filled == amount
    assert [(t.price, t.amount) for t in trades] == [asks[0], asks[1], (asks[2][0], D("0.01"))]
    assert all(not t.maker for t in trades)
    cost = sum((t.price * t.amount for t in trades), D(0))
    # a buy pays its fee in the base it receives, as Binance charges it; the quote pays the cost only
    assert all(t.fee == t.amount * D("0.001") and t.fee_currency == "BTC" for t in trades)
    assert order.fee == amount * D("0.001") and order.fee_currency == "BTC"
    assert engine.balance("USDT").free == D(100_000) - cost
    assert engine.balance("BTC").free == 1 + amount - order.fee


def test_market_sell_walks_the_bids_downwards():
    engine = make_engine()
    bids = engine.depth(BTC).bids
    order = engine.create_order("dump", BTC, Side.SELL, OrderType.MARKET, bids[0][1] + D("0.00002"), None)
    trades = engine.trades(client_order_id="dump")
    assert [t.price for t in trades] == [bids[0][0], bids[1][0]]
    assert order.status is OrderStatus.FILLED
    assert engine.balance("USDT").free == D(100_000) + order.cost - order.fee


def test_market_order_larger_than_the_visible_book_fills_at_the_deep_last_level():
    engine = make_engine(balances={"USDT": 10**9})
    order = engine.create_order("whale", BTC, Side.BUY, OrderType.MARKET, D(5000), None)
    trades = engine.trades(client_order_id="whale")
    assert order.status is OrderStatus.FILLED and order.filled == 5000
    assert len(trades) == BOOK_LEVELS
    assert trades[-1].price == engine.depth(BTC).asks[-1][0]


def test_takers_consume_the_book_until_the_next_step():
    engine = make_engine()
    best = engine.depth(BTC).asks[0]
    engine.create_order("t1", BTC, Side.BUY, OrderType.MARKET, D("0.1"), None)
    assert engine.depth(BTC).asks[0] == (best[0], best[1] - D("0.1"))
    engine.create_order("t2", BTC, Side.BUY, OrderType.MARKET, best[1], None)
    # the second taker found only what the first one left at the best price
    assert engine.trades(client_order_id="t2")[0].amount == best[1] - D("0.1")
    engine.advance(1)
    assert engine.depth(BTC).asks[0][1] > best[1] / 3


def test_marketable_limit_takes_up_to_its_price_and_rests_the_rest():
    engine = make_engine()
    asks = engine.depth(BTC).asks
    price = asks[1][0]
    amount = asks[0][1] + asks[1][1] + D("0.3")
    order = engine.create_order("cross", BTC, Side.BUY, OrderType.LIMIT, amount, price)

    trades = engine.trades(client_order_id="cross")
    assert [(t.price, t.amount, t.maker) for t in trades] == [(*asks[0], False), (*asks[1], False)]
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.remaining == D("0.3")
    assert [o.client_order_id for o in engine.open_orders(BTC)] == ["cross"]
    assert order.locked == D("0.3") * price * D("1.001")
    assert engine.balance("USDT").used == order.locked


def test_resting_limit_fills_in_parts_at_its_price_as_the_market_crosses():
    engine = make_engine(seed=3, balances={"USDT": 1_000_000})
    price = engine.ticker(BTC).bid - D(20)
    engine.create_order("rest", BTC, Side.BUY, OrderType.LIMIT, D("2"), price)
    assert engine.trades() == []

    advance_until(engine, lambda: engine.get_order("rest").status is OrderStatus.FILLED)

    fills = engine.trades(client_order_id="rest")
    assert len(fills) >= 2  # crossed on several steps, partially each time
    assert all(t.price == price and t.maker for t in fills)
    assert sum(t.amount for t in fills) == D(2)
    assert all(t.fee == t.amount * D("0.001") and t.fee_currency == "BTC" for t in fills)
    assert engine.balance("USDT").used == 0
    assert engine.balance("USDT").free == D(1_000_000) - 2 * price
    assert engine.balance("BTC").free == D("1.998")


def test_resting_orders_away_from_the_touch_are_left_alone():
    engine = make_engine()
    bid = engine.ticker(BTC).bid
    for i in range(200):
        engine.create_order(f"far{i}", BTC, Side.BUY, OrderType.LIMIT, D("0.001"), bid - D(3000) - i)
    engine.advance(200)
    assert engine.trades() == []
    assert len(engine.open_orders(BTC)) == 200


def test_maker_fee_applies_to_resting_fills_and_taker_fee_to_takers():
    engine = make_engine(fee_pct=D("0.1"), maker_fee_pct=D("0.02"))
    assert engine.market(BTC).maker_fee == D("0.0002")
    assert engine.market(BTC).taker_fee == D("0.001")
    bid = engine.ticker(BTC).bid
    engine.create_order("mk", BTC, Side.BUY, OrderType.LIMIT, D("0.1"), bid)
    # funds are locked at the larger of the two fees, so either kind of fill is covered
    assert engine.get_order("mk").locked == D("0.1") * bid * D("1.001")
    filled = engine.force_fill("mk", D("0.1"))
    assert filled.fee == D("0.1") * D("0.0002") == D("0.00002") and filled.fee_currency == "BTC"
    assert engine.balance("USDT") == Balance("USDT", D(100_000) - D("0.1") * bid, D(0))
    assert engine.balance("BTC") == Balance("BTC", D("1.09998"), D(0))


def test_buy_limit_locks_amount_times_price_plus_fee_and_cancel_releases_it_exactly():
    engine = make_engine()
    engine.create_order("lock", BTC, Side.BUY, OrderType.LIMIT, D("0.12345"), D("50000.01"))
    locked = D("0.12345") * D("50000.01") * D("1.001")
    assert engine.balance("USDT").used == locked == D("6178.6737357345")
    assert engine.balance("USDT").free == D(100_000) - locked

    canceled = engine.cancel_order(client_order_id="lock")
    assert canceled.status is OrderStatus.CANCELED
    assert engine.balance("USDT").free == D(100_000)
    assert engine.balance("USDT").used == 0
    assert engine.open_orders() == []


def test_sell_limit_locks_the_base_amount():
    engine = make_engine()
    engine.create_order("s", "ETH/USDT", Side.SELL, OrderType.LIMIT, D("2.5"), D(9000))
    assert engine.balance("ETH").used == D("2.5")
    assert engine.balance("ETH").free == D("7.5")
    engine.cancel_order(exchange_order_id="paper-1")
    assert engine.balance("ETH").free == D(10)


def test_partial_fill_then_cancel_settles_to_the_last_decimal():
    engine = make_engine()
    engine.create_order("pf", BTC, Side.BUY, OrderType.LIMIT, D("0.3"), D("55000.03"))
    engine.force_fill("pf", D("0.11111"))
    order = engine.cancel_order(client_order_id="pf")

    cost = D("0.11111") * D("55000.03")
    assert order.filled == D("0.11111") and order.status is OrderStatus.CANCELED
    assert order.fee == D("0.00011111") and order.fee_currency == "BTC"
    assert engine.balance("USDT").free == D(100_000) - cost
    assert engine.balance("USDT").used == 0
    assert engine.balance("BTC").free == D("1.11111") - D("0.00011111")


def test_unknown_symbol_is_bad_symbol():
    error = refusal(make_engine().create_order, "x", "DOGE/USDT", Side.BUY, OrderType.LIMIT, D(1), D(1))
    assert error.kind is ErrorKind.BAD_SYMBOL
    assert "DOGE/USDT" in error.message and "BTC/USDT" in error.message


def test_amount_off_the_step_is_a_lot_size_filter_failure():
    error = refusal(make_engine().create_order, "x", BTC, Side.BUY, OrderType.LIMIT, D("0.000015"), D(60000))
    assert error.kind is ErrorKind.FILTER_FAILURE and error.filter == "LOT_SIZE"
    assert error.message.startswith("Filter failure: LOT_SIZE")
    assert "0.000015" in error.message and "0.00001" in error.message


def test_amount_below_the_minimum_is_a_lot_size_filter_failure():
    error = refusal(make_engine().create_order, "x", "SOL/USDT", Side.BUY, OrderType.LIMIT, D("0.0005"), D(150))
    assert error.filter == "LOT_SIZE"
    assert "below the minimum 0.001" in error.message


def test_price_off_the_tick_is_a_price_filter_failure():
    error = refusal(make_engine().create_order, "x", BTC, Side.BUY, OrderType.LIMIT, D("0.001"), D("60000.005"))
    assert error.kind is ErrorKind.FILTER_FAILURE and error.filter == "PRICE_FILTER"
    assert error.message.startswith("Filter failure: PRICE_FILTER")
    assert "60000.005" in error.message and "0.01" in error.message


def test_notional_below_the_minimum_is_a_notional_filter_failure():
    error = refusal(make_engine().create_order, "x", BTC, Side.BUY, OrderType.LIMIT, D("0.00008"), D(60000))
    assert error.filter == "NOTIONAL"
    assert error.message == "Filter failure: NOTIONAL (notional 4.8 USDT is below the minimum 5 USDT for BTC/USDT)."


def test_market_order_notional_is_checked_at_the_touch():
    error = refusal(make_engine().create_order, "x", BTC, Side.SELL, OrderType.MARKET, D("0.00008"), None)
    assert error.filter == "NOTIONAL"


def test_buy_beyond_free_quote_is_insufficient_funds_with_the_numbers():
    engine = make_engine()
    error = refusal(engine.create_order, "x", BTC, Side.BUY, OrderType.LIMIT, D(2), D(50000))
    assert error.kind is ErrorKind.INSUFFICIENT_FUNDS
    assert "needs 100100 USDT, 100000 USDT free" in error.message
    assert engine.all_orders() == [] and engine.balance("USDT").free == D(100_000)


def test_sell_beyond_free_base_is_insufficient_funds():
    engine = make_engine()
    engine.create_order("a", BTC, Side.SELL, OrderType.LIMIT, D("0.8"), D(90000))
    error = refusal(engine.create_order, "b", BTC, Side.SELL, OrderType.MARKET, D("0.3"), None)
    assert error.kind is ErrorKind.INSUFFICIENT_FUNDS
    assert "needs 0.3 BTC, 0.2 BTC free" in error.message


def test_market_buy_is_checked_against_the_cost_of_walking_the_book():
    engine = make_engine(balances={"USDT": 1000})
    error = refusal(engine.create_order, "x", BTC, Side.BUY, OrderType.MARKET, D("0.02"), None)
    assert error.kind is ErrorKind.INSUFFICIENT_FUNDS
    assert engine.depth(BTC).asks[0][1] > D("0.3")  # a refused order consumes no liquidity


def test_a_client_order_id_is_a_duplicate_while_its_order_is_open_and_free_once_it_ended():
    engine = make_engine()
    engine.create_order("dup", BTC, Side.BUY, OrderType.LIMIT, D("0.001"), D(50000))
    error = refusal(engine.create_order, "dup", BTC, Side.BUY, OrderType.MARKET, D("0.001"), None)
    assert error.kind is ErrorKind.DUPLICATE_ORDER
    assert "'dup'" in error.message and "paper-1" in error.message
    assert len(engine.all_orders()) == 1
    engine.cancel_order("dup")
    # ended: Binance accepts the id again, and a lookup by client order id finds the newest order
    again = engine.create_order("dup", BTC, Side.BUY, OrderType.MARKET, D("0.001"), None)
    assert again.exchange_order_id == "paper-2" and again.status is OrderStatus.FILLED
    assert engine.get_order("dup").id == 2
    assert engine.get_order("dup", exchange_order_id=1).status is OrderStatus.CANCELED
    assert [t.order_id for t in engine.trades(client_order_id="dup")] == [2] * len(engine.trades())
    third = engine.create_order("dup", BTC, Side.SELL, OrderType.LIMIT, D("0.001"), D(90000))
    assert third.id == 3 and engine.get_order("dup").id == 3
    assert [o.status for o in engine.all_orders()] == [OrderStatus.CANCELED, OrderStatus.FILLED, OrderStatus.OPEN]


def test_a_refused_order_does_not_use_up_its_client_order_id():
    engine = make_engine()
    with pytest.raises(EngineError):
        engine.create_order("retry", BTC, Side.BUY, OrderType.LIMIT, D(5), D(60000))
    order = engine.create_order("retry", BTC, Side.BUY, OrderType.LIMIT, D("0.5"), D(50000))
    assert order.exchange_order_id == "paper-1"


@pytest.mark.parametrize(
    ("cid", "type", "amount", "price", "fragment"),
    [
        ("ok", OrderType.LIMIT, D("0.1"), None, "needs a price"),
        ("ok", OrderType.LIMIT, D(0), D(60000), "Invalid quantity"),
        ("ok", OrderType.LIMIT, D("0.1"), D(-1), "Invalid price"),
        ("has space", OrderType.LIMIT, D("0.1"), D(60000), "Illegal client order id"),
        ("x" * 37, OrderType.MARKET, D("0.1"), None, "Illegal client order id"),
    ],
)
def test_malformed_requests_are_bad_requests(cid, type, amount, price, fragment):
    error = refusal(make_engine().create_order, cid, BTC, Side.BUY, type, amount, price)
    assert error.kind is ErrorKind.BAD_REQUEST
    assert fragment in error.message


def test_exchange_order_ids_are_sequential_and_lookups_work_by_either_id():
    engine = make_engine()
    a = engine.create_order("a", BTC, Side.BUY, OrderType.LIMIT, D("0.1"), D(50000))
    b = engine.create_order("b", BTC, Side.BUY, OrderType.LIMIT, D("0.1"), D(50000))
    assert (a.exchange_order_id, b.exchange_order_id) == ("paper-1", "paper-2")
    assert engine.get_order(exchange_order_id="paper-2").client_order_id == "b"
    assert engine.get_order(exchange_order_id=2).client_order_id == "b"
    assert engine.get_order(client_order_id="a").id == 1
    error = refusal(engine.get_order, client_order_id="a", exchange_order_id="paper-2")
    assert error.kind is ErrorKind.UNKNOWN_ORDER


def test_orders_handed_out_are_snapshots():
    engine = make_engine()
    order = engine.create_order("snap", BTC, Side.BUY, OrderType.LIMIT, D("0.1"), D(50000))
    engine.cancel_order(client_order_id="snap")
    assert order.status is OrderStatus.OPEN
    assert engine.get_order("snap").status is OrderStatus.CANCELED


def test_canceling_a_final_or_unknown_order_is_unknown_order():
    engine = make_engine()
    engine.create_order("done", BTC, Side.BUY, OrderType.MARKET, D("0.01"), None)
    for kwargs in ({"client_order_id": "done"}, {"client_order_id": "never"}, {"exchange_order_id": 99}):
        error = refusal(engine.cancel_order, **kwargs)
        assert error.kind is ErrorKind.UNKNOWN_ORDER
    with pytest.raises(EngineError, match="already filled"):
        engine.cancel_order("done")


def test_history_keeps_every_order_and_open_orders_only_live_ones():
    engine = make_engine()
    engine.create_order("m", BTC, Side.BUY, OrderType.MARKET, D("0.01"), None)
    engine.create_order("l", BTC, Side.BUY, OrderType.LIMIT, D("0.01"), D(50000))
    engine.create_order("c", "ETH/USDT", Side.BUY, OrderType.LIMIT, D("0.1"), D(2000))
    engine.cancel_order("c")
    assert [o.client_order_id for o in engine.all_orders()] == ["m", "l", "c"]
    assert [o.client_order_id for o in engine.all_orders(BTC)] == ["m", "l"]
    assert [o.client_order_id for o in engine.all_orders(limit=1)] == ["c"]
    assert [o.client_order_id for o in engine.open_orders()] == ["l"]
    assert engine.open_orders("ETH/USDT") == []


def test_trades_since_keeps_only_later_fills():
    clock = FakeClock(0.0)
    engine = make_engine(clock=clock)
    engine.create_order("early", BTC, Side.BUY, OrderType.MARKET, D("0.01"), None)
    clock.now += 10
    engine.sync()
    engine.create_order("late", "ETH/USDT", Side.BUY, OrderType.MARKET, D("0.1"), None)
    since = EPOCH + 5
    assert [t.client_order_id for t in engine.trades(since=since)] == ["late"]
    assert engine.trades(BTC, since=since) == []
    assert engine.trades("ETH/USDT")[0].ts == EPOCH + 10


def test_force_fill_fills_a_resting_order_now_in_parts():
    engine = make_engine()
    engine.create_order("ff", BTC, Side.SELL, OrderType.LIMIT, D("0.5"), D(70000))
    part = engine.force_fill("ff", D("0.2"))
    assert part.status is OrderStatus.PARTIALLY_FILLED and part.filled == D("0.2")
    rest = engine.force_fill("ff", D("0.3"), price=D(70001))
    assert rest.status is OrderStatus.FILLED
    assert rest.average == (D("0.2") * 70000 + D("0.3") * 70001) / D("0.5")
    assert engine.balance("BTC") == Balance("BTC", D("0.5"), D(0))


def test_force_fill_past_the_remaining_amount_or_the_limit_is_a_bad_request():
    engine = make_engine()
    engine.create_order("ff", BTC, Side.BUY, OrderType.LIMIT, D("0.5"), D(50000))
    for amount, price in ((D("0.6"), None), (D("0.1"), D(50001))):
        error = refusal(engine.force_fill, "ff", amount, price)
        assert error.kind is ErrorKind.BAD_REQUEST
    assert engine.get_order("ff").filled == 0


def test_deposit_moves_free_money_in_and_out_but_never_below_zero():
    engine = make_engine()
    assert engine.deposit("EUR", D("12.5")) == Balance("EUR", D("12.5"), D(0))
    assert engine.deposit("USDT", -99_999).free == 1
    error = refusal(engine.deposit, "USDT", -2)
    assert error.kind is ErrorKind.INSUFFICIENT_FUNDS
    assert engine.balance("USDT").free == 1


def test_built_in_markets_have_their_specs_and_others_get_a_generic_one():
    markets = make_engine(markets=[BTC, "ETH/USDT", "SOL/USDT", "PEPE/EUR"]).markets()
    btc, eth, sol, pepe = (markets[s] for s in (BTC, "ETH/USDT", "SOL/USDT", "PEPE/EUR"))
    assert (btc.price_tick, btc.amount_step, btc.min_amount, btc.min_cost) == (
        D("0.01"),
        D("0.00001"),
        D("0.00001"),
        D(5),
    )
    assert (eth.amount_step, eth.min_amount, sol.amount_step, sol.min_amount) == (
        D("0.0001"),
        D("0.0001"),
        D("0.001"),
        D("0.001"),
    )
    assert (pepe.base, pepe.quote, pepe.price_tick, pepe.amount_step) == ("PEPE", "EUR", D("0.01"), D("0.001"))
    assert pepe.extra["start_price"] == 100
    assert btc.taker_fee == btc.maker_fee == D("0.001")


_operations = st.lists(
    st.one_of(
        order_op(6_000),
        st.tuples(st.just("cancel"), st.integers(0, 1000)),  # which order, modulo the orders placed
        st.tuples(st.just("force"), st.integers(0, 1000), st.integers(1, 100)),
        st.tuples(st.just("advance"), st.integers(1, 200)),
    ),
    min_size=10,
    max_size=80,
)


@settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 1000), operations=_operations)
def test_no_sequence_of_orders_cancels_and_steps_breaks_balances_or_overfills(seed, operations):
    engine = make_engine(seed=seed, balances={"USDT": 20_000, "BTC": D("0.2"), "ETH": 3, "SOL": 50})
    for n, op in enumerate(operations):
        try:
            if op[0] == "order":
                place_drawn(engine, f"o{n}", *op[1:])
            elif op[0] == "cancel" and engine.all_orders():
                engine.cancel_order(exchange_order_id=1 + op[1] % len(engine.all_orders()))
            elif op[0] == "force" and engine.all_orders():
                order = engine.get_order(exchange_order_id=1 + op[1] % len(engine.all_orders()))
                engine.force_fill(order.client_order_id, order.remaining * op[2] / 100)
            elif op[0] == "advance":
                engine.advance(op[1])
        except EngineError:
            pass

        locked: dict[str, Decimal] = {}
        for order in engine.all_orders():
            assert 0 <= order.filled <= order.amount
            assert (order.status is OrderStatus.FILLED) == (order.filled == order.amount)
            if order.is_open:
                market = engine.market(order.symbol)
                currency = market.quote if order.side is Side.BUY else market.base
                locked[currency] = locked.get(currency, D(0)) + order.locked
            else:
                assert order.locked == 0
        for currency, balance in engine.balances().items():
            assert balance.free >= 0, currency
            assert balance.used == locked.get(currency, 0), currency
