"""Adversary tests of `admits_now` and the one-transaction intent (executor/placement.py
`commit_intent`, `TradeExecutor._admits_now`, the ccxt adapter's `admits_now`) and of ccxt's bucket
place asked for ahead (`ccxt/bucket.py` `Grant`): real ccxt binance against the emulator.

The venue here is Binance-shaped with a small order-count limit (2 orders per 10 s fixed window,
announced in exchangeInfo, counted and told by the emulator as Binance does), so that "the last
place of a window" is easy to reach with resting limit orders (a filled order is given back).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually, make_settings

from executor.clientid import client_order_id
from executor.models import OrderStatus
from executor.service import TradingService
from executor.store import Store
from executor.venue.faults import Limits

from .support import (
    CLIENT_TIMEOUT_MS,
    MARKETS,
    emulator_adapter,
    emulator_faults,
    emulator_running,
    make_rig,
)

pytestmark = pytest.mark.integration

O = OrderStatus
BTC = "BTC/USDT"
WINDOW = 10.0
_COID = re.compile(r"newClientOrderId=([^&]+)")


async def early_in_a_window(phase: float = 4.5) -> int:
    """Wait until the venue's 10 s window (the emulator's clock is this machine's) is under
    `phase` seconds old; returns its index. (A test that then waits for the next window waits,
    from a random moment, 15 s less `phase` on average; W's and P's creates take well under a
    second of the 5.5 s left.)"""
    await eventually(lambda: time.time() % WINDOW < phase, timeout=30, interval=0.01)
    return int(time.time() // WINDOW)


def resting_buy(engine: Any, signal_id: str) -> str:
    """A limit buy 1 % under the bid: it rests, so the venue keeps counting it in its window."""
    bid = Decimal(str(engine.ticker(BTC).bid))
    price = (bid * Decimal("0.99")).quantize(Decimal("0.01"))
    return json.dumps(
        {"id": signal_id, "symbol": BTC, "side": "buy", "amount": 0.001, "order_type": "limit", "price": float(price)}
    )


def committed_signal_ids(db: Path) -> set[str]:
    """The signals a kill -9 right now would leave in the store: what is committed, read from a
    connection of its own (SQLite's WAL gives it exactly the committed state)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM signals")}
    finally:
        conn.close()


async def test_a_promised_admission_that_has_to_wait_keeps_its_signal_committed_meanwhile(tmp_path: Path):
    """`Intake.submit` (the webhook, `ctl submit`) decides a batch of signals in order, each
    before the next is read. Three auto-approved resting buys into a window of 2:

    - W, the window's first: its pacer must ask the venue (GET rateLimit/order) first, so
      `admits_now` says no and W's intent is committed alone; W's task asks, takes a place.
    - P, decided while W asks: `admits_now` says no (someone is queued); its intent goes in alone
      (the disk is slow for a moment: it commits just after W took its place).
    - B, decided right after P's `commit_intent` returned: nobody is queued, one place is left,
      nothing is promised, so `admits_now` says yes: B's signal row and intent are left to B's
      task, to be written inside `admit`. But P's task, spawned a moment before B's, takes that
      last place first (nobody counted it: not queued, not promised). B's `admit` waits for the
      next window, and for all that time nothing of B is in the store: a kill -9 now loses a
      signal the venue is about to be sent.
    """
    faults = emulator_faults(limits=Limits(orders_per_10s=2, ban_after=10, ban_seconds=0.5))
    async with emulator_running(seed=41, faults=faults, markets=[BTC]) as emulator:
        db = tmp_path / "store.db"
        settings = make_settings(
            approval={"mode": "auto", "far_from_market_pct": 0},
            execution={"retry_delay_seconds": 0.02, "max_retries": 5, "order_timeout_seconds": 600.0},
            exchange={"markets": [BTC]},
        )
        exchange = emulator_adapter(emulator.url, markets=[BTC], timeout_ms=CLIENT_TIMEOUT_MS)
        store = await Store.open(db)
        service = TradingService(settings, store, exchange, poll_interval=0.05)
        try:
            await service.start()
            ex = service.executor
            assert ex is not None
            assert exchange._order_limits[0] == (2, 10.0)  # learned from the venue's exchangeInfo
            engine = emulator.emulator.engine

            # P's intent write is slow until W holds its place (a long checkpoint, a busy disk).
            real_transact = store.transact
            gated = []

            async def transact(*groups):
                rows = [st[1] for group in groups for st in group if isinstance(st[1], dict)]
                if not gated and any(row.get("signal_id") == "sig-P" for row in rows):
                    gated.append(True)  # P's intent, once
                    await eventually(lambda: exchange.admits_now(), timeout=20, interval=0.001)
                return await real_transact(*groups)

            store.transact = transact
            await early_in_a_window()
            lines = [resting_buy(engine, f"sig-{name}") for name in ("W", "P", "B")]
            submitted = asyncio.create_task(service.submit(lines, source="test"))

            # B was promised an admission at once; its task now waits in `admit` (the window is full).
            rate = exchange._order_rates[0]
            b_coid = client_order_id("tc", "sig-B", 0)
            # (Its promise ends once its intent is written: that is what is checked below.)
            await eventually(
                lambda: rate._queued == 1 and ex.tasks_named(f"place:{b_coid}"), timeout=20, interval=0.001
            )
            # W's and P's creates took the window's two places; B's waits for the next window
            await eventually(lambda: len(engine.all_orders()) == 2, timeout=20, interval=0.001)
            assert rate._queued == 1 and ex.tasks_named(f"place:{b_coid}")
            # What a kill -9 right now leaves in the store:
            stored = committed_signal_ids(db)
            assert {"sig-W", "sig-P"} <= stored
            assert "sig-B" in stored, f"signal sig-B is not in the store while its create waits: {sorted(stored)}"
            await asyncio.wait_for(submitted, timeout=30)
        finally:
            await service.close()


def count_creates(client: Any) -> list[str]:
    """The client order ids of the creates `client` sends, in order (its real `fetch`, counted)."""
    creates: list[str] = []
    fetch = client.fetch

    async def counted(url, method="GET", headers=None, body=None):
        found = _COID.search(f"{url}&{body or ''}") if method == "POST" else None
        if found is not None:
            creates.append(found.group(1))
        return await fetch(url, method, headers, body)

    client.fetch = counted
    return creates


class CountingBucket:
    """ccxt's bucket as it is, counting each admission asked of it by cost (a proxy, not a mock:
    every call goes to the adapter's own `cooldown_throttler`)."""

    def __init__(self, throttler: Any) -> None:
        self._throttler = throttler
        self.asked: list[float] = []

    def __call__(self, cost: Any = None) -> Any:
        self.asked.append(cost)
        return self._throttler(cost)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._throttler, name)


async def test_a_burst_with_place_tasks_cancelled_during_admission_leaves_no_promise_and_no_stuck_bucket(
    tmp_path: Path,
):
    """20 signals at once (Binance spot's limits), 5 of their place tasks cancelled while they
    wait for or hold their admission: no promise outlives its task, ccxt's bucket drains, each
    create sent paid one bucket admission of a create's cost, the rest are placed, no 429/-1015."""
    async with emulator_running(seed=43, faults=emulator_faults(limits=Limits()), markets=list(MARKETS)) as emulator:
        rig = await make_rig(emulator, tmp_path / "store.db")
        try:
            await rig.executor.start(watch=False)
            client = rig.exchange._ex
            bucket = CountingBucket(client.throttler)
            client.throttler = bucket
            creates = count_creates(client)
            records = [
                await rig.approved(id=f"c-{i}", symbol=BTC, amount=0.001, order_type="market") for i in range(20)
            ]
            cancelled: list[str] = []

            async def one(i: int, record: Any) -> None:
                try:
                    await rig.executor.commit_intent(record)
                except asyncio.CancelledError:
                    pass

            calls = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(records)]
            await eventually(lambda: len(rig.executor.tasks_named("place:")) >= 5, timeout=20, interval=0.001)
            for task in [t for t in rig.executor._tasks if t.get_name().startswith("place:")][:5]:
                cancelled.append(task.get_name())
                task.cancel()
            await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=60)
            await eventually(lambda: not rig.executor._tasks, timeout=60)
            assert not rig.executor._promised
            await eventually(lambda: not bucket.queue and not bucket.running, timeout=20)
            assert rig.exchange.admits_now()
            create_cost = rig.exchange._create_units
            assert len(creates) == len(set(creates)), creates  # never two creates of one client order id
            paid = sum(1 for c in bucket.asked if c == create_cost)
            assert paid >= len(creates)  # every create sent paid its place
            codes = emulator.emulator.codes
            assert codes[-1015] == 0 and codes[-1003] == 0, emulator.emulator.record()["error_codes"]
            assert rig.exchange.rate_limit_state().trips == 0
            await rig.exchange.fetch_ticker(BTC)  # the bucket still lets a request through
        finally:
            await rig.close()


async def test_places_asked_for_ahead_of_signals_cost_one_create_each_and_never_pile_up(tmp_path: Path):
    """Auto-approval asks for a create's place in ccxt's bucket as a signal arrives
    (`expect_order`). 60 signals through intake (the webhook's `submit`), a third of them never
    becoming an order (an unknown market, above `auto_max_notional`, a duplicate): every create
    sent paid exactly one place of a create's cost, at most one place more was ever asked than
    creates were sent (the one still held), and the venue saw no 429 or -1015."""
    async with emulator_running(seed=44, faults=emulator_faults(limits=Limits()), markets=[BTC]) as emulator:
        settings = make_settings(
            approval={"mode": "auto", "far_from_market_pct": 0, "auto_max_notional": 1000},
            execution={"retry_delay_seconds": 0.02, "max_retries": 5},
            exchange={"markets": [BTC]},
        )
        exchange = emulator_adapter(emulator.url, markets=[BTC], timeout_ms=CLIENT_TIMEOUT_MS)
        store = await Store.open(tmp_path / "store.db")
        service = TradingService(settings, store, exchange, poll_interval=0.05)
        try:
            await service.start()
            client = exchange._ex
            bucket = CountingBucket(client.throttler)
            client.throttler = bucket
            creates = count_creates(client)
            lines, placed = [], 0
            for i in range(60):
                kind = i % 3
                if kind == 0 and i % 2:
                    body = {"id": f"x-{i}", "symbol": "NOPE/USDT", "side": "buy", "amount": 1}  # unknown market
                elif kind == 0:
                    body = {"id": f"x-{i}", "symbol": BTC, "side": "buy", "amount": 1, "order_type": "market"}
                elif kind == 1 and i % 2 and i > 3:
                    body = {"id": f"x-{i - 3}", "symbol": BTC, "side": "buy", "amount": 0.001}  # a duplicate
                else:
                    body = {"id": f"x-{i}", "symbol": BTC, "side": "sell" if i % 2 else "buy", "amount": 0.001}
                    body["order_type"] = "market"
                    placed += 1
                lines.append(json.dumps(body))
            records = await asyncio.wait_for(service.submit(lines, source="test"), timeout=120)
            assert sum(r.status.value == "approved" for r in records) == placed
            await eventually(lambda: len(creates) == placed and not service.executor._tasks, timeout=60)
            await eventually(lambda: not bucket.queue and not bucket.running, timeout=20)
            create_cost = exchange._create_units
            paid = sum(1 for c in bucket.asked if c == create_cost)
            held = 1 if exchange._expected is not None else 0
            assert len(creates) == len(set(creates)) == placed
            assert paid == placed + held, (paid, placed, held)  # one place per create, plus the one held
            codes = emulator.emulator.codes
            assert codes[-1015] == 0 and codes[-1003] == 0, emulator.emulator.record()["error_codes"]
            assert exchange.rate_limit_state().trips == 0
        finally:
            await service.close()
        assert exchange._expected is None  # closing withdrew it
