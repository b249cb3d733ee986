"""B5: restart after kill -9 with 1,000 resting orders, process start to `reconciled` (goal <= 3 s).

The state a kill -9 leaves: 1,000 resting limit orders across 3 markets, seeded into the emulator
(`PaperEngine.place_resting`) and into the store (approved signals, `open` orders with their
exchange ids), the emulator at Binance's default 6,000 request weight per minute. Measured from
the `tradeconsole run --headless` process start (Popen) to its `reconciled:` line, which must say
0 unknown and no drift; the emulator's record must show no 429 and no 418 from any path.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from executor.clientid import client_order_id
from executor.models import Order, OrderStatus, OrderType, Side, Signal, SignalRecord, SignalStatus, utcnow
from executor.store import Store
from executor.venue.emulator.app import DEMO_API_KEY, DEMO_API_SECRET, start_emulator

MARKETS = {"BTC/USDT": Decimal("0.001"), "ETH/USDT": Decimal("0.01"), "SOL/USDT": Decimal("1")}
BALANCES = {"USDT": 10**9, "BTC": 10**5, "ETH": 10**6, "SOL": 10**7}
RECONCILED = re.compile(r"reconciled: (\d+) checked, (\d+) open, (\d+) unknown, (\d+) adopted, drift (.+)$")


async def seed(store: Store, engine, n: int) -> None:
    now = utcnow()
    symbols = sorted(MARKETS)
    for i in range(n):
        symbol = symbols[i % 3]
        side = Side.BUY if i % 2 == 0 else Side.SELL
        sid = f"b5-{i}"
        coid = client_order_id("tc", sid, 0)
        placed = engine.place_resting(symbol, side, MARKETS[symbol], client_order_id=coid)
        signal = Signal(id=sid, symbol=symbol, side=side, amount=float(MARKETS[symbol]), price=float(placed.price))
        await store.insert_signal(
            SignalRecord(id=sid, status=SignalStatus.APPROVED, source="bench", received_at=now,
                         raw=signal.model_dump_json(), signal=signal, amount=MARKETS[symbol],
                         reference_price=placed.price)
        )
        await store.save_order(
            Order(client_order_id=coid, signal_id=sid, exchange_order_id=placed.exchange_order_id, symbol=symbol,
                  side=side, type=OrderType.LIMIT, amount=MARKETS[symbol], price=placed.price,
                  status=OrderStatus.OPEN, attempts=1, created_at=now, updated_at=now),
            old=None, source="request",
        )


async def measure(n: int = 1000) -> dict:
    running = await start_emulator(seed=5, markets=sorted(MARKETS), balances=BALANCES)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "b5.db"
            store = await Store.open(db)
            await seed(store, running.emulator.engine, n)
            await store.close()
            env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECONSOLE_")} | {
                "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
                "TRADECONSOLE_EXCHANGE__ID": "binance",
                "TRADECONSOLE_EXCHANGE__API_URL": running.url,
                "TRADECONSOLE_EXCHANGE__MARKETS": '["BTC/USDT", "ETH/USDT", "SOL/USDT"]',
                "TRADECONSOLE_API_KEY": DEMO_API_KEY,
                "TRADECONSOLE_API_SECRET": DEMO_API_SECRET,
            }
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "console", "run", "--headless", "--db", str(db),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            )
            line, seen = "", []
            try:
                assert proc.stderr is not None
                while True:
                    raw = await asyncio.wait_for(proc.stderr.readline(), timeout=60)
                    if not raw:
                        raise RuntimeError("the core exited before reconciling:\n" + "".join(seen[-20:]))
                    line = raw.decode().rstrip()
                    seen.append(line + "\n")
                    if (match := RECONCILED.search(line)) is not None:
                        elapsed = time.perf_counter() - started
                        break
            finally:
                if proc.returncode is None:
                    proc.terminate()
                    await proc.wait()
    finally:
        record = running.emulator.record()
        await running.stop()
    checked, open_, unknown, _adopted, drift = match.groups()
    limited = sum(v for k, v in record["statuses"].items() if k in ("429", "418"))
    return {"seconds": elapsed, "checked": int(checked), "open": int(open_), "unknown": int(unknown),
            "drift": drift, "rate_limited": limited}


def run(n: int = 1000) -> dict:
    """`n`: how many resting orders (--growth runs 100, 1,000 and 10,000)."""
    result = asyncio.run(measure(n))
    ok = result["unknown"] == 0 and result["drift"] == "none" and result["rate_limited"] == 0
    return {
        "value": round(result["seconds"], 3),
        "unit": "s",
        "goal": "<= 3 s, 0 unknown, 0 drift, 0 429s",
        "met": ok and result["seconds"] <= 3.0,
        "detail": f"{result['checked']} checked, {result['open']} open, {result['unknown']} unknown, "
        f"drift {result['drift']}, {result['rate_limited']} 429/418",
    }
