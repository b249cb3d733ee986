"""The emulator is faithful to Binance where crash recovery depends on it, as ccxt's own `binance`
sees it: client order ids reused once their order ended, fees in the asset received, the
order-count 429 (-1015) that refuses new orders only, the limits announced and enforced, the
request weights, allOrders and myTrades as Binance pages them, fast seeding of resting orders and
the record's per-path statuses."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from executor.models import OrderStatus, Side
from executor.venue.emulator import wire
from executor.venue.emulator.app import RunningEmulator
from executor.venue.engine import PaperEngine
from executor.venue.faults import FaultPlan as EmulatorFaults
from executor.venue.faults import Limits

from .support import BAN_S, MARKETS, emulator_faults, own_venue

pytestmark = pytest.mark.integration

D = Decimal
BTC = "BTC/USDT"
HOUR_MS = 3_600_000
ORDER = "POST /api/v3/order"


def venue(
    limits: Limits | None = None, *, engine: PaperEngine | None = None
) -> AbstractAsyncContextManager[tuple[RunningEmulator, Any]]:
    """An emulator of its own (limits, engine) on a free port of 127.0.0.1, and ccxt's binance on it."""
    faults = emulator_faults(limits=limits or Limits(ban_after=10, ban_seconds=BAN_S))
    return own_venue(seed=5, faults=faults, markets=list(MARKETS), engine=engine)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def clocked_engine(clock: FakeClock, *, days_ago: float = 3) -> PaperEngine:
    """An engine whose time the test moves: hours apart in a few calls (a step is an hour)."""
    return PaperEngine(
        5,
        list(MARKETS),
        {"USDT": 100_000, "BTC": 1, "ETH": 10, "SOL": 100},
        fee_pct=D("0.1"),
        clock=clock,
        step_seconds=3600,
        epoch=time.time() - days_ago * 86_400,
    )


def body(exchange: Any) -> Any:
    return json.loads(exchange.last_http_response)


async def until(predicate, timeout: float = 15.0, interval: float = 0.02) -> None:
    """Wait for an async condition with a generous deadline; fail loudly if it never holds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate.__name__}")
        await asyncio.sleep(interval)


async def clear_of_window_end(window_s: float, margin_s: float) -> None:
    """Wait, if need be, until the venue's fixed `window_s` window (aligned to the epoch, as
    Binance's) has more than `margin_s` left, so a test's few requests all fall into one window."""

    async def clear() -> bool:
        return window_s - time.time() % window_s > margin_s

    await until(clear, timeout=margin_s + 15)


def headers_of(exchange: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in (exchange.last_response_headers or {}).items()}


# -- 1. client order ids: unique among open orders only ---------------------------------------


async def test_a_client_order_id_is_free_again_once_its_order_ended_and_lookups_find_the_newest(binance, emulator):
    await binance.load_markets()
    first = await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-reuse-0"})
    with pytest.raises(ccxt.InvalidOrder, match=r'"code": ?-2010, "msg": ?"Duplicate order sent\."'):
        await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-reuse-0"})
    await binance.cancel_order("", BTC, {"clientOrderId": "tc-reuse-0"})

    second = await binance.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "tc-reuse-0"})
    assert second["id"] != first["id"] and second["status"] == "closed"
    found = await binance.fetch_order("", BTC, {"clientOrderId": "tc-reuse-0"})
    assert (found["id"], found["status"]) == (second["id"], "closed")
    # the newest one is filled, so a cancel by client order id is unknown, as on Binance
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await binance.cancel_order("", BTC, {"clientOrderId": "tc-reuse-0"})
    # both ids: the order id is searched, then the client order id checked against it
    older = await binance.privateGetOrder(
        {"symbol": "BTCUSDT", "orderId": first["id"], "origClientOrderId": "tc-reuse-0"}
    )
    assert (str(older["orderId"]), older["status"]) == (first["id"], "CANCELED")
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await binance.privateGetOrder({"symbol": "BTCUSDT", "orderId": first["id"], "origClientOrderId": "tc-other-0"})

    third = await binance.create_order(BTC, "limit", "sell", 0.001, 90000, {"clientOrderId": "tc-reuse-0"})
    assert (await binance.fetch_order("", BTC, {"clientOrderId": "tc-reuse-0"}))["id"] == third["id"]
    history = await binance.fetch_orders(BTC)
    assert [(o["id"], o["clientOrderId"], o["status"]) for o in history] == [
        (first["id"], "tc-reuse-0", "canceled"),
        (second["id"], "tc-reuse-0", "closed"),
        (third["id"], "tc-reuse-0", "open"),
    ]
    trades = await binance.fetch_my_trades(BTC)
    assert {t["order"] for t in trades} == {second["id"]}

    record = emulator.emulator.record()
    assert [(o["order_id"], o["client_order_id"]) for o in record["orders"]] == [
        (int(first["id"]), "tc-reuse-0"),
        (int(second["id"]), "tc-reuse-0"),
        (int(third["id"]), "tc-reuse-0"),
    ]
    assert record["audit"]["ok"] and record["audit"]["orders"] == 3 and record["audit"]["signals"] == 1


async def test_the_audit_over_a_reused_client_order_id_still_finds_an_over_fill(binance, emulator):
    await binance.load_markets()
    await binance.create_order(BTC, "market", "buy", 0.002, None, {"clientOrderId": "tc-again-0"})
    await binance.create_order(BTC, "market", "buy", 0.002, None, {"clientOrderId": "tc-again-0"})
    audit = emulator.emulator.record()["audit"]
    # one signal, two orders of 0.002 each filled: 0.004 for a signal of 0.002
    assert not audit["ok"] and audit["orders"] == 2
    assert [(o["filled"], o["limit"], len(o["order_ids"])) for o in audit["overfilled"]] == [("0.004", "0.002", 2)]


# -- 2. fees in the asset received ------------------------------------------------------------


async def account(exchange: Any) -> dict[str, tuple[Decimal, Decimal]]:
    raw = await exchange.privateGetAccount()
    return {b["asset"]: (D(b["free"]), D(b["locked"])) for b in raw["balances"]}


async def test_a_buy_pays_its_fee_in_the_base_and_a_sell_in_the_quote_in_fills_trades_and_balances(binance):
    await binance.load_markets()
    before = await account(binance)
    buy = await binance.create_order(BTC, "market", "buy", 0.003, None, {"clientOrderId": "tc-fee-buy-0"})
    fills = buy["info"]["fills"]
    assert fills and all(f["commissionAsset"] == "BTC" for f in fills)
    assert all(D(f["commission"]) == D(f["qty"]) * D("0.001") for f in fills)
    assert buy["fee"]["currency"] == "BTC" and buy["fee"]["cost"] == pytest.approx(0.000003)
    after_buy = await account(binance)
    commission = sum((D(f["commission"]) for f in fills), D(0))
    assert after_buy["USDT"][0] == before["USDT"][0] - D(buy["info"]["cummulativeQuoteQty"])
    assert after_buy["BTC"][0] == before["BTC"][0] + D(buy["info"]["executedQty"]) - commission

    sell = await binance.create_order(BTC, "market", "sell", 0.002, None, {"clientOrderId": "tc-fee-sell-0"})
    fills = sell["info"]["fills"]
    assert fills and all(f["commissionAsset"] == "USDT" for f in fills)
    assert sell["fee"]["currency"] == "USDT"
    after_sell = await account(binance)
    commission = sum((D(f["commission"]) for f in fills), D(0))
    assert after_sell["BTC"][0] == after_buy["BTC"][0] - D("0.002")
    assert after_sell["USDT"][0] == after_buy["USDT"][0] + D(sell["info"]["cummulativeQuoteQty"]) - commission

    trades = await binance.privateGetMyTrades({"symbol": "BTCUSDT"})
    assert trades and all({"orderId", "commission", "commissionAsset", "isBuyer", "isMaker"} <= set(t) for t in trades)
    by_order = {str(t["orderId"]): t for t in trades}
    assert by_order[buy["id"]]["commissionAsset"] == "BTC" and by_order[buy["id"]]["isBuyer"] is True
    assert by_order[sell["id"]]["commissionAsset"] == "USDT" and by_order[sell["id"]]["isBuyer"] is False
    assert not any(t["isMaker"] for t in trades)  # market orders take
    parsed = await binance.fetch_my_trades(BTC)
    assert {(t["order"], t["side"], t["fee"]["currency"], t["takerOrMaker"]) for t in parsed} == {
        (buy["id"], "buy", "BTC", "taker"),
        (sell["id"], "sell", "USDT", "taker"),
    }


async def test_a_resting_buy_filled_as_maker_pays_the_maker_fee_in_the_base(binance, emulator):
    await binance.load_markets()
    order = await binance.create_order(BTC, "limit", "buy", 0.01, 30000, {"clientOrderId": "tc-maker-0"})
    emulator.emulator.engine.force_fill("tc-maker-0", D("0.004"))
    trades = await binance.privateGetMyTrades({"symbol": "BTCUSDT", "orderId": order["id"]})
    assert [(t["qty"], t["commission"], t["commissionAsset"], t["isMaker"], t["isBuyer"]) for t in trades] == [
        ("0.00400000", "0.00000400", "BTC", True, True)
    ]
    balance = await account(binance)
    # the quote paid exactly the cost; the order still locks its remaining 0.006 x its price, exactly, as Binance
    locked = D("0.006") * 30000
    assert balance["USDT"] == (D(100_000) - D("0.004") * 30000 - locked, locked)
    assert balance["BTC"] == (D(1) + D("0.004") - D("0.000004"), D(0))


# -- 3. the order-count 429 refuses new orders only -------------------------------------------


async def test_an_exhausted_order_count_is_a_429_minus_1015_for_new_orders_only_and_never_a_ban():
    await clear_of_window_end(86_400, 30)  # not within half a minute of 00:00 UTC, when the day's count resets
    async with venue(Limits(orders_per_day=3, ban_after=2, ban_seconds=30)) as (running, exchange):
        placed = []
        for n in range(3):
            placed.append(
                await exchange.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": f"tc-cap-{n}"})
            )
        assert headers_of(exchange)["x-mbx-order-count-1d"] == "3"
        for n in range(6):  # far more refusals than ban_after: an order-count 429 never earns a 418
            with pytest.raises(ccxt.DDoSProtection, match="429") as caught:
                await exchange.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": f"tc-over-{n}"})
            assert '"code":-1015' in str(caught.value).replace(" ", "")
            assert "Too many new orders; current limit is 3 orders per 1 DAY." in str(caught.value)
            retry_after = headers_of(exchange)["retry-after"]
            assert retry_after.isdigit() and 1 <= int(retry_after) <= 86_400
            assert headers_of(exchange)["x-mbx-order-count-1d"] == "3"
        # reads and cancels go on meanwhile
        assert len(await exchange.fetch_open_orders(BTC)) == 3
        assert (await exchange.fetch_order(placed[0]["id"], BTC))["status"] == "open"
        canceled = await exchange.cancel_order(placed[0]["id"], BTC)
        assert canceled["status"] == "canceled"
        await exchange.fetch_balance()
        await exchange.fetch_ticker(BTC)
        assert len(await exchange.cancel_all_orders(BTC)) == 2

        record = running.emulator.record()
        assert record["too_many_orders"] == 6 and record["error_codes"] == {"-1015": 6}
        assert record["statuses_by_path"][ORDER] == {"200": 3, "429": 6}
        others = {path: counts for path, counts in record["statuses_by_path"].items() if path != ORDER}
        assert all(set(counts) == {"200"} for counts in others.values()), others
        assert "418" not in record["statuses"]
        assert len(running.emulator.engine.all_orders()) == 3


async def test_the_ten_second_order_count_is_announced_enforced_and_counted_in_headers():
    async with venue(Limits(orders_per_10s=3, ban_after=0)) as (running, exchange):
        info = await exchange.publicGetExchangeInfo()
        assert {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3} in info["rateLimits"]
        counts = []
        with pytest.raises(ccxt.DDoSProtection, match="-1015") as caught:
            for n in range(7):  # seven orders within seconds: at most six fit two 10 s windows
                # resting orders: an order that fills does not count (Binance's unfilled order count)
                await exchange.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": f"tc-ten-{n}"})
                counts.append(int(headers_of(exchange)["x-mbx-order-count-10s"]))
        assert "current limit is 3 orders per 10 SECOND." in str(caught.value)
        assert headers_of(exchange)["x-mbx-order-count-10s"] == "3"
        assert 1 <= int(headers_of(exchange)["retry-after"]) <= 10
        assert 3 <= len(counts) <= 6 and counts[-1] == 3 and all(1 <= c <= 3 for c in counts)
        assert running.emulator.too_many_orders == 1


def gtc_buy_replacing(**fields: str) -> dict[str, str]:
    """The parameters of a cancelReplace whose new order is a GTC limit buy of BTCUSDT."""
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"} | fields


async def test_cancel_replace_with_an_exhausted_order_count_cancels_only_when_asked_to():
    await clear_of_window_end(86_400, 30)
    async with venue(Limits(orders_per_day=2, ban_after=2)) as (running, exchange):
        a = await exchange.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-cr-a-0"})
        b = await exchange.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-cr-b-0"})
        replace = gtc_buy_replacing(quantity="0.002", price="31000", cancelReplaceMode="STOP_ON_FAILURE")
        # the default, DO_NOTHING: refused whole, nothing canceled
        with pytest.raises(ccxt.DDoSProtection, match="-1015"):
            await exchange.privatePostOrderCancelReplace(
                {**replace, "cancelOrderId": a["id"], "newClientOrderId": "tc-cr-a-1"}
            )
        assert (await exchange.fetch_order(a["id"], BTC))["status"] == "open"
        # CANCEL_ONLY: the cancel happens, the new order is refused for the order count
        with pytest.raises(ccxt.BaseError) as caught:
            await exchange.privatePostOrderCancelReplace(
                {
                    **replace,
                    "cancelOrderId": b["id"],
                    "newClientOrderId": "tc-cr-b-1",
                    "orderRateLimitExceededMode": "CANCEL_ONLY",
                }
            )
        assert "409" in str(caught.value) or "-2021" in str(caught.value)
        answer = body(exchange)
        assert answer["code"] == -2021
        assert answer["data"]["cancelResult"] == "SUCCESS" and answer["data"]["newOrderResult"] == "FAILURE"
        assert answer["data"]["newOrderResponse"]["code"] == -1015
        assert (await exchange.fetch_order(b["id"], BTC))["status"] == "canceled"
        assert [o.client_order_id for o in running.emulator.engine.all_orders()] == ["tc-cr-a-0", "tc-cr-b-0"]
        record = running.emulator.record()
        assert record["too_many_orders"] == 2
        assert record["statuses_by_path"]["POST /api/v3/order/cancelReplace"] == {"409": 1, "429": 1}
        assert "418" not in record["statuses"]


async def test_cancel_replace_checks_the_new_orders_filters_before_it_cancels(binance, emulator):
    await binance.load_markets()
    old = await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-crf-0"})
    replace = gtc_buy_replacing(cancelReplaceMode="ALLOW_FAILURE", cancelOrderId=old["id"], newClientOrderId="tc-crf-1")
    for quantity, price, failure in (
        ("0.000015", "30000", "LOT_SIZE"),
        ("0.001", "30000.001", "PRICE_FILTER"),
        ("0.0001", "30000", "NOTIONAL"),
    ):
        with pytest.raises(ccxt.BaseError, match=failure):
            await binance.privatePostOrderCancelReplace({**replace, "quantity": quantity, "price": price})
        assert body(binance) == {"code": -1013, "msg": f"Filter failure: {failure}"}
        assert (await binance.fetch_order(old["id"], BTC))["status"] == "open"  # nothing was canceled
    # funds are not a filter: the cancel frees what the new order needs
    emulator.emulator.engine.deposit("USDT", -(emulator.emulator.engine.balance("USDT").free - 1))
    done = await binance.privatePostOrderCancelReplace({**replace, "quantity": "0.001", "price": "30001"})
    assert done["cancelResult"] == done["newOrderResult"] == "SUCCESS"
    assert [o.status for o in emulator.emulator.engine.all_orders()] == [OrderStatus.CANCELED, OrderStatus.OPEN]


async def test_only_repeated_request_weight_429s_lead_to_the_418():
    await clear_of_window_end(86_400, 30)
    async with venue(Limits(weight_per_minute=50, orders_per_day=1, ban_after=3, ban_seconds=30)) as (
        running,
        exchange,
    ):
        # resting: an order that fills would give its count back (Binance's unfilled order count)
        await exchange.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-w-0"})
        for n in range(5):  # order-count 429s: however many, no ban
            with pytest.raises(ccxt.DDoSProtection, match="-1015"):
                await exchange.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": f"tc-w-{n + 1}"})
        assert running.emulator.statuses[418] == 0
        await clear_of_window_end(60, 5)  # the weight 429's back-off lasts to the minute's end: not a moment
        with pytest.raises(ccxt.DDoSProtection, match="-1003") as caught:
            for _ in range(4):  # 20 weight each over a limit of 50 (exchangeInfo was 20 already)
                await exchange.publicGetExchangeInfo()
        assert "429" in str(caught.value)
        statuses = []
        for _ in range(3):  # straight back in, inside the Retry-After: the third is banned
            with pytest.raises(ccxt.DDoSProtection) as caught:
                await exchange.fetch_time()
            statuses.append(str(caught.value).split()[1])
        assert statuses == ["429", "429", "418"]
        assert "IP banned until" in str(caught.value)
        assert headers_of(exchange)["retry-after"] == "30"


# -- 4. the limits in force, and exactly those, announced -------------------------------------


def rate_limits(*triples: tuple[str, str, int, int]) -> list[dict[str, Any]]:
    return [{"rateLimitType": t, "interval": i, "intervalNum": n, "limit": limit} for t, i, n, limit in triples]


async def test_exchange_info_announces_binances_default_limits(binance):
    info = await binance.publicGetExchangeInfo()
    assert info["rateLimits"] == rate_limits(
        ("REQUEST_WEIGHT", "MINUTE", 1, 6000), ("ORDERS", "SECOND", 10, 100), ("ORDERS", "DAY", 1, 200_000)
    )
    assert Limits() == Limits(weight_per_minute=6000, orders_per_10s=100, orders_per_day=200_000)


async def test_the_faults_files_limits_are_the_ones_enforced_and_announced(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"limits": {"weight_per_minute": 1200, "orders_per_10s": 50, "orders_per_day": 0}}))
    faults = EmulatorFaults.load(path)
    async with own_venue(faults=faults, markets=list(MARKETS), load_markets=False) as (_, exchange):
        info = await exchange.publicGetExchangeInfo()
        # the day limit is switched off, so it is not announced
        assert info["rateLimits"] == rate_limits(("REQUEST_WEIGHT", "MINUTE", 1, 1200), ("ORDERS", "SECOND", 10, 50))
        used = int(headers_of(exchange)["x-mbx-used-weight-1m"])
        with pytest.raises(ccxt.DDoSProtection, match="current limit is 1200 request weight per 1 MINUTE"):
            for _ in range(2 * (1200 // 20) + 2):  # a minute's weight and more, even if a window rolls over
                await exchange.publicGetExchangeInfo()
        assert used >= 20 and int(headers_of(exchange)["x-mbx-used-weight-1m"]) <= 1200


# -- 5. request weights -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "params", "weight"),
    [
        ("GET /api/v3/ping", {}, 1),
        ("GET /api/v3/time", {}, 1),
        ("GET /api/v3/exchangeInfo", {}, 20),
        ("GET /api/v3/depth", {"symbol": "BTCUSDT"}, 5),
        ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "100"}, 5),
        ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "101"}, 25),
        ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "500"}, 25),
        ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "1000"}, 50),
        ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "5000"}, 250),
        ("GET /api/v3/ticker/24hr", {"symbol": "BTCUSDT"}, 2),
        ("GET /api/v3/ticker/24hr", {}, 80),
        ("GET /api/v3/ticker/24hr", {"symbols": json.dumps(["BTCUSDT"] * 21)}, 40),
        ("GET /api/v3/ticker/bookTicker", {"symbol": "BTCUSDT"}, 2),
        ("GET /api/v3/ticker/bookTicker", {}, 4),
        ("GET /api/v3/ticker/price", {"symbol": "BTCUSDT"}, 2),
        ("GET /api/v3/account", {}, 20),
        ("POST /api/v3/order", {}, 1),
        ("GET /api/v3/order", {}, 4),
        ("DELETE /api/v3/order", {}, 1),
        ("GET /api/v3/openOrders", {"symbol": "BTCUSDT"}, 6),
        ("GET /api/v3/openOrders", {}, 80),
        ("DELETE /api/v3/openOrders", {"symbol": "BTCUSDT"}, 1),
        ("GET /api/v3/allOrders", {"symbol": "BTCUSDT"}, 20),
        ("GET /api/v3/myTrades", {"symbol": "BTCUSDT"}, 20),
        ("GET /api/v3/myTrades", {"symbol": "BTCUSDT", "orderId": "7"}, 5),
        ("POST /api/v3/order/cancelReplace", {}, 1),
    ],
)
def test_request_weights_are_binance_spots(endpoint, params, weight):
    assert wire.request_weight(endpoint, params) == weight


async def test_every_call_ccxt_makes_is_charged_its_weight_in_the_used_weight_header(binance, emulator):
    await binance.load_markets()
    binance.options["fetchOpenOrders"]["warnWithoutSymbol"] = False
    emu = emulator.emulator

    async def weighs(weight: int, endpoint: str, call) -> Any:
        sent = emu.requests[endpoint]
        before = int(headers_of(binance).get("x-mbx-used-weight-1m", "0"))
        result = await call
        after = int(headers_of(binance)["x-mbx-used-weight-1m"])
        assert emu.requests[endpoint] == sent + 1, f"{endpoint}: not one request"
        # the minute's window may have rolled over in between: then this call alone is in it
        assert after in (before + weight, weight), f"{endpoint}: {before} -> {after}, not +{weight}"
        return result

    await weighs(1, "GET /api/v3/time", binance.fetch_time())
    await weighs(1, "GET /api/v3/ping", binance.publicGetPing())
    await weighs(20, "GET /api/v3/exchangeInfo", binance.publicGetExchangeInfo())
    for limit, weight in ((5, 5), (500, 25), (1000, 50), (5000, 250)):
        await weighs(weight, "GET /api/v3/depth", binance.fetch_order_book(BTC, limit))
    await weighs(2, "GET /api/v3/ticker/24hr", binance.fetch_ticker(BTC))
    await weighs(80, "GET /api/v3/ticker/24hr", binance.fetch_tickers())
    await weighs(2, "GET /api/v3/ticker/bookTicker", binance.publicGetTickerBookTicker({"symbol": "BTCUSDT"}))
    await weighs(4, "GET /api/v3/ticker/bookTicker", binance.publicGetTickerBookTicker())
    await weighs(20, "GET /api/v3/account", binance.fetch_balance())
    order = await weighs(
        1, ORDER, binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-wt-0"})
    )
    await weighs(4, "GET /api/v3/order", binance.fetch_order(order["id"], BTC))
    await weighs(6, "GET /api/v3/openOrders", binance.fetch_open_orders(BTC))
    await weighs(80, "GET /api/v3/openOrders", binance.fetch_open_orders())
    await weighs(20, "GET /api/v3/allOrders", binance.fetch_orders(BTC))
    await weighs(20, "GET /api/v3/myTrades", binance.fetch_my_trades(BTC))
    await weighs(5, "GET /api/v3/myTrades", binance.fetch_my_trades(BTC, None, None, {"orderId": order["id"]}))
    edited = await weighs(
        1,
        "POST /api/v3/order/cancelReplace",
        binance.edit_order(order["id"], BTC, "limit", "buy", 0.001, 30500, {"newClientOrderId": "tc-wt-1"}),
    )
    await weighs(1, "DELETE /api/v3/order", binance.cancel_order(edited["id"], BTC))
    await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-wt-2"})
    await weighs(1, "DELETE /api/v3/openOrders", binance.cancel_all_orders(BTC))


async def test_every_answer_carries_the_used_weight_and_order_answers_the_order_counts(binance, emulator, faults):
    await binance.load_markets()
    await binance.fetch_ticker(BTC)
    assert "x-mbx-used-weight-1m" in headers_of(binance) and "x-mbx-order-count-10s" not in headers_of(binance)
    await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-hdr-0"})
    assert {"x-mbx-used-weight-1m", "x-mbx-order-count-10s", "x-mbx-order-count-1d"} <= set(headers_of(binance))
    with pytest.raises(ccxt.InsufficientFunds):  # a refused order is an order answer too, and does not count
        await binance.create_order(BTC, "market", "buy", 50, None, {"clientOrderId": "tc-hdr-1"})
    assert headers_of(binance)["x-mbx-order-count-1d"] == "1"
    with pytest.raises(ccxt.OrderNotFound):  # an error
        await binance.fetch_order("", BTC, {"clientOrderId": "tc-nobody-0"})
    assert "x-mbx-used-weight-1m" in headers_of(binance)
    faults.script("GET /api/v3/account", "error_before")
    with pytest.raises((ccxt.OperationFailed, ccxt.NetworkError)):  # a 5xx
        await binance.fetch_balance()
    assert "x-mbx-used-weight-1m" in headers_of(binance)
    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}/api/v3/historicalTrades") as response:
        assert response.status == 404 and "X-MBX-USED-WEIGHT-1M" in response.headers


# -- 6. allOrders and myTrades as Binance pages them ------------------------------------------


async def test_all_orders_by_id_by_time_and_most_recent_with_binances_limits():
    clock = FakeClock()
    engine = clocked_engine(clock)
    base = float(round(engine.now()) - 2 * 86_400)  # twelve orders three hours apart, two days ago: 33 hours
    ids = [
        engine.place_resting(BTC, Side.BUY, D("0.001"), D(30000), f"tc-hist-{n}", base + n * 3 * 3600).id
        for n in range(12)
    ]
    start = wire.ms(base)
    async with venue(engine=engine) as (running, exchange):
        with pytest.raises(ccxt.BadRequest, match="Mandatory parameter 'symbol'"):
            await exchange.privateGetAllOrders({})

        def names(orders):
            return [o["clientOrderId"] for o in orders]

        # startTime, no orderId: the oldest `limit` at or after it, oldest first
        assert names(await exchange.fetch_orders(BTC, start, 5)) == [f"tc-hist-{n}" for n in range(5)]
        assert names(await exchange.fetch_orders(BTC, start + 1, 3)) == ["tc-hist-1", "tc-hist-2", "tc-hist-3"]
        # a window of at most 24 hours, ends included
        window = await exchange.fetch_orders(BTC, start + 3 * HOUR_MS, None, {"until": start + 24 * HOUR_MS})
        assert names(window) == [f"tc-hist-{n}" for n in range(1, 9)]
        with pytest.raises(ccxt.BadRequest, match=r"More than 24 hours between startTime and endTime\."):
            await exchange.fetch_orders(BTC, start, None, {"until": start + 24 * HOUR_MS + 1})
        assert body(exchange)["code"] == -1127
        # endTime alone: the most recent `limit` up to it
        assert names(await exchange.fetch_orders(BTC, None, 2, {"until": start + 9 * HOUR_MS})) == [
            "tc-hist-2",
            "tc-hist-3",
        ]
        # orderId: ids at least it, oldest first, `limit` of them
        assert names(await exchange.fetch_orders(BTC, None, 3, {"orderId": ids[8]})) == [
            "tc-hist-8",
            "tc-hist-9",
            "tc-hist-10",
        ]
        # nothing: the most recent `limit`, oldest first
        assert names(await exchange.fetch_orders(BTC, None, 2)) == ["tc-hist-10", "tc-hist-11"]
        assert names(await exchange.fetch_orders(BTC)) == [f"tc-hist-{n}" for n in range(12)]
        for bad in (1001, 0):
            with pytest.raises(ccxt.BadRequest, match="Illegal characters found in parameter 'limit'"):
                await exchange.fetch_orders(BTC, None, bad)
            assert body(exchange)["code"] == -1100
        assert running.emulator.record()["statuses"].get("429") is None


async def test_all_orders_default_to_500_and_give_at_most_1000(emulator, binance):
    engine = emulator.emulator.engine
    for n in range(1001):
        engine.place_resting(BTC, Side.BUY, D("0.0002"), D(30000), f"tc-many-{n}")
    await binance.load_markets()
    default = await binance.privateGetAllOrders({"symbol": "BTCUSDT"})
    assert [o["clientOrderId"] for o in default] == [f"tc-many-{n}" for n in range(501, 1001)]
    most = await binance.privateGetAllOrders({"symbol": "BTCUSDT", "limit": 1000})
    assert len(most) == 1000 and most[0]["clientOrderId"] == "tc-many-1" and most[-1]["orderId"] > most[0]["orderId"]
    first = await binance.privateGetAllOrders({"symbol": "BTCUSDT", "orderId": 1, "limit": 1000})
    assert first[0]["clientOrderId"] == "tc-many-0" and first[-1]["clientOrderId"] == "tc-many-999"


async def test_my_trades_by_order_from_id_by_time_and_their_limits():
    clock = FakeClock()
    engine = clocked_engine(clock)
    async with venue(engine=engine) as (_, exchange):
        orders = []
        for n in range(6):  # six market orders five hours apart: one trade each
            orders.append(
                await exchange.create_order(
                    BTC, "market", "buy" if n % 2 == 0 else "sell", 0.001, None, {"clientOrderId": f"tc-mt-{n}"}
                )
            )
            clock.now += 5 * 3600
        trades = await exchange.privateGetMyTrades({"symbol": "BTCUSDT"})
        assert len(trades) == 6 and [t["orderId"] for t in trades] == [int(o["id"]) for o in orders]
        assert [t["commissionAsset"] for t in trades] == ["BTC", "USDT"] * 3
        assert [t["isBuyer"] for t in trades] == [True, False] * 3 and not any(t["isMaker"] for t in trades)
        tid = [t["id"] for t in trades]
        times = [t["time"] for t in trades]
        assert all(b - a >= 5 * HOUR_MS - 1 for a, b in itertools.pairwise(times))

        async def query(**params) -> list[int]:
            return [t["id"] for t in await exchange.privateGetMyTrades({"symbol": "BTCUSDT", **params})]

        assert await query(fromId=tid[2]) == tid[2:]
        assert await query(fromId=tid[2], limit=2) == tid[2:4]
        assert await query(orderId=orders[3]["id"]) == [tid[3]]
        assert await query(orderId=orders[3]["id"], fromId=tid[4]) == []
        assert await query(startTime=times[1]) == tid[1:]
        assert await query(startTime=times[1], limit=2) == tid[1:3]  # the oldest `limit` from the start
        assert await query(endTime=times[3], limit=2) == tid[2:4]  # the newest `limit` up to the end
        assert await query(startTime=times[1], endTime=times[1] + 12 * HOUR_MS) == tid[1:4]
        assert await query(limit=2) == tid[4:]
        with pytest.raises(ccxt.BadRequest, match=r"More than 24 hours between startTime and endTime\."):
            await query(startTime=times[0], endTime=times[0] + 24 * HOUR_MS + 1)
        with pytest.raises(ccxt.BadRequest, match="-1128"):  # not a combination Binance takes
            await query(startTime=times[0], fromId=tid[1])
        with pytest.raises(ccxt.BadRequest, match="-1128"):
            await query(orderId=orders[0]["id"], startTime=times[0])
        with pytest.raises(ccxt.BadRequest, match="legal range is '1000'"):
            await query(limit=1001)
        with pytest.raises(ccxt.BadRequest, match="Mandatory parameter 'symbol'"):
            await exchange.privateGetMyTrades({})
        # ccxt's own paging arguments land on the same parameters
        since = await exchange.fetch_my_trades(BTC, times[4])
        assert [t["id"] for t in since] == [str(i) for i in tid[4:]]
        assert {t["fee"]["currency"] for t in since} == {"BTC", "USDT"}


# -- 7. seeding resting orders fast, and the record's statuses per path ------------------------


async def test_seeded_resting_orders_are_open_locked_and_cost_no_rate_limit():
    async with venue(Limits(weight_per_minute=1200, orders_per_10s=50, ban_after=2)) as (running, exchange):
        engine = running.emulator.engine
        before = engine.balance("USDT")
        seeded = [engine.place_resting(BTC, Side.BUY, D("0.001"), None, f"tc-seed-{n}") for n in range(300)]
        seeded += [engine.place_resting("ETH/USDT", Side.SELL, D("0.01"), None, f"tc-seed-eth-{n}") for n in range(100)]
        assert all(o.status is OrderStatus.OPEN for o in seeded)
        locked = sum((o.locked for o in seeded if o.symbol == BTC), D(0))
        assert engine.balance("USDT").used == locked and engine.balance("USDT").free == before.free - locked
        assert engine.balance("ETH").used == D(1)
        engine.advance(500)  # far from the touch: the market does not reach them
        assert engine.trades() == []
        assert len(await exchange.fetch_open_orders(BTC)) == 300
        assert len(await exchange.fetch_open_orders("ETH/USDT")) == 100
        record = running.emulator.record()
        assert record["too_many_orders"] == 0 and record["statuses"] == {"200": 3}
        assert record["statuses_by_path"] == {
            "GET /api/v3/exchangeInfo": {"200": 1},
            "GET /api/v3/openOrders": {"200": 2},
        }


async def test_the_record_counts_statuses_per_path_also_over_http(binance, emulator, faults):
    await binance.load_markets()
    await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-rec-0"})
    await binance.fetch_order("", BTC, {"clientOrderId": "tc-rec-0"})
    with pytest.raises(ccxt.OrderNotFound):
        await binance.fetch_order("", BTC, {"clientOrderId": "tc-rec-nobody"})
    faults.script("GET /api/v3/order", "rate_limit")
    with pytest.raises(ccxt.DDoSProtection):
        await binance.fetch_order("", BTC, {"clientOrderId": "tc-rec-0"})

    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}/_emulator/record") as response:
        served = await response.json()
    assert served["statuses_by_path"] == {
        "GET /api/v3/exchangeInfo": {"200": 1},
        "POST /api/v3/order": {"200": 1},
        "GET /api/v3/order": {"200": 1, "400": 1, "429": 1},
    }
    assert served["error_codes"] == {"-2013": 1, "-1003": 1} and served["too_many_orders"] == 0
    assert served == json.loads(json.dumps(emulator.emulator.record()))


async def test_an_invisible_reused_id_hides_the_new_order_only(binance, emulator, faults):
    await binance.load_markets()
    first = await binance.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "tc-vis-0"})
    faults.script(ORDER, "invisible")
    second = await binance.create_order(BTC, "limit", "buy", 0.001, 30000, {"clientOrderId": "tc-vis-0"})
    assert second["id"] != first["id"]
    assert emulator.emulator.record()["faults"] == {ORDER: {"invisible": 1}}
    emulator.emulator.hide(int(second["id"]), 1.5)  # long enough for the checks below on a loaded machine
    # the new order is out of every query for a while; the old one, same client order id, is not
    with pytest.raises(ccxt.OrderNotFound):
        await binance.fetch_order("", BTC, {"clientOrderId": "tc-vis-0"})
    assert (await binance.fetch_order(first["id"], BTC))["status"] == "closed"
    assert [o["id"] for o in await binance.fetch_orders(BTC)] == [first["id"]]
    assert await binance.fetch_open_orders(BTC) == []

    async def shows_up() -> bool:
        return [o["id"] for o in await binance.fetch_open_orders(BTC)] == [second["id"]]

    await until(shows_up)
    assert (await binance.fetch_order("", BTC, {"clientOrderId": "tc-vis-0"}))["id"] == second["id"]
