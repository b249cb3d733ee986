"""The core's trace and its market rules: every operator action and outcome is a Log line with its
actor, journaled in the store's `log` table; the market view; `[approval] far_from_market_pct`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from harness import open_service, paper_engine
from helpers import eventually, make_settings

from executor.events import LogLine, MarketsUpdated
from executor.exchanges.paper import PaperExchange
from executor.markets import FarFromMarket, MarketView
from executor.models import OrderStatus, SignalStatus
from executor.service import TradingService

S = SignalStatus
ACTOR = "ops@desk"


@pytest.fixture
async def manual(db_path):
    service = await open_service(db_path)
    yield service
    await service.close()


def line(**fields) -> str:
    base = {"id": "s1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01}
    return json.dumps(base | fields)


def far_below(service: TradingService, symbol: str = "BTC/USDT") -> float:
    """A limit price 20 % under the market: it rests, and it is far from the market."""
    return float(service.market_view.price(symbol) * Decimal("0.8"))


async def journal(service: TradingService) -> list[str]:
    await eventually(lambda: not service._log_buffer and not service._persisting)
    return [row["message"] for row in await service.store.log_entries(limit=1000)]


async def has_line(service: TradingService, *words: str) -> str:
    for _ in range(500):
        lines = [m for m in await journal(service) if all(w in m for w in words)]
        if lines:
            return lines[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no journaled Log line with {words}")


# -- the market view ---------------------------------------------------------------------------------


async def test_the_market_view_is_in_the_snapshot_with_last_bid_ask_and_change(manual):
    snapshot = await manual.snapshot()
    assert set(snapshot.markets) == set(manual.settings.exchange.markets)
    quote = snapshot.markets["BTC/USDT"]
    assert quote.bid <= quote.last <= quote.ask or quote.bid <= quote.ask
    assert quote.change_pct is not None


async def test_a_round_of_the_market_view_is_published_once_for_every_view(manual):
    seen = []
    manual.bus.subscribe(lambda e: isinstance(e, MarketsUpdated) and seen.append(e))
    await manual.market_view.refresh()
    assert len(seen) == 1 and set(seen[0].quotes) == set(manual.settings.exchange.markets)


class Budgeted(PaperExchange):
    """A venue with a request-weight limit and a bulk tickers call, counting what it is asked."""

    def __init__(self, engine, weight: float) -> None:
        super().__init__(engine)
        self.weight, self.bulk_calls = weight, 0

    def budget(self):
        from executor.exchanges.base import RequestBudget

        return RequestBudget(weight_per_minute=self.weight)

    def request_cost(self, operation: str) -> float:
        return 40.0 if operation == "fetch_tickers" else 2.0

    async def fetch_tickers(self, symbols):
        self.bulk_calls += 1
        return {s: await self.fetch_ticker(s) for s in symbols}


async def test_the_market_view_uses_one_bulk_request_within_five_percent_of_the_budget(db_path):
    settings = make_settings()
    engine = paper_engine(settings)
    exchange = Budgeted(engine, weight=6000)
    service = await TradingService.open(settings, db_path, exchange=exchange, actor=ACTOR, poll_interval=0.02)
    try:
        await service.start()
        assert exchange.bulk_calls == 1  # the first round, at start: one request for every market
        view: MarketView = service.market_view
        # 40 weight a round in 5 % of 6,000 a minute: one round every 8 s, never under the floor of 3 s.
        assert view.interval() == pytest.approx(8.0)
        exchange.weight = 600_000
        assert view.interval() == 3.0
    finally:
        await service.close()


# -- far from the market -----------------------------------------------------------------------------


async def test_approving_far_from_the_market_is_refused_unconfirmed(manual):
    await manual.receive(line(price=far_below(manual)), source="t")
    with pytest.raises(FarFromMarket) as refused:
        await manual.approve("s1")
    assert "below the market" in str(refused.value) and refused.value.limit == 5
    assert (await manual.store.get_signal("s1")).status is S.PENDING
    assert await manual.store.orders() == []


async def test_approving_far_from_the_market_goes_ahead_confirmed(manual):
    await manual.receive(line(price=far_below(manual)), source="t")
    await manual.approve("s1", confirm=True)
    record = await manual.store.get_signal("s1")
    assert record.status is S.APPROVED and "confirmed" in record.reason and "from the market" in record.reason
    assert len(await manual.store.orders()) == 1


async def test_approving_near_the_market_needs_no_confirmation(manual):
    await manual.receive(line(), source="t")  # no price: the touch
    await manual.approve("s1")
    assert (await manual.store.get_signal("s1")).status is S.APPROVED


async def test_far_from_market_pct_zero_never_asks(db_path):
    service = await open_service(db_path, approval={"far_from_market_pct": 0})
    try:
        await service.receive(line(price=far_below(service)), source="t")
        await service.approve("s1")
        assert (await service.store.get_signal("s1")).status is S.APPROVED
    finally:
        await service.close()


async def test_amending_a_signal_far_from_the_market_is_refused_unconfirmed(manual):
    await manual.receive(line(), source="t")
    price = Decimal(str(far_below(manual)))
    with pytest.raises(FarFromMarket):
        await manual.amend_signal("s1", price=price)
    amended = await manual.amend_signal("s1", price=price, confirm=True)
    assert amended.reference_price == price


async def test_amending_an_open_order_far_from_the_market_is_refused_unconfirmed(manual):
    near = float(manual.market_view.price("BTC/USDT") * Decimal("0.97"))
    await manual.receive(line(price=near), source="t")
    await manual.approve("s1")
    await eventually(lambda: [o.status for o in manual.executor.active_orders.values()] == [OrderStatus.OPEN])
    coid = next(iter(manual.executor.active_orders))
    with pytest.raises(FarFromMarket):
        await manual.amend_order(coid, price=Decimal(str(round(far_below(manual), 2))))
    assert manual.executor.active_orders[coid].status is OrderStatus.OPEN


async def test_auto_approval_leaves_a_signal_far_from_the_market_pending_with_the_reason(db_path):
    service = await open_service(db_path, approval={"mode": "auto"})
    try:
        record = await service.receive(line(price=far_below(service)), source="t")
        assert record.status is S.PENDING and record.reason.startswith("far from market: ")
        assert record.decided_by == "auto"
        assert await service.store.orders() == []
        assert "waits for an operator: far from market" in await has_line(service, "s1 waits for an operator")
    finally:
        await service.close()


# -- the trace -------------------------------------------------------------------------------------


async def test_approve_and_the_outcomes_are_journaled_with_their_actors(manual):
    await manual.receive(line(order_type="market"), source="t")
    await manual.approve("s1")
    assert f"(by {ACTOR})" in await has_line(manual, "s1 approved", "BTC/USDT")
    assert "(by exchange)" in await has_line(manual, "placed and filled")


async def test_reject_is_journaled_with_its_actor(manual):
    await manual.receive(line(), source="t")
    await manual.reject("s1", reason="not today")
    assert await has_line(manual, "s1 rejected; not today", f"(by {ACTOR})")


async def test_expiry_is_journaled(db_path):
    now = [datetime.now(UTC)]
    settings = make_settings()
    engine = paper_engine(settings)
    service = await TradingService.open(
        settings, db_path, exchange=PaperExchange(engine), actor=ACTOR, clock=lambda: now[0]
    )
    try:
        await service.start()
        await service.receive(line(ttl_seconds=5), source="t")
        now[0] += timedelta(seconds=6)
        assert await service.expire_due() == 1
        assert await has_line(service, "s1 expired", "(by ttl)")
    finally:
        await service.close()


async def test_amend_cancel_and_partial_fill_are_journaled_once_each(manual):
    near = float(manual.market_view.price("BTC/USDT") * Decimal("0.97"))
    await manual.receive(line(price=near, amount=0.1), source="t")
    await manual.amend_signal("s1", amount=Decimal("0.2"))
    assert await has_line(manual, "s1 amended: amount 0.2", f"(by {ACTOR})")
    await manual.approve("s1")
    await eventually(lambda: [o.status for o in manual.executor.active_orders.values()] == [OrderStatus.OPEN])
    coid = next(iter(manual.executor.active_orders))
    assert await has_line(manual, "s1 order placed")
    for part in ("0.05", "0.05"):
        manual.exchange.engine.force_fill(coid, Decimal(part))
        await manual.executor.poll()
    await manual.cancel_order(coid)
    assert await has_line(manual, coid, "cancel requested", f"(by {ACTOR})")
    assert "0.1 of 0.2 filled" in await has_line(manual, "s1 order canceled:", f"(by {ACTOR})")
    lines = await journal(manual)
    assert sum("partially filled" in m for m in lines) == 1  # one line per status, not per fill


async def test_pause_resume_and_kill_switch_are_journaled(manual):
    await manual.receive(line(price=far_below(manual)), source="t")
    await manual.approve("s1", confirm=True)
    await eventually(lambda: [o.status for o in manual.executor.active_orders.values()] == [OrderStatus.OPEN])
    await manual.pause()
    await manual.resume()
    await manual.kill_switch()
    assert await has_line(manual, "paused", f"(by {ACTOR})")
    assert await has_line(manual, "resumed", f"(by {ACTOR})")
    assert await has_line(manual, "kill switch: pausing intake", "canceling 1 open", f"(by {ACTOR})")
    assert await has_line(manual, "kill switch: canceled 1; none left open", f"(by {ACTOR})")


async def test_back_to_pending_when_the_price_moved_is_journaled(manual):
    # A market signal whose reference price is far from where the market is now: it goes back.
    await manual.receive(line(order_type="market", price=far_below(manual)), source="t")
    await manual.approve("s1", confirm=True)
    assert "(by executor)" in await has_line(manual, "s1 back to pending")


async def test_trace_lines_are_log_lines_with_the_actor(manual):
    seen: list[LogLine] = []
    manual.bus.subscribe(lambda e: isinstance(e, LogLine) and seen.append(e))
    await manual.pause()
    assert [(e.actor, e.level) for e in seen] == [(ACTOR, "info")]
