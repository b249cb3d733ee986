"""PaperEngine's records: every open order, the last `keep_closed` ended ones with their fills, no more."""

from __future__ import annotations

from decimal import Decimal

import pytest
from harness import BTC, make_engine, refusal

from executor.models import OrderStatus, OrderType, Side
from executor.venue.engine import PaperEngine
from executor.venue.orders import ErrorKind
from executor.venue.records import KEEP_CLOSED

D = Decimal
ETH = "ETH/USDT"


def _market(engine: PaperEngine, coid: str, symbol: str = BTC, side: Side = Side.BUY) -> None:
    """A market order whose answer reaches its client (`told`), as the paper exchange's do."""
    engine.told(engine.create_order(coid, symbol, side, OrderType.MARKET, D("0.001") if symbol == BTC else D("0.01")))


def test_an_engine_keeps_a_bounded_history_by_default_and_the_emulator_everything():
    assert make_engine().keep_closed == KEEP_CLOSED
    assert make_engine(keep_closed=None).keep_closed is None
    for bad in (0, -1):
        with pytest.raises(ValueError, match="keep_closed"):
            make_engine(keep_closed=bad)


def test_ended_orders_beyond_the_kept_ones_are_forgotten_with_their_fills():
    engine = make_engine(keep_closed=3)
    resting = engine.place_resting(BTC, Side.BUY, D("0.001"), client_order_id="rest")
    for n in range(6):
        _market(engine, f"m{n}", BTC if n % 2 else ETH)
        engine.advance(1)
    assert [o.client_order_id for o in engine.all_orders()] == ["rest", "m3", "m4", "m5"]
    assert [o.client_order_id for o in engine.all_orders(BTC)] == ["rest", "m3", "m5"]
    assert [o.client_order_id for o in engine.all_orders(from_id=resting.id)] == ["rest", "m3", "m4", "m5"]
    assert {t.client_order_id for t in engine.trades()} == {"m3", "m4", "m5"}
    assert {t.client_order_id for t in engine.trades(ETH)} == {"m4"}
    assert [t.id for t in engine.trades_after(0)] == [t.id for t in engine.trades()]
    assert engine.get_order(client_order_id="rest").is_open  # open orders are never forgotten
    for coid in ("m0", "m1", "m2"):
        assert refusal(engine.get_order, client_order_id=coid).kind is ErrorKind.UNKNOWN_ORDER
        assert refusal(engine.trades, client_order_id=coid).kind is ErrorKind.UNKNOWN_ORDER
    assert refusal(engine.get_order, exchange_order_id=2).kind is ErrorKind.UNKNOWN_ORDER
    # The open order ends: it is kept as the newest ended one, the oldest kept one goes.
    engine.told(engine.cancel_order(client_order_id="rest"))
    assert [o.client_order_id for o in engine.all_orders()] == ["rest", "m4", "m5"]
    assert engine.get_order(client_order_id="rest").status is OrderStatus.CANCELED


def test_forgetting_changes_nothing_the_market_or_the_money_shows():
    def run(keep_closed: int | None) -> tuple:
        engine = make_engine(seed=5, keep_closed=keep_closed)
        tickers = []
        for n in range(40):
            _market(engine, f"m{n}", BTC, Side.BUY if n % 3 else Side.SELL)
            if n % 7 == 0:
                bid = engine.ticker(BTC).bid
                engine.create_order(f"l{n}", BTC, Side.BUY, OrderType.LIMIT, D("0.001"), bid - D(5))
            engine.advance(2)
            tickers.append(engine.ticker(BTC))
        return tickers, engine.balances(), engine.open_orders(), engine.candles(BTC)

    kept_all, kept_few = run(None), run(2)
    assert kept_few == kept_all
    tickers = kept_all[0]
    assert tickers[-1].count >= 40 and tickers[-1].first_id == 1  # the 24 hours' fills, forgotten or not


def test_a_reused_client_order_id_keeps_its_newest_order_when_the_old_one_is_forgotten():
    engine = make_engine(keep_closed=2)
    _market(engine, "dup")
    _market(engine, "other")
    _market(engine, "dup")  # reused once the first ended, as on Binance
    newest = engine.get_order(client_order_id="dup")
    assert newest.id == 3
    _market(engine, "third")  # the first "dup" is forgotten, the newest stays found
    assert engine.get_order(client_order_id="dup").id == 3
    fills = engine.trades(client_order_id="dup")
    assert fills and {t.order_id for t in fills} == {3}


def test_a_long_run_holds_the_open_orders_and_the_kept_ended_ones_only():
    engine = make_engine(keep_closed=50, balances={"USDT": 10**9, "BTC": 10**4})
    for n in range(5):
        engine.place_resting(BTC, Side.BUY, D("0.001"), client_order_id=f"rest{n}")
    for n in range(2_000):
        _market(engine, f"m{n}", BTC, Side.BUY if n % 2 else Side.SELL)
    market = engine._markets[BTC]
    assert len(engine._orders) == len(market.orders) == 55 and len(engine._by_client_id) == 55
    assert len(engine._order_trades) <= 50 and len(engine._trades) == len(market.trades)
    assert len(engine._closed) == 50
    ticker = engine.ticker(BTC)  # every fill of the day counted, the forgotten ones too
    assert ticker.count == ticker.last_id >= 2_000 and ticker.first_id == 1


def test_an_ended_order_is_never_forgotten_before_its_client_is_told_how_it_ended():
    engine = make_engine(keep_closed=2)
    engine.create_order("lost", BTC, Side.BUY, OrderType.MARKET, D("0.001"))  # the answer never arrives
    resting = engine.place_resting(BTC, Side.BUY, D("0.001"), client_order_id="rest")
    engine.force_fill("rest", D("0.001"))  # filled while resting: nobody told yet
    for n in range(10):
        _market(engine, f"m{n}")
    assert engine.get_order(client_order_id="lost").status is OrderStatus.FILLED
    assert engine.get_order(exchange_order_id=resting.id).status is OrderStatus.FILLED
    assert [o.client_order_id for o in engine.all_orders()] == ["lost", "rest", "m8", "m9"]
    engine.told(engine.get_order(client_order_id="lost"), engine.get_order(client_order_id="rest"))
    _market(engine, "m10")
    _market(engine, "m11")
    assert [o.client_order_id for o in engine.all_orders()] == ["m10", "m11"]
