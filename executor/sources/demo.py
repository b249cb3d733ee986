"""The demo strategy: a seeded stream of plausible signals on the configured paper markets.

An async iterator of signal JSON lines, like every other source, so intake treats it exactly as
it treats a file: schema, duplicates, semantic checks. It proposes one signal every few seconds
(the first within about a second), sized to pass each market's minimums, a mix of market and
limit orders on both sides, limit prices placed from the live ticker so some fill at once and
some rest. Ids are `demo-<run tag>-<n>`; the run tag comes from the clock, so a reused store
does not mark a new run's signals as duplicates.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from executor.exchanges.base import ExchangeError, Ticker
from executor.models import MarketInfo, Side

STRATEGIES = ("demo-momentum", "demo-mean-revert", "demo-breakout")
# Quote notionals a demo signal aims for; each is jittered by +-20 %.
NOTIONALS = (120, 250, 400, 750, 1500)
# How far below the bid (buys) or above the ask (sells) a limit signal is priced, as a fraction.
# The executor then moves the price against us by the slippage tolerance, so the first two
# cross the spread and fill at once and the others rest until the market walks to them.
LIMIT_OFFSETS = (0.0, 0.0005, 0.002, 0.004)
MARKET_SHARE = 0.4

Sleep = Callable[[float], Awaitable[object]]
TickerFn = Callable[[str], Awaitable[Ticker]]


def run_tag(now: datetime) -> str:
    """Six base-36 characters of the clock's second: distinct per run, short enough for an id."""
    n = int(now.timestamp()) % 36**6
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(6):
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


def _on_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=rounding) * step


def propose(
    rng: random.Random, market: MarketInfo, ticker: Ticker, signal_id: str, *, marketable: bool = False
) -> dict:
    """One signal for `market` at today's `ticker`, as the JSON object the schema describes.

    `marketable` prices a limit signal at the touch, so that once approved it fills at once.
    """
    side = Side.BUY if rng.random() < 0.5 else Side.SELL
    touch = ticker.touch(side)
    notional = Decimal(str(round(rng.choice(NOTIONALS) * rng.uniform(0.8, 1.2), 2)))
    floor = max(market.min_cost * Decimal("1.5"), market.min_amount * touch)
    notional = max(notional, floor)
    amount = _on_grid(notional / touch, market.amount_step, ROUND_CEILING)
    amount = max(amount, market.min_amount)
    signal: dict = {
        "id": signal_id,
        "symbol": market.symbol,
        "side": side.value,
        "amount": float(amount),
        "strategy": rng.choice(STRATEGIES),
    }
    if rng.random() < MARKET_SHARE:
        signal["order_type"] = "market"
    else:
        offset = Decimal(str(rng.choice(LIMIT_OFFSETS)))
        if marketable:
            offset = Decimal(0)
        if side is Side.BUY:
            price = _on_grid(ticker.bid * (1 - offset), market.price_tick, ROUND_FLOOR)
        else:
            price = _on_grid(ticker.ask * (1 + offset), market.price_tick, ROUND_CEILING)
        signal["order_type"] = "limit"
        signal["price"] = float(price)
    return signal


async def demo_signals(
    ticker: TickerFn,
    markets: Mapping[str, MarketInfo],
    *,
    seed: int,
    tag: str,
    first_delay: float = 1.0,
    interval: tuple[float, float] = (3.0, 7.0),
    limit: int | None = None,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[str]:
    """Yield a signal line every few seconds on `markets`, priced from `ticker`, forever (or `limit`)."""
    rng = random.Random(seed)
    symbols = sorted(markets)
    if not symbols:
        return
    await sleep(first_delay)
    n = 0
    while limit is None or n < limit:
        n += 1
        market = markets[rng.choice(symbols)]
        try:
            live = await ticker(market.symbol)
        except ExchangeError:
            await sleep(rng.uniform(*interval))  # no price, no signal: try again on the next beat
            continue
        # The first one fills as soon as it is approved: a new user sees a trade straight away.
        yield json.dumps(propose(rng, market, live, f"demo-{tag}-{n}", marketable=n == 1))
        await sleep(rng.uniform(*interval))
