"""The paper venue's matching engine: orders, fills and balances over synthetic markets.

Synchronous and deterministic on purpose: `PaperExchange` wraps it for the executor's async port,
and the Binance-compatible emulator serves it over REST, so it knows nothing about asyncio or the
port's dataclasses. Everything it hands out is a snapshot; its state changes only through its
methods. Owns matching: placing, filling, ending and canceling orders. The markets (price path,
synthetic book) are `market`'s, their candles `history`'s, the order model `orders`', the checks
of a new order `checks`', the money `accounts`' and the records of orders and fills, what is kept
of them (every open order, the last `keep_closed` ended ones) and their reads, `records`'.

Each market advances one step every `step_seconds` of the injected clock. Takers walk the
synthetic book (and consume it until the next step); resting limit orders are filled a
seeded-random part at a time whenever a later step's touch crosses their price, at their price,
as makers. A buy limit order locks `amount * price * (1 + max fee)` of the quote currency
(`exact_locks=True`: exactly `amount * price`, as Binance, since a buy's fee is paid in the base),
a sell locks the base amount; each fill releases its exact share of the lock and the order's
leftover lock is released when it ends, so `used` returns to exactly zero.

Client order ids are unique among open orders only, as on Binance: once an order ended, a new
order may reuse its id, and a lookup by client order id finds the most recent order with it.

Orders are GTC by default (what the paper exchange sends); `time_in_force="IOC"` takes what
crosses and expires the rest, `"FOK"` fills completely at once or expires untouched, and
`post_only=True` (Binance's LIMIT_MAKER) is refused with `WOULD_TAKE` when it would cross. A
market order may name the quote to spend or receive instead of its amount (`quote_amount`,
Binance's `quoteOrderQty`): the amount is the most, in whole steps, whose walk of the book costs
or brings at most that quote.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from executor.models import MarketInfo, OrderStatus, OrderType, Side, to_decimal
from executor.venue import checks
from executor.venue.accounts import Accounts
from executor.venue.history import Candle
from executor.venue.market import (
    BOOK_LEVELS,
    BUILTIN_MARKETS,
    GENERIC_MARKET,
    Depth,
    Market,
    MarketSpec,
    TickerRecord,
    market_info,
)
from executor.venue.orders import ZERO, EngineError, EngineOrder, EngineTrade, ErrorKind, fmt
from executor.venue.records import KEEP_CLOSED, OrderRecords

_FULL_FILL_CHANCE = 0.35  # share of crossing steps that fill a resting order completely
_Given = Decimal | float | str | None  # an amount or price as a caller gives it (`checks.parse` reads it)


class PaperEngine(Accounts, OrderRecords):
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
        keep_closed: int | None = KEEP_CLOSED,
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
        self._markets = {}
        for symbol in markets:
            self._add_market(symbol, (specs or {}).get(symbol))
        self._open_accounts(balances)
        self._open_records(keep_closed)
        self._next_order_id = 1
        self._next_trade_id = 1

    # ------------------------------------------------------------------ markets and time

    def _add_market(self, symbol: str, spec: MarketSpec | None) -> None:
        if not checks.SYMBOL.match(symbol):
            raise ValueError(f"market {symbol!r} is not BASE/QUOTE")
        if symbol in self._markets:
            return
        spec = spec or BUILTIN_MARKETS.get(symbol, GENERIC_MARKET)
        m = Market.create(self.seed, market_info(symbol, spec, self.maker_fee, self.taker_fee), spec, self.book_levels)
        m.walk(self._step, self._minute())
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
        first = self._next_trade_id
        for _ in range(steps):
            self._step += 1
            self._updates += 1
            minute = self._minute()
            for m in self._markets.values():
                m.walk(self._step, minute)
                self._fill_crossing(m)
        return self.trades_after(first - 1)

    def _minute(self) -> int:
        """The epoch minute of the current step."""
        return int((self._epoch + self._step * self.step_seconds) // 60)

    def now(self) -> float:
        """The venue's time in epoch seconds; never goes backwards, even when `advance` runs ahead."""
        ts = self._epoch + max(self.clock() - self._t0, self._step * self.step_seconds)
        if ts > self._last_ts:
            self._last_ts = ts
        return self._last_ts

    # ------------------------------------------------------------------ market data

    def ticker(self, symbol: str) -> TickerRecord:
        """The touch, the last price and the rolling 24 hours (see `Market.ticker`)."""
        m = self._market(symbol)
        return m.ticker(self.now())

    def avg_price(self, symbol: str, minutes: int = 5) -> Decimal:
        """The mean of the last price, step by step and fill by fill, over the last `minutes` minutes
        (Binance's avgPrice and the reference of PERCENT_PRICE_BY_SIDE), to 8 decimals."""
        m = self._market(symbol)
        return m.avg_price(self.now(), minutes)

    def candles(self, symbol: str, since: float | None = None, until: float | None = None) -> list[Candle]:
        """The one-minute candles (of the last `CANDLE_MINUTES` minutes), oldest first; `since` /
        `until` (epoch seconds, inclusive) select by the minute's start."""
        return self._market(symbol).candles(since, until)

    def depth(self, symbol: str, limit: int = BOOK_LEVELS) -> Depth:
        """The synthetic book left after this step's takers. Resting orders are not shown in it."""
        m = self._market(symbol)
        if limit < 1:
            raise EngineError(ErrorKind.BAD_REQUEST, f"Illegal limit {limit}: it must be at least 1.")
        return m.depth(limit, self._updates, self.now())

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
        side, type, amount, price, ticks, tif, quote = self._terms(
            m, client_order_id, side, type, amount, price, time_in_force, post_only, quote_amount
        )
        client_order_id = self._client_id(client_order_id)
        info = m.info
        is_buy = side is Side.BUY
        lock_currency = info.quote if is_buy else info.base
        if price is None:
            fills = m.take(side, amount, None)
            lock = ZERO
            if is_buy:
                # The fee comes out of the base received: the quote needed is the cost of the walk.
                self._require(lock_currency, sum((info.price_tick * t * q for _, t, q in fills), ZERO))
            else:
                self._require(lock_currency, amount)
        else:
            lock = amount * price * self._lock_fee if is_buy else amount
            self._require(lock_currency, lock)
            m.book()
            crosses = m.ask_t <= ticks if is_buy else m.bid_t >= ticks
            if crosses and post_only:
                raise EngineError(
                    ErrorKind.WOULD_TAKE,
                    f"Order would immediately match and take: a post-only {side.value} at {fmt(price)} "
                    f"crosses {fmt(info.price_tick * (m.ask_t if is_buy else m.bid_t))} in {symbol}.",
                )
            fills = m.take(side, amount, ticks) if crosses else []
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
        if tif != "GTC" and order.status is not OrderStatus.FILLED:
            order.status = OrderStatus.EXPIRED  # IOC and FOK never rest: what did not fill at once expires
            order.version += 1
        if order.is_open:
            m.rest(order)
        else:
            self._release(m, order)
            self._ended(order)
        return copy.copy(order)

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
        m.book()
        tick = m.info.price_tick
        if price is None:
            try:
                wanted = Side(side)
            except ValueError:
                wanted = None  # refused by `_terms` below, with the usual message
            if wanted is Side.BUY:
                price = tick * max(1, m.bid_t // 2)
            elif wanted is Side.SELL:
                price = tick * (m.ask_t * 3 // 2 + 1)
        side, _, amount, price, ticks, _, _ = self._terms(m, client_order_id, side, OrderType.LIMIT, amount, price)
        client_order_id = self._client_id(client_order_id)
        assert price is not None
        is_buy = side is Side.BUY
        if (m.ask_t <= ticks) if is_buy else (m.bid_t >= ticks):
            touch = tick * (m.ask_t if is_buy else m.bid_t)
            raise EngineError(
                ErrorKind.BAD_REQUEST,
                f"A resting order must not cross the touch: {side.value} at {fmt(price)} would trade against "
                f"{fmt(touch)} in {symbol}.",
            )
        lock = amount * price * self._lock_fee if is_buy else amount
        self._require(m.info.quote if is_buy else m.info.base, lock)
        now = self.now() if created_at is None else float(created_at)
        order = self._accept(m, client_order_id, side, OrderType.LIMIT, amount, price, ticks, lock, now)
        m.rest(order)
        return copy.copy(order)

    def validate_order(self, symbol: str, *order: Any, **terms: Any) -> None:
        """Refuse, as `create_order` (given the same side, type, amount, price and keyword terms)
        would, an order that breaks the syntax or a filter (PRICE_FILTER, LOT_SIZE, NOTIONAL);
        funds, client order ids and whether a post-only order would cross are not looked at. For
        cancel-replace, which checks the new order's filters before it cancels anything."""
        self._terms(self._market(symbol), None, *order, **terms)

    def _terms(
        self,
        m: Market,
        client_order_id: str | None,
        side: Side | str,
        type: OrderType | str,
        amount: _Given,
        price: _Given = None,
        time_in_force: str = "GTC",
        post_only: bool = False,
        quote_amount: _Given = None,
    ) -> tuple[Side, OrderType, Decimal, Decimal | None, int, str, Decimal | None]:
        """Everything refused before an order exists but an open duplicate id (syntax, time in force,
        filters): its side, type, amount (a market order by quote: the most its walk of the book
        buys or brings), price, price in ticks, time in force and quote."""
        quote = None
        if quote_amount is not None:
            quote = checks.quote_arg(type, quote_amount)
            amount = m.quote_walk(checks.side_arg(side), quote)
        tif = checks.tif_arg(type, time_in_force, post_only)
        side, type, amount, price = checks.parse(client_order_id, side, type, amount, price)
        ticks = checks.check_filters(m, side, amount, price, quote)
        return side, type, amount, price, ticks, tif, quote

    def _client_id(self, client_order_id: str | None) -> str:
        """The order's client order id (a generated one for None), refused while an open order has it."""
        if client_order_id is None:
            client_order_id = f"paper-cid-{self._next_order_id}"
        previous = self._by_client_id.get(client_order_id)
        if previous is not None and previous.is_open:
            raise EngineError(
                ErrorKind.DUPLICATE_ORDER,
                f"Duplicate order sent. Client order id {client_order_id!r} is already used by open order "
                f"{previous.exchange_order_id}.",
            )
        return client_order_id

    def _accept(
        self,
        m: Market,
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
        self._record_order(m, order)
        self._updates += 1
        if lock:
            self._lock(info.quote if is_buy else info.base, lock)
        return order

    # ------------------------------------------------------------------ fills and ends

    def _fill(self, m: Market, order: EngineOrder, qty: Decimal, price: Decimal, *, maker: bool, ts: float) -> None:
        """Record one trade of `order` at `price`, and settle it."""
        fee, fee_currency = self._settle(m, order, qty, price, maker)
        trade = order.fill(self._next_trade_id, qty, price, fee, fee_currency, maker=maker, ts=ts)
        self._next_trade_id += 1
        self._updates += 1
        self._record_trade(m, trade)
        m.last_t = ticks = int(price / m.info.price_tick)
        m.history.sample_fill(ts, trade.id, ticks, qty, trade.cost, (order.side is Side.BUY) is not maker)
        if order.status is OrderStatus.FILLED and order.id in m.open:
            self._close(m, order)

    def _close(self, m: Market, order: EngineOrder) -> None:
        """Take a final order off the book and give back whatever it still locks."""
        m.unrest(order)
        self._release(m, order)
        self._ended(order)

    def _fill_crossing(self, m: Market) -> None:
        if not m.open:
            return
        ts = self.now()
        for order in m.resting_buys.crossing(m.ask_t) + m.resting_sells.crossing(m.bid_t):
            assert order.price is not None
            self._fill(m, order, self._random_part(m, order.remaining), order.price, maker=True, ts=ts)

    def _random_part(self, m: Market, remaining: Decimal) -> Decimal:
        r = m.fill_rng.random()
        if r < _FULL_FILL_CHANCE:
            return remaining
        step = m.spec.amount_step
        units = int(remaining / step)
        if units <= 1:
            return remaining
        return step * max(1, int(units * r))

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
        order.version += 1
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
