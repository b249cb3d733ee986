"""The ccxt adapter against the emulator: the port's operations, and each failure in its class."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from helpers import DATA, eventually

from executor.config import ConfigError, load_config
from executor.exchanges.base import DuplicateOrder, MaybePlaced, NotPlaced, OrderNotFound, Rejected
from executor.exchanges.ccxt import CcxtExchange, retry_after_of, scrub
from executor.exchanges.ccxt.throttle import OrderRate as _OrderRate
from executor.models import OrderStatus
from executor.venue.emulator.app import DEMO_API_KEY, DEMO_API_SECRET
from executor.venue.faults import Limits

from .support import (
    BAN_S,
    MARKETS,
    RETRY_AFTER_S,
    buy,
    emulator_adapter,
    emulator_faults,
    own_venue,
)

pytestmark = pytest.mark.integration

D = Decimal
BTC = "BTC/USDT"


def whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


# -- building it ------------------------------------------------------------------------------


async def test_from_settings_takes_keys_from_the_environment_and_api_url_from_the_config(emulator, monkeypatch):
    monkeypatch.setenv("TRADECONSOLE_API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("TRADECONSOLE_API_SECRET", DEMO_API_SECRET)
    env = {"TRADECONSOLE_EXCHANGE__ID": "binance", "TRADECONSOLE_EXCHANGE__API_URL": emulator.url}
    settings = load_config(None, env=env)
    async with CcxtExchange.from_settings(settings) as exchange:
        assert (exchange.name, exchange.mode) == ("binance", "LIVE")
        urls = exchange._ex.urls["api"]
        assert urls["public"] == urls["private"] == f"{emulator.url}/api/v3"
        assert urls["v1"] == f"{emulator.url}/api/v1"
        assert set(await exchange.load_markets()) == set(MARKETS)
        assert (await exchange.fetch_balances())["USDT"].free == D(100000)
    # spot only: exchangeInfo, then the account; nothing from Binance's margin or currency endpoints
    assert set(emulator.emulator.requests) == {"GET /api/v3/exchangeInfo", "GET /api/v3/account"}


def test_from_settings_without_keys_is_a_config_error(monkeypatch):
    monkeypatch.delenv("TRADECONSOLE_API_KEY", raising=False)
    monkeypatch.delenv("TRADECONSOLE_API_SECRET", raising=False)
    settings = load_config(None, env={"TRADECONSOLE_EXCHANGE__ID": "binance"})
    with pytest.raises(ConfigError, match="TRADECONSOLE_API_KEY: is not set"):
        CcxtExchange.from_settings(settings)


def test_an_unknown_exchange_id_is_a_config_error():
    settings = load_config(None, env={"TRADECONSOLE_EXCHANGE__ID": "nosuchvenue"})
    with pytest.raises(ConfigError, match=r"exchange\.id: 'nosuchvenue' is not a ccxt exchange id"):
        CcxtExchange.from_settings(settings, api_key="k", api_secret="s")


async def test_sandbox_mode_uses_the_venues_testnet():
    async with CcxtExchange("binance", api_key="k", api_secret="s", sandbox=True) as exchange:
        assert exchange.mode == "SANDBOX"
        assert exchange._ex.urls["api"]["public"].startswith("https://testnet.binance.vision/")


# -- the port -----------------------------------------------------------------------------------


async def test_markets_come_from_ccxt_precision_and_limits(adapter):
    markets = await adapter.load_markets()
    btc = markets[BTC]
    assert (btc.base, btc.quote) == ("BTC", "USDT")
    assert btc.amount_step == D("0.00001") and btc.price_tick == D("0.01")
    assert btc.min_amount == D("0.00001") and btc.min_cost == D(5)
    assert btc.taker_fee == D("0.001") and btc.max_amount == D(9000)


async def test_ticker_and_balances(adapter):
    ticker = await adapter.fetch_ticker(BTC)
    assert 0 < ticker.bid < ticker.ask and ticker.last > 0
    balances = await adapter.fetch_balances()
    assert {c: b.free for c, b in balances.items()} == {"BTC": 1, "ETH": 10, "SOL": 100, "USDT": 100000}


async def test_a_limit_order_is_created_found_listed_and_canceled_by_client_order_id(adapter, emulator):
    order = await buy(adapter, "tc-adapter-0", price="30000")
    assert (order.status, order.client_order_id, order.price) == (OrderStatus.OPEN, "tc-adapter-0", D(30000))
    assert order.exchange_order_id == "1"
    found = await adapter.fetch_order("tc-adapter-0", BTC)
    assert found.status is OrderStatus.OPEN and found.amount == D("0.001")
    assert [o.client_order_id for o in await adapter.fetch_open_orders()] == ["tc-adapter-0"]
    canceled = await adapter.cancel_order("tc-adapter-0", BTC)
    assert canceled.status is OrderStatus.CANCELED and canceled.client_order_id == "tc-adapter-0"
    assert await adapter.fetch_open_orders() == []
    # lookups by client order id, and open orders market by market (6 weight each, not 80)
    requests = emulator.emulator.requests
    assert requests["GET /api/v3/order"] == 1 and requests["GET /api/v3/openOrders"] == 2 * len(MARKETS)


async def test_a_market_order_reports_its_fill_average_and_fee(adapter):
    order = await buy(adapter, "tc-adapter-m-0", amount="0.002")
    assert order.status is OrderStatus.FILLED and order.filled == D("0.002")
    assert order.average and order.average > 0
    assert order.fee > 0 and order.fee_currency == "BTC"  # a buy pays its fee in the asset received
    assert order.price is None


async def test_amounts_go_out_on_the_grid_and_a_small_notional_never_leaves(adapter, emulator):
    order = await buy(adapter, "tc-adapter-grid-0", amount="0.0012345", price="30000")
    assert order.amount == D("0.00123")  # truncated, never rounded up
    before = emulator.emulator.requests["POST /api/v3/order"]
    with pytest.raises(Rejected, match="below the minimum 5"):
        await buy(adapter, "tc-adapter-tiny-0", amount="0.0001", price="30000")
    assert emulator.emulator.requests["POST /api/v3/order"] == before


async def test_my_trades_carry_the_client_order_id(adapter):
    order = await buy(adapter, "tc-adapter-t-0", amount="0.003")
    trades = await adapter.fetch_my_trades(BTC)
    assert trades and {t.client_order_id for t in trades} == {"tc-adapter-t-0"}
    assert {t.exchange_order_id for t in trades} == {order.exchange_order_id}
    assert sum(t.amount for t in trades) == D("0.003")


async def test_a_venue_without_lookups_by_client_id_is_scanned_instead(adapter, emulator):
    await buy(adapter, "tc-scan-open-0", price="30000")
    await buy(adapter, "tc-scan-done-0")
    async with emulator_adapter(emulator.url) as other:
        other.name = "binance-without-client-ids"  # as if ccxt could not look orders up by client id
        await other.load_markets()
        assert (await other.fetch_order("tc-scan-open-0", BTC)).status is OrderStatus.OPEN
        assert (await other.fetch_order("tc-scan-done-0", BTC)).status is OrderStatus.FILLED
        with pytest.raises(OrderNotFound):
            await other.fetch_order("tc-scan-nobody-0", BTC)
        canceled = await other.cancel_order("tc-scan-open-0", BTC)  # by the exchange id it found
        assert canceled.status is OrderStatus.CANCELED
    requests = emulator.emulator.requests
    assert requests["GET /api/v3/allOrders"] >= 1 and requests["GET /api/v3/order"] == 0


# -- the taxonomy -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["timeout_after_accept", "reset_after_accept", "error_after"])
async def test_a_create_answered_after_acting_is_maybe_placed_and_is_there(adapter, faults, fault):
    faults.script("POST /api/v3/order", fault)
    with pytest.raises(MaybePlaced):
        await buy(adapter, f"tc-{fault}-0")
    assert (await adapter.fetch_order(f"tc-{fault}-0", BTC)).status is OrderStatus.FILLED


async def test_a_5xx_before_acting_is_maybe_placed_and_the_order_is_absent(adapter, faults):
    faults.script("POST /api/v3/order", "error_before")
    with pytest.raises(MaybePlaced):
        await buy(adapter, "tc-before-0")
    with pytest.raises(OrderNotFound):
        await adapter.fetch_order("tc-before-0", BTC)


async def test_an_invisible_order_turns_up_once_the_venue_shows_it(adapter, faults):
    faults.script("POST /api/v3/order", "invisible")
    order = await buy(adapter, "tc-invisible-0", price="30000")
    assert order.status is OrderStatus.OPEN
    with pytest.raises(OrderNotFound):
        await adapter.fetch_order("tc-invisible-0", BTC)
    assert await adapter.fetch_open_orders() == []
    found = []

    async def lookup():
        try:
            found.append(await adapter.fetch_order("tc-invisible-0", BTC))
        except OrderNotFound:
            pass

    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        await lookup()
    assert found and found[0].status is OrderStatus.OPEN


async def test_a_429_is_not_placed_and_every_request_waits_out_its_retry_after(adapter, faults, emulator):
    faults.script("POST /api/v3/order", "rate_limit")
    with pytest.raises(NotPlaced) as caught:
        await buy(adapter, "tc-429-0")
    # Binance sends Retry-After in whole seconds, rounded up
    assert caught.value.rate_limited and caught.value.retry_after == pytest.approx(whole_seconds(RETRY_AFTER_S))
    started = time.monotonic()
    await adapter.fetch_ticker(BTC)  # another endpoint: the cooldown is shared
    assert time.monotonic() - started >= caught.value.retry_after * 0.9
    assert adapter.rate_limit_state().trips == 1
    assert emulator.emulator.statuses[429] == 1  # nothing was sent inside the Retry-After


async def test_requests_queued_during_a_cooldown_never_earn_a_ban():
    faults = emulator_faults(limits=Limits(ban_after=1, ban_seconds=30))
    async with own_venue(emulator_adapter, faults=faults) as (running, adapter):
        running.emulator.faults.script("GET /api/v3/account", "rate_limit")
        results = await asyncio.gather(*(adapter.fetch_balances() for _ in range(8)), return_exceptions=True)
        assert sum(isinstance(r, NotPlaced) for r in results) == 1
        assert running.emulator.statuses[418] == 0 and running.emulator.statuses[429] == 1


async def test_requests_queued_during_a_cooldown_resume_at_the_throttles_pace_not_in_a_burst():
    faults = emulator_faults(limits=Limits(ban_after=3, ban_seconds=30))
    async with own_venue(emulator_adapter, faults=faults) as (running, adapter):
        # A 429 on the first ticker, and another on the fourth: the tickers queued behind the first
        # during its cooldown must not all be in the air when the second 429 comes back.
        running.emulator.faults.script("GET /api/v3/ticker/24hr", "rate_limit", "none", "none", "rate_limit")
        results = await asyncio.gather(*(adapter.fetch_ticker(BTC) for _ in range(24)), return_exceptions=True)
        assert sum(isinstance(r, NotPlaced) for r in results) == 2
        assert running.emulator.statuses[418] == 0


async def test_a_418_ban_is_not_placed_for_the_ban_time(adapter, emulator):
    emulator.emulator.ban(BAN_S)
    with pytest.raises(NotPlaced) as caught:
        await adapter.fetch_balances()
    # the longer of Retry-After (whole seconds) and the ban time in the body
    assert caught.value.rate_limited and 0 < caught.value.retry_after <= whole_seconds(BAN_S)
    started = time.monotonic()
    await adapter.fetch_balances()
    assert time.monotonic() - started >= caught.value.retry_after * 0.9


async def test_a_refused_connection_is_certainly_not_placed():
    async with CcxtExchange("binance", api_key="k", api_secret="s", api_url="http://127.0.0.1:9") as adapter:
        with pytest.raises(NotPlaced) as caught:
            await adapter.load_markets()
    assert not caught.value.rate_limited


async def test_a_timestamp_outside_the_recv_window_is_not_placed_and_the_clock_is_corrected(adapter, emulator):
    adapter._ex.options["timeDifference"] = 60_000  # as if our clock ran a minute ahead of the venue's
    with pytest.raises(NotPlaced, match="-1021") as caught:
        await buy(adapter, "tc-clock-0", price="30000")
    assert not caught.value.rate_limited and adapter.cooldown.remaining == 0
    assert emulator.emulator.engine.all_orders() == []  # certainly not placed
    assert abs(adapter._ex.options["timeDifference"]) < 5_000  # learned from the venue's time
    assert (await buy(adapter, "tc-clock-1", price="30000")).status is OrderStatus.OPEN


async def test_venue_refusals_are_rejected_and_definitive_answers_keep_their_meaning(adapter):
    with pytest.raises(Rejected, match="InsufficientFunds"):
        await buy(adapter, "tc-poor-0", amount="50")
    # a client order id is unique among open orders (Binance lets an ended order's id be reused)
    await buy(adapter, "tc-twice-0", price="30000")
    with pytest.raises(DuplicateOrder):
        await buy(adapter, "tc-twice-0", price="30000")
    with pytest.raises(OrderNotFound):
        await adapter.cancel_order("tc-nobody-0", BTC)
    with pytest.raises(Rejected):
        await buy(adapter, "tc-bad-symbol-0", symbol="DOGE/USDT")


async def test_a_bad_signature_is_rejected(emulator):
    async with emulator_adapter(emulator.url, api_secret="wrong") as adapter:
        with pytest.raises(Rejected, match="-1022"):
            await adapter.fetch_balances()


async def test_error_messages_carry_no_query_string_or_signature(adapter, faults):
    faults.script("GET /api/v3/order", "timeout_after_accept")
    with pytest.raises(MaybePlaced) as caught:
        await adapter.fetch_order("tc-anything-0", BTC)
    text = str(caught.value)
    assert "/api/v3/order" in text and "?" not in text and "signature" not in text and "timestamp" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_the_order_rate_limit_is_learned_from_exchange_info():
    faults = emulator_faults(limits=Limits(orders_per_10s=7))
    async with own_venue(emulator_adapter, faults=faults, load_markets=False) as (_, adapter):
        assert adapter._order_limits == ((100, 10.0), (200_000, 86_400.0))  # Binance's, until the venue says
        await adapter.load_markets()
        assert adapter._order_limits == ((7, 10.0), (200_000, 86_400.0))


async def test_close_releases_the_session(emulator):
    adapter = CcxtExchange("binance", api_key="k", api_secret="s", api_url=emulator.url, markets=list(MARKETS))
    await adapter.load_markets()
    session = adapter._ex.session
    await adapter.close()
    assert session.closed


# -- pure helpers -------------------------------------------------------------------------------


async def test_the_order_rate_limiter_counts_sends_not_reservations():
    now = [0.0]
    rate = _OrderRate(2, 10.0, clock=lambda: now[0])
    a, b = await rate.acquire(), await rate.acquire()
    waiter = asyncio.ensure_future(rate.acquire())
    await asyncio.sleep(0.02)
    assert not waiter.done()  # both slots reserved, not sent: they count as "now"
    a.sent_at = b.sent_at = 0.0
    now[0] = 10.0
    await asyncio.sleep(0.02)
    assert not waiter.done()  # inside the window and its margin
    now[0] = 10.31
    await eventually(waiter.done, timeout=2)
    rate.release(b)  # already sent: releasing changes nothing
    assert len(rate._busy(now[0])) == 1


def test_retry_after_reads_seconds_http_dates_and_binance_ban_times():
    assert retry_after_of({"Retry-After": "3"}, None) == 3
    assert retry_after_of({"retry-after": "0.25"}, None) == 0.25
    assert retry_after_of({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None, now=1445412470.0) == 10
    body = '{"code":-1003,"msg":"Way too much request weight used; IP banned until 1700000030000."}'
    assert retry_after_of({}, body, now=1_700_000_000.0) == 30
    assert retry_after_of(None, None) is None


def test_scrub_removes_query_strings_signatures_and_secrets():
    text = "binance GET http://h/api/v3/order?symbol=X&timestamp=1&signature=abc123 key=K3Y sec=S3CR3T"
    assert scrub(text, ["K3Y", "S3CR3T"]) == "binance GET http://h/api/v3/order key=*** sec=***"
    assert scrub("body signature=deadbeef&x=1") == "body signature=***&x=1"


# -- OKX and Bybit: ccxt's own clients against recorded answers on 127.0.0.1 -------------------------


class RecordedVenue:
    """A local HTTP server answering each "METHOD /path" with a recorded venue body (a callable of
    the request's query and JSON body), recording every request: ccxt runs unchanged against it."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.url = ""
        self._runner: Any = None

    async def __aenter__(self) -> RecordedVenue:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            endpoint = f"{request.method} {request.path}"
            text = await request.text()
            body = json.loads(text) if text.strip()[:1] in ("{", "[") else {}
            if isinstance(body, list):  # a batch of one (OKX's create)
                body = body[0] if body else {}
            query = dict(request.query)
            self.requests.append((endpoint, query, body))
            answer = self.answers.get(endpoint)
            if answer is None:
                return web.json_response({"code": "404", "msg": f"not recorded: {endpoint}"}, status=404)
            return web.json_response(answer(query, body) if callable(answer) else answer)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    def sent(self, endpoint: str) -> list[dict[str, Any]]:
        """Query and body of every request to `endpoint`, merged."""
        return [{**query, **body} for e, query, body in self.requests if e == endpoint]


# Recorded from the venues' documentation (shapes as ccxt 4.5 parses them).
RECORDED = json.loads((DATA / "venue_answers.json").read_text())
OKX_INSTRUMENT = RECORDED["okx"]["instrument"]
BYBIT_INSTRUMENT = RECORDED["bybit"]["instrument"]


def okx_order(state: str, filled: str) -> dict[str, Any]:
    return RECORDED["okx"]["order"] | {"state": state, "accFillSz": filled}


def okx(data: list[Any], code: str = "0", msg: str = "") -> Callable[..., Any]:
    return lambda query, body: {"code": code, "msg": msg, "data": data}


def bybit_order(status: str, filled: str) -> dict[str, Any]:
    leaves = str(D("0.001") - D(filled))
    return RECORDED["bybit"]["order"] | {"orderStatus": status, "cumExecQty": filled, "leavesQty": leaves}


def bybit(result: dict[str, Any], code: int = 0, msg: str = "OK") -> Callable[..., Any]:
    return lambda query, body: {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": 1}


MARKETS_OF = {
    "okx": {"GET /api/v5/public/instruments": okx([OKX_INSTRUMENT])},
    "bybit": {
        "GET /v5/market/instruments-info": bybit({"category": "spot", "list": [BYBIT_INSTRUMENT], "nextPageCursor": ""})
    },
}


@contextlib.asynccontextmanager
async def on_recorded(exchange_id: str, answers: dict[str, Any]) -> AsyncIterator[tuple[RecordedVenue, CcxtExchange]]:
    """The adapter on ccxt's `exchange_id` against a `RecordedVenue` giving `answers`, and the
    venue's BTC/USDT instrument for the markets (OKX asks for a passphrase besides key and secret)."""
    keys = {"api_key": "k", "api_secret": "s"} | ({"password": "passphrase-0"} if exchange_id == "okx" else {})
    async with (
        RecordedVenue(MARKETS_OF[exchange_id] | answers) as venue,
        CcxtExchange(exchange_id, **keys, api_url=venue.url, markets=[BTC]) as adapter,
    ):
        yield venue, adapter


async def test_okx_names_orders_by_clordid_to_create_look_up_and_cancel():
    answers = {
        "POST /api/v5/trade/batch-orders": okx(
            [
                {
                    "clOrdId": "tcokx0",
                    "ordId": "680800019749904384",
                    "tag": "",
                    "ts": "1708587373362",
                    "sCode": "0",
                    "sMsg": "Order placed",
                }
            ]
        ),
        "GET /api/v5/trade/order": okx([okx_order("live", "0")]),
        "POST /api/v5/trade/cancel-order": okx(
            [{"clOrdId": "tcokx0", "ordId": "680800019749904384", "sCode": "0", "sMsg": ""}]
        ),
    }
    async with on_recorded("okx", answers) as (venue, adapter):
        assert set(await adapter.load_markets()) == {BTC}
        created = await buy(adapter, "tcokx0", price="30000")
        assert created.exchange_order_id == "680800019749904384"
        assert created.filled is None  # an acknowledgement: it does not say
        found = await adapter.fetch_order("tcokx0", BTC)
        assert (found.status, found.filled, found.client_order_id) == (OrderStatus.OPEN, D(0), "tcokx0")
        assert found.created is not None and found.created.timestamp() == 1708587373.0
        canceled = await adapter.cancel_order("tcokx0", BTC)
        assert canceled.filled is None and canceled.client_order_id == "tcokx0"
    [create] = venue.sent("POST /api/v5/trade/batch-orders")
    assert create["clOrdId"] == "tcokx0" and create["instId"] == "BTC-USDT"
    [lookup] = venue.sent("GET /api/v5/trade/order")
    assert lookup["clOrdId"] == "tcokx0" and "ordId" not in lookup
    [cancel] = venue.sent("POST /api/v5/trade/cancel-order")
    assert cancel["clOrdId"] == "tcokx0" and "ordId" not in cancel
    # no private currency list on the way to the markets
    assert [e for e, _, _ in venue.requests if "currencies" in e] == []


async def test_okx_refuses_a_duplicate_clordid_as_a_duplicate_order():
    refused = [{"clOrdId": "tcokx0", "ordId": "", "sCode": "51016", "sMsg": "Duplicated clOrdId"}]
    answers = {
        "POST /api/v5/trade/batch-orders": okx(refused, code="1", msg="All operations failed"),
    }
    async with on_recorded("okx", answers) as (_, adapter):
        await adapter.load_markets()
        with pytest.raises(DuplicateOrder, match="51016"):
            await buy(adapter, "tcokx0", price="30000")


async def test_bybit_looks_orders_up_and_cancels_them_by_order_link_id():
    history = {"list": [bybit_order("Cancelled", "0.0004")], "nextPageCursor": "", "category": "spot"}
    answers = {
        # not open any more: the open orders do not have it, the history does
        "GET /v5/order/realtime": bybit({"list": [], "nextPageCursor": "", "category": "spot"}),
        "GET /v5/order/history": bybit(history),
        "POST /v5/order/cancel": bybit({"orderId": "1321052653536515584", "orderLinkId": "tcbyb0"}),
    }
    async with on_recorded("bybit", answers) as (venue, adapter):
        await adapter.load_markets()
        found = await adapter.fetch_order("tcbyb0", BTC)
        assert (found.status, found.filled, found.exchange_order_id) == (
            OrderStatus.CANCELED,
            D("0.0004"),
            "1321052653536515584",
        )
        canceled = await adapter.cancel_order("tcbyb0", BTC)
        assert canceled.filled is None  # Bybit's cancel answer is a bare acknowledgement
        assert canceled.client_order_id == "tcbyb0"
    for endpoint in ("GET /v5/order/realtime", "GET /v5/order/history", "POST /v5/order/cancel"):
        [sent] = venue.sent(endpoint)
        assert sent["orderLinkId"] == "tcbyb0" and "orderId" not in sent, endpoint
        assert sent["symbol"] == "BTCUSDT" and sent["category"] == "spot"
    # canceled orders included: not ccxt's fetchClosedOrders, whose history is the filled ones only
    assert "orderStatus" not in venue.sent("GET /v5/order/history")[0]


async def test_bybit_says_not_found_when_neither_open_orders_nor_history_know_the_id():
    empty = bybit({"list": [], "nextPageCursor": "", "category": "spot"})
    answers = {
        "GET /v5/order/realtime": empty,
        "GET /v5/order/history": empty,
    }
    async with on_recorded("bybit", answers) as (_, adapter):
        await adapter.load_markets()
        with pytest.raises(OrderNotFound):
            await adapter.fetch_order("tcbyb-nobody0", BTC)


async def test_bybit_pages_its_order_history_by_cursor():
    first = [
        bybit_order("Filled", "0.001")
        | {"orderId": str(n), "orderLinkId": f"tcb{n}", "createdTime": str(1672217748000 + n)}
        for n in range(50)
    ]
    second = [bybit_order("Cancelled", "0") | {"orderId": "50", "orderLinkId": "tcb50", "createdTime": "1672217748050"}]

    def history(query: dict[str, str], body: dict[str, Any]) -> Any:
        page = second if query.get("cursor") == "page2" else first
        cursor = "page2" if page is first else ""
        return bybit({"list": page, "nextPageCursor": cursor, "category": "spot"})(query, body)

    answers = {
        "GET /v5/order/realtime": bybit({"list": [], "nextPageCursor": "", "category": "spot"}),
        "GET /v5/order/history": history,
    }
    async with on_recorded("bybit", answers) as (venue, adapter):
        await adapter.load_markets()
        since = datetime.fromtimestamp(1672217748.0, UTC)
        orders = await adapter.fetch_orders_since(BTC, since)
    assert [o.client_order_id for o in orders] == [f"tcb{n}" for n in range(51)]
    assert [q.get("cursor") for q in venue.sent("GET /v5/order/history")] == [None, "page2"]


async def test_a_create_inside_an_admission_uses_that_admission():
    faults = emulator_faults(limits=Limits(orders_per_10s=2))
    async with own_venue(emulator_adapter, faults=faults) as (running, adapter):
        for n in range(2):
            async with adapter.admit():
                await buy(adapter, f"tc-admit-{n}", price="30000")  # no second slot for the create
        third = asyncio.ensure_future(adapter.admit().__aenter__())
        done, _ = await asyncio.wait({third}, timeout=0.3)
        assert not done  # two orders in this 10 s window: the third waits
        third.cancel()
        assert running.emulator.statuses[429] == 0
