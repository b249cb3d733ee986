"""ccxt's own `binance` against the emulator: every endpoint the adapter uses, and every error as
ccxt sees it (the classes the adapter's classification starts from)."""

from __future__ import annotations

import time

import ccxt.async_support as ccxt
import pytest

from executor.venue.faults import Limits

from .support import MARKETS, emulator_faults, own_venue, raw_binance

pytestmark = pytest.mark.integration

BTC = "BTC/USDT"


# -- public endpoints ---------------------------------------------------------------------------


async def test_load_markets_reads_exchange_info_as_spot_markets(binance):
    markets = await binance.load_markets()
    assert set(markets) == set(MARKETS)
    btc = markets[BTC]
    assert btc["spot"] and btc["active"] and btc["id"] == "BTCUSDT"
    assert btc["precision"] == {"amount": 1e-05, "price": 0.01, "base": 1e-08, "quote": 1e-08}
    assert btc["limits"]["amount"]["min"] == 1e-05
    assert btc["limits"]["cost"]["min"] == 5.0
    assert btc["info"]["orderTypes"] == ["LIMIT", "LIMIT_MAKER", "MARKET"]


async def test_server_time_and_ping(binance):
    server = await binance.fetch_time()
    assert abs(server - time.time() * 1000) < 5_000
    assert await binance.publicGetPing() == {}


async def test_ticker_from_24hr_book_ticker_and_price(binance):
    await binance.load_markets()
    ticker = await binance.fetch_ticker(BTC)
    assert 0 < ticker["bid"] < ticker["ask"]
    assert ticker["last"] > 0 and ticker["symbol"] == BTC
    tickers = await binance.fetch_tickers()  # ticker/24hr without a symbol: every market
    assert set(tickers) == set(MARKETS)
    book = await binance.fetch_bids_asks([BTC])
    assert 0 < book[BTC]["bid"] < book[BTC]["ask"]
    prices = await binance.fetch_last_prices([BTC, "ETH/USDT"])
    assert prices[BTC]["price"] > 0 and prices["ETH/USDT"]["price"] > 0


async def test_order_book_depth(binance):
    await binance.load_markets()
    book = await binance.fetch_order_book(BTC, 5)
    assert len(book["bids"]) == len(book["asks"]) == 5
    assert book["bids"][0][0] < book["asks"][0][0]
    assert book["nonce"] is not None


# -- signed endpoints ---------------------------------------------------------------------------


async def test_account_balance(binance):
    balance = await binance.fetch_balance()
    assert balance["USDT"] == {"free": 100000.0, "used": 0.0, "total": 100000.0}
    assert balance["BTC"]["free"] == 1.0


async def test_limit_order_lives_through_create_fetch_open_and_cancel(binance):
    await binance.load_markets()
    order = await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-wire-limit-0"})
    assert order["clientOrderId"] == "tc-wire-limit-0"
    assert order["status"] == "open" and order["filled"] == 0 and order["price"] == 30000
    by_id = await binance.fetch_order(order["id"], BTC)
    by_client_id = await binance.fetch_order("", BTC, {"clientOrderId": "tc-wire-limit-0"})
    assert by_id["id"] == by_client_id["id"] == order["id"]
    assert [o["id"] for o in await binance.fetch_open_orders(BTC)] == [order["id"]]
    binance.options["fetchOpenOrders"]["warnWithoutSymbol"] = False
    assert [o["id"] for o in await binance.fetch_open_orders()] == [order["id"]]
    balance = await binance.fetch_balance()
    assert balance["USDT"]["used"] > 0  # the order locks its quote

    canceled = await binance.cancel_order("", BTC, {"clientOrderId": "tc-wire-limit-0"})
    assert canceled["status"] == "canceled" and canceled["id"] == order["id"]
    assert canceled["info"]["origClientOrderId"] == "tc-wire-limit-0"
    assert await binance.fetch_open_orders(BTC) == []
    history = await binance.fetch_orders(BTC)
    assert [(o["clientOrderId"], o["status"]) for o in history] == [("tc-wire-limit-0", "canceled")]


async def test_market_order_fills_and_shows_in_my_trades(binance):
    await binance.load_markets()
    order = await binance.create_order(BTC, "market", "buy", 0.002, None, {"clientOrderId": "tc-wire-market-0"})
    assert order["status"] == "closed" and order["filled"] == 0.002
    # from the FULL answer's fills: a buy pays its fee in the base it receives, as on Binance
    assert order["fee"]["currency"] == "BTC" and order["fee"]["cost"] == pytest.approx(0.002 * 0.001)
    trades = await binance.fetch_my_trades(BTC)
    assert trades and {t["order"] for t in trades} == {order["id"]}
    assert sum(t["amount"] for t in trades) == pytest.approx(0.002)
    since = await binance.fetch_my_trades(BTC, trades[0]["timestamp"] + 60_000)
    assert since == []
    of_order = await binance.fetch_my_trades(BTC, None, None, {"orderId": order["id"]})
    assert len(of_order) == len(trades)


async def test_edit_order_is_one_cancel_replace(binance, emulator):
    await binance.load_markets()
    first = await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-wire-edit-0"})
    edited = await binance.edit_order(
        first["id"], BTC, "limit", "buy", 0.002, 31000, {"newClientOrderId": "tc-wire-edit-1"}
    )
    assert edited["clientOrderId"] == "tc-wire-edit-1" and edited["amount"] == 0.002 and edited["price"] == 31000
    engine = emulator.emulator.engine
    assert engine.get_order("tc-wire-edit-0").status.value == "canceled"
    assert emulator.emulator.requests["POST /api/v3/order/cancelReplace"] == 1


async def test_cancel_all_orders_of_a_symbol(binance):
    await binance.load_markets()
    for n in range(3):
        await binance.create_order(BTC, "limit", "sell", 0.001, 90000 + n, {"clientOrderId": f"tc-wire-all-{n}"})
    canceled = await binance.cancel_all_orders(BTC)
    # Binance's cancel answer names the order in origClientOrderId; clientOrderId is the cancel's own id
    names = sorted(o["info"]["origClientOrderId"] for o in canceled)
    assert names == ["tc-wire-all-0", "tc-wire-all-1", "tc-wire-all-2"]
    assert await binance.fetch_open_orders(BTC) == []


# -- errors, as ccxt classifies them ------------------------------------------------------------


async def test_insufficient_balance_is_insufficient_funds(binance):
    await binance.load_markets()
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        await binance.create_order(BTC, "market", "buy", 50, None, {"clientOrderId": "tc-wire-poor-0"})


async def test_filter_failures_are_invalid_order_or_bad_request(binance):
    await binance.load_markets()
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        # past ccxt's own precision handling, straight to the endpoint: an amount off the step
        await binance.privatePostOrder(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.000015", "newClientOrderId": "x-1"}
        )
    with pytest.raises(ccxt.BadRequest, match='"code": -1013, "msg": "Filter failure: NOTIONAL"'):
        await binance.create_order(BTC, "limit", "buy", 0.00001, 30000, {"clientOrderId": "tc-wire-tiny-0"})


async def test_a_client_order_id_of_an_open_order_is_refused_as_a_duplicate(binance):
    await binance.load_markets()
    await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-wire-dup-0"})
    with pytest.raises(ccxt.InvalidOrder, match=r"Duplicate order sent\."):
        await binance.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "tc-wire-dup-0"})


async def test_unknown_orders_are_order_not_found(binance):
    await binance.load_markets()
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await binance.fetch_order("", BTC, {"clientOrderId": "tc-wire-nobody-0"})
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await binance.cancel_order("", BTC, {"clientOrderId": "tc-wire-nobody-0"})


async def test_a_wrong_secret_is_a_bad_signature(emulator):
    async with raw_binance(emulator.url, api_secret="not-the-secret") as exchange:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await exchange.fetch_balance()


async def test_a_wrong_key_is_refused(emulator):
    async with raw_binance(emulator.url, api_key="not-the-key") as exchange:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await exchange.fetch_balance()


async def test_a_stale_timestamp_is_outside_the_recv_window(binance):
    binance.options["timeDifference"] = 20_000  # our clock 20 s behind: outside recvWindow (10 s)
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await binance.fetch_balance()


async def test_server_errors_come_as_the_three_5xx_shapes(binance, faults):
    await binance.load_markets()
    seen = set()
    for n in range(12):
        faults.script("GET /api/v3/account", "error_before")
        try:
            await binance.fetch_balance()
        except (ccxt.OperationFailed, ccxt.NetworkError) as exc:
            seen.add(type(exc).__name__)
        else:
            raise AssertionError(f"request {n} did not fail")
    # -1001 with 500, -1007 with 503, and a proxy's HTML 502
    assert seen == {"OperationFailed", "RequestTimeout", "ExchangeNotAvailable"}


async def test_429_carries_retry_after_and_ignoring_it_ends_in_a_418_ban():
    faults = emulator_faults(limits=Limits(ban_after=3, ban_seconds=30))
    async with own_venue(faults=faults, load_markets=False) as (running, exchange):
        running.emulator.faults.script("GET /api/v3/time", "rate_limit")
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            await exchange.fetch_time()
        assert exchange.last_response_headers["Retry-After"] == "1"  # whole seconds, rounded up, as Binance
        statuses = []
        for _ in range(3):  # straight back in, inside the Retry-After
            with pytest.raises(ccxt.DDoSProtection) as caught:
                await exchange.fetch_time()
            statuses.append(str(caught.value).split()[1])
        assert statuses == ["429", "429", "418"]
        assert "IP banned until" in str(caught.value)
        assert 29 <= float(exchange.last_response_headers["Retry-After"]) <= 30


async def test_request_weight_over_the_minute_limit_is_a_429():
    faults = emulator_faults(limits=Limits(weight_per_minute=50, ban_after=0))
    async with own_venue(faults=faults, load_markets=False) as (_, exchange):
        with pytest.raises(ccxt.DDoSProtection, match="-1003"):
            for _ in range(6):  # 20 weight each: at most two fit a minute window, however they fall
                await exchange.publicGetExchangeInfo()
        assert int(exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"]) <= 50
        assert 0 < float(exchange.last_response_headers["Retry-After"]) <= 60


async def test_too_many_new_orders_is_a_429_with_minus_1015():
    async with own_venue(faults=emulator_faults(limits=Limits(orders_per_10s=3, ban_after=0))) as (running, exchange):
        with pytest.raises(ccxt.DDoSProtection, match="-1015"):
            for n in range(7):  # seven orders within seconds: at most six fit two 10 s windows
                # resting orders: an order that fills does not count (Binance's unfilled order count)
                await exchange.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": f"tc-burst-{n}"})
        assert 0 < float(exchange.last_response_headers["Retry-After"]) <= 10
        placed = len(running.emulator.engine.all_orders())
        assert 3 <= placed <= 6
