"""The demo strategy: seeded, quick to start, sized to pass intake, a realistic mix, unique ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from executor.exchanges.base import Ticker
from executor.signals import parse_signal, size_signal
from executor.sources.demo import demo_signals, run_tag
from executor.venue.engine import PaperEngine

ENGINE = PaperEngine(seed=1, markets=["BTC/USDT", "ETH/USDT", "SOL/USDT"], balances={"USDT": 1}, clock=lambda: 0.0)
MARKETS = ENGINE.markets()


async def ticker(symbol: str) -> Ticker:
    t = ENGINE.ticker(symbol)
    return Ticker(symbol=symbol, bid=t.bid, ask=t.ask, last=t.last, ts=t.ts)


async def collect(n: int, seed: int = 7, tag: str = "abc123") -> tuple[list[str], list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    lines = [line async for line in demo_signals(ticker, MARKETS, seed=seed, tag=tag, limit=n, sleep=sleep)]
    return lines, slept


async def test_the_same_seed_proposes_the_same_signals():
    assert (await collect(20))[0] == (await collect(20))[0]
    assert (await collect(20))[0] != (await collect(20, seed=8))[0]


async def test_the_first_signal_comes_quickly_then_one_every_few_seconds():
    _, slept = await collect(10)
    assert slept[0] <= 2
    assert all(3 <= s <= 7 for s in slept[1:])


async def test_every_signal_passes_intake_and_the_mix_is_realistic():
    lines, _ = await collect(60)
    kinds = set()
    for line in lines:
        signal = parse_signal(line)
        reference = Decimal(str(signal.price)) if signal.price else (await ticker(signal.symbol)).touch(signal.side)
        amount = size_signal(signal, MARKETS, reference)  # raises on anything intake would refuse
        assert amount * reference >= MARKETS[signal.symbol].min_cost
        kinds.add((signal.side, signal.order_type, signal.symbol))
    assert {k[0] for k in kinds} == {"buy", "sell"}
    assert {k[1] for k in kinds} == {"market", "limit"}
    assert {k[2] for k in kinds} == set(MARKETS)


async def test_ids_carry_the_run_tag_and_never_repeat():
    lines, _ = await collect(30, tag=run_tag(datetime(2026, 11, 23, 10, 0, tzinfo=UTC)))
    ids = [json.loads(line)["id"] for line in lines]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("demo-") and len(i.split("-")[1]) == 6 for i in ids)
    assert run_tag(datetime(2026, 11, 23, 10, 0, tzinfo=UTC)) != run_tag(datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC))
