"""B2: headless paper throughput, auto-approved, full lifecycle, journal on (goal >= 5,000 signals/s).

Signals go through the real intake (parse, duplicate check, semantic checks), the approval
policy, the executor (intent journaled, create, fill) and the store, on a temporary SQLite file.
Counted when every order is terminal; the journal must then hold every step of every signal
(arrival, approval, and the order's new, submitting and filled). The detail gives the process's
CPU time per signal (the event loop and SQLite's thread together) and the machine's load, so
that a figure taken on a busy machine can be told from one taken on a quiet one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

from executor.config import load_config
from executor.exchanges.paper import PaperExchange
from executor.service import TradingService
from executor.venue.engine import PaperEngine

SIZES = {"BTC/USDT": 0.001, "ETH/USDT": 0.01, "SOL/USDT": 0.1}


def signals(stop: int, seed: int | str = 1, *, start: int = 0, prefix: str = "b2") -> list[str]:
    """Market signals `{prefix}-{start}` .. `{prefix}-{stop - 1}`, their markets and sides drawn
    from `seed`: the same arguments, the same signals."""
    rng = random.Random(seed)
    out = []
    for i in range(start, stop):
        symbol = rng.choice(sorted(SIZES))
        out.append(
            json.dumps(
                {
                    "id": f"{prefix}-{i}",
                    "symbol": symbol,
                    "side": rng.choice(["buy", "sell"]),
                    "amount": SIZES[symbol],
                    "order_type": "market",
                }
            )
        )
    return out


async def measure(n: int = 2000) -> dict:
    settings = load_config(None, env={"TRADECONSOLE_APPROVAL__MODE": "auto"})
    engine = PaperEngine(
        seed=1, markets=settings.exchange.markets, balances={"USDT": 10**9, "BTC": 10**5, "ETH": 10**6, "SOL": 10**7}
    )
    with tempfile.TemporaryDirectory() as tmp:
        service = await TradingService.open(
            settings, Path(tmp) / "b2.db", exchange=PaperExchange(engine), actor="bench@local"
        )
        await service.start()
        lines = signals(n)
        started, cpu = time.perf_counter(), time.process_time()

        async def source():
            for line in lines:
                yield line

        service.add_source(source(), name="bench")
        await service.sources_done()
        while not service.idle():
            await asyncio.sleep(0.001)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        orders = await service.store.orders()
        journal = await service.store.events()
        await service.close()
    assert len(orders) == n and all(o.status.is_terminal for o in orders)
    assert len(journal) == 5 * n, f"{len(journal)} journal entries for {n} signals"
    return {"signals": n, "seconds": elapsed, "per_second": n / elapsed, "cpu_per_signal": cpu / n}


def run(n: int = 2000) -> dict:
    """`n`: how many signals (--growth runs 100, 1,000 and 10,000)."""
    result = asyncio.run(measure(n))
    return {
        "value": round(result["per_second"]),
        "unit": "signals/s",
        "goal": ">= 5,000 signals/s",
        "met": result["per_second"] >= 5000,
        "detail": f"{result['signals']} market signals in {result['seconds']:.2f}s, "
        f"CPU {result['cpu_per_signal'] * 1000:.2f} ms per signal, load {os.getloadavg()[0]:.1f}",
    }


async def measure_floor(n: int = 2000) -> dict:
    """What the leanest burst pipeline on today's models and statement builders would cost: per
    signal the parse, the sizing, the signal's record and its approval, its order's intent and
    `submitting`, the paper create, the fold of its report, and every journal row B2 checks for
    (9 statements), all `n` signals' statements in ONE transaction in SQLite's thread. None of the
    product's events, log lines, tasks, locks or checks beyond these: a floor under B2, not a
    path of the product (`python -m benchmarks.b2_paper_throughput --floor`)."""
    from datetime import timedelta

    from executor.clientid import client_order_id
    from executor.models import JournalSource as J
    from executor.models import Order, OrderType, SignalRecord, updated, utcnow
    from executor.models import OrderStatus as O
    from executor.models import SignalStatus as S
    from executor.signals import parse_signal, size_signal
    from executor.store import Store
    from executor.store.connection import _run_batch
    from executor.tracking import apply_report

    settings = load_config(None, env={"TRADECONSOLE_APPROVAL__MODE": "auto"})
    engine = PaperEngine(
        seed=1, markets=settings.exchange.markets, balances={"USDT": 10**9, "BTC": 10**5, "ETH": 10**6, "SOL": 10**7}
    )
    exchange = PaperExchange(engine)
    markets = await exchange.load_markets()
    tickers = {symbol: await exchange.fetch_ticker(symbol) for symbol in markets}
    stages: dict[str, float] = {}

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        stages[stage] = stages.get(stage, 0.0) + now - since
        return now

    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "floor.db")
        statements: list = []
        started = time.perf_counter()
        for raw in signals(n):
            t = time.perf_counter()
            signal = parse_signal(raw)
            t = lap("parse", t)
            reference = tickers[signal.symbol].touch(signal.side)
            amount = size_signal(signal, markets, reference)
            t = lap("size", t)
            now = utcnow()
            record = SignalRecord(
                id=signal.id, status=S.PENDING, source="bench", received_at=now, raw=raw, signal=signal,
                reference_price=reference, amount=amount, expires_at=now + timedelta(seconds=60),
            )  # fmt: skip
            decided = updated(record, {"status": S.APPROVED, "reason": "approved by auto", "decided_at": now})
            t = lap("signal record", t)
            journal = [(None, S.PENDING, J.INTAKE, {}), (S.PENDING, S.APPROVED, J.AUTO, {"reason": "approved by auto"})]
            statements += store.signal_insert(decided, journal=journal)
            t = lap("signal rows", t)
            order = Order(
                client_order_id=client_order_id("tc", signal.id, 0), signal_id=signal.id, replacement=0,
                symbol=signal.symbol, side=signal.side, type=OrderType.MARKET, amount=amount, created_at=now,
                updated_at=now,
            )  # fmt: skip
            sent = updated(order, {"status": O.SUBMITTING, "attempts": 1, "version": 1})
            t = lap("order record", t)
            statements += store.intent_sent_write(order, sent, source=J.REQUEST, detail={"intent": True})
            t = lap("intent rows", t)
            report = await exchange.create_order(
                client_order_id=order.client_order_id, symbol=order.symbol, side=order.side, type=order.type,
                amount=order.amount, price=None,
            )  # fmt: skip
            t = lap("paper create", t)
            applied = apply_report(sent, report, now)
            filled = updated(applied.order, {"version": 2})
            t = lap("fold", t)
            statements += store.order_write(
                filled, old=O.SUBMITTING, expect_version=1, source=J.REQUEST, fills=applied.fills
            )
            lap("fill rows", t)
        python = time.perf_counter() - started
        t = time.perf_counter()
        await store._conn._execute(_run_batch, store._conn._conn, [statements])
        sqlite = time.perf_counter() - t
        await store.close()
    per = {stage: round(seconds / n * 1e6, 1) for stage, seconds in stages.items()}
    return {
        "signals": n,
        "statements_per_signal": len(statements) / n,
        "python_us": python / n * 1e6,
        "sqlite_us": sqlite / n * 1e6,
        "per_second": n / (python + sqlite),
        "stages_us": per,
    }


if __name__ == "__main__":
    import sys

    if "--floor" in sys.argv:
        floor = asyncio.run(measure_floor())
        print(
            f"floor: {floor['signals']} signals, {floor['statements_per_signal']:.0f} statements each: Python "
            f"{floor['python_us']:.0f} µs + SQLite {floor['sqlite_us']:.0f} µs per signal = "
            f"{floor['per_second']:.0f}/s, "
            f"load {os.getloadavg()[0]:.1f}; by stage, µs: {floor['stages_us']}"
        )
    else:
        print(run())
