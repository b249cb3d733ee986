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
