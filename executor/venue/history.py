"""A paper market's recent history: one-minute candles, for a venue's market data.

Owns `History`, the candles of one market's last `CANDLE_MINUTES` minutes: every step's last
price and every fill go into the candle of their minute, from which the ticker's rolling 24 hours
(open, high, low, volumes), the average price and the klines (`Candle`) are read. Volumes are the
engine's own fills: the synthetic book's other traders are not recorded.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
CANDLE_MINUTES = 1440  # one-minute candles kept: the ticker's 24 hours
_PRICE_QUANTUM = Decimal("1e-8")


@dataclass(frozen=True, slots=True)
class Candle:
    """One minute of a market: its last price, step by step, and the engine's own fills."""

    start: float  # epoch seconds, a whole minute
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    base_volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_base: Decimal  # of the volume, what a buying taker took
    taker_buy_quote: Decimal


class History:
    """The one-minute candles of one market, oldest first, prices in ticks.

    A candle is a list, for speed: [minute, open, high, low, close (ticks), base volume, quote
    volume, fills, sum of the sampled ticks, samples, taker-buy base, taker-buy quote, the trade id
    of its first fill (-1: none)].
    """

    __slots__ = ("_rolling", "candles")

    def __init__(self) -> None:
        self.candles: deque[list] = deque(maxlen=CANDLE_MINUTES)
        self._rolling: tuple | None = None  # the 24 hours of closed candles, cached until a minute turns

    def _sample(self, minute: int, ticks: int) -> list:
        """The candle of `minute` (the last candle, if that is later: time never runs back) with a
        price sampled into it."""
        candles = self.candles
        c = candles[-1] if candles else None
        if c is None or minute > c[0]:
            c = [minute, ticks, ticks, ticks, ticks, ZERO, ZERO, 0, 0, 0, ZERO, ZERO, -1]
            candles.append(c)
        elif ticks > c[2]:
            c[2] = ticks
        elif ticks < c[3]:
            c[3] = ticks
        c[4] = ticks
        c[8] += ticks
        c[9] += 1
        return c

    def sample_step(self, minute: int, last: int) -> None:
        """A step's last price (ticks) into the candle of its minute."""
        self._sample(minute, last)

    def sample_fill(self, ts: float, trade_id: int, ticks: int, qty: Decimal, cost: Decimal, taker_buy: bool) -> None:
        """A fill (trade id, price in ticks, amount, cost) into the candle of its minute."""
        c = self._sample(int(ts // 60), ticks)
        c[5] += qty
        c[6] += cost
        c[7] += 1
        if c[12] < 0:
            c[12] = trade_id
        if taker_buy:
            c[10] += qty
            c[11] += cost

    def rolling(self, first: int) -> tuple[int, int, int, Decimal, Decimal, int, int]:
        """Open, high, low (ticks), volumes, fills and the first fill's trade id (-1: none) of the
        candles from minute `first` on. The closed candles' share is computed once a minute; the
        last candle, still moving, is added to it."""
        candles = self.candles
        last = candles[-1]
        key = (first, last[0])
        cache = self._rolling
        if cache is None or cache[0] != key:
            o = h = lo = None
            base = quote = ZERO
            fills, first_id = 0, -1
            for c in itertools.islice(candles, 0, len(candles) - 1):
                if c[0] < first:
                    continue
                if o is None:
                    o, h, lo = c[1], c[2], c[3]
                else:
                    h, lo = max(h, c[2]), min(lo, c[3])
                base += c[5]
                quote += c[6]
                fills += c[7]
                if first_id < 0:
                    first_id = c[12]
            self._rolling = cache = (key, o, h, lo, base, quote, fills, first_id)
        _, o, h, lo, base, quote, fills, first_id = cache
        if last[0] < first:  # nothing sampled for a day: the price stood still
            return last[4], last[4], last[4], ZERO, ZERO, 0, -1
        fills += last[7]
        first_id = first_id if first_id >= 0 else last[12]
        if o is None:
            return last[1], last[2], last[3], last[5], last[6], fills, first_id
        return o, max(h, last[2]), min(lo, last[3]), base + last[5], quote + last[6], fills, first_id

    def average(self, tick: Decimal, first: int, last_ticks: int) -> Decimal:
        """The mean of the last price, step by step and fill by fill, from minute `first` on, to
        8 decimals; the last price (`last_ticks`) when nothing was sampled since."""
        total = samples = 0
        for c in reversed(self.candles):
            if c[0] < first:
                break
            total += c[8]
            samples += c[9]
        if not samples:
            return tick * last_ticks
        return (tick * total / samples).quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_UP)

    def between(self, tick: Decimal, since: float | None, until: float | None) -> list[Candle]:
        """The candles, oldest first, whose minute starts within `since` / `until` (epoch seconds,
        inclusive)."""
        out = []
        for c in self.candles:
            start = c[0] * 60
            if (since is not None and start < since) or (until is not None and start > until):
                continue
            out.append(
                Candle(start, tick * c[1], tick * c[2], tick * c[3], tick * c[4], c[5], c[6], c[7], c[10], c[11])
            )
        return out
