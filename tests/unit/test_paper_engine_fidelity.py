"""PaperEngine where it follows Binance for crash recovery: client order ids reused once their order
ended, fees in the asset received at Binance's commission precision, seeding resting orders, and
order history by id and by time."""

from __future__ import annotations

from decimal import Decimal

import pytest
from harness import BTC, EPOCH, make_engine, order_op, place_drawn, refusal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.models import Balance, OrderStatus, OrderType, Side
from executor.venue.accounts import FEE_DECIMALS
from executor.venue.orders import EngineError, ErrorKind

D = Decimal


# -- client order ids -------------------------------------------------------------------------


def test_a_lookup_by_both_ids_finds_the_order_id_and_checks_the_client_id_against_it():
    engine = make_engine()
    engine.create_order("x", BTC, Side.BUY, OrderType.MARKET, D("0.001"), None)
    engine.create_order("x", BTC, Side.BUY, OrderType.MARKET, D("0.001"), None)
    assert engine.get_order("x", exchange_order_id=1).id == 1
    assert engine.get_order("x", exchange_order_id="paper-2").id == 2
    assert engine.get_order("x").id == 2
    error = refusal(engine.get_order, "y", exchange_order_id=1)
    assert error.kind is ErrorKind.UNKNOWN_ORDER
    assert [t.order_id for t in engine.trades(exchange_order_id=1)] == [1]


def test_a_cancel_by_client_order_id_acts_on_the_open_order_and_the_ended_one_is_left_alone():
    engine = make_engine()
    engine.create_order("c", BTC, Side.BUY, OrderType.LIMIT, D("0.01"), D(50000))
    engine.cancel_order("c")
    engine.create_order("c", BTC, Side.BUY, OrderType.LIMIT, D("0.02"), D(50000))
    done = engine.cancel_order("c")
    assert (done.id, done.amount, done.status) == (2, D("0.02"), OrderStatus.CANCELED)
    with pytest.raises(EngineError, match="already canceled"):
        engine.cancel_order("c")
    assert engine.balance("USDT") == Balance("USDT", D(100_000), D(0))


def test_a_partly_filled_order_still_holds_its_client_order_id():
    engine = make_engine()
    engine.create_order("p", BTC, Side.BUY, OrderType.LIMIT, D("0.01"), D(50000))
    engine.force_fill("p", D("0.004"))
    error = refusal(engine.create_order, "p", BTC, Side.BUY, OrderType.LIMIT, D("0.01"), D(50000))
    assert error.kind is ErrorKind.DUPLICATE_ORDER
    engine.force_fill("p", D("0.006"))  # filled: ended, the id is free
    assert engine.create_order("p", BTC, Side.BUY, OrderType.LIMIT, D("0.01"), D(50000)).id == 2


# -- fees -------------------------------------------------------------------------------------


def test_fees_are_rounded_to_binances_commission_precision_and_that_is_what_moves():
    engine = make_engine(fee_pct=D("0.1"), maker_fee_pct=D("0.075"))
    engine.create_order("s", BTC, Side.SELL, OrderType.LIMIT, D("0.00011"), D("70000.03"))
    order = engine.force_fill("s", D("0.00011"))
    exact = D("0.00011") * D("70000.03") * D("0.00075")  # 0.0057750024750
    assert order.fee == D("0.00577500") == exact.quantize(D(1).scaleb(-FEE_DECIMALS))
    assert order.fee_currency == "USDT"
    assert engine.balance("USDT").free == D(100_000) + D("0.00011") * D("70000.03") - D("0.00577500")
    engine.create_order("b", "ETH/USDT", Side.BUY, OrderType.LIMIT, D("0.0029"), D("2000.01"))
    bought = engine.force_fill("b", D("0.0029"))
    # 0.0029 * 0.00075 = 0.000002175 ETH: rounded half up to eight places
    assert bought.fee == D("0.00000218") and bought.fee_currency == "ETH"
    assert engine.balance("ETH").free == D(10) + D("0.0029") - D("0.00000218")


def test_a_market_buy_needs_only_its_cost_in_quote_since_the_fee_is_in_the_base():
    engine = make_engine()
    cost = engine.depth(BTC).asks[0][0] * D("0.01")
    engine.deposit("USDT", cost - D(100_000))  # exactly the cost left
    order = engine.create_order("all-in", BTC, Side.BUY, OrderType.MARKET, D("0.01"), None)
    assert order.status is OrderStatus.FILLED and order.cost == cost
    assert engine.balance("USDT") == Balance("USDT", D(0), D(0))
    assert engine.balance("BTC").free == 1 + D("0.01") - D("0.00001")


_ops = st.lists(
    st.one_of(
        order_op(3_000, st.integers(0, 4)),  # a small pool of client order ids: reuse is common
        st.tuples(st.just("cancel"), st.integers(0, 4)),
        st.tuples(st.just("advance"), st.integers(1, 100)),
    ),
    min_size=10,
    max_size=60,
)


@settings(max_examples=80, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), operations=_ops, maker=st.sampled_from([D("0.1"), D("0.02"), D("0.075")]))
def test_reused_ids_never_make_two_open_orders_and_balances_move_by_exactly_what_the_trades_say(
    seed, operations, maker
):
    start = {"USDT": D(20_000), "BTC": D("0.2"), "ETH": D(3), "SOL": D(50)}
    engine = make_engine(seed=seed, balances=start, maker_fee_pct=maker)
    for op in operations:
        try:
            if op[0] == "order":
                *drawn, cid = op[1:]
                place_drawn(engine, f"c{cid}", *drawn)
            elif op[0] == "cancel":
                engine.cancel_order(f"c{op[1]}")
            else:
                engine.advance(op[1])
        except EngineError:
            pass
        orders = engine.all_orders()
        open_ids = [o.client_order_id for o in orders if o.is_open]
        assert len(open_ids) == len(set(open_ids))
        for cid in {o.client_order_id for o in orders}:
            assert engine.get_order(cid).id == max(o.id for o in orders if o.client_order_id == cid)

    expected = dict(start)
    for t in engine.trades():
        market = engine.market(t.symbol)
        assert t.fee == t.fee.quantize(D(1).scaleb(-FEE_DECIMALS))
        if t.side is Side.BUY:
            assert t.fee_currency == market.base
            expected[market.base] += t.amount - t.fee
            expected[market.quote] -= t.amount * t.price
        else:
            assert t.fee_currency == market.quote
            expected[market.base] -= t.amount
            expected[market.quote] += t.amount * t.price - t.fee
    assert {c: b.total for c, b in engine.balances().items()} == expected
    for order in engine.all_orders():
        assert order.fee == sum((t.fee for t in engine.trades(exchange_order_id=order.id)), D(0))


# -- seeding resting orders -------------------------------------------------------------------


def test_place_resting_locks_like_a_limit_order_and_never_trades():
    engine = make_engine()
    seeded = engine.place_resting(BTC, Side.BUY, D("0.1"), D(30000), "seed-0")
    placed = make_engine().create_order("seed-0", BTC, Side.BUY, OrderType.LIMIT, D("0.1"), D(30000))
    assert (seeded.status, seeded.locked, seeded.type, seeded.price) == (
        OrderStatus.OPEN,
        placed.locked,
        OrderType.LIMIT,
        D(30000),
    )
    assert engine.balance("USDT").used == placed.locked
    far = engine.place_resting("ETH/USDT", Side.SELL, D(1), None, "seed-1")
    assert far.price >= engine.ticker("ETH/USDT").ask * D("1.4")
    low = engine.place_resting("SOL/USDT", Side.BUY, D(1), None)
    assert low.price <= engine.ticker("SOL/USDT").bid * D("0.6") and low.client_order_id.startswith("paper-cid-")
    engine.advance(2000)
    assert engine.trades() == [] and len(engine.open_orders()) == 3
    assert engine.cancel_order("seed-0").status is OrderStatus.CANCELED
    assert engine.balance("USDT").used == low.locked


def test_place_resting_refuses_what_would_trade_and_everything_create_order_refuses():
    engine = make_engine()
    ask, bid = engine.ticker(BTC).ask, engine.ticker(BTC).bid
    for side, price in ((Side.BUY, ask), (Side.SELL, bid), (Side.BUY, ask + 100)):
        error = refusal(engine.place_resting, BTC, side, D("0.01"), price, "cross")
        assert error.kind is ErrorKind.BAD_REQUEST and "must not cross the touch" in error.message
    engine.place_resting(BTC, Side.BUY, D("0.01"), D(30000), "dup")
    refusals = [
        ((BTC, Side.BUY, D("0.01"), D(30000), "dup"), ErrorKind.DUPLICATE_ORDER),
        ((BTC, Side.BUY, D("0.000015"), D(30000), "lot"), ErrorKind.FILTER_FAILURE),
        ((BTC, Side.BUY, D("0.01"), D("30000.001"), "tick"), ErrorKind.FILTER_FAILURE),
        ((BTC, Side.BUY, D(4), D(30000), "poor"), ErrorKind.INSUFFICIENT_FUNDS),
        ((BTC, "hold", D("0.01"), None, "side"), ErrorKind.BAD_REQUEST),
        (("DOGE/USDT", Side.BUY, D(1), D(1), "symbol"), ErrorKind.BAD_SYMBOL),
    ]
    for args, kind in refusals:
        error = refusal(engine.place_resting, *args)
        assert error.kind is kind, args
    assert [o.client_order_id for o in engine.all_orders()] == ["dup"]


def test_place_resting_backdates_orders_and_history_selects_by_time_and_id():
    engine = make_engine()
    for n in range(6):
        engine.place_resting(BTC, Side.BUY, D("0.001"), D(30000), f"h{n}", created_at=EPOCH - 3600 * (6 - n))
    engine.place_resting("ETH/USDT", Side.BUY, D("0.01"), D(1000), "eth")
    history = engine.all_orders(BTC)
    assert [o.created_at for o in history] == [EPOCH - 3600 * (6 - n) for n in range(6)]
    assert all(o.updated_at == o.created_at for o in history)
    assert [o.client_order_id for o in engine.all_orders(BTC, since=EPOCH - 3 * 3600)] == ["h3", "h4", "h5"]
    assert [o.client_order_id for o in engine.all_orders(BTC, until=EPOCH - 5 * 3600)] == ["h0", "h1"]
    window = engine.all_orders(BTC, since=EPOCH - 5 * 3600, until=EPOCH - 3 * 3600)
    assert [o.client_order_id for o in window] == ["h1", "h2", "h3"]
    assert [o.client_order_id for o in engine.all_orders(BTC, from_id=5)] == ["h4", "h5"]
    assert [o.client_order_id for o in engine.all_orders(from_id=6)] == ["h5", "eth"]
    assert [o.client_order_id for o in engine.all_orders(BTC, 2, since=EPOCH - 5 * 3600)] == ["h4", "h5"]


def test_validate_order_refuses_what_the_filters_refuse_and_touches_nothing():
    engine = make_engine(balances={"USDT": 1})
    engine.validate_order(BTC, Side.BUY, OrderType.LIMIT, D("0.1"), D(50000))  # funds are not a filter
    for args, which in (
        ((BTC, Side.BUY, OrderType.LIMIT, D("0.000015"), D(50000)), "LOT_SIZE"),
        ((BTC, Side.BUY, OrderType.LIMIT, D("0.1"), D("50000.001")), "PRICE_FILTER"),
        ((BTC, Side.SELL, OrderType.MARKET, D("0.00001"), None), "NOTIONAL"),
    ):
        error = refusal(engine.validate_order, *args)
        assert error.filter == which
    error = refusal(engine.validate_order, BTC, Side.BUY, OrderType.LIMIT, D("0.1"), None)
    assert error.kind is ErrorKind.BAD_REQUEST
    assert engine.all_orders() == [] and engine.balance("USDT") == Balance("USDT", D(1), D(0))
