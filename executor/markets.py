"""The market in view: last, bid, ask and change of every configured market, for every view at once.

`MarketView` makes one round of requests every few seconds at most, sized to the venue's request
budget: one `fetch_tickers` for all markets when the exchange port offers it, else the executor's
cached `ticker()` per market (a ticker fetched moments ago for a signal or a balance is reused).
A round costs at most `SHARE` of the venue's request weight per minute; orders need the rest.
Each round is published as `MarketsUpdated`; the service keeps the latest in its snapshot.

It also owns the far-from-market rule's arithmetic (`distance_pct`, `FarFromMarket`); the service
decides when it applies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from executor.events import ErrorOccurred, EventBus, MarketQuote, MarketsUpdated
from executor.exchanges.base import ExchangeError
from executor.executor import ExecutionError
from executor.models import distance_pct, utcnow
from executor.signals import fmt

if TYPE_CHECKING:
    from executor.executor import TradeExecutor

log = logging.getLogger("tradeconsole.markets")

SHARE = 0.05  # of the venue's request weight per minute
FLOOR = 3.0  # seconds between two rounds, whatever the budget allows
DAY = timedelta(hours=24)


class FarFromMarket(ExecutionError):
    """An approval or amend whose order price is further than `[approval] far_from_market_pct` from
    the market: refused until the client sends it again with `confirm=True`."""

    def __init__(self, subject: str, price: Decimal, market: Decimal, distance: Decimal, limit: Decimal) -> None:
        self.subject, self.price, self.market, self.distance, self.limit = subject, price, market, distance, limit
        super().__init__(
            f"{subject}: order price {fmt(price)} is {fmt(abs(distance).quantize(Decimal('0.01')))} % "
            f"{'above' if distance > 0 else 'below'} the market {fmt(market)} "
            f"(far_from_market_pct {fmt(limit)}): confirm to go ahead"
        )

    @property
    def reason(self) -> str:
        """The hold reason of an auto-approval left pending."""
        return (f"far from market: {fmt(self.price)} is {fmt(abs(self.distance).quantize(Decimal('0.01')))} % "
                f"from {fmt(self.market)} (far_from_market_pct {fmt(self.limit)}): waits for an operator")




class MarketView:
    """The latest quote of every configured market, refreshed within the request budget."""

    def __init__(
        self,
        executor: TradeExecutor,
        symbols: list[str],
        *,
        bus: EventBus,
        clock: Callable[[], datetime] = utcnow,
        floor: float = FLOOR,
    ) -> None:
        self.executor = executor
        self.symbols = list(symbols)
        self.bus = bus
        self.clock = clock
        self.floor = floor
        self.quotes: dict[str, MarketQuote] = {}
        self._history: dict[str, deque[tuple[datetime, Decimal]]] = {}  # for venues without a 24h change
        self._failing = False

    @property
    def _bulk(self) -> Any:
        return getattr(self.executor.exchange, "fetch_tickers", None)

    def interval(self) -> float:
        """Seconds between two rounds: a round uses at most SHARE of the venue's weight."""
        if self._bulk is not None:
            return self.executor.budget_interval("fetch_tickers", SHARE, self.floor)
        return self.executor.budget_interval("fetch_ticker", SHARE, self.floor, count=len(self.symbols))

    def price(self, symbol: str) -> Decimal | None:
        """The market's price for the far-from-market rule: the mid of bid and ask."""
        quote = self.quotes.get(symbol)
        return quote.mid if quote is not None else None

    async def refresh(self, *, max_age: float | None = None) -> dict[str, MarketQuote]:
        """One round of requests; publishes `MarketsUpdated` with what it got. Without the bulk
        request, a ticker the executor fetched less than `max_age` seconds ago (default: most of a
        round) is reused."""
        symbols = [s for s in self.symbols if s in self.executor.markets] or self.symbols
        now = self.clock()
        try:
            if self._bulk is not None:
                raw = await self._bulk(symbols)
                tickers = {s: raw[s] for s in symbols if s in raw}
            else:
                if max_age is None:
                    max_age = max(self.interval() - 0.5, 1.0)
                tickers = {s: await self.executor.ticker(s, max_age=max_age) for s in symbols}
        except ExchangeError as exc:
            if not self._failing:  # one line when it starts failing, not one per round
                self.bus.publish(ErrorOccurred(f"market prices not refreshed: {exc}", level="warning", ts=now))
            self._failing = True
            return self.quotes
        self._failing = False
        for symbol, ticker in tickers.items():
            self.quotes[symbol] = self._quote(symbol, ticker, now)
        self.bus.publish(MarketsUpdated(dict(self.quotes)))
        return self.quotes

    def _quote(self, symbol: str, ticker: Any, now: datetime) -> MarketQuote:
        last = ticker.last or ticker.mid
        change = getattr(ticker, "change_pct", None)
        since = None
        if change is None:
            history = self._history.setdefault(symbol, deque())
            if not history or now - history[-1][0] >= timedelta(minutes=1):  # bounded: 1,440 a day
                history.append((now, last))
            while len(history) > 1 and now - history[1][0] >= DAY:
                history.popleft()
            since, first = history[0]
            change = distance_pct(last, first) if first else None
        return MarketQuote(symbol=symbol, last=last, bid=ticker.bid, ask=ticker.ask,
                           change_pct=change, ts=now, change_since=since)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval())
            try:
                await self.refresh()
            except Exception:  # the market view must never stop trading
                log.exception("market view round failed")
