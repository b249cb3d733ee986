"""A paper market: its seeded price path, its synthetic order book and what a taker finds in it.

Owns `MarketSpec` (a market's start price, grid and volatility; `BUILTIN_MARKETS`), and `Market`,
one market's state: the mid price, a seeded random walk advanced one step at a time; around it
a synthetic book of `levels` levels per side whose last level is bottomless, so a market order
always fills; the taker's walk of that book (consumed until the next step); the resting orders,
the kept orders and fills of the market (what the engine's `records` keep) and its `History`.
The market data a venue serves (`ticker`, `depth`, the average price, candles) are read here.
Matching and money are the engine's.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal

from executor.models import MarketInfo, Side
from executor.venue.history import CANDLE_MINUTES, Candle, History
from executor.venue.orders import EngineError, EngineOrder, EngineTrade, ErrorKind, RestingSide, fmt

ZERO = Decimal(0)
BOOK_LEVELS = 10  # per side, unless the engine is built with `book_levels`
# Quote notional of the synthetic book's best level; deeper levels grow linearly from it.
LEVEL_NOTIONAL = 20_000.0
_LEVEL_GAP = 0.00005  # 0.5 bp between book levels
_HALF_SPREAD = (0.00005, 0.0001)  # half-spread drawn per step: a 1-2 bp spread
_MIN_MID_TICKS = 100  # keeps every book level above zero however far the walk wanders


@dataclass(frozen=True, slots=True)
class MarketSpec:
    start: Decimal
    price_tick: Decimal
    amount_step: Decimal
    min_amount: Decimal
    min_notional: Decimal
    max_amount: Decimal = Decimal(9_000_000)
    volatility: float = 0.0001  # stdev of the log return per step (1 bp every 0.25 s)


BUILTIN_MARKETS: dict[str, MarketSpec] = {
    "BTC/USDT": MarketSpec(
        Decimal(60000), Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal(5), Decimal(9000)
    ),
    "ETH/USDT": MarketSpec(
        Decimal(3000), Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001"), Decimal(5), Decimal(9000)
    ),
    "SOL/USDT": MarketSpec(
        Decimal(150), Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal(5), Decimal(90000)
    ),
}
GENERIC_MARKET = MarketSpec(Decimal(100), Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal(5))


@dataclass(frozen=True, slots=True)
class TickerRecord:
    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    bid_amount: Decimal
    ask_amount: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    base_volume: Decimal  # traded by the engine's own orders
    quote_volume: Decimal
    ts: float
    # The rolling 24 hours (to the minute) that open, high, low and the volumes cover: the engine's
    # own fills in it, the first and last of their trade ids (-1 without any) and the last's amount.
    count: int = 0
    first_id: int = -1
    last_id: int = -1
    last_amount: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Depth:
    symbol: str
    bids: list[tuple[Decimal, Decimal]]  # (price, amount), best first
    asks: list[tuple[Decimal, Decimal]]
    update_id: int
    ts: float


def market_info(symbol: str, spec: MarketSpec, maker: Decimal, taker: Decimal) -> MarketInfo:
    base, quote = symbol.split("/")
    return MarketInfo(
        symbol=symbol,
        base=base,
        quote=quote,
        amount_step=spec.amount_step,
        price_tick=spec.price_tick,
        min_amount=spec.min_amount,
        min_cost=spec.min_notional,
        maker_fee=maker,
        taker_fee=taker,
        max_amount=spec.max_amount,
        extra={"start_price": spec.start, "min_price": spec.price_tick, "paper": True},
    )


@dataclass(slots=True)
class Market:
    """One market of the engine; `step` is the engine's step it last walked to."""

    info: MarketInfo
    spec: MarketSpec
    rng: random.Random
    fill_rng: random.Random
    tick_f: float
    step_f: float
    mid: float
    levels: int  # of the synthetic book, per side
    step: int = 0
    bid_t: int = 0
    ask_t: int = 0
    last_t: int = 0
    shape: float = 1.0
    book_step: int = -1
    bids: list[tuple[int, Decimal]] = field(default_factory=list)
    asks: list[tuple[int, Decimal]] = field(default_factory=list)
    taken_bids: list[Decimal] = field(default_factory=list)
    taken_asks: list[Decimal] = field(default_factory=list)
    resting_buys: RestingSide = field(default_factory=lambda: RestingSide(Side.BUY))
    resting_sells: RestingSide = field(default_factory=lambda: RestingSide(Side.SELL))
    open: dict[int, EngineOrder] = field(default_factory=dict)
    # The engine's records of this market (see `records`): its kept orders and fills, by id.
    orders: dict[int, EngineOrder] = field(default_factory=dict)
    trades: dict[int, EngineTrade] = field(default_factory=dict)
    last_trade: EngineTrade | None = None  # the market's last fill, kept or not
    history: History = field(default_factory=History)

    @classmethod
    def create(cls, seed: int, info: MarketInfo, spec: MarketSpec, levels: int) -> Market:
        symbol = info.symbol
        return cls(
            info=info,
            spec=spec,
            # Per-symbol generators: adding a market never changes another market's path.
            rng=random.Random(f"{seed}:{symbol}"),
            fill_rng=random.Random(f"{seed}:{symbol}:fills"),
            tick_f=float(spec.price_tick),
            step_f=float(spec.amount_step),
            mid=float(spec.start),
            levels=levels,
        )

    def walk(self, step: int, minute: int) -> None:
        """One step of the random walk: a new mid, spread, book shape and last price."""
        self.step = step
        rng = self.rng
        self.mid = max(self.mid * math.exp(rng.gauss(0.0, self.spec.volatility)), _MIN_MID_TICKS * self.tick_f)
        mid_t = round(self.mid / self.tick_f)
        lo, hi = _HALF_SPREAD
        half = max(1, round(mid_t * (lo + (hi - lo) * rng.random())))
        self.bid_t, self.ask_t = mid_t - half, mid_t + half
        self.shape = 0.5 + rng.random()
        self.last_t = last = self.bid_t if rng.random() < 0.5 else self.ask_t
        self.history.sample_step(minute, last)

    def book(self) -> None:
        """Build the synthetic book of the current step, once, when somebody needs it."""
        if self.book_step == self.step:
            return
        gap = max(1, round((self.bid_t + self.ask_t) / 2 * _LEVEL_GAP))
        step, max_amount = self.spec.amount_step, self.spec.max_amount

        n = self.levels

        def levels(touch: int, direction: int) -> list[tuple[int, Decimal]]:
            out = []
            for i in range(n - 1):
                ticks = touch + direction * i * gap
                units = int(LEVEL_NOTIONAL * self.shape * (i + 1) / (ticks * self.tick_f) / self.step_f)
                out.append((ticks, step * max(units, 1)))
            # The last level is bottomless (shown as the largest order allowed): market orders always fill.
            out.append((touch + direction * (n - 1) * gap, max_amount))
            return out

        self.bids = levels(self.bid_t, -1)
        self.asks = levels(self.ask_t, 1)
        self.taken_bids = [ZERO] * n
        self.taken_asks = [ZERO] * n
        self.book_step = self.step

    def take(self, side: Side, amount: Decimal, limit_ticks: int | None) -> list[tuple[int, int, Decimal]]:
        """Plan a taker's walk of the synthetic book: (level, ticks, amount) per level it trades at."""
        self.book()
        if side is Side.BUY:
            levels, taken = self.asks, self.taken_asks
        else:
            levels, taken = self.bids, self.taken_bids
        out: list[tuple[int, int, Decimal]] = []
        left = amount
        last = len(levels) - 1
        for i, (ticks, size) in enumerate(levels):
            if limit_ticks is not None and (ticks > limit_ticks if side is Side.BUY else ticks < limit_ticks):
                break
            available = left if i == last else size - taken[i]
            if available <= 0:
                continue
            qty = min(available, left)
            out.append((i, ticks, qty))
            left -= qty
            if not left:
                break
        return out

    def quote_walk(self, side: Side | str, quote: Decimal) -> Decimal:
        """The largest amount, in whole steps, whose walk of the book costs (a buy) or brings (a sell)
        at most `quote`. Below the market's minimum amount it is LOT_SIZE; below its minimum
        notional, NOTIONAL (the quote is the notional)."""
        info = self.info
        if quote < info.min_cost:
            raise EngineError(
                ErrorKind.FILTER_FAILURE,
                f"Filter failure: NOTIONAL (notional {fmt(quote)} {info.quote} is below the minimum "
                f"{fmt(info.min_cost)} {info.quote} for {info.symbol}).",
                filter="NOTIONAL",
            )
        self.book()
        levels, taken = (self.asks, self.taken_asks) if side is Side.BUY else (self.bids, self.taken_bids)
        step, tick = info.amount_step, info.price_tick
        last = len(levels) - 1
        left, amount = quote, ZERO
        for i, (ticks, size) in enumerate(levels):
            price = tick * ticks
            available = None if i == last else size - taken[i]
            if available is not None and available <= 0:
                continue
            qty = step * int(left / price / step)
            if available is not None and available < qty:
                qty = available
            if qty <= 0:
                break
            amount += qty
            left -= qty * price
            if available is None or qty < available:
                break
        if amount < info.min_amount:
            raise EngineError(
                ErrorKind.FILTER_FAILURE,
                f"Filter failure: LOT_SIZE ({fmt(quote)} {info.quote} buys less than the minimum "
                f"{fmt(info.min_amount)} {info.base} for {info.symbol}).",
                filter="LOT_SIZE",
            )
        return amount

    def rest(self, order: EngineOrder) -> None:
        self.open[order.id] = order
        (self.resting_buys if order.side is Side.BUY else self.resting_sells).add(order)

    def unrest(self, order: EngineOrder) -> None:
        del self.open[order.id]
        (self.resting_buys if order.side is Side.BUY else self.resting_sells).remove(order)

    # -- market data ----------------------------------------------------------------------------

    def ticker(self, now: float) -> TickerRecord:
        """The touch and the last price now, and the rolling 24 hours: their open (the price at their
        start), high, low and the engine's own volume and fills in them. Open and last always lie
        within high and low."""
        self.book()
        tick = self.spec.price_tick
        first = int(now // 60) - (CANDLE_MINUTES - 1)
        open_t, high_t, low_t, base, quote, count, first_id = self.history.rolling(first)
        last = self.last_trade if count else None
        return TickerRecord(
            symbol=self.info.symbol,
            bid=tick * self.bid_t,
            ask=tick * self.ask_t,
            last=tick * self.last_t,
            bid_amount=self.bids[0][1] - self.taken_bids[0],
            ask_amount=self.asks[0][1] - self.taken_asks[0],
            open=tick * open_t,
            high=tick * high_t,
            low=tick * low_t,
            base_volume=base,
            quote_volume=quote,
            ts=now,
            count=count,
            first_id=first_id,
            last_id=-1 if last is None else last.id,
            last_amount=ZERO if last is None else last.amount,
        )

    def avg_price(self, now: float, minutes: int) -> Decimal:
        return self.history.average(self.spec.price_tick, int(now // 60) - minutes + 1, self.last_t)

    def candles(self, since: float | None, until: float | None) -> list[Candle]:
        return self.history.between(self.spec.price_tick, since, until)

    def depth(self, limit: int, update_id: int, now: float) -> Depth:
        """The synthetic book left after this step's takers. Resting orders are not shown in it."""
        self.book()
        tick = self.spec.price_tick

        def side(levels: list[tuple[int, Decimal]], taken: list[Decimal]) -> list[tuple[Decimal, Decimal]]:
            out = [(tick * t, size - took) for (t, size), took in zip(levels, taken, strict=True)]
            return [level for level in out if level[1] > 0][:limit]

        bids, asks = side(self.bids, self.taken_bids), side(self.asks, self.taken_asks)
        return Depth(self.info.symbol, bids, asks, update_id, now)
