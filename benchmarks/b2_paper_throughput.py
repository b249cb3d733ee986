"""B2: headless paper throughput, auto-approved, full lifecycle, journal on (goal >= 5,000 signals/s).

Signals go through the real intake (parse, duplicate check, semantic checks), the approval
policy, the executor (intent journaled, create, fill) and the store, on a temporary SQLite file.
Counted when every order is terminal.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from executor.config import load_config
from executor.exchanges.paper import PaperExchange
from executor.service import TradingService
from executor.venue.engine import PaperEngine

SIZES = {"BTC/USDT": 0.001, "ETH/USDT": 0.01, "SOL/USDT": 0.1}


def signals(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        symbol = rng.choice(sorted(SIZES))
        out.append(
            json.dumps(
                {
                    "id": f"b2-{i}",
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
        started = time.perf_counter()

        async def source():
            for line in lines:
                yield line

        service.add_source(source(), name="bench")
        await service.sources_done()
        while not service.idle():
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        orders = await service.store.orders()
        await service.close()
    assert len(orders) == n and all(o.status.is_terminal for o in orders)
    return {"signals": n, "seconds": elapsed, "per_second": n / elapsed}


def run(n: int = 2000) -> dict:
    """`n`: how many signals (--growth runs 100, 1,000 and 10,000)."""
    result = asyncio.run(measure(n))
    return {
        "value": round(result["per_second"]),
        "unit": "signals/s",
        "goal": ">= 5,000 signals/s",
        "met": result["per_second"] >= 5000,
        "detail": f"{result['signals']} market signals in {result['seconds']:.2f}s",
    }
