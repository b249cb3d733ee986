"""The paper venue's matching engine: synthetic markets, order books, orders, fills and balances.

Synchronous and deterministic on purpose: `PaperExchange` wraps it for the executor's async port,
and the Binance-compatible emulator serves it over REST, so it knows nothing about asyncio or the
port's dataclasses. Everything it hands out is a snapshot; its state changes only through its
methods.

Market model: each symbol's mid price is a seeded random walk advanced in discrete steps of
`step_seconds` of the injected clock. Around the mid sits a synthetic book of `BOOK_LEVELS` levels
per side whose last level is bottomless, so a market order always fills. Takers walk that book (and
consume it until the next step); resting limit orders are filled a seeded-random part at a time
whenever a later step's touch crosses their price, at their price, as makers.

Money is `Decimal` throughout. A buy limit order locks `amount * price * (1 + max fee)` of the
quote currency (`exact_locks=True`: exactly `amount * price`, as Binance, since a buy's fee is
paid in the base), a sell locks the base amount; each fill releases its exact share of the lock
and the order's leftover lock is released when it ends, so `used` returns to exactly zero.

Fees as Binance charges them without BNB discounts: in the asset the trade brings in, so a buy
pays its fee in the base currency (it receives `amount - fee` and pays `amount * price`), a sell
in the quote currency (it receives `amount * price - fee`). Each trade's fee is rounded to
`FEE_DECIMALS` places (Binance's commission precision), and that rounded fee is what moves.

Client order ids are unique among open orders only, as on Binance: once an order ended, a new
order may reuse its id, and a lookup by client order id finds the most recent order with it.

Orders are GTC by default (what the paper exchange sends); `time_in_force="IOC"` takes what
crosses and expires the rest, `"FOK"` fills completely at once or expires untouched, and
`post_only=True` (Binance's LIMIT_MAKER) is refused with `WOULD_TAKE` when it would cross. A
market order may name the quote to spend or receive instead of its amount (`quote_amount`,
Binance's `quoteOrderQty`): the amount is the most, in whole steps, whose walk of the book costs
or brings at most that quote.

History, for a venue's market data: every step's last price and every fill go into one-minute
candles of the last `CANDLE_MINUTES` minutes, from which the ticker's rolling 24 hours (open,
high, low, volumes), `avg_price` and `candles` are read. Volumes are the engine's own fills: the
synthetic book's other traders are not recorded.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from executor.models import Balance, MarketInfo, OrderStatus, OrderType, Side, to_decimal

ZERO = Decimal(0)
FEE_DECIMALS = 8  # Binance's baseCommissionPrecision / quoteCommissionPrecision
_FEE_QUANTUM = Decimal(1).scaleb(-FEE_DECIMALS)
BOOK_LEVELS = 10  # per side, unless the engine is built with `book_levels`
CANDLE_MINUTES = 1440  # one-minute candles kept: the ticker's 24 hours
_PRICE_QUANTUM = Decimal("1e-8")
# Quote notional of the synthetic book's best level; deeper levels grow linearly from it.
LEVEL_NOTIONAL = 20_000.0
_LEVEL_GAP = 0.00005  # 0.5 bp between book levels
_HALF_SPREAD = (0.00005, 0.0001)  # half-spread drawn per step: a 1-2 bp spread
_FULL_FILL_CHANCE = 0.35  # share of crossing steps that fill a resting order completely
_MIN_MID_TICKS = 100  # keeps every book level above zero however far the walk wanders
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")  # what Binance accepts as newClientOrderId
_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")


class ErrorKind(StrEnum):
    BAD_SYMBOL = "bad_symbol"
    FILTER_FAILURE = "filter_failure"
    DUPLICATE_ORDER = "duplicate_order"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    UNKNOWN_ORDER = "unknown_order"
    BAD_REQUEST = "bad_request"
    WOULD_TAKE = "would_take"  # a post-only order that would cross


class EngineError(Exception):
    """Every refusal of the engine. `filter` names the Binance filter for `filter_failure`."""

    def __init__(self, kind: ErrorKind | str, message: str, *, filter: str | None = None) -> None:
        super().__init__(message)
        self.kind = ErrorKind(kind)
        self.message = message
        self.filter = filter


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


@dataclass(slots=True)
class EngineOrder:
    """One order ever placed. The engine hands out copies; `id` is Binance's numeric orderId."""

    id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    status: OrderStatus
    created_at: float  # epoch seconds
    updated_at: float
    filled: Decimal = ZERO
    cost: Decimal = ZERO  # quote spent or received, fees excluded
    fee: Decimal = ZERO  # in `fee_currency`: the base for a buy, the quote for a sell
    fee_currency: str = ""
    locked: Decimal = ZERO  # what this order still holds in `used` (quote for buys, base for sells)
    ticks: int = 0  # price in ticks, the resting book's key
    time_in_force: str = "GTC"  # GTC, IOC or FOK
    post_only: bool = False  # Binance's LIMIT_MAKER
    quote_amount: Decimal | None = None  # a market order by quote (Binance's quoteOrderQty)

    @property
    def exchange_order_id(self) -> str:
        return f"paper-{self.id}"

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def average(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class EngineTrade:
    id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    maker: bool
    ts: float  # epoch seconds

    @property
    def exchange_order_id(self) -> str:
        return f"paper-{self.order_id}"

    @property
    def cost(self) -> Decimal:
        return self.amount * self.price


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


@dataclass(frozen=True, slots=True)
class Depth:
    symbol: str
    bids: list[tuple[Decimal, Decimal]]  # (price, amount), best first
    asks: list[tuple[Decimal, Decimal]]
    update_id: int
    ts: float


class _RestingSide:
    """Resting orders of one side of one market, best price first, FIFO within a price.

    Keys are ticks for sells and negated ticks for buys, so "best first" is ascending for both
    and "crosses the touch" is `key <= bound` for both.
    """

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, side: Side) -> None:
        self.sign = -1 if side is Side.BUY else 1
        self.keys: list[int] = []
        self.levels: dict[int, dict[int, EngineOrder]] = {}

    def add(self, order: EngineOrder) -> None:
        key = self.sign * order.ticks
        level = self.levels.get(key)
        if level is None:
            bisect.insort(self.keys, key)
            level = self.levels[key] = {}
        level[order.id] = order

    def remove(self, order: EngineOrder) -> None:
        key = self.sign * order.ticks
        level = self.levels[key]
        del level[order.id]
        if not level:
            del self.levels[key]
            del self.keys[bisect.bisect_left(self.keys, key)]

    def crossing(self, touch_ticks: int) -> list[EngineOrder]:
        """Orders a taker at `touch_ticks` would trade with; only these are touched."""
        bound = self.sign * touch_ticks
        out: list[EngineOrder] = []
        for key in self.keys:
            if key > bound:
                break
            out.extend(self.levels[key].values())
        return out


@dataclass(slots=True)
class _Market:
    info: MarketInfo
    spec: MarketSpec
    rng: random.Random
    fill_rng: random.Random
    tick_f: float
    step_f: float
    mid: float
    bid_t: int = 0
    ask_t: int = 0
    last_t: int = 0
    shape: float = 1.0
    book_step: int = -1
    bids: list[tuple[int, Decimal]] = field(default_factory=list)
    asks: list[tuple[int, Decimal]] = field(default_factory=list)
    taken_bids: list[Decimal] = field(default_factory=list)
    taken_asks: list[Decimal] = field(default_factory=list)
    resting_buys: _RestingSide = field(default_factory=lambda: _RestingSide(Side.BUY))
    resting_sells: _RestingSide = field(default_factory=lambda: _RestingSide(Side.SELL))
    open: dict[int, EngineOrder] = field(default_factory=dict)
    orders: list[EngineOrder] = field(default_factory=list)
    trades: list[EngineTrade] = field(default_factory=list)
    # One-minute candles, oldest first: [minute, open, high, low, close (ticks), base volume, quote
    # volume, fills, sum of the sampled ticks, samples, taker-buy base, taker-buy quote].
    candles: deque[list] = field(default_factory=lambda: deque(maxlen=CANDLE_MINUTES))
    rolling: tuple | None = None  # the 24 hours of closed candles, cached until a minute turns


def _fmt(value: Decimal) -> str:
    """A Decimal for a human: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def _market_info(symbol: str, spec: MarketSpec, maker: Decimal, taker: Decimal) -> MarketInfo:
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


class PaperEngine:
    """A deterministic spot venue. Same seed, same markets, same calls, same clock: same run."""

    def __init__(
        self,
        seed: int,
        markets: Iterable[str],
        balances: dict[str, Decimal | float | int | str],
        fee_pct: Decimal | float = 0.1,
        maker_fee_pct: Decimal | float | None = None,
        clock: Callable[[], float] = time.monotonic,
        step_seconds: float = 0.25,
        *,
        epoch: float | None = None,
        specs: dict[str, MarketSpec] | None = None,
        book_levels: int = BOOK_LEVELS,
        exact_locks: bool = False,
    ) -> None:
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        if book_levels < 2:
            raise ValueError("book_levels must be at least 2")
        self.book_levels = book_levels
        self.seed = seed
        self.clock = clock
        self.step_seconds = step_seconds
        self.taker_fee = to_decimal(fee_pct) / 100
        self.maker_fee = to_decimal(fee_pct if maker_fee_pct is None else maker_fee_pct) / 100
        # One lock rate covers a fill as maker or as taker; Binance locks a buy's cost exactly.
        self._lock_fee = Decimal(1) if exact_locks else 1 + max(self.maker_fee, self.taker_fee)
        self._t0 = clock()
        # Epoch seconds at clock t0: timestamps stay deterministic under a fake clock and a fixed epoch.
        self._epoch = time.time() if epoch is None else epoch
        self._step = 0
        self._last_ts = self._epoch
        self._updates = 0
        self._markets: dict[str, _Market] = {}
        for symbol in markets:
            self._add_market(symbol, (specs or {}).get(symbol))
        self._free: dict[str, Decimal] = {}
        self._used: dict[str, Decimal] = {}
        for currency, amount in balances.items():
            value = to_decimal(amount)
            if value < 0:
                raise ValueError(f"balance of {currency} is negative")
            self._free[currency] = value
            self._used[currency] = ZERO
        self._orders: dict[int, EngineOrder] = {}
        self._by_client_id: dict[str, EngineOrder] = {}
        self._trades: list[EngineTrade] = []
        self._order_trades: dict[int, list[EngineTrade]] = {}
        self._next_order_id = 1
        self._next_trade_id = 1

    # ------------------------------------------------------------------ markets and time

    def _add_market(self, symbol: str, spec: MarketSpec | None) -> None:
        if not _SYMBOL.match(symbol):
            raise ValueError(f"market {symbol!r} is not BASE/QUOTE")
        if symbol in self._markets:
            return
        spec = spec or BUILTIN_MARKETS.get(symbol, GENERIC_MARKET)
        m = _Market(
            info=_market_info(symbol, spec, self.maker_fee, self.taker_fee),
            spec=spec,
            # Per-symbol generators: adding a market never changes another market's path.
            rng=random.Random(f"{self.seed}:{symbol}"),
            fill_rng=random.Random(f"{self.seed}:{symbol}:fills"),
            tick_f=float(spec.price_tick),
            step_f=float(spec.amount_step),
            mid=float(spec.start),
        )
        self._walk(m)
        self._markets[symbol] = m

    def markets(self) -> dict[str, MarketInfo]:
        return {symbol: m.info for symbol, m in self._markets.items()}

    def market(self, symbol: str) -> MarketInfo:
        return self._market(symbol).info

    @property
    def step(self) -> int:
        """Steps the market has advanced since the engine started."""
        return self._step

    def sync(self) -> int:
        """Advance every market to the clock's now; returns the number of steps taken."""
        due = math.floor((self.clock() - self._t0) / self.step_seconds + 1e-9) - self._step
        if due > 0:
            self.advance(due)
            return due
        return 0

    def advance(self, steps: int = 1) -> list[EngineTrade]:
        """Advance every market `steps` steps; returns the fills of resting orders this caused."""
        start = len(self._trades)
        for _ in range(steps):
            self._step += 1
            self._updates += 1
            for m in self._markets.values():
                self._walk(m)
                self._fill_crossing(m)
        return self._trades[start:]

    def _walk(self, m: _Market) -> None:
        rng = m.rng
        m.mid = max(m.mid * math.exp(rng.gauss(0.0, m.spec.volatility)), _MIN_MID_TICKS * m.tick_f)
        mid_t = round(m.mid / m.tick_f)
        lo, hi = _HALF_SPREAD
        half = max(1, round(mid_t * (lo + (hi - lo) * rng.random())))
        m.bid_t, m.ask_t = mid_t - half, mid_t + half
        m.shape = 0.5 + rng.random()
        m.last_t = last = m.bid_t if rng.random() < 0.5 else m.ask_t
        minute = int((self._epoch + self._step * self.step_seconds) // 60)
        candles = m.candles
        c = candles[-1] if candles else None
        if c is None or minute > c[0]:
            candles.append([minute, last, last, last, last, ZERO, ZERO, 0, last, 1, ZERO, ZERO])
            return
        if last > c[2]:
            c[2] = last
        elif last < c[3]:
            c[3] = last
        c[4] = last
        c[8] += last
        c[9] += 1

    @staticmethod
    def _sample_fill(m: _Market, ts: float, ticks: int, qty: Decimal, cost: Decimal, taker_buy: bool) -> None:
        """A fill into the candle of its minute (the last candle, if that is later: time never runs back)."""
        minute = int(ts // 60)
        candles = m.candles
        c = candles[-1]
        if minute > c[0]:
            c = [minute, ticks, ticks, ticks, ticks, ZERO, ZERO, 0, 0, 0, ZERO, ZERO]
            candles.append(c)
        else:
            if ticks > c[2]:
                c[2] = ticks
            if ticks < c[3]:
                c[3] = ticks
            c[4] = ticks
        c[5] += qty
        c[6] += cost
        c[7] += 1
        c[8] += ticks
        c[9] += 1
        if taker_buy:
            c[10] += qty
            c[11] += cost

    def _book(self, m: _Market) -> None:
        """Build the synthetic book of the current step, once, when somebody needs it."""
        if m.book_step == self._step:
            return
        gap = max(1, round((m.bid_t + m.ask_t) / 2 * _LEVEL_GAP))
        step, max_amount = m.spec.amount_step, m.spec.max_amount

        n = self.book_levels

        def levels(touch: int, direction: int) -> list[tuple[int, Decimal]]:
            out = []
            for i in range(n - 1):
                ticks = touch + direction * i * gap
                units = int(LEVEL_NOTIONAL * m.shape * (i + 1) / (ticks * m.tick_f) / m.step_f)
                out.append((ticks, step * max(units, 1)))
            # The last level is bottomless (shown as the largest order allowed): market orders always fill.
            out.append((touch + direction * (n - 1) * gap, max_amount))
            return out

        m.bids = levels(m.bid_t, -1)
        m.asks = levels(m.ask_t, 1)
        m.taken_bids = [ZERO] * n
        m.taken_asks = [ZERO] * n
        m.book_step = self._step

    def now(self) -> float:
        """The venue's time in epoch seconds; never goes backwards, even when `advance` runs ahead."""
        ts = self._epoch + max(self.clock() - self._t0, self._step * self.step_seconds)
        if ts > self._last_ts:
            self._last_ts = ts
        return self._last_ts

    def _market(self, symbol: str) -> _Market:
        m = self._markets.get(symbol)
        if m is None:
            known = ", ".join(self._markets) or "none"
            raise EngineError(
                ErrorKind.BAD_SYMBOL, f"Invalid symbol. {symbol!r} is not traded here (markets: {known})."
            )
        return m

    # ------------------------------------------------------------------ market data

    def ticker(self, symbol: str) -> TickerRecord:
        """The touch and the last price now, and the rolling 24 hours: their open (the price at their
        start), high, low and the engine's own volume and fills in them. Open and last always lie
        within high and low."""
        m = self._market(symbol)
        self._book(m)
        tick = m.spec.price_tick
        now = self.now()
        first = int(now // 60) - (CANDLE_MINUTES - 1)
        open_t, high_t, low_t, base, quote = self._rolling(m, first)
        trades = m.trades
        start = bisect.bisect_left(trades, first * 60, key=lambda t: t.ts)
        return TickerRecord(
            symbol=symbol,
            bid=tick * m.bid_t,
            ask=tick * m.ask_t,
            last=tick * m.last_t,
            bid_amount=m.bids[0][1] - m.taken_bids[0],
            ask_amount=m.asks[0][1] - m.taken_asks[0],
            open=tick * open_t,
            high=tick * high_t,
            low=tick * low_t,
            base_volume=base,
            quote_volume=quote,
            ts=now,
            count=len(trades) - start,
            first_id=trades[start].id if start < len(trades) else -1,
            last_id=trades[-1].id if start < len(trades) else -1,
            last_amount=trades[-1].amount if start < len(trades) else ZERO,
        )

    @staticmethod
    def _rolling(m: _Market, first: int) -> tuple[int, int, int, Decimal, Decimal]:
        """Open, high, low (ticks) and volumes of the candles from minute `first` on. The closed
        candles' share is computed once a minute; the last candle, still moving, is added to it."""
        candles = m.candles
        last = candles[-1]
        key = (first, last[0])
        cache = m.rolling
        if cache is None or cache[0] != key:
            o = h = lo = None
            base = quote = ZERO
            for c in itertools.islice(candles, 0, len(candles) - 1):
                if c[0] < first:
                    continue
                if o is None:
                    o, h, lo = c[1], c[2], c[3]
                else:
                    h, lo = max(h, c[2]), min(lo, c[3])
                base += c[5]
                quote += c[6]
            m.rolling = cache = (key, o, h, lo, base, quote)
        _, o, h, lo, base, quote = cache
        if last[0] < first:  # nothing sampled for a day: the price stood still
            return last[4], last[4], last[4], ZERO, ZERO
        if o is None:
            return last[1], last[2], last[3], last[5], last[6]
        return o, max(h, last[2]), min(lo, last[3]), base + last[5], quote + last[6]

    def avg_price(self, symbol: str, minutes: int = 5) -> Decimal:
        """The mean of the last price, step by step and fill by fill, over the last `minutes` minutes
        (Binance's avgPrice and the reference of PERCENT_PRICE_BY_SIDE), to 8 decimals."""
        m = self._market(symbol)
        first = int(self.now() // 60) - minutes + 1
        total = samples = 0
        for c in reversed(m.candles):
            if c[0] < first:
                break
            total += c[8]
            samples += c[9]
        if not samples:
            return m.spec.price_tick * m.last_t
        return (m.spec.price_tick * total / samples).quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_UP)

    def candles(self, symbol: str, since: float | None = None, until: float | None = None) -> list[Candle]:
        """The one-minute candles (of the last `CANDLE_MINUTES` minutes), oldest first; `since` /
        `until` (epoch seconds, inclusive) select by the minute's start."""
        m = self._market(symbol)
        tick = m.spec.price_tick
        out = []
        for c in m.candles:
            start = c[0] * 60
            if (since is not None and start < since) or (until is not None and start > until):
                continue
            out.append(
                Candle(start, tick * c[1], tick * c[2], tick * c[3], tick * c[4], c[5], c[6], c[7], c[10], c[11])
            )
        return out

    def depth(self, symbol: str, limit: int = BOOK_LEVELS) -> Depth:
        """The synthetic book left after this step's takers. Resting orders are not shown in it."""
        m = self._market(symbol)
        if limit < 1:
            raise EngineError(ErrorKind.BAD_REQUEST, f"Illegal limit {limit}: it must be at least 1.")
        self._book(m)
        tick = m.spec.price_tick

        def side(levels: list[tuple[int, Decimal]], taken: list[Decimal]) -> list[tuple[Decimal, Decimal]]:
            out = [(tick * t, size - took) for (t, size), took in zip(levels, taken, strict=True)]
            return [level for level in out if level[1] > 0][:limit]

        return Depth(symbol, side(m.bids, m.taken_bids), side(m.asks, m.taken_asks), self._updates, self.now())

    # ------------------------------------------------------------------ balances

    def balances(self) -> dict[str, Balance]:
        return {c: Balance(c, self._free[c], self._used[c]) for c in self._free}

    def balance(self, currency: str) -> Balance:
        return Balance(currency, self._free.get(currency, ZERO), self._used.get(currency, ZERO))

    def deposit(self, currency: str, amount: Decimal | float | int | str) -> Balance:
        """Test and demo hook: money in (or out, when negative) that no trade explains, like a transfer."""
        value = to_decimal(amount)
        self._require(currency, -value)
        self._credit(currency, value)
        return self.balance(currency)

    def _credit(self, currency: str, amount: Decimal) -> None:
        if currency not in self._free:
            self._free[currency] = ZERO
            self._used[currency] = ZERO
        self._free[currency] += amount

    # ------------------------------------------------------------------ orders

    def create_order(
        self,
        client_order_id: str | None,
        symbol: str,
        side: Side | str,
        type: OrderType | str,
        amount: Decimal | float | str | None,
        price: Decimal | float | str | None = None,
        *,
        time_in_force: str = "GTC",
        post_only: bool = False,
        quote_amount: Decimal | float | str | None = None,
    ) -> EngineOrder:
        """Place an order. `client_order_id=None` gets a generated one, as on Binance.

        A client order id may be reused once the order that had it ended; while that order is open
        a reuse is `DUPLICATE_ORDER`. `time_in_force` (GTC, IOC, FOK) and `post_only` apply to limit
        orders; a market order with `quote_amount` (and `amount=None`) spends or brings that quote.
        """
        m = self._market(symbol)
        quote = None
        if quote_amount is not None:
            quote = self._quote_arg(type, quote_amount)
            amount = self._quote_walk(m, self._side_arg(side), quote)
        tif = self._tif_arg(type, time_in_force, post_only)
        side, type, amount, price, ticks, client_order_id = self._check(
            m, client_order_id, side, type, amount, price, notional=quote
        )
        info = m.info
        is_buy = side is Side.BUY
        lock_currency = info.quote if is_buy else info.base
        if price is None:
            fills = self._take(m, side, amount, None)
            lock = ZERO
            if is_buy:
                # The fee comes out of the base received: the quote needed is the cost of the walk.
                self._require(lock_currency, sum((info.price_tick * t * q for _, t, q in fills), ZERO))
            else:
                self._require(lock_currency, amount)
        else:
            lock = amount * price * self._lock_fee if is_buy else amount
            self._require(lock_currency, lock)
            self._book(m)
            crosses = m.ask_t <= ticks if is_buy else m.bid_t >= ticks
            if crosses and post_only:
                raise EngineError(
                    ErrorKind.WOULD_TAKE,
                    f"Order would immediately match and take: a post-only {side.value} at {_fmt(price)} "
                    f"crosses {_fmt(info.price_tick * (m.ask_t if is_buy else m.bid_t))} in {symbol}.",
                )
            fills = self._take(m, side, amount, ticks) if crosses else []
            if tif == "FOK" and sum((q for _, _, q in fills), ZERO) < amount:
                fills = []  # all or nothing: it expires untouched

        now = self.now()
        order = self._accept(m, client_order_id, side, type, amount, price, ticks, lock, now)
        order.time_in_force, order.post_only, order.quote_amount = tif, post_only, quote
        taken = m.taken_asks if is_buy else m.taken_bids
        last_level = self.book_levels - 1
        for level, level_ticks, qty in fills:
            if level < last_level:
                taken[level] += qty
            self._fill(m, order, qty, info.price_tick * level_ticks, maker=False, ts=now)
        if order.status is OrderStatus.FILLED:
            self._release(m, order)
        elif tif != "GTC":  # IOC and FOK never rest: what did not fill at once expires
            order.status = OrderStatus.EXPIRED
            self._release(m, order)
        else:
            self._rest(m, order)
        return copy.copy(order)

    @staticmethod
    def _side_arg(side: Side | str) -> Side:
        try:
            return Side(side)
        except ValueError:
            raise EngineError(ErrorKind.BAD_REQUEST, f"Invalid side {side!r}: use buy or sell.") from None

    @staticmethod
    def _tif_arg(type: OrderType | str, time_in_force: str, post_only: bool) -> str:
        if time_in_force not in ("GTC", "IOC", "FOK"):
            raise EngineError(ErrorKind.BAD_REQUEST, f"Invalid time in force {time_in_force!r}: use GTC, IOC or FOK.")
        if (time_in_force != "GTC" or post_only) and type not in (OrderType.LIMIT, "limit"):
            raise EngineError(ErrorKind.BAD_REQUEST, "Only a limit order takes a time in force or post-only.")
        if post_only and time_in_force != "GTC":
            raise EngineError(ErrorKind.BAD_REQUEST, "A post-only order rests: its time in force is GTC.")
        return time_in_force

    @staticmethod
    def _quote_arg(type: OrderType | str, quote_amount: Decimal | float | str) -> Decimal:
        if type not in (OrderType.MARKET, "market"):
            raise EngineError(ErrorKind.BAD_REQUEST, "Only a market order may be sized by its quote.")
        try:
            quote = to_decimal(quote_amount)
        except (ArithmeticError, ValueError, TypeError):
            quote = None
        if quote is None or not quote.is_finite() or quote <= 0:
            raise EngineError(ErrorKind.BAD_REQUEST, f"Invalid quote amount {quote_amount}: it must be positive.")
        return quote

    def _quote_walk(self, m: _Market, side: Side | str, quote: Decimal) -> Decimal:
        """The largest amount, in whole steps, whose walk of the book costs (a buy) or brings (a sell)
        at most `quote`. Below the market's minimum amount it is LOT_SIZE; below its minimum
        notional, NOTIONAL (the quote is the notional)."""
        info = m.info
        if quote < info.min_cost:
            raise EngineError(
                ErrorKind.FILTER_FAILURE,
                f"Filter failure: NOTIONAL (notional {_fmt(quote)} {info.quote} is below the minimum "
                f"{_fmt(info.min_cost)} {info.quote} for {info.symbol}).",
                filter="NOTIONAL",
            )
        self._book(m)
        levels, taken = (m.asks, m.taken_asks) if side is Side.BUY else (m.bids, m.taken_bids)
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
                f"Filter failure: LOT_SIZE ({_fmt(quote)} {info.quote} buys less than the minimum "
                f"{_fmt(info.min_amount)} {info.base} for {info.symbol}).",
                filter="LOT_SIZE",
            )
        return amount

    def place_resting(
        self,
        symbol: str,
        side: Side | str,
        amount: Decimal | float | str,
        price: Decimal | float | str | None = None,
        client_order_id: str | None = None,
        created_at: float | None = None,
    ) -> EngineOrder:
        """Seed a resting limit order fast (tests, benchmarks): it rests and never takes liquidity.

        Checked and locked like any limit order (filters, funds, an open duplicate id), but it must
        not cross the touch: a price that would trade at once is `BAD_REQUEST`. `price=None` picks
        one far away (half the bid for a buy, one and a half times the ask for a sell), so the
        random walk does not reach it in any run of sane length. `created_at` (epoch seconds,
        default now) backdates it, e.g. for `allOrders` time windows. Nothing here counts against
        an emulator's rate limits: the emulator is not involved.
        """
        m = self._market(symbol)
        self._book(m)
        tick = m.info.price_tick
        if price is None:
            try:
                wanted = Side(side)
            except ValueError:
                wanted = None  # refused by `_check` below, with the usual message
            if wanted is Side.BUY:
                price = tick * max(1, m.bid_t // 2)
            elif wanted is Side.SELL:
                price = tick * (m.ask_t * 3 // 2 + 1)
        side, _, amount, price, ticks, client_order_id = self._check(
            m, client_order_id, side, OrderType.LIMIT, amount, price
        )
        assert price is not None
        is_buy = side is Side.BUY
        if (m.ask_t <= ticks) if is_buy else (m.bid_t >= ticks):
            touch = tick * (m.ask_t if is_buy else m.bid_t)
            raise EngineError(
                ErrorKind.BAD_REQUEST,
                f"A resting order must not cross the touch: {side.value} at {_fmt(price)} would trade against "
                f"{_fmt(touch)} in {symbol}.",
            )
        lock = amount * price * self._lock_fee if is_buy else amount
        self._require(m.info.quote if is_buy else m.info.base, lock)
        now = self.now() if created_at is None else float(created_at)
        order = self._accept(m, client_order_id, side, OrderType.LIMIT, amount, price, ticks, lock, now)
        self._rest(m, order)
        return copy.copy(order)

    def _check(
        self,
        m: _Market,
        client_order_id: str | None,
        side: Side | str,
        type: OrderType | str,
        amount: Decimal | float | str,
        price: Decimal | float | str | None,
        *,
        notional: Decimal | None = None,
    ) -> tuple[Side, OrderType, Decimal, Decimal | None, int, str]:
        """Everything refused before an order exists: syntax, filters, an open duplicate id."""
        side, type, amount, price = self._parse(client_order_id, side, type, amount, price)
        ticks = self._check_filters(m, side, amount, price, notional)
        if client_order_id is None:
            client_order_id = f"paper-cid-{self._next_order_id}"
        previous = self._by_client_id.get(client_order_id)
        if previous is not None and previous.is_open:
            raise EngineError(
                ErrorKind.DUPLICATE_ORDER,
                f"Duplicate order sent. Client order id {client_order_id!r} is already used by open order "
                f"{previous.exchange_order_id}.",
            )
        return side, type, amount, price, ticks, client_order_id

    def _accept(
        self,
        m: _Market,
        client_order_id: str,
        side: Side,
        type: OrderType,
        amount: Decimal,
        price: Decimal | None,
        ticks: int,
        lock: Decimal,
        now: float,
    ) -> EngineOrder:
        """The order exists from here on: numbered, recorded, its lock taken."""
        info = m.info
        is_buy = side is Side.BUY
        order = EngineOrder(
            id=self._next_order_id,
            client_order_id=client_order_id,
            symbol=info.symbol,
            side=side,
            type=type,
            amount=amount,
            price=price,
            status=OrderStatus.OPEN,
            created_at=now,
            updated_at=now,
            fee_currency=info.base if is_buy else info.quote,
            locked=lock,
            ticks=ticks,
        )
        self._next_order_id += 1
        self._orders[order.id] = order
        self._by_client_id[client_order_id] = order  # the most recent order with this id
        m.orders.append(order)
        self._updates += 1
        if lock:
            currency = info.quote if is_buy else info.base
            self._free[currency] -= lock
            self._used[currency] += lock
        return order

    def validate_order(
        self,
        symbol: str,
        side: Side | str,
        type: OrderType | str,
        amount: Decimal | float | str | None,
        price: Decimal | float | str | None = None,
        *,
        time_in_force: str = "GTC",
        post_only: bool = False,
        quote_amount: Decimal | float | str | None = None,
    ) -> None:
        """Refuse, as `create_order` would, an order that breaks the syntax or a filter (PRICE_FILTER,
        LOT_SIZE, NOTIONAL); funds, client order ids and whether a post-only order would cross are
        not looked at. For cancel-replace, which checks the new order's filters before it cancels
        anything."""
        m = self._market(symbol)
        quote = None
        if quote_amount is not None:
            quote = self._quote_arg(type, quote_amount)
            amount = self._quote_walk(m, self._side_arg(side), quote)
        self._tif_arg(type, time_in_force, post_only)
        side, _, amount, price = self._parse(None, side, type, amount, price)
        self._check_filters(m, side, amount, price, quote)

    def _check_filters(
        self, m: _Market, side: Side, amount: Decimal, price: Decimal | None, notional: Decimal | None = None
    ) -> int:
        """PRICE_FILTER, LOT_SIZE and NOTIONAL (of `notional` when given: a market order by quote);
        returns the price in ticks (0 for a market order)."""
        info = m.info
        ticks = 0
        if price is not None:
            self._check_price(info, price)
            ticks = int(price / info.price_tick)
        self._check_amount(info, amount)
        # Market orders are checked at the touch, as Binance applies NOTIONAL to market orders.
        if notional is None:
            touch = info.price_tick * (m.ask_t if side is Side.BUY else m.bid_t)
            notional = amount * (price if price is not None else touch)
        if notional < info.min_cost:
            raise EngineError(
                ErrorKind.FILTER_FAILURE,
                f"Filter failure: NOTIONAL (notional {_fmt(notional)} {info.quote} is below the minimum "
                f"{_fmt(info.min_cost)} {info.quote} for {info.symbol}).",
                filter="NOTIONAL",
            )
        return ticks

    @staticmethod
    def _rest(m: _Market, order: EngineOrder) -> None:
        m.open[order.id] = order
        (m.resting_buys if order.side is Side.BUY else m.resting_sells).add(order)

    def _parse(
        self,
        client_order_id: str | None,
        side: Side | str,
        type: OrderType | str,
        amount: Decimal | float | str,
        price: Decimal | float | str | None,
    ) -> tuple[Side, OrderType, Decimal, Decimal | None]:
        def bad(message: str) -> EngineError:
            return EngineError(ErrorKind.BAD_REQUEST, message)

        if client_order_id is not None and not _CLIENT_ID.match(client_order_id):
            raise bad(f"Illegal client order id {client_order_id!r}: use 1-36 of [A-Za-z0-9_-].")
        try:
            side = Side(side)
        except ValueError:
            raise bad(f"Invalid side {side!r}: use buy or sell.") from None
        try:
            type = OrderType(type)
        except ValueError:
            raise bad(f"Invalid order type {type!r}: use limit or market.") from None
        try:
            qty = to_decimal(amount)
            # A market order's price is ignored, as ccxt does for Binance.
            limit = None if price is None or type is OrderType.MARKET else to_decimal(price)
        except (ArithmeticError, ValueError, TypeError):
            raise bad(f"Invalid number in amount {amount!r} or price {price!r}.") from None
        if not qty.is_finite() or qty <= 0:
            raise bad(f"Invalid quantity {amount}: it must be a positive number.")
        if type is OrderType.LIMIT:
            if limit is None:
                raise bad("A limit order needs a price.")
            if not limit.is_finite() or limit <= 0:
                raise bad(f"Invalid price {price}: it must be a positive number.")
        return side, type, qty, limit

    @staticmethod
    def _check_price(info: MarketInfo, price: Decimal) -> None:
        if _off_grid(price, info.price_tick):
            raise EngineError(
                ErrorKind.FILTER_FAILURE,
                f"Filter failure: PRICE_FILTER (price {_fmt(price)} is not a multiple of the tick size "
                f"{_fmt(info.price_tick)} for {info.symbol}).",
                filter="PRICE_FILTER",
            )

    @staticmethod
    def _check_amount(info: MarketInfo, amount: Decimal) -> None:
        problem = None
        if amount < info.min_amount:
            problem = f"is below the minimum {_fmt(info.min_amount)}"
        elif info.max_amount is not None and amount > info.max_amount:
            problem = f"is above the maximum {_fmt(info.max_amount)}"
        elif _off_grid(amount, info.amount_step):
            problem = f"is not a multiple of the step {_fmt(info.amount_step)}"
        if problem:
            raise EngineError(
                ErrorKind.FILTER_FAILURE,
                f"Filter failure: LOT_SIZE (amount {_fmt(amount)} {info.base} {problem} for {info.symbol}).",
                filter="LOT_SIZE",
            )

    def _require(self, currency: str, needed: Decimal) -> None:
        free = self._free.get(currency, ZERO)
        if needed > free:
            raise EngineError(
                ErrorKind.INSUFFICIENT_FUNDS,
                f"Account has insufficient balance for requested action: needs {_fmt(needed)} {currency}, "
                f"{_fmt(free)} {currency} free.",
            )

    def _take(self, m: _Market, side: Side, amount: Decimal, limit_ticks: int | None) -> list[tuple[int, int, Decimal]]:
        """Plan a taker's walk of the synthetic book: (level, ticks, amount) per level it trades at."""
        self._book(m)
        if side is Side.BUY:
            levels, taken = m.asks, m.taken_asks
        else:
            levels, taken = m.bids, m.taken_bids
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

    def _fill(self, m: _Market, order: EngineOrder, qty: Decimal, price: Decimal, *, maker: bool, ts: float) -> None:
        """Settle one trade of `order`; the only place where fills move money."""
        info = m.info
        cost = qty * price
        rate = self.maker_fee if maker else self.taker_fee
        if order.side is Side.BUY:
            # Charged in what the buy brings in, the base currency, as Binance does.
            fee, fee_currency = _fee(qty * rate), info.base
            if order.price is not None:
                release = qty * order.price * self._lock_fee
                order.locked -= release
                self._used[info.quote] -= release
                self._free[info.quote] += release
            self._free[info.quote] -= cost
            self._credit(info.base, qty - fee)
        else:
            fee, fee_currency = _fee(cost * rate), info.quote
            if order.price is not None:
                order.locked -= qty
                self._used[info.base] -= qty
            else:
                self._free[info.base] -= qty
            self._credit(info.quote, cost - fee)
        order.filled += qty
        order.cost += cost
        order.fee += fee
        order.updated_at = ts
        order.status = OrderStatus.FILLED if order.filled >= order.amount else OrderStatus.PARTIALLY_FILLED
        trade = EngineTrade(
            id=self._next_trade_id,
            order_id=order.id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            amount=qty,
            price=price,
            fee=fee,
            fee_currency=fee_currency,
            maker=maker,
            ts=ts,
        )
        self._next_trade_id += 1
        self._updates += 1
        self._trades.append(trade)
        m.trades.append(trade)
        self._order_trades.setdefault(order.id, []).append(trade)
        m.last_t = ticks = int(price / info.price_tick)
        self._sample_fill(m, ts, ticks, qty, cost, (order.side is Side.BUY) is not maker)
        if order.status is OrderStatus.FILLED and order.id in m.open:
            self._close(m, order)

    def _close(self, m: _Market, order: EngineOrder) -> None:
        """Take a final order off the book and give back whatever it still locks."""
        del m.open[order.id]
        (m.resting_buys if order.side is Side.BUY else m.resting_sells).remove(order)
        self._release(m, order)

    def _release(self, m: _Market, order: EngineOrder) -> None:
        if order.locked:
            currency = m.info.quote if order.side is Side.BUY else m.info.base
            self._used[currency] -= order.locked
            self._free[currency] += order.locked
            order.locked = ZERO

    def _fill_crossing(self, m: _Market) -> None:
        if not m.open:
            return
        ts = self.now()
        for order in m.resting_buys.crossing(m.ask_t) + m.resting_sells.crossing(m.bid_t):
            assert order.price is not None
            self._fill(m, order, self._random_part(m, order.remaining), order.price, maker=True, ts=ts)

    def _random_part(self, m: _Market, remaining: Decimal) -> Decimal:
        r = m.fill_rng.random()
        if r < _FULL_FILL_CHANCE:
            return remaining
        step = m.spec.amount_step
        units = int(remaining / step)
        if units <= 1:
            return remaining
        return step * max(1, int(units * r))

    def _lookup(self, client_order_id: str | None, exchange_order_id: str | int | None) -> EngineOrder:
        """By exchange order id, checked against the client order id when both are given (Binance's
        rule); by client order id alone, the most recent order that has it."""
        order = None
        if exchange_order_id is not None:
            order = self._orders.get(_order_number(exchange_order_id))
            if order is not None and client_order_id is not None and order.client_order_id != client_order_id:
                order = None
        elif client_order_id is not None:
            order = self._by_client_id.get(client_order_id)
        else:
            raise EngineError(ErrorKind.BAD_REQUEST, "Give a client order id or an exchange order id.")
        if order is None:
            wanted = client_order_id if client_order_id is not None else exchange_order_id
            raise EngineError(ErrorKind.UNKNOWN_ORDER, f"Order does not exist: no order {wanted!r} here.")
        return order

    def get_order(self, client_order_id: str | None = None, exchange_order_id: str | int | None = None) -> EngineOrder:
        return copy.copy(self._lookup(client_order_id, exchange_order_id))

    def cancel_order(
        self, client_order_id: str | None = None, exchange_order_id: str | int | None = None
    ) -> EngineOrder:
        try:
            order = self._lookup(client_order_id, exchange_order_id)
        except EngineError as exc:
            if exc.kind is not ErrorKind.UNKNOWN_ORDER:
                raise
            raise EngineError(ErrorKind.UNKNOWN_ORDER, f"Unknown order sent. {exc.message}") from None
        if not order.is_open:
            raise EngineError(
                ErrorKind.UNKNOWN_ORDER,
                f"Unknown order sent. Order {order.client_order_id!r} is already {order.status.value}.",
            )
        m = self._markets[order.symbol]
        self._close(m, order)
        order.status = OrderStatus.CANCELED
        order.updated_at = self.now()
        self._updates += 1
        return copy.copy(order)

    def force_fill(
        self, client_order_id: str, amount: Decimal | float | str, price: Decimal | float | str | None = None
    ) -> EngineOrder:
        """Test hook: fill a resting order now, as if the market traded through it (maker fee)."""
        order = self._lookup(client_order_id, None)
        if not order.is_open:
            raise EngineError(ErrorKind.UNKNOWN_ORDER, f"Order {client_order_id!r} is {order.status.value}.")
        assert order.price is not None  # only limit orders rest
        qty = to_decimal(amount)
        fill_price = order.price if price is None else to_decimal(price)
        if not 0 < qty <= order.remaining:
            raise EngineError(
                ErrorKind.BAD_REQUEST, f"Cannot fill {qty}: {order.remaining} of {client_order_id!r} remains."
            )
        worse = fill_price > order.price if order.side is Side.BUY else fill_price < order.price
        if fill_price <= 0 or worse:
            raise EngineError(ErrorKind.BAD_REQUEST, f"Price {fill_price} is beyond the order's limit {order.price}.")
        m = self._markets[order.symbol]
        self._fill(m, order, qty, fill_price, maker=True, ts=self.now())
        return copy.copy(order)

    def open_count(self, symbol: str) -> int:
        """How many orders are open in `symbol` (Binance's MAX_NUM_ORDERS counts them)."""
        return len(self._market(symbol).open)

    def trades_after(self, trade_id: int) -> list[EngineTrade]:
        """Every market's fills with a trade id above `trade_id`, oldest first (ids count from 1)."""
        return self._trades[max(0, trade_id) :]

    def open_orders(self, symbol: str | None = None) -> list[EngineOrder]:
        if symbol is not None:
            return [copy.copy(o) for o in self._market(symbol).open.values()]
        return [copy.copy(o) for m in self._markets.values() for o in m.open.values()]

    def all_orders(
        self,
        symbol: str | None = None,
        limit: int | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        from_id: int | None = None,
    ) -> list[EngineOrder]:
        """Every order ever placed, by exchange order id (oldest first); `limit` keeps the most
        recent ones. `since` / `until` (epoch seconds, inclusive) select by creation time,
        `from_id` orders whose id is at least it."""
        orders: list[EngineOrder] = self._market(symbol).orders if symbol is not None else list(self._orders.values())
        if from_id is not None:
            orders = orders[bisect.bisect_left(orders, from_id, key=lambda o: o.id) :]
        if since is not None or until is not None:
            lo = -math.inf if since is None else since
            hi = math.inf if until is None else until
            orders = [o for o in orders if lo <= o.created_at <= hi]
        if limit is not None:
            orders = orders[-limit:] if limit > 0 else []
        return [copy.copy(o) for o in orders]

    def trades(
        self,
        symbol: str | None = None,
        since: float | None = None,
        *,
        client_order_id: str | None = None,
        exchange_order_id: str | int | None = None,
    ) -> list[EngineTrade]:
        """Fills, oldest first, with `ts >= since` (epoch seconds), optionally of one order only."""
        if client_order_id is not None or exchange_order_id is not None:
            order = self._lookup(client_order_id, exchange_order_id)
            trades = self._order_trades.get(order.id, [])
            if symbol is not None and order.symbol != symbol:
                trades = []
        else:
            trades = self._market(symbol).trades if symbol is not None else self._trades
        if since is not None:
            trades = trades[bisect.bisect_left(trades, since, key=lambda t: t.ts) :]
        return list(trades)


def _fee(value: Decimal) -> Decimal:
    """A trade's fee at Binance's commission precision."""
    return value.quantize(_FEE_QUANTUM, rounding=ROUND_HALF_UP)


def _order_number(exchange_order_id: str | int) -> int:
    if isinstance(exchange_order_id, int):
        return exchange_order_id
    text = exchange_order_id.removeprefix("paper-")
    return int(text) if text.isdigit() else -1


def _off_grid(value: Decimal, step: Decimal) -> bool:
    try:
        return bool(value % step)
    except ArithmeticError:  # too many steps for the context's precision: certainly not a sane order
        return True
