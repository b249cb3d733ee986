"""Each venue's rules as ccxt 4.5's own exchange classes apply them, offline.

ccxt's `handle_errors` is fed the venues' recorded error bodies, its request builders and `sign`
show what reaches the wire; nothing here opens a connection and nothing of ccxt is mocked. Beside
them, the adapter's pure parts: the request weights it reports, the pace it sets, its weight
window, its bounded id maps.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest

from executor.exchanges.base import DuplicateOrder, MaybePlaced, NotPlaced, OrderNotFound, Rejected
from executor.exchanges.ccxt import CcxtExchange
from executor.exchanges.ccxt.discipline import PACE_SHARE
from executor.exchanges.ccxt.errors import ccxt_async, classify
from executor.exchanges.ccxt.throttle import (
    ASK,
    CLOCK_SLACK,
    COUNTER_SLACK,
    LATE_LANDING,
    OrderRate,
    OrderWindows,
    VenueClock,
    WeightWindow,
)
from executor.exchanges.ccxt.translate import IdMap as _IdMap

D = Decimal
SPOT_ORDER_URL = {
    "binance": "https://api.binance.com/api/v3/order",
    "okx": "https://www.okx.com/api/v5/trade/order",
    "bybit": "https://api.bybit.com/v5/order/create",
}


@pytest.fixture
async def venues():
    """The adapter's ccxt client for a venue (configured by the adapter), and ccxt's plain one."""
    made: list[Any] = []

    def make(venue: str, *, plain: bool = False) -> Any:
        if plain:
            ex = getattr(ccxt_async(), venue)()
            made.append(ex)
            return ex
        adapter = CcxtExchange(venue, api_key="test-key-0000", api_secret="test-secret-0000")
        made.append(adapter._ex)
        return adapter

    yield make
    for ex in made:
        ex.timeout_on_exit = 0  # no session was ever opened: nothing to linger for
        await ex.close()


def raised(ex: Any, status: int, body: dict[str, Any], *, venue: str, headers: dict[str, str] | None = None):
    """What ccxt raises for this answer (None if it raises nothing)."""
    text = json.dumps(body)
    try:
        ex.handle_errors(status, "", SPOT_ORDER_URL[venue], "POST", headers or {}, text, body, {}, "")
    except Exception as exc:
        return exc
    return None


# -- duplicate client order ids -------------------------------------------------------------------

DUPLICATES = [
    ("binance", 400, {"code": -2010, "msg": "Duplicate order sent."}),
    (
        "okx",
        200,
        {
            "code": "1",
            "data": [{"clOrdId": "tc0", "ordId": "", "sCode": "51016", "sMsg": "Duplicated clOrdId"}],
            "msg": "All operations failed",
        },
    ),
    ("bybit", 200, {"retCode": 110072, "retMsg": "OrderLinkedID is duplicate", "result": {}, "retExtInfo": {}}),
    ("bybit", 200, {"retCode": 170141, "retMsg": "Duplicate clientOrderId.", "result": {}, "retExtInfo": {}}),
]


@pytest.mark.parametrize(("venue", "status", "body"), DUPLICATES, ids=["-2010", "51016", "110072", "170141"])
async def test_a_reused_client_order_id_is_a_duplicate_order(venues, venue, status, body):
    plain = raised(venues(venue, plain=True), status, body, venue=venue)
    # ccxt alone: an invalid order like any other (the order would be "rejected", never adopted)
    assert isinstance(plain, ccxt_async().InvalidOrder) and not isinstance(plain, ccxt_async().DuplicateOrderId)
    assert type(classify(plain)) is Rejected
    ours = raised(venues(venue)._ex, status, body, venue=venue)
    assert isinstance(ours, ccxt_async().DuplicateOrderId)
    assert isinstance(classify(ours), DuplicateOrder)


async def test_other_binance_2010_refusals_stay_plain_refusals(venues):
    body = {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    error = classify(raised(venues("binance")._ex, 400, body, venue="binance"))
    assert isinstance(error, Rejected) and not isinstance(error, DuplicateOrder)


@pytest.mark.parametrize(
    ("venue", "body"),
    [
        ("okx", {"code": "51603", "data": [], "msg": "Order does not exist"}),
        ("bybit", {"retCode": 110001, "retMsg": "Order does not exist.", "result": {}, "retExtInfo": {}}),
        ("bybit", {"retCode": 170213, "retMsg": "Order does not exist.", "result": {}, "retExtInfo": {}}),
    ],
    ids=["okx-51603", "bybit-110001", "bybit-170213"],
)
async def test_unknown_orders_stay_order_not_found(venues, venue, body):
    assert isinstance(classify(raised(venues(venue)._ex, 200, body, venue=venue)), OrderNotFound)


# -- timestamps and rate limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "status", "body"),
    [
        ("binance", 400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}),
        ("okx", 200, {"code": "50102", "data": [], "msg": "Timestamp request expired"}),
        (
            "bybit",
            200,
            {
                "retCode": 10002,
                "retMsg": "invalid request, please check your server timestamp",
                "result": {},
                "retExtInfo": {},
            },
        ),
    ],
    ids=["binance-1021", "okx-50102", "bybit-10002"],
)
async def test_a_refused_timestamp_is_certainly_not_placed(venues, venue, status, body):
    exc = raised(venues(venue)._ex, status, body, venue=venue)
    assert isinstance(exc, ccxt_async().InvalidNonce)  # a NetworkError to ccxt: "maybe" would be wrong
    error = classify(exc)
    assert type(error) is NotPlaced and not error.rate_limited


BINANCE_ORDER_COUNT = {"code": -1015, "msg": "Too many new orders; current limit is 100 orders per 10 SECOND."}
BINANCE_WEIGHT = {
    "code": -1003,
    "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
}


async def fail_with(exc: BaseException) -> None:
    raise exc


async def test_an_order_count_429_holds_new_orders_only(venues):
    adapter = venues("binance")
    exc = raised(adapter._ex, 429, BINANCE_ORDER_COUNT, venue="binance", headers={"Retry-After": "7"})
    with pytest.raises(NotPlaced) as caught:
        await adapter._request("create_order", lambda: fail_with(exc))
    # rate limited: the executor does not count this attempt against max_retries
    assert caught.value.rate_limited and caught.value.retry_after == 7
    assert adapter.order_cooldown.remaining == pytest.approx(7, abs=0.5)
    assert adapter.cooldown.remaining == 0  # cancels and reads go on
    admission = asyncio.ensure_future(adapter.admit().__aenter__())
    done, _ = await asyncio.wait({admission}, timeout=0.2)
    assert not done  # a new order waits the order-count window out
    admission.cancel()
    assert adapter.rate_limit_state().throttled and adapter.rate_limit_state().cooldown_remaining == 0


@pytest.mark.parametrize(("status", "body"), [(429, BINANCE_WEIGHT), (418, BINANCE_WEIGHT)], ids=["429", "418"])
async def test_a_weight_429_or_418_holds_every_request(venues, status, body):
    adapter = venues("binance")
    exc = raised(adapter._ex, status, body, venue="binance", headers={"Retry-After": "5"})
    with pytest.raises(NotPlaced) as caught:
        await adapter._request("fetch_balances", lambda: fail_with(exc))
    assert caught.value.rate_limited and caught.value.retry_after == 5
    assert adapter.cooldown.remaining == pytest.approx(5, abs=0.5)
    assert adapter.order_cooldown.remaining == 0


async def test_a_5xx_with_binance_1007_stays_maybe_placed(venues):
    body = {"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown."}
    assert isinstance(classify(raised(venues("binance")._ex, 503, body, venue="binance")), MaybePlaced)


# -- codes ccxt 4.5.90 puts in a class that says the wrong thing about the request ------------------


def bybit(code: int, message: str) -> dict[str, Any]:
    return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}}


def okx_order(code: str, message: str) -> dict[str, Any]:
    return {"code": "1", "data": [{"clOrdId": "tc0", "ordId": "", "sCode": code, "sMsg": message}], "msg": ""}


@pytest.mark.parametrize(
    "body",
    [bybit(170146, "Order creation timeout"), bybit(170147, "Order cancellation timeout")],
    ids=["170146", "170147"],
)
async def test_a_bybit_order_timing_out_inside_the_venue_is_maybe_placed(venues, body):
    assert isinstance(raised(venues("bybit", plain=True), 200, body, venue="bybit"), ccxt_async().InvalidOrder)
    assert type(classify(raised(venues("bybit")._ex, 200, body, venue="bybit"))) is MaybePlaced


@pytest.mark.parametrize(
    "body",
    [
        bybit(110008, "Order has been finished or canceled"),
        bybit(110010, "Order already cancelled"),
        bybit(170139, "Order has been filled."),
        bybit(170142, "Order has been canceled"),
    ],
    ids=["110008", "110010", "170139", "170142"],
)
async def test_a_bybit_order_that_already_ended_is_nothing_to_cancel(venues, body):
    # InvalidOrder to ccxt, which the executor would read as a refused cancel of a live order
    assert isinstance(raised(venues("bybit", plain=True), 200, body, venue="bybit"), ccxt_async().InvalidOrder)
    assert type(classify(raised(venues("bybit")._ex, 200, body, venue="bybit"))) is OrderNotFound


@pytest.mark.parametrize(
    ("venue", "body"),
    [
        ("bybit", bybit(170005, "Too many new orders; current limit is 20 orders per 1 SECOND.")),
        ("okx", {"code": "50061", "data": [], "msg": "You've reached the maximum order rate limit for this account."}),
        ("okx", okx_order("50061", "You've reached the maximum order rate limit for this account.")),
    ],
    ids=["bybit-170005", "okx-50061", "okx-50061-in-order"],
)
async def test_an_order_count_refusal_on_bybit_or_okx_holds_new_orders_only(venues, venue, body):
    adapter = venues(venue)
    exc = raised(adapter._ex, 200, body, venue=venue)
    assert not isinstance(exc, ccxt_async().RateLimitExceeded | ccxt_async().DDoSProtection)  # ccxt: a refusal
    with pytest.raises(NotPlaced) as caught:
        await adapter._request("create_order", lambda: fail_with(exc))
    assert caught.value.rate_limited and caught.value.retry_after == 1.0  # no Retry-After: a second
    assert adapter.order_cooldown.remaining > 0 and adapter.cooldown.remaining == 0


async def test_binance_2015_after_a_good_private_request_is_a_refused_key_not_a_rate_limit(venues):
    body = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    plain, adapter = venues("binance", plain=True), venues("binance")
    for ex in (plain, adapter._ex):
        ex.options["hasAlreadyAuthenticatedSuccessfully"] = True  # what any successful private request sets
    # ccxt's workaround reads it as a temporary ban, which would be retried for ever, uncounted
    assert isinstance(raised(plain, 401, body, venue="binance"), ccxt_async().DDoSProtection)
    error = classify(raised(adapter._ex, 401, body, venue="binance"))
    assert type(error) is Rejected and "-2015" in str(error)


async def test_an_okx_cancel_already_under_way_stays_maybe_done(venues):
    body = okx_order("51410", "Cancellation failed as the order is already under cancelling status")
    assert isinstance(raised(venues("okx", plain=True), 200, body, venue="okx"), ccxt_async().CancelPending)
    # the cancel may yet take effect: the order stays pending_cancel and is looked at again
    assert type(classify(raised(venues("okx")._ex, 200, body, venue="okx"))) is MaybePlaced


# -- what reaches the request ---------------------------------------------------------------------

BINANCE_BTCUSDT = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "baseAssetPrecision": 8,
    "quoteAsset": "USDT",
    "quotePrecision": 8,
    "quoteAssetPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
    "icebergAllowed": True,
    "ocoAllowed": True,
    "quoteOrderQtyMarketAllowed": True,
    "cancelReplaceAllowed": True,
    "isSpotTradingAllowed": True,
    "isMarginTradingAllowed": False,
    "permissions": [],
    "permissionSets": [["SPOT"]],
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.0", "stepSize": "0.00001"},
        {"filterType": "NOTIONAL", "minNotional": "5.0", "applyMinToMarket": True, "maxNotional": "9000000.0"},
    ],
}
OKX_BTC_USDT = {
    "instType": "SPOT",
    "instId": "BTC-USDT",
    "baseCcy": "BTC",
    "quoteCcy": "USDT",
    "settleCcy": "",
    "ctVal": "",
    "ctMult": "",
    "ctValCcy": "",
    "optType": "",
    "stk": "",
    "listTime": "1606468572000",
    "expTime": "",
    "lever": "10",
    "tickSz": "0.1",
    "lotSz": "0.00000001",
    "minSz": "0.00001",
    "ctType": "",
    "alias": "",
    "state": "live",
    "maxLmtSz": "9999999999",
    "maxMktSz": "1000000",
    "instFamily": "",
    "uly": "",
    "category": "1",
}


def binance_with_market(adapter: CcxtExchange) -> Any:
    ex = adapter._ex
    ex.options.update(crossMarginPairsData=[], isolatedMarginPairsData=[])  # what its fetch_markets would set
    ex.set_markets([ex.parse_market(BINANCE_BTCUSDT)])
    return ex


def bybit_with_market(adapter: CcxtExchange) -> Any:
    ex = adapter._ex
    market = {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT",
        "base": "BTC",
        "quote": "USDT",
        "baseId": "BTC",
        "quoteId": "USDT",
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "active": True,
        "precision": {"amount": 0.000001, "price": 0.01},
        "limits": {"amount": {"min": 0.000048}, "cost": {"min": 1}},
    }
    ex.set_markets([ex.safe_market_structure(market)])
    return ex


async def test_the_client_order_id_goes_out_under_each_venues_own_name(venues):
    params = {"clientOrderId": "tcx0"}
    binance = binance_with_market(venues("binance"))
    assert binance.create_order_request("BTC/USDT", "limit", "buy", 0.001, 30000, params)["newClientOrderId"] == "tcx0"
    okx = venues("okx")._ex
    okx.set_markets([okx.parse_market(OKX_BTC_USDT)])
    request = okx.create_order_request("BTC/USDT", "limit", "buy", 0.001, 30000, params)
    assert request["clOrdId"] == "tcx0" and "clientOrderId" not in request
    bybit = bybit_with_market(venues("bybit"))
    request = bybit.create_order_request("BTC/USDT", "limit", "buy", 0.001, 30000, params)
    assert request["orderLinkId"] == "tcx0" and "clientOrderId" not in request


async def test_bybit_cancels_by_order_link_id_alone(venues):
    bybit = bybit_with_market(venues("bybit"))
    request = bybit.cancel_order_request(None, "BTC/USDT", {"orderLinkId": "tcx0"})
    assert request["orderLinkId"] == "tcx0" and "orderId" not in request
    assert request["category"] == "spot"


async def test_bybit_fetch_order_is_refused_on_unified_accounts_so_the_adapter_does_not_use_it(venues):
    adapter = venues("bybit")
    ex = bybit_with_market(adapter)
    ex.options.update(enableUnifiedAccount=True, enableUnifiedMargin=False)
    with pytest.raises(ccxt_async().ArgumentsRequired):
        await ex.fetch_order("1", "BTC/USDT")  # refused before any request: nothing is sent
    assert ex.has["fetchOpenOrders"] and ex.has["fetchCanceledAndClosedOrders"]
    assert not adapter._by_client_id  # lookups go by orderLinkId on open orders, then the history


async def test_a_binance_lookup_by_client_id_is_signed_with_orig_client_order_id(venues):
    ex = venues("binance")._ex
    signed = ex.sign("order", ["private"], "GET", {"symbol": "BTCUSDT", "origClientOrderId": "tcx0"})
    assert "origClientOrderId=tcx0" in signed["url"] and "signature=" in signed["url"]
    assert signed["headers"]["X-MBX-APIKEY"] == "test-key-0000"


# -- what an answer states ------------------------------------------------------------------------


async def test_a_binance_ack_states_no_filled_amount(venues):
    adapter = venues("binance")
    ex = binance_with_market(adapter)
    ack = {
        "symbol": "BTCUSDT",
        "orderId": 28,
        "orderListId": -1,
        "clientOrderId": "tcx0",
        "transactTime": 1507725176595,
    }
    parsed = ex.parse_order(ack)
    assert parsed["filled"] == 0  # ccxt reads the missing executedQty as zero
    order = adapter._order(parsed, "tcx0", creating=True)
    assert order.filled is None
    assert order.created is not None and order.created.timestamp() == 1507725176.595


async def test_a_binance_cancel_answer_states_its_filled_amount_but_not_the_creation(venues):
    adapter = venues("binance")
    ex = binance_with_market(adapter)
    answer = {
        "symbol": "BTCUSDT",
        "origClientOrderId": "tcx0",
        "orderId": 4,
        "orderListId": -1,
        "clientOrderId": "cancel-id",
        "transactTime": 1684804350068,
        "price": "30000.00",
        "origQty": "0.00100",
        "executedQty": "0.00040",
        "cummulativeQuoteQty": "12.0",
        "status": "CANCELED",
        "timeInForce": "GTC",
        "type": "LIMIT",
        "side": "BUY",
    }
    order = adapter._order(ex.parse_order(answer), "tcx0")
    assert (order.filled, order.status, order.client_order_id) == (D("0.0004"), "canceled", "tcx0")
    assert order.created is None  # transactTime is the cancel's


# -- request weight and pace ----------------------------------------------------------------------


async def test_binance_request_costs_are_binance_weights_from_ccxts_table(venues):
    adapter = venues("binance")
    weights = {
        "fetch_order": 4,
        "fetch_open_orders": 6,
        "fetch_orders_since": 20,
        "fetch_my_trades": 20,
        "fetch_balances": 20,
        "fetch_ticker": 2,
        "create_order": 1,
        "cancel_order": 1,
        "load_markets": 20,
    }
    assert {op: adapter.request_cost(op) for op in weights} == weights
    # ccxt's own table, converted: cost = 0.2 * weight at rateLimit 50 ms
    assert adapter._ex.api["private"]["get"]["allOrders"]["cost"] * 5 == weights["fetch_orders_since"]


async def test_the_pace_follows_the_weight_limit_the_venue_announces(venues):
    adapter = venues("binance")
    ex = adapter._ex
    assert adapter.budget().weight_per_minute == 6000  # Binance's own, until the venue says
    # all of 6,000 weight/min in ccxt units of 5 weight: one unit every 1 / 0.02 ms, ccxt's own pace
    assert ex.throttler.config["refillRate"] == pytest.approx(PACE_SHARE * 6000 / 60_000 / 5)
    adapter._learn_limits(
        [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
        ]
    )
    assert adapter.budget().weight_per_minute == 1200
    units_per_ms = PACE_SHARE * 1200 / 60_000 / 5
    assert ex.throttler.config["refillRate"] == pytest.approx(units_per_ms)
    assert ex.rateLimit == pytest.approx(1 / units_per_ms)  # 250 ms per ccxt unit: 20 weight/s
    assert adapter._order_limits == ((50, 10.0), (160000, 86400.0))
    assert [rate.header for rate in adapter._order_rates] == ["x-mbx-order-count-10s", "x-mbx-order-count-1d"]


async def test_venues_without_an_announced_limit_report_ccxts_own_pace_in_its_units(venues):
    adapter = venues("bybit")
    assert adapter.budget().weight_per_minute == pytest.approx(60_000 / adapter._ex.rateLimit)
    assert adapter.request_cost("create_order") == adapter._ex.api["private"]["post"]["v5/order/create"]["cost"]
    assert adapter.request_cost("no_such_operation") == 1.0


# -- the weight window ----------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_window_keeps_the_freshest_count_and_forgets_it_at_the_rollover():
    clock = Clock(6000.0 + 10)  # ten seconds into a minute
    window = WeightWindow(1200, clock=clock)
    window.admit(20)
    assert window.used == 20  # our own count, before the venue says anything
    window.report(500, sent_at=clock.now)
    window.report(300, sent_at=clock.now)  # an older answer arriving late: counts only grow
    assert window.used == 500 and window.reported == 500
    clock.now += 50  # the next minute
    assert window.used == 0 and window.reported is None


def test_an_answer_sent_right_after_a_rollover_is_not_trusted():
    clock = Clock(6000.0 + CLOCK_SLACK / 2)
    window = WeightWindow(1200, clock=clock)
    window.report(1100, sent_at=clock.now)  # may still be the old minute's count on the venue's clock
    assert window.reported is None


def test_the_window_holds_requests_when_the_venue_counts_more_than_we_sent():
    clock = Clock(6000.0 + 20)
    window = WeightWindow(1200, clock=clock)
    assert window.hold(20) == 0  # nothing known: go
    window.admit(20)
    window.report(1130, sent_at=clock.now)  # someone else on the key
    assert window.hold(1) == 0  # 1131 fits under 95 %
    held = window.hold(20)
    assert held == pytest.approx(40 + CLOCK_SLACK)  # until the minute rolls over, and a little
    window.sent(20)
    assert window.estimate() == 1150  # on the wire counts until answered
    window.answered(20)
    clock.now += 40 + CLOCK_SLACK
    assert window.hold(20) == 0 and window.holds == 1


def test_a_request_heavier_than_the_share_still_goes_into_an_empty_window():
    window = WeightWindow(10, clock=Clock(6000.0 + 5))
    assert window.hold(80) == 0


# -- the order windows ----------------------------------------------------------------------------

EPOCH = 1_700_000_000.0  # the venue's clock, at local (monotonic) 0: a 10 s window starts there


def venue_clock(now: float = 0.0) -> tuple[Clock, VenueClock]:
    """A local clock at `now` and the venue's, known to the millisecond (one answer, 0 ms on the wire)."""
    clock = Clock(now)
    venue = VenueClock(clock)
    venue.sample(int((EPOCH + now) * 1000), now, now)
    return clock, venue


def place(rate: OrderRate, clock: Clock, *, count: float | None = None, answered: bool = True):
    """One order admitted now, sent at once and (unless not `answered`) answered at once, stamped now."""
    assert rate._wait(clock.now) is None, "the limiter would hold it"
    slot = asyncio.run(rate.acquire())
    slot.sent(clock.now)
    if answered:
        rate.answered(slot, clock.now, reached=True, venue_ms=int((EPOCH + clock.now) * 1000), count=count)
    return slot


def test_the_venues_clock_is_bounded_by_when_each_stamped_request_left_and_came_back():
    clock = Clock(100.0)
    venue = VenueClock(clock)
    assert not venue.known
    venue.sample(1_000_000_500, sent_at=100.0, answered_at=100.2)  # stamped somewhere on the way
    assert venue.bounds() == pytest.approx((1_000_000.5 - 100.2, 1_000_000.501 - 100.0))
    venue.sample(1_000_000_650, sent_at=100.14, answered_at=100.16)  # a quicker answer: tighter
    assert venue.bounds() == pytest.approx((1_000_000.65 - 100.16, 1_000_000.651 - 100.14))
    venue.sample(1_000_009_000, sent_at=100.2, answered_at=100.2)  # contradicts both: a clock stepped
    assert venue.bounds() == pytest.approx((1_000_009.0 - 100.2, 1_000_009.001 - 100.2))


def test_a_full_order_window_opens_at_the_venues_boundary_not_a_window_after_the_last_send():
    clock, venue = venue_clock(5.0)  # five seconds into a venue window
    rate = OrderWindows(3, 10.0, venue, "x-mbx-order-count-10s")
    for n in range(3):
        place(rate, clock, count=n + 1)
    assert rate._wait(clock.now) == pytest.approx(5.0 + COUNTER_SLACK, abs=0.01)
    clock.now = 9.99
    assert rate._wait(clock.now) is not None  # still the venue's full window
    clock.now = 10.0 + COUNTER_SLACK + 0.002
    assert rate._wait(clock.now) is None  # the venue's next window, not 10.3 s after the last send
    sliding = OrderRate(3, 10.0, clock=clock)
    clock.now = 5.0
    for _ in range(3):
        place(sliding, clock)
    clock.now = 10.0 + COUNTER_SLACK + 0.002
    assert sliding._wait(clock.now) is not None


def test_an_order_still_on_the_wire_counts_in_every_window_it_may_land_in():
    clock, venue = venue_clock(9.95)
    rate = OrderWindows(3, 10.0, venue)  # a venue that does not say its count
    place(rate, clock)
    place(rate, clock, answered=False)  # sent just before the boundary: this window's or the next's
    clock.now = 10.5
    place(rate, clock)
    place(rate, clock)
    assert rate._wait(clock.now) is not None  # the one on the wire may be the next window's third


def test_orders_the_venue_counted_for_someone_else_fill_the_window_too():
    clock, venue = venue_clock(2.0)
    rate = OrderWindows(5, 10.0, venue, "x-mbx-order-count-10s")
    place(rate, clock, count=4)  # the venue had counted three before ours
    place(rate, clock, count=5)
    assert rate._wait(clock.now) is not None
    clock.now = 10.0 + COUNTER_SLACK + 0.002
    assert rate._wait(clock.now) is None


def test_until_a_windows_count_is_heard_one_order_at_a_time_asks_for_it():
    clock, venue = venue_clock(1.0)
    rate = OrderWindows(100, 10.0, venue, "x-mbx-order-count-10s")
    first = place(rate, clock, answered=False)
    assert rate._wait(clock.now) is not None  # nothing heard of this window yet
    rate.answered(first, clock.now, reached=True, venue_ms=int((EPOCH + clock.now) * 1000), count=3)
    assert rate._wait(clock.now) is None
    place(rate, clock, answered=False)
    assert rate._wait(clock.now) is None  # heard: the rest go side by side
    clock.now = 11.0
    place(rate, clock, answered=False)
    assert rate._wait(clock.now) is not None  # the venue counted two of someone else's: ask again
    silent = OrderWindows(100, 10.0, venue, "x-mbx-order-count-10s")
    place(silent, clock, count=None)  # a venue that does not say its count
    place(silent, clock, answered=False)
    assert silent._wait(clock.now) is None


def test_even_after_a_window_the_venue_counted_only_ours_a_new_windows_first_order_asks():
    clock, venue = venue_clock(1.0)
    rate = OrderWindows(100, 10.0, venue, "x-mbx-order-count-10s")
    place(rate, clock, count=1)
    clock.now = 11.0
    place(rate, clock, answered=False)
    assert rate._wait(clock.now) is not None  # someone else may have filled this window already


def test_a_slow_answer_to_a_windows_first_order_holds_the_others_until_it_comes():
    clock, venue = venue_clock(1.0)
    rate = OrderWindows(100, 10.0, venue, "x-mbx-order-count-10s")
    first = place(rate, clock, answered=False)
    clock.now = 7.0
    assert rate._wait(clock.now) is not None
    rate.answered(first, clock.now, reached=False)  # no answer at all (a timeout)
    now, late = rate._index(EPOCH + clock.now), rate._index(EPOCH + clock.now + LATE_LANDING)
    assert rate._count(now) == rate._count(late) == 1  # it may land in any window until LATE_LANDING
    assert rate._count(late + 1) == 0
    place(rate, clock, answered=False)  # the next one asks in its place
    assert rate._wait(clock.now) is not None


def asking(rate: OrderWindows, clock: Clock, count: float | None, calls: list[float]) -> None:
    """`rate` asks the venue (its answer: `count` orders in the window now, None: no answer)."""

    async def ask() -> bool:
        calls.append(clock.now)
        if count is not None:
            rate.heard(count, clock.now, clock.now)
        return count is not None

    rate.ask = ask


def test_before_a_windows_first_order_the_venue_is_asked_what_the_window_holds():
    clock, venue = venue_clock(1.0)
    rate = OrderWindows(100, 10.0, venue, "x-mbx-order-count-10s")
    calls: list[float] = []
    asking(rate, clock, 97, calls)
    assert rate._wait(clock.now) == ASK
    for _ in range(3):  # the venue holds 97 (someone else's): three more fit
        slot = asyncio.run(rate.acquire())
        slot.sent(clock.now)
    assert calls == [1.0]  # once per window
    assert rate._wait(clock.now) == pytest.approx(9.0 + COUNTER_SLACK, abs=0.01)
    clock.now = 10.0 + COUNTER_SLACK + 0.002
    for slot in list(rate._slots):
        rate.answered(slot, 5.0, reached=True, venue_ms=int((EPOCH + 5.0) * 1000), count=100)
    assert rate._wait(clock.now) == ASK  # the next window is asked about too


def test_near_a_boundary_the_venue_is_asked_once_its_clock_is_certainly_in_the_next_window():
    clock, venue = venue_clock(9.995)
    rate = OrderWindows(100, 10.0, venue, "x-mbx-order-count-10s")
    asking(rate, clock, 0, [])
    assert rate._wait(clock.now) == pytest.approx(0.005 + COUNTER_SLACK, abs=0.002)
    rate.heard(0, 9.99, 10.01)  # an answer that may be either window's tells neither
    assert rate._reports == {}


def test_where_the_venue_cannot_be_asked_the_windows_first_order_asks():
    clock, venue = venue_clock(1.0)
    rate = OrderWindows(100, 10.0, venue, "x-mbx-order-count-10s")
    calls: list[float] = []
    asking(rate, clock, None, calls)
    first = asyncio.run(rate.acquire())
    first.sent(clock.now)
    assert calls == [1.0] and rate._wait(clock.now) is not None  # until the first order's answer
    rate.answered(first, clock.now, reached=True, venue_ms=int((EPOCH + clock.now) * 1000), count=1)
    assert rate._wait(clock.now) is None and calls == [1.0]


def test_before_the_venues_clock_is_known_the_window_slides_with_our_own_clock():
    clock = Clock(5.0)
    rate = OrderWindows(2, 10.0, VenueClock(clock), "x-mbx-order-count-10s")
    for _ in range(2):
        slot = asyncio.run(rate.acquire())
        slot.sent(clock.now)
    clock.now = 15.0
    assert rate._wait(clock.now) is not None  # 10 s and a margin after the sends
    clock.now = 15.4
    assert rate._wait(clock.now) is None


def test_an_order_count_refusal_widens_the_margin_around_the_venues_boundaries():
    _, venue = venue_clock()
    rate = OrderWindows(5, 10.0, venue, "x-mbx-order-count-10s")
    rate.refused()
    assert rate.slack == 2 * COUNTER_SLACK


# -- bounded memory -------------------------------------------------------------------------------


def test_the_id_maps_keep_the_most_recently_used_ids_only():
    ids = _IdMap(size=3)
    for n in range(5):
        ids.remember(f"c{n}", str(n))
    assert len(ids) == 3 and ids.order_id("c0") is None and ids.client_id("1") is None
    assert ids.order_id("c2") == "2"  # a lookup keeps it
    ids.remember("c5", "5")
    assert ids.order_id("c2") == "2" and ids.order_id("c3") is None
    ids.forget("c2")
    assert ids.order_id("c2") is None and ids.client_id("2") is None
