"""Chaos on the paper exchange: many signals through the whole service while every fault class
hits every kind of request. Whatever the interleaving, the invariants of SPEC section 6 hold:
one exchange order per signal (no amends here), never more filled than the signal asked, every
order ends terminal, and the store agrees with the venue."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from decimal import Decimal

import pytest
from helpers import eventually, make_settings

from executor.exchanges.paper import PaperExchange
from executor.models import OrderStatus
from executor.service import TradingService
from executor.venue.engine import PaperEngine
from executor.venue.faults import Fault, FaultPlan

FAULTS = [
    Fault.REFUSED,
    Fault.RATE_LIMIT,
    Fault.ERROR_BEFORE,
    Fault.ERROR_AFTER,
    Fault.TIMEOUT_AFTER_ACCEPT,
    Fault.RESET_AFTER_ACCEPT,
    Fault.INVISIBLE,
    Fault.TIMEOUT_AFTER_ACCEPT_INVISIBLE,
]
SIZES = {"BTC/USDT": "0.001", "ETH/USDT": "0.01", "SOL/USDT": "0.1"}


def signal_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        symbol = rng.choice(sorted(SIZES))
        fields = {
            "id": f"chaos-{i}",
            "symbol": symbol,
            "side": rng.choice(["buy", "sell"]),
            "amount": float(Decimal(SIZES[symbol]) * rng.randint(1, 5)),
        }
        if rng.random() < 0.5:
            fields["order_type"] = "market"
        lines.append(json.dumps(fields))
    return lines


@pytest.mark.parametrize("seed", [1, 2])
async def test_every_fault_everywhere_still_one_order_per_signal_never_overfilled(db_path, seed):
    settings = make_settings(
        approval={"mode": "auto"},
        execution={"retry_delay_seconds": 0.005, "max_retries": 4, "order_timeout_seconds": 0.3},
        reconcile={"interval_seconds": 0.2},
    )
    create_faults = {fault: 0.05 for fault in FAULTS}  # 40 % of creates hit a fault
    plan = FaultPlan(
        seed=seed,
        probabilities={
            "create_order": create_faults,
            "cancel_order": {Fault.ERROR_AFTER: 0.1, Fault.REFUSED: 0.1},
            "fetch_order": {Fault.ERROR_BEFORE: 0.1},
            "fetch_open_orders": {Fault.REFUSED: 0.1},
        },
        invisible_ms=60,
        retry_after=0.02,
    )
    engine = PaperEngine(
        seed=seed,
        markets=settings.exchange.markets,
        balances={"USDT": 10**7, "BTC": 100, "ETH": 1000, "SOL": 10**4},
        step_seconds=0.02,
    )
    service = await TradingService.open(
        settings, db_path, exchange=PaperExchange(engine, faults=plan), actor="chaos@test", poll_interval=0.02
    )
    service.executor.lookup_window = 0.25
    await service.start()
    lines = signal_lines(120, seed)
    try:
        for line in lines:
            await service.receive(line, source="chaos")
        await eventually(service.idle, timeout=60)
    finally:
        await service.close()

    assert sum(plan.injected.values()) > 40, plan.injected  # the chaos really happened
    asked = {json.loads(line)["id"]: Decimal(repr(json.loads(line)["amount"])) for line in lines}
    venue = defaultdict(list)
    for order in engine.all_orders():
        venue[order.client_order_id].append(order)
    assert all(len(v) == 1 for v in venue.values()), "a client order id was placed twice"

    from executor.store import Store

    store = await Store.open(db_path, read_only=True)
    try:
        stored = await store.orders()
    finally:
        await store.close()
    by_signal = defaultdict(list)
    for order in stored:
        by_signal[order.signal_id].append(order)
    assert set(by_signal) == set(asked), "every signal has its order"
    for signal_id, orders in by_signal.items():
        # one logical order: several exchange orders only where one was certainly absent and
        # replaced under the next replacement number; never more filled than the signal asked
        assert sum(o.filled for o in orders) <= asked[signal_id], (signal_id, orders)
        assert len([o for o in orders if venue.get(o.client_order_id)]) <= 1, (signal_id, orders)
        for order in orders[:-1]:
            assert order.status is OrderStatus.FAILED and order.last_error.startswith("certainly absent"), order
        for order in orders:
            assert order.status.is_terminal, order
            placed = venue.get(order.client_order_id)
            if placed:
                assert placed[0].filled == order.filled, (order, placed[0])
            else:
                assert order.status.value in ("failed", "rejected") and order.filled == 0
