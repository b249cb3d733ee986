"""Binance's official SDKs against the emulator: `binance-sdk-spot` (and `binance-sdk-wallet` for the
two `sapi` endpoints), pinned in the test extras, call every endpoint the emulator serves, and each
answer must parse into the SDK's own model: an instance of it, with no fallback to the raw payload
and no "strict typing removed" retry (both of which the SDK only logs). ccxt's own validators check
the market data, and ccxt must not retry the answer to an endpoint the emulator does not serve.

The SDK is synchronous (requests), so each emulator here runs on an event loop of its own in a
thread, bound to a free port of 127.0.0.1, and is stopped when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import ccxt.async_support as ccxt
import pytest
import requests
from binance_common.configuration import ConfigurationRestAPI
from binance_common.errors import (
    BadRequestError,
    ClientError,
    NotFoundError,
    RateLimitBanError,
    TooManyRequestsError,
)
from binance_common.utils import send_request
from binance_sdk_spot.rest_api.models import (
    AggTradesResponse,
    AllOrdersResponse,
    AvgPriceResponse,
    DeleteOpenOrdersResponse,
    DeleteOrderResponse,
    DepthResponse,
    ExchangeInfoResponse,
    GetAccountResponse,
    GetOpenOrdersResponse,
    GetOrderResponse,
    GetTradesResponse,
    MyTradesResponse,
    NewOrderResponse,
    OrderCancelReplaceResponse,
    Ticker24hrResponse,
    Ticker24hrResponse1,
    Ticker24hrResponse2,
    TickerBookTickerResponse,
    TickerBookTickerResponse1,
    TickerBookTickerResponse2,
    TickerPriceResponse,
    TickerPriceResponse1,
    TickerPriceResponse2,
    TimeResponse,
)
from binance_sdk_spot.spot import Spot
from binance_sdk_wallet.rest_api.models import SystemStatusResponse, TradeFeeResponse
from binance_sdk_wallet.wallet import Wallet
from ccxt.test.exchange.base.test_ohlcv import test_ohlcv as ccxt_check_ohlcv
from ccxt.test.exchange.base.test_order_book import test_order_book as ccxt_check_order_book
from ccxt.test.exchange.base.test_status import test_status as ccxt_check_status
from ccxt.test.exchange.base.test_ticker import test_ticker as ccxt_check_ticker
from ccxt.test.exchange.base.test_trade import test_trade as ccxt_check_trade
from ccxt.test.exchange.base.test_trading_fee import test_trading_fee as ccxt_check_trading_fee

from executor.models import Side
from executor.venue.emulator.app import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    EMULATOR_BOOK_LEVELS,
    RunningEmulator,
    start_emulator,
)
from executor.venue.engine import PaperEngine
from executor.venue.faults import FaultPlan as EmulatorFaults
from executor.venue.faults import Limits

from .support import BAN_S, MARKETS, emulator_faults, own_venue

pytestmark = pytest.mark.integration

D = Decimal
BTC = "BTC/USDT"
M = TypeVar("M")


# -- the venue, on a loop of its own --------------------------------------------------------------


class FrozenClock:
    """An engine clock that moves only when the test moves it: the book holds still between calls."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def engine_like_the_emulators(*, clock: Callable[[], float] | None = None, **kwargs: Any) -> PaperEngine:
    """An engine built as `start_emulator` builds its own (100 levels, exact locks), on `clock`."""
    return PaperEngine(
        7,
        list(MARKETS),
        {"USDT": 1_000_000, "BTC": 1, "ETH": 10, "SOL": 100},
        fee_pct=D("0.1"),
        clock=clock or time.monotonic,
        book_levels=EMULATOR_BOOK_LEVELS,
        exact_locks=True,
        **kwargs,
    )


@dataclass
class Venue:
    running: RunningEmulator
    loop: asyncio.AbstractEventLoop
    spot: Any  # binance_sdk_spot's SpotRestAPI
    wallet: Any  # binance_sdk_wallet's WalletRestAPI
    config: ConfigurationRestAPI

    @property
    def emulator(self):
        return self.running.emulator

    @property
    def engine(self) -> PaperEngine:
        return self.running.emulator.engine

    def on_loop(self, fn: Callable[..., M], *args: Any) -> M:
        """Run `fn` on the emulator's loop, between two requests: the engine is the loop's."""

        async def call() -> M:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=30)

    def raw(self, method: str, path: str, params: dict[str, Any] | None = None, *, signed: bool = False) -> Any:
        """A request through the SDK's own `send_request` (its `SpotRestAPI.send_request` wrapper
        cannot be called in 13.3.0: it subscripts the function, `send_request[T](...)`)."""
        with requests.Session() as session:
            return send_request(session, self.config, method, path, params or {}, is_signed=signed)


def sdk_config(url: str) -> ConfigurationRestAPI:
    # no retries: the SDK would sleep a second between them, and a retry hides what was answered
    return ConfigurationRestAPI(
        api_key=DEMO_API_KEY, api_secret=DEMO_API_SECRET, base_path=url, timeout=10_000, retries=0
    )


@contextlib.contextmanager
def serving(**kwargs: Any) -> Iterator[Venue]:
    """An emulator (`start_emulator(**kwargs)`) on a free port of 127.0.0.1 in a thread, and the
    official SDKs pointed at it; stopped, its loop closed and its thread joined on the way out."""
    kwargs.setdefault("faults", emulator_faults(limits=Limits(ban_after=10, ban_seconds=BAN_S)))
    kwargs.setdefault("markets", list(MARKETS))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="emulator-sdk", daemon=True)
    thread.start()
    try:
        running = asyncio.run_coroutine_threadsafe(start_emulator(**kwargs), loop).result(timeout=30)
        spot = wallet = None
        try:
            config = sdk_config(running.url)
            spot = Spot(config_rest_api=config).rest_api
            wallet = Wallet(config_rest_api=sdk_config(running.url)).rest_api
            yield Venue(running, loop, spot, wallet, config)
        finally:
            for api in (spot, wallet):
                if api is not None:
                    api._session.close()
            asyncio.run_coroutine_threadsafe(running.stop(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture
def venue() -> Iterator[Venue]:
    """The emulator as `tradeconsole emulator` builds it: its own engine, on the real clock."""
    with serving() as v:
        yield v


@pytest.fixture
def frozen() -> Iterator[tuple[Venue, FrozenClock]]:
    """An emulator whose market holds still until the test moves its clock."""
    clock = FrozenClock()
    with serving(engine=engine_like_the_emulators(clock=clock)) as v:
        yield v, clock


@pytest.fixture(autouse=True)
def sdk_parsed_everything(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The SDK logs, and does not raise, when an answer misses its model: no such log is allowed."""
    caplog.set_level(logging.WARNING)
    yield
    misses = [
        r.getMessage()
        for r in (*caplog.get_records("setup"), *caplog.get_records("call"))
        if "did not match the declared types" in r.getMessage() or "Failed to parse" in r.getMessage()
    ]
    assert not misses, misses


def model(response: Any, cls: type[M]) -> M:
    data = response.data()
    assert isinstance(data, cls), f"not parsed into {cls.__name__}: {data!r}"
    assert response.status == 200
    return data


def rows(response: Any, cls: type[M]) -> list[M]:
    data = response.data()
    assert isinstance(data, list) and all(isinstance(row, cls) for row in data), f"not {cls.__name__} rows: {data!r}"
    return data


def one_of(response: Any, cls: type, inner: type[M]) -> M:
    data = model(response, cls)
    assert isinstance(data.actual_instance, inner), f"{cls.__name__} holds {data.actual_instance!r}"
    return data.actual_instance


def one_of_rows(response: Any, cls: type, inner: type[M]) -> list[M]:
    data = model(response, cls)
    held = data.actual_instance
    assert isinstance(held, list) and all(isinstance(r, inner) for r in held), f"{cls.__name__} holds {held!r}"
    return held


def filters_of(info: ExchangeInfoResponse, symbol: str = "BTCUSDT") -> dict[str, dict[str, Any]]:
    (market,) = [s for s in info.symbols if s.symbol == symbol]
    out = {}
    for f in market.filters:
        held = f.actual_instance
        out[held.filter_type] = held.to_dict()
    return out


def account_of(venue: Venue) -> dict[str, tuple[Decimal, Decimal]]:
    account = model(venue.spot.get_account(), GetAccountResponse)
    return {b.asset: (D(b.free), D(b.locked)) for b in account.balances}


def best(venue: Venue, side: str = "asks") -> tuple[Decimal, Decimal]:
    book = model(venue.spot.depth(symbol="BTCUSDT", limit=5), DepthResponse)
    price, qty = getattr(book, side)[0]
    return D(price), D(qty)


# -- market data --------------------------------------------------------------------------------


def test_general_and_market_data_endpoints_parse_into_the_sdks_models(venue):
    spot = venue.spot
    assert spot.ping().data() == {}  # the SDK has no model for ping's empty object
    server = model(spot.time(), TimeResponse).server_time
    assert isinstance(server, int) and abs(server - time.time() * 1000) < 5_000

    info = model(spot.exchange_info(), ExchangeInfoResponse)
    assert {s.symbol for s in info.symbols} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    (btc,) = [s for s in info.symbols if s.symbol == "BTCUSDT"]
    assert btc.order_types == ["LIMIT", "LIMIT_MAKER", "MARKET"] and btc.quote_order_qty_market_allowed
    filters = filters_of(info)
    assert filters["PERCENT_PRICE_BY_SIDE"] == {
        "filterType": "PERCENT_PRICE_BY_SIDE",
        "bidMultiplierUp": "5",
        "bidMultiplierDown": "0.2",
        "askMultiplierUp": "5",
        "askMultiplierDown": "0.2",
        "avgPriceMins": 5,
    }
    assert "MAX_NUM_ORDERS" not in filters  # off by default, so not announced
    assert list(filters) == ["PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "PERCENT_PRICE_BY_SIDE", "NOTIONAL"]
    assert [s.symbol for s in model(spot.exchange_info(symbol="ETHUSDT"), ExchangeInfoResponse).symbols] == ["ETHUSDT"]

    price = one_of(spot.ticker_price(symbol="BTCUSDT"), TickerPriceResponse, TickerPriceResponse1)
    assert price.symbol == "BTCUSDT" and D(price.price) > 0
    prices = one_of_rows(spot.ticker_price(symbols=["BTCUSDT", "SOLUSDT"]), TickerPriceResponse, TickerPriceResponse2)
    assert [p.symbol for p in prices] == ["BTCUSDT", "SOLUSDT"]

    book = one_of(spot.ticker_book_ticker(symbol="BTCUSDT"), TickerBookTickerResponse, TickerBookTickerResponse1)
    assert 0 < D(book.bid_price) < D(book.ask_price) and D(book.bid_qty) > 0
    books = one_of_rows(spot.ticker_book_ticker(), TickerBookTickerResponse, TickerBookTickerResponse2)
    assert len(books) == 3

    day = one_of(spot.ticker24hr(symbol="BTCUSDT"), Ticker24hrResponse, Ticker24hrResponse1)
    assert D(day.low_price) <= D(day.open_price) <= D(day.high_price)
    assert D(day.low_price) <= D(day.last_price) <= D(day.high_price)
    assert day.close_time - day.open_time == 86_400_000
    minis = one_of_rows(
        spot.ticker24hr(symbols=["BTCUSDT", "ETHUSDT"], type="MINI"), Ticker24hrResponse, Ticker24hrResponse2
    )
    assert [m.symbol for m in minis] == ["BTCUSDT", "ETHUSDT"] and minis[0].bid_price is None  # MINI: no book
    assert len(one_of_rows(spot.ticker24hr(), Ticker24hrResponse, Ticker24hrResponse2)) == 3

    depth = model(spot.depth(symbol="BTCUSDT"), DepthResponse)
    assert len(depth.bids) == len(depth.asks) == 100  # Binance's default limit, and the book has 100 levels
    assert D(depth.bids[0][0]) < D(depth.asks[0][0])
    assert all(D(a[0]) > D(b[0]) for a, b in zip(depth.asks[1:], depth.asks, strict=False))
    assert len(model(spot.depth(symbol="BTCUSDT", limit=5), DepthResponse).asks) == 5
    assert len(model(spot.depth(symbol="BTCUSDT", limit=5000), DepthResponse).asks) == 100

    average = model(spot.avg_price(symbol="BTCUSDT"), AvgPriceResponse)
    assert average.mins == 5 and D(depth.bids[-1][0]) < D(average.price) < D(depth.asks[-1][0])

    status = model(venue.wallet.system_status(), SystemStatusResponse)
    assert (status.status, status.msg) == (0, "normal")

    with pytest.raises(BadRequestError) as caught:
        spot.depth(symbol="NOPEUSDT")
    assert caught.value.status_code == -1121


def test_klines_trades_and_agg_trades_come_from_the_engines_fills(frozen):
    venue, clock = frozen
    spot = venue.spot
    assert rows(spot.get_trades(symbol="BTCUSDT"), GetTradesResponse) == []
    assert rows(spot.agg_trades(symbol="BTCUSDT"), AggTradesResponse) == []
    for side, qty in (("BUY", "0.002"), ("SELL", "0.001"), ("BUY", "0.003")):
        model(spot.new_order(symbol="BTCUSDT", side=side, type="MARKET", quantity=D(qty)), NewOrderResponse)
        clock.now += 70  # a minute and more between them
        venue.on_loop(venue.engine.sync)
    resting = model(
        spot.new_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTC", quantity=D("0.01"), price=D(55000)
        ),
        NewOrderResponse,
    )
    venue.on_loop(venue.engine.force_fill, resting.client_order_id, D("0.004"))  # a maker fill

    mine = rows(spot.my_trades(symbol="BTCUSDT"), MyTradesResponse)
    public = rows(spot.get_trades(symbol="BTCUSDT"), GetTradesResponse)
    assert [t.id for t in public] == [t.id for t in mine] and len(public) == 4
    assert [(t.price, t.qty, t.time) for t in public] == [(t.price, t.qty, t.time) for t in mine]
    # the buyer is the maker: of a sell that took, and of the resting buy that was filled
    assert [t.is_buyer_maker for t in public] == [False, True, False, True]
    assert [t.id for t in rows(spot.get_trades(symbol="BTCUSDT", limit=2), GetTradesResponse)] == [
        t.id for t in public[2:]
    ]

    agg = rows(spot.agg_trades(symbol="BTCUSDT"), AggTradesResponse)
    assert [(a.a, a.f, a.l, a.p, a.q, a.T, a.m) for a in agg] == [
        (t.id, t.id, t.id, t.price, t.qty, t.time, t.is_buyer_maker) for t in public
    ]
    assert [a.a for a in rows(spot.agg_trades(symbol="BTCUSDT", from_id=public[1].id, limit=2), AggTradesResponse)] == [
        public[1].id,
        public[2].id,
    ]
    window = rows(
        spot.agg_trades(symbol="BTCUSDT", start_time=public[1].time, end_time=public[2].time), AggTradesResponse
    )
    assert [a.a for a in window] == [public[1].id, public[2].id]

    klines = spot.klines(symbol="BTCUSDT", interval="1m").data()  # the SDK hands arrays of arrays over as they are
    assert klines and all(len(k) == 12 and isinstance(k[0], int) and isinstance(k[6], int) for k in klines)
    assert all(k[6] - k[0] == 60_000 - 1 and D(k[3]) <= D(k[1]) <= D(k[2]) for k in klines)
    assert sum(D(k[5]) for k in klines) == D("0.01") and sum(k[8] for k in klines) == 4
    assert sum(D(k[7]) for k in klines) == sum(D(t.quote_qty) for t in public)
    # taker-buy volume: the market buys' (the resting buy was filled by a taker that sold)
    assert sum(D(k[9]) for k in klines) == D("0.005")
    hourly = spot.klines(symbol="BTCUSDT", interval="1h").data()
    assert sum(D(k[5]) for k in hourly) == D("0.01") and all(k[0] % 3_600_000 == 0 for k in hourly)
    since = spot.klines(symbol="BTCUSDT", interval="1m", start_time=klines[1][0], limit=2).data()
    assert [k[0] for k in since] == [klines[1][0], klines[2][0]]
    assert spot.klines(symbol="BTCUSDT", interval="1d", time_zone="8").data()[0][0] % 3_600_000 == 0
    with pytest.raises(BadRequestError) as caught:
        spot.klines(symbol="BTCUSDT", interval="1s")  # the engine keeps minutes
    assert caught.value.status_code == -1120

    day = one_of(spot.ticker24hr(symbol="BTCUSDT"), Ticker24hrResponse, Ticker24hrResponse1)
    assert D(day.volume) == D("0.01") and day.count == 4
    assert (day.first_id, day.last_id) == (public[0].id, public[-1].id) and D(day.last_qty) == D("0.004")


def test_the_24_hour_ticker_rolls_its_open_with_the_window():
    clock = FrozenClock()
    engine = engine_like_the_emulators(clock=clock, step_seconds=60, epoch=time.time() - 3 * 86_400)
    with serving(engine=engine) as venue:
        clock.now = 3 * 86_400.0  # three days of one-minute steps
        venue.on_loop(engine.sync)
        day = one_of(venue.spot.ticker24hr(symbol="BTCUSDT"), Ticker24hrResponse, Ticker24hrResponse1)
        now = venue.on_loop(engine.now)
        first = (int(now // 60) - 1439) * 60
        window = venue.on_loop(engine.candles, BTC, first)
        assert len(window) == 1440
        assert D(day.open_price) == window[0].open != D(60000)  # the price a day ago, not the start's
        assert D(day.high_price) == max(c.high for c in window) and D(day.low_price) == min(c.low for c in window)
        assert D(day.low_price) <= D(day.open_price) <= D(day.high_price)
        assert D(day.price_change) == D(day.last_price) - D(day.open_price)
        assert len(venue.spot.klines(symbol="BTCUSDT", interval="1h").data()) in (24, 25)


# -- orders -------------------------------------------------------------------------------------


def test_limit_and_market_orders_queries_and_cancels(frozen):
    venue, _ = frozen
    spot = venue.spot
    before = account_of(venue)
    limit = model(
        spot.new_order(
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            time_in_force="GTC",
            quantity=D("0.01"),
            price=D("50000.5"),
            new_client_order_id="sdk-limit-0",
        ),
        NewOrderResponse,
    )
    assert (limit.status, limit.time_in_force, limit.type, limit.fills) == ("NEW", "GTC", "LIMIT", [])
    # a limit buy locks exactly quantity x price: the fee of a buy is paid in the base
    assert account_of(venue)["USDT"] == (before["USDT"][0] - D("500.005"), D("500.005"))

    market = model(spot.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=D("0.002")), NewOrderResponse)
    assert market.status == "FILLED" and D(market.executed_qty) == D("0.002") and market.fills
    assert all(f.commission_asset == "USDT" for f in market.fills)

    order = model(spot.get_order(symbol="BTCUSDT", orig_client_order_id="sdk-limit-0"), GetOrderResponse)
    assert (order.order_id, order.status, order.price) == (limit.order_id, "NEW", "50000.50000000")
    assert [o.order_id for o in rows(spot.get_open_orders(symbol="BTCUSDT"), GetOpenOrdersResponse)] == [limit.order_id]
    assert len(rows(spot.get_open_orders(), GetOpenOrdersResponse)) == 1
    history = rows(spot.all_orders(symbol="BTCUSDT"), AllOrdersResponse)
    assert [(o.order_id, o.status) for o in history] == [(limit.order_id, "NEW"), (market.order_id, "FILLED")]
    trades = rows(spot.my_trades(symbol="BTCUSDT", order_id=market.order_id), MyTradesResponse)
    assert sum(D(t.qty) for t in trades) == D("0.002") and not any(t.is_buyer for t in trades)

    canceled = model(spot.delete_order(symbol="BTCUSDT", order_id=limit.order_id), DeleteOrderResponse)
    assert (canceled.status, canceled.orig_client_order_id) == ("CANCELED", "sdk-limit-0")
    assert account_of(venue)["USDT"][1] == 0
    with pytest.raises(BadRequestError) as caught:
        spot.delete_order(symbol="BTCUSDT", order_id=limit.order_id)
    assert caught.value.status_code == -2011
    with pytest.raises(BadRequestError) as caught:
        spot.get_order(symbol="BTCUSDT", orig_client_order_id="sdk-nobody-0")
    assert caught.value.status_code == -2013

    for n in range(2):
        spot.new_order(
            symbol="BTCUSDT", side="SELL", type="LIMIT", time_in_force="GTC", quantity=D("0.001"), price=D(70000 + n)
        )
    gone = rows(spot.delete_open_orders(symbol="BTCUSDT"), DeleteOpenOrdersResponse)
    assert [o.status for o in gone] == ["CANCELED", "CANCELED"]
    assert rows(spot.get_open_orders(symbol="BTCUSDT"), GetOpenOrdersResponse) == []


def test_market_orders_by_quote_order_qty(frozen):
    venue, _ = frozen
    spot = venue.spot
    ask, _ = best(venue, "asks")
    buy = model(spot.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quote_order_qty=D(100)), NewOrderResponse)
    step = D("0.00001")
    # as much as 100 USDT buys, in whole steps: one step more would cost more than 100
    assert buy.status == "FILLED" and D(buy.orig_quote_order_qty) == D(100)
    assert D(buy.cummulative_quote_qty) <= 100 < D(buy.cummulative_quote_qty) + step * ask
    assert D(buy.orig_qty) == D(buy.executed_qty) == sum(D(f.qty) for f in buy.fills)
    bid, _ = best(venue, "bids")
    sell = model(spot.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quote_order_qty=D(50)), NewOrderResponse)
    assert sell.status == "FILLED" and D(sell.cummulative_quote_qty) <= 50 < D(sell.cummulative_quote_qty) + step * bid
    queried = model(spot.get_order(symbol="BTCUSDT", order_id=sell.order_id), GetOrderResponse)
    assert D(queried.orig_quote_order_qty) == D(50) and queried.type == "MARKET"

    for params, code in (
        ({"quote_order_qty": D(4)}, -1013),  # NOTIONAL: the quote is the notional
        ({"quote_order_qty": D(10), "quantity": D("0.001")}, -1014),
        ({}, -1102),
    ):
        with pytest.raises(BadRequestError) as caught:
            spot.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", **params)
        assert caught.value.status_code == code, params
    with pytest.raises(BadRequestError) as caught:
        spot.new_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTC", quote_order_qty=D(10), price=D(50000)
        )
    assert caught.value.status_code in (-1102, -1106)


def test_ioc_fok_and_limit_maker(frozen):
    venue, _ = frozen
    spot = venue.spot
    ask, ask_qty = best(venue, "asks")

    def limit(tif: str, qty: Decimal, price: Decimal, side: str = "BUY") -> NewOrderResponse:
        return model(
            spot.new_order(symbol="BTCUSDT", side=side, type="LIMIT", time_in_force=tif, quantity=qty, price=price),
            NewOrderResponse,
        )

    # IOC: what crosses fills, the rest expires, nothing rests
    partial = limit("IOC", ask_qty + D("0.01"), ask)
    assert (partial.status, D(partial.executed_qty), partial.time_in_force) == ("EXPIRED", ask_qty, "IOC")
    away = limit("IOC", D("0.001"), ask - 100)
    assert (away.status, D(away.executed_qty), away.fills) == ("EXPIRED", 0, [])
    ask, ask_qty = best(venue, "asks")
    whole = limit("IOC", D("0.001"), ask)
    assert (whole.status, D(whole.executed_qty)) == ("FILLED", D("0.001"))
    # FOK: all at once or nothing
    ask, ask_qty = best(venue, "asks")
    refused = limit("FOK", ask_qty + D("0.01"), ask)
    assert (refused.status, D(refused.executed_qty), refused.fills) == ("EXPIRED", 0, [])
    done = limit("FOK", ask_qty, ask)
    assert (done.status, D(done.executed_qty)) == ("FILLED", ask_qty)
    assert rows(spot.get_open_orders(symbol="BTCUSDT"), GetOpenOrdersResponse) == []
    assert account_of(venue)["USDT"][1] == 0  # the expired orders locked nothing any more

    # LIMIT_MAKER: refused with Binance's -2010 when it would take, otherwise it rests
    ask, _ = best(venue, "asks")
    with pytest.raises(BadRequestError) as caught:
        spot.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity=D("0.001"), price=ask)
    assert (caught.value.status_code, caught.value.error_message) == (-2010, "Order would immediately match and take.")
    maker = model(
        spot.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity=D("0.001"), price=ask - 50),
        NewOrderResponse,
    )
    assert maker.status is None  # ACK, Binance's default answer for LIMIT_MAKER
    resting = model(spot.get_order(symbol="BTCUSDT", order_id=maker.order_id), GetOrderResponse)
    assert (resting.type, resting.status, resting.time_in_force) == ("LIMIT_MAKER", "NEW", "GTC")
    with pytest.raises(BadRequestError) as caught:
        spot.new_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", time_in_force="GTC", quantity=D("0.001"), price=ask - 50
        )
    assert caught.value.status_code == -1106
    with pytest.raises(BadRequestError) as caught:
        spot.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTD", quantity=D("0.001"), price=ask)
    assert caught.value.status_code == -1115


def test_percent_price_by_side_is_enforced_around_the_average_price(frozen):
    venue, _ = frozen
    spot = venue.spot
    average = D(model(spot.avg_price(symbol="BTCUSDT"), AvgPriceResponse).price)
    cents = D("0.01")

    def try_limit(side: str, factor: str) -> Any:
        price = (average * D(factor)).quantize(cents)
        return spot.new_order(
            symbol="BTCUSDT", side=side, type="LIMIT", time_in_force="GTC", quantity=D("0.001"), price=price
        )

    for side, factor in (("BUY", "0.19"), ("BUY", "5.01"), ("SELL", "5.01"), ("SELL", "0.19")):
        with pytest.raises(BadRequestError) as caught:
            try_limit(side, factor)
        assert (caught.value.status_code, caught.value.error_message) == (
            -1013,
            "Filter failure: PERCENT_PRICE_BY_SIDE",
        )
    assert model(try_limit("BUY", "0.21"), NewOrderResponse).status == "NEW"
    assert model(try_limit("SELL", "4.9"), NewOrderResponse).status == "NEW"


def test_cancel_replace_replaces_and_a_filter_failure_leaves_the_original_untouched(frozen):
    venue, _ = frozen
    spot = venue.spot
    old = model(
        spot.new_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTC", quantity=D("0.001"), price=D(50000)
        ),
        NewOrderResponse,
    )

    def replace(**changes: Any) -> Any:
        params = {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "cancel_replace_mode": "STOP_ON_FAILURE",
            "time_in_force": "GTC",
            "quantity": D("0.002"),
            "price": D(51000),
            "cancel_order_id": old.order_id,
            **changes,
        }
        return spot.order_cancel_replace(**params)

    for changes, failure in (
        ({"quantity": D("0.000015")}, "LOT_SIZE"),
        ({"price": D("51000.001")}, "PRICE_FILTER"),
        ({"quantity": D("0.00001")}, "NOTIONAL"),
        ({"price": D(10000)}, "PERCENT_PRICE_BY_SIDE"),  # a sixth of the average: below its 0.2
    ):
        with pytest.raises(BadRequestError) as caught:
            replace(**changes)
        assert (caught.value.status_code, caught.value.error_message) == (-1013, f"Filter failure: {failure}")
        untouched = model(spot.get_order(symbol="BTCUSDT", order_id=old.order_id), GetOrderResponse)
        assert untouched.status == "NEW" and untouched.orig_qty == "0.00100000"

    done = model(replace(new_client_order_id="sdk-cr-1"), OrderCancelReplaceResponse)
    assert (done.cancel_result, done.new_order_result) == ("SUCCESS", "SUCCESS")
    assert done.cancel_response.order_id == old.order_id and done.cancel_response.status == "CANCELED"
    assert done.new_order_response.client_order_id == "sdk-cr-1" and done.new_order_response.status == "NEW"
    assert [o.client_order_id for o in rows(spot.get_open_orders(symbol="BTCUSDT"), GetOpenOrdersResponse)] == [
        "sdk-cr-1"
    ]
    # a new order that would take, after the cancel: Binance's 409 -2021, the SDK's ClientError
    ask, _ = best(venue, "asks")
    with pytest.raises(ClientError):
        replace(cancel_order_id=done.new_order_response.order_id, type="LIMIT_MAKER", time_in_force=None, price=ask)
    assert rows(spot.get_open_orders(symbol="BTCUSDT"), GetOpenOrdersResponse) == []


def test_account_and_trade_fee_come_from_the_engine():
    with serving(fee_pct=D("0.075")) as venue:
        account = model(venue.spot.get_account(omit_zero_balances=True), GetAccountResponse)
        assert {b.asset for b in account.balances} == {"USDT", "BTC", "ETH", "SOL"}
        assert (account.maker_commission, account.commission_rates.taker) == (7, "0.00075000")
        fees = rows(venue.wallet.trade_fee(), TradeFeeResponse)
        assert {(f.symbol, f.maker_commission, f.taker_commission) for f in fees} == {
            (s, "0.00075", "0.00075") for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
        }
        assert [f.symbol for f in rows(venue.wallet.trade_fee(symbol="ETHUSDT"), TradeFeeResponse)] == ["ETHUSDT"]
        with pytest.raises(BadRequestError) as caught:
            venue.wallet.trade_fee(symbol="NOPEUSDT")
        assert caught.value.status_code == -1121


# -- limits -------------------------------------------------------------------------------------


def test_max_num_orders_is_off_by_default_and_an_option_of_the_emulator(frozen):
    venue, _ = frozen
    venue.on_loop(lambda: [venue.engine.place_resting(BTC, Side.BUY, D("0.001"), None) for _ in range(250)])
    assert (
        model(  # Binance's BTCUSDT allows 200 open orders; the emulator, by default, any number
            venue.spot.new_order(
                symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTC", quantity=D("0.001"), price=D(50000)
            ),
            NewOrderResponse,
        ).status
        == "NEW"
    )

    with serving(engine=engine_like_the_emulators(clock=FrozenClock()), max_orders_per_symbol=2) as capped:
        spot = capped.spot
        assert filters_of(model(spot.exchange_info(), ExchangeInfoResponse))["MAX_NUM_ORDERS"] == {
            "filterType": "MAX_NUM_ORDERS",
            "maxNumOrders": 2,
        }

        def buy(symbol: str = "BTCUSDT", price: int = 50000, qty: str = "0.001") -> Any:
            return spot.new_order(
                symbol=symbol, side="BUY", type="LIMIT", time_in_force="GTC", quantity=D(qty), price=D(price)
            )

        first, _ = model(buy(), NewOrderResponse), model(buy(), NewOrderResponse)
        with pytest.raises(BadRequestError) as caught:
            buy()
        assert (caught.value.status_code, caught.value.error_message) == (-1013, "Filter failure: MAX_NUM_ORDERS")
        with pytest.raises(BadRequestError):  # a market order counts too, for the moment it is open
            spot.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=D("0.001"))
        assert model(buy("ETHUSDT", 2000, "0.01"), NewOrderResponse).status == "NEW"  # per symbol
        replaced = spot.order_cancel_replace(  # the order it replaces makes room for it
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            cancel_replace_mode="STOP_ON_FAILURE",
            time_in_force="GTC",
            quantity=D("0.001"),
            price=D(50100),
            cancel_order_id=first.order_id,
        )
        assert model(replaced, OrderCancelReplaceResponse).new_order_result == "SUCCESS"
        spot.delete_order(symbol="BTCUSDT", order_id=replaced.data().new_order_response.order_id)
        assert model(buy(), NewOrderResponse).status == "NEW"


def clear_of_midnight(margin_s: float = 30) -> None:
    """Wait, if need be, until 00:00 UTC (the day window's end) is more than `margin_s` away."""
    deadline = time.monotonic() + margin_s + 15
    while 86_400 - time.time() % 86_400 <= margin_s:
        assert time.monotonic() < deadline, "the day window did not roll over"
        threading.Event().wait(0.2)


def test_the_order_count_counts_unfilled_orders_like_binance():
    clear_of_midnight()
    limits = Limits(orders_per_10s=0, orders_per_day=3, ban_after=0)
    clock = FrozenClock()
    with serving(faults=emulator_faults(limits=limits), engine=engine_like_the_emulators(clock=clock)) as venue:
        spot = venue.spot

        def day_count(response: Any) -> int:
            (count,) = [r.count for r in response.rate_limits if r.rateLimitType == "ORDERS" and r.interval == "DAY"]
            return count

        # orders that fill do not count: far more market orders than the limit all go through
        for _ in range(8):
            response = spot.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=D("0.001"))
            assert model(response, NewOrderResponse).status == "FILLED"
            assert day_count(response) == 1  # counted when placed; given back once it filled
        # a refused order does not count either
        with pytest.raises(BadRequestError):
            spot.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=D(50))
        resting = []
        for n in range(3):
            response = spot.new_order(
                symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTC", quantity=D("0.001"), price=D(50000)
            )
            resting.append(model(response, NewOrderResponse))
            assert day_count(response) == n + 1
        with pytest.raises(TooManyRequestsError) as caught:
            spot.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=D("0.001"))
        assert caught.value.status_code == -1015 and isinstance(caught.value.retry_after, int)
        assert 1 <= caught.value.retry_after <= 86_400
        # a cancel gives nothing back (the order was placed), a first fill does, once
        spot.delete_order(symbol="BTCUSDT", order_id=resting[0].order_id)
        with pytest.raises(TooManyRequestsError):
            spot.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=D("0.001"))

        def rest() -> Any:
            return spot.new_order(
                symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTC", quantity=D("0.001"), price=D(50000)
            )

        venue.on_loop(venue.engine.force_fill, resting[1].client_order_id, D("0.0005"))
        response = rest()
        assert model(response, NewOrderResponse).status == "NEW" and day_count(response) == 3
        venue.on_loop(venue.engine.force_fill, resting[1].client_order_id, D("0.0005"))  # not its first fill
        with pytest.raises(TooManyRequestsError):
            rest()
        # reads and cancels go on
        assert len(rows(spot.get_open_orders(symbol="BTCUSDT"), GetOpenOrdersResponse)) == 2
        assert venue.emulator.statuses[418] == 0


def test_429_and_418_carry_a_retry_after_in_whole_seconds():
    faults = emulator_faults(limits=Limits(weight_per_minute=0, ban_after=0))  # an injected 429 asks for 0.2 s
    with serving(faults=faults) as venue:
        faults.script("GET /api/v3/time", "rate_limit")
        with pytest.raises(TooManyRequestsError) as caught:
            venue.spot.time()
        assert (caught.value.status_code, caught.value.retry_after) == (-1003, 1)  # 0.2 s, rounded up
        venue.on_loop(venue.emulator.ban, 2.5)
        with pytest.raises(RateLimitBanError) as banned:
            venue.spot.exchange_info()
        assert banned.value.status_code == -1003 and banned.value.retry_after in (2, 3)  # 2.5 s less the trip, up
    with serving(faults=emulator_faults(limits=Limits(weight_per_minute=45, ban_after=0))) as venue:
        with pytest.raises(TooManyRequestsError) as caught:
            for _ in range(6):  # 20 weight each: at most two fit one minute's 45, six span two minutes at most
                venue.spot.exchange_info()
        assert caught.value.status_code == -1003
        assert isinstance(caught.value.retry_after, int) and 1 <= caught.value.retry_after <= 60


def test_an_endpoint_the_emulator_does_not_serve_is_one_404(venue):
    for method, path in (
        ("GET", "/api/v3/historicalTrades"),
        ("GET", "/sapi/v1/capital/config/getall"),
        ("PUT", "/api/v3/order"),
        ("GET", "/fapi/v1/ping"),
        ("GET", "/"),
    ):
        with pytest.raises(NotFoundError) as caught:
            venue.raw(method, path, {"symbol": "BTCUSDT"})
        assert (caught.value.status_code, caught.value.error_message) == (-1020, "This operation is not supported.")
    with pytest.raises(NotFoundError):
        venue.raw("GET", "/api/v3/account/commission", signed=True)
    by_path = venue.emulator.record()["statuses_by_path"]
    assert by_path["GET /api/v3/historicalTrades"] == {"404": 1} and by_path["PUT /api/v3/order"] == {"404": 1}


# -- ccxt ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def ccxt_venue(faults: EmulatorFaults | None = None, **options: Any):
    """An emulator of its own and ccxt's binance on it, its `sapi` there too and `options` set."""
    venue = own_venue(seed=9, faults=faults or emulator_faults(), markets=list(MARKETS), load_markets=False)
    async with venue as (running, exchange):
        exchange.urls["api"]["sapi"] = f"{running.url}/sapi/v1"
        exchange.options.update(options)
        await exchange.load_markets()
        yield running, exchange


async def test_ccxt_does_not_retry_an_endpoint_the_emulator_does_not_serve():
    faults = emulator_faults()
    async with ccxt_venue(faults, maxRetriesOnFailure=3, maxRetriesOnFailureDelay=0) as (running, exchange):
        with pytest.raises(ccxt.BadRequest) as caught:  # an ExchangeError: ccxt retries only OperationFailed
            await exchange.publicGetHistoricalTrades({"symbol": "BTCUSDT"})
        assert not isinstance(caught.value, ccxt.OperationFailed) and "-1020" in str(caught.value)
        assert running.emulator.record()["statuses_by_path"]["GET /api/v3/historicalTrades"] == {"404": 1}
        # what ccxt does retry, for contrast: a 5xx is an OperationFailed, sent again
        faults.script("GET /api/v3/time", "error_before")
        await exchange.fetch_time()
        assert running.emulator.statuses_by_path["GET /api/v3/time"][200] == 1
        assert running.emulator.requests["GET /api/v3/time"] == 2


async def test_ccxt_own_validators_accept_the_market_data():
    async with ccxt_venue() as (running, exchange):
        await exchange.create_order(BTC, "market", "buy", 0.002)
        await exchange.create_order(BTC, "market", "sell", 0.001)
        now = exchange.milliseconds()
        ticker = await exchange.fetch_ticker(BTC)
        ccxt_check_ticker(exchange, {}, "fetchTicker", ticker, BTC)
        assert ticker["low"] <= ticker["open"] <= ticker["high"] and ticker["baseVolume"] == pytest.approx(0.003)
        for entry in (await exchange.fetch_tickers()).values():
            ccxt_check_ticker(exchange, {}, "fetchTickers", entry, entry["symbol"])
        book = await exchange.fetch_order_book(BTC)
        # Binance's spot depth has no time (no `T` / `E`, which futures have): ccxt leaves it empty
        ccxt_check_order_book(exchange, {"timestamp": True, "datetime": True}, "fetchOrderBook", book, BTC)
        assert len(book["bids"]) == len(book["asks"]) == 100
        candles = await exchange.fetch_ohlcv(BTC, "1m")
        assert candles
        for candle in candles:
            ccxt_check_ohlcv(exchange, {}, "fetchOHLCV", candle, BTC, now)
        trades = await exchange.fetch_trades(BTC)
        assert len(trades) >= 2
        for trade in trades:
            ccxt_check_trade(exchange, {}, "fetchTrades", trade, BTC, now, True)
        status = await exchange.fetch_status()
        ccxt_check_status(exchange, {}, "fetchStatus", status, now)
        assert status["status"] == "ok"
        fees = await exchange.fetch_trading_fees()
        assert set(fees) == set(MARKETS)
        for symbol, fee in fees.items():
            ccxt_check_trading_fee(exchange, {}, "fetchTradingFees", symbol, fee)
            assert (fee["maker"], fee["taker"]) == (0.001, 0.001)
        assert running.emulator.statuses.get(404) is None
