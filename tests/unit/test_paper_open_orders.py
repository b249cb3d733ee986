"""The paper venue's open orders read per order version: each converted once while it stays the same,
a changed order answered in its new state, the same answers as converting every order afresh."""

from __future__ import annotations

import copy
from dataclasses import fields
from decimal import Decimal

from harness import BTC, make_engine

from executor.exchanges.paper import PaperExchange, _order
from executor.models import OrderStatus, OrderType, Side
from executor.venue.engine import PaperEngine
from executor.venue.orders import EngineOrder

D = Decimal
ETH = "ETH/USDT"


def _resting(engine: PaperEngine, n: int = 6) -> list[EngineOrder]:
    """`n` resting orders over BTC and ETH, buys and sells, far from the market."""
    placed = []
    for i in range(n):
        symbol = BTC if i % 2 == 0 else ETH
        amount = D("0.01") if symbol == BTC else D("0.1")
        placed.append(engine.place_resting(symbol, Side.BUY if i % 3 else Side.SELL, amount, client_order_id=f"r-{i}"))
    return placed


class Counting:
    """`_order`, counting the orders it converts."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, order: EngineOrder):
        self.seen.append(order.client_order_id)
        return _order(order)


def test_every_field_of_an_engine_order_survives_a_copy():
    values = {
        "id": 7,
        "client_order_id": "cid",
        "symbol": BTC,
        "side": Side.SELL,
        "type": OrderType.LIMIT,
        "amount": D("2"),
        "price": D("3"),
        "status": OrderStatus.PARTIALLY_FILLED,
        "created_at": 1.5,
        "updated_at": 2.5,
        "filled": D("1"),
        "cost": D("6"),
        "fee": D("0.01"),
        "fee_currency": "USDT",
        "locked": D("4"),
        "ticks": 301,
        "time_in_force": "IOC",
        "post_only": True,
        "quote_amount": D("9"),
        "version": 5,
    }  # each a value of its own: two fields swapped in the copy would show
    assert set(values) == {f.name for f in fields(EngineOrder)}  # a new field needs a value here
    order = EngineOrder(**values)
    twin = copy.copy(order)
    assert twin is not order
    assert {f.name: getattr(twin, f.name) for f in fields(EngineOrder)} == values


def test_an_order_version_moves_with_each_fill_and_its_end():
    engine = make_engine()
    order = _resting(engine, 1)[0]
    assert order.version == 0
    after_fill = engine.force_fill(order.client_order_id, D("0.004"))
    assert after_fill.version == 1
    assert engine.cancel_order(order.client_order_id).version == 2
    ioc = engine.create_order("ioc-1", BTC, Side.BUY, OrderType.LIMIT, D("0.01"), D("1000"), time_in_force="IOC")
    assert ioc.status is OrderStatus.EXPIRED and ioc.version == 1


def test_open_orders_as_converts_each_order_once_per_version():
    engine = make_engine()
    _resting(engine)
    convert, memo = Counting(), {}
    first = engine.open_orders_as(convert, memo)
    assert first == [_order(o) for o in engine.open_orders()]
    assert len(convert.seen) == 6 and set(memo) == {o.id for o in engine.open_orders()}
    convert.seen.clear()
    again = engine.open_orders_as(convert, memo)
    assert convert.seen == [] and all(a is b for a, b in zip(again, first, strict=True))
    by_market = engine.open_orders_as(Counting(), {}, ETH)
    assert by_market == [_order(o) for o in engine.open_orders(ETH)]


def test_an_order_changed_after_it_was_converted_answers_its_new_state():
    engine = make_engine()
    placed = _resting(engine)
    convert, memo = Counting(), {}
    engine.open_orders_as(convert, memo, BTC)
    convert.seen.clear()
    engine.force_fill("r-0", D("0.003"))  # partly filled: still open, a new version
    engine.cancel_order("r-2")  # ended: no longer open
    new = engine.place_resting(BTC, Side.BUY, D("0.01"), client_order_id="r-new")
    answer = engine.open_orders_as(convert, memo, BTC)
    assert answer == [_order(o) for o in engine.open_orders(BTC)]
    assert sorted(convert.seen) == ["r-0", "r-new"]
    filled = next(r for r in answer if r.client_order_id == "r-0")
    assert (filled.status, filled.filled) == (OrderStatus.PARTIALLY_FILLED, D("0.003"))
    assert "r-2" not in {r.client_order_id for r in answer}
    assert set(memo) == {placed[0].id, placed[4].id, new.id}  # an ended order is forgotten


async def test_the_paper_exchange_polls_answer_what_changed_and_keep_what_did_not():
    engine = make_engine(11, (BTC, ETH), balances={"USDT": 100_000, "BTC": 1, "ETH": 10})
    exchange = PaperExchange(engine)
    _resting(engine)
    before = await exchange.fetch_open_orders(BTC)
    assert before == [_order(o) for o in engine.open_orders(BTC)]
    engine.force_fill("r-4", D("0.01"))  # filled in full: it ends
    engine.force_fill("r-2", D("0.002"))
    after = await exchange.fetch_open_orders(BTC)
    assert after == [_order(o) for o in engine.open_orders(BTC)]
    assert [r.client_order_id for r in after] == ["r-0", "r-2"]
    assert after[0] is before[0]  # unchanged: the same frozen answer
    assert after[1].filled == D("0.002") and after[1].status is OrderStatus.PARTIALLY_FILLED
    everything = await exchange.fetch_open_orders()
    assert everything == [_order(o) for o in engine.open_orders()]
