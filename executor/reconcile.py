"""Reconciliation: the store made to agree with the venue, in bulk, inside the request budget.

Before intake starts and every `reconcile.interval_seconds` (SPEC 7): per market one open-orders
request and, only when some order is missing from it, one orders-since request from the oldest
such order (Binance `allOrders` with `startTime`, every page); own trades for the fees the order
answers leave out. Orders are matched by client order id and folded through the executor's one
write path. What the bulk answers leave open gets single lookups, only as many per cycle as the
budget allows. An order still inside the venue's visibility window is decided by a follow-up
round once the window has passed, not by a lookup per order.

At start it also re-drives what a crash left behind: `new` intents (certainly never sent) and
approved signals without an order, each re-checked first (TTL, price moved, free balance);
`submitting`/`unknown` orders the bulk answers show are adopted, those they certainly lack are
replaced under the next replacement number. Orders given up as certainly absent are watched for
a day: a late original is adopted for its signal, and the signal's other orders are cut back so
that together they never exceed what it asked for.

Balance drift is measured from an anchor taken at start, after the missed fills were folded:
(venue balances - anchor) - (effect of our fills since the anchor). A candidate is reported when
nothing of ours can be moving (no order live or in flight), or when two rounds in a row agree, so
that a fill landing between two requests never shows as drift.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

from executor.clientid import has_prefix
from executor.events import Reconciled, ReconcileResult
from executor.exchanges.base import ExchangeError, ExchangeOrder, Trade
from executor.executor import ExecutionError, PriceMoved, TradeExecutor
from executor.following import _unchanged
from executor.models import ZERO, Fill, JournalSource, Order, OrderOrigin, OrderStatus, OrderType, SignalStatus
from executor.placement import ABSENT_WATCH, STALE, _Unresolved
from executor.states import IllegalTransition
from executor.store import StaleWrite
from executor.tracking import effect

O = OrderStatus
J = JournalSource
SKEW = timedelta(seconds=60)  # our clock against the venue's, for `since` windows
FEE_TRIES = 10  # rounds an order's trades may take to add up to its filled amount
FEE_WATCH = timedelta(hours=24)  # how far back an ended order's fee is still looked for in the trades
_ACTIVE_UNPLACED = (O.SUBMITTING, O.UNKNOWN)
SETTLE_SLICE = 100  # orders settled between two yields to the event loop (10,000 take a second)


def _freshest(*reports: ExchangeOrder | None) -> ExchangeOrder | None:
    found = [r for r in reports if r is not None]
    if not found:
        return None
    # the one that says most: final over open, then the larger filled amount
    return max(found, key=lambda r: (not r.status.is_live, r.filled or ZERO))


class _Market:
    """What the venue said about one market in this round (None: the request failed)."""

    def __init__(self) -> None:
        self.open: dict[str, ExchangeOrder] | None = None
        self.since: dict[str, ExchangeOrder] | None = None
        self.open_list: list[ExchangeOrder] = []

    def report(self, coid: str) -> ExchangeOrder | None:
        return _freshest((self.open or {}).get(coid), (self.since or {}).get(coid))

    @property
    def complete(self) -> bool:
        return self.open is not None and self.since is not None


class Reconciler:
    def __init__(self, executor: TradeExecutor) -> None:
        self.ex = executor
        self.anchor: tuple[dict[str, Decimal], dict[str, Decimal]] | None = None
        self._candidate: dict[str, Decimal] | None = None
        self._lock = asyncio.Lock()
        self._followup: asyncio.Task | None = None
        self._fee_tries: Counter[str] = Counter()

    async def load(self) -> None:
        """At start: the balance effect of every fill in the store, and the absent orders to watch."""
        ex = self.ex
        for symbol, side, filled, average, fee, fee_currency in await ex.store.filled_orders():
            probe = Order(client_order_id="-", signal_id=None, symbol=symbol, side=side, type=OrderType.LIMIT,
                          amount=filled, filled=filled, average=average, fee=fee, fee_currency=fee_currency)
            for ccy, value in effect(probe, ex.markets.get(symbol)).items():
                ex.effect[ccy] = ex.effect.get(ccy, ZERO) + value
        since = ex.clock() - ABSENT_WATCH
        for order in await ex.store.orders_failed_absent(since):
            ex.absent.setdefault(order.client_order_id, order)
        for order in await ex.store.orders_fee_unknown(ex.clock() - FEE_WATCH):
            ex.fee_unknown.setdefault(order.client_order_id, order)

    async def run(self, *, startup: bool = False) -> ReconcileResult:
        async with self._lock:
            return await self._run(startup)

    async def _run(self, startup: bool) -> ReconcileResult:
        ex = self.ex
        started = ex.clock()
        errors: list[str] = []
        counts = {"checked": 0, "updated": 0, "resolved": 0, "adopted": 0}
        targets = {**ex.absent, **ex.active_orders}
        by_symbol: dict[str, list[Order]] = {}
        for order in targets.values():
            by_symbol.setdefault(order.symbol, []).append(order)
        symbols = sorted(set(ex.markets) | set(by_symbol))
        answers = await asyncio.gather(*(self._bulk(s, by_symbol.get(s, []), startup, errors) for s in symbols))
        markets = dict(zip(symbols, answers, strict=True))
        deferred: list[datetime] = []
        late: list[Order] = []
        unsettled = 0  # orders this round could not settle: no balance anchor is taken on such a round
        single = ex.exchange.budget().affordable(ex.exchange.request_cost("fetch_order"), 0.3)
        for i, (coid, order) in enumerate(targets.items()):
            if i % SETTLE_SLICE == SETTLE_SLICE - 1:
                await asyncio.sleep(0)  # commands and events are not held up behind the round
            if ex.locks.locked(coid):
                continue  # a request of this process owns it right now
            counts["checked"] += 1
            if self._same(coid, markets[order.symbol]):
                continue  # settled as it is
            outcome = await self._settle(coid, markets[order.symbol], startup, deferred, errors)
            if outcome in ("lookup", "deferred", "stale", "new"):
                unsettled += 1
            if outcome in ("updated", "resolved", "late"):
                counts["updated"] += 1
            if outcome == "resolved":
                counts["resolved"] += 1
            if outcome == "late" and (current := ex.current(coid) or order).signal_id:
                late.append(current)
            if outcome == "lookup" and single > 0:
                single -= 1
                current = ex.current(coid)
                if current is not None and (current.status.is_live or current.status is O.PENDING_CANCEL):
                    if await self._lookup_live(coid):
                        counts["updated"] += 1
                        unsettled -= 1
                else:  # a maybe-placed create: lookups across the visibility window, in the background
                    ex.spawn(self._recover(coid), name=f"recover:{coid}")
        counts["adopted"], external = await self._orphans(markets, targets)
        await self._fees(errors)
        if startup or ex.redrive_due:
            ex.redrive_due = False
            await self._redrive_signals(errors)
        for order in late:
            ex.spawn(self.settle_signal(order), name=f"late-original:{order.client_order_id}")
        if deferred:
            self._schedule_followup(max(deferred))
        drift = await self._drift(startup, errors, settled=unsettled == 0 and not errors)
        statuses = [o.status for o in ex.active_orders.values()]
        result = ReconcileResult(
            at=started,
            checked=counts["checked"],
            updated=counts["updated"],
            resolved_unknown=counts["resolved"],
            adopted=counts["adopted"],
            external=external,
            open=sum(1 for s in statuses if s.is_live or s is O.PENDING_CANCEL),
            unknown=sum(1 for s in statuses if s in _ACTIVE_UNPLACED),
            drift=drift,
            errors=errors,
        )
        ex.last_reconcile = result
        ex.bus.publish(Reconciled(result))
        for message in errors:
            ex._error(f"reconcile: {message}", level="warning")
        return result

    # -- the venue's answers ------------------------------------------------------------------

    async def _bulk(self, symbol: str, orders: list[Order], startup: bool, errors: list[str]) -> _Market:
        ex = self.ex
        cost = ex.exchange.request_cost
        market = _Market()
        try:
            market.open_list = await ex._call("fetch_open_orders", ex.exchange.fetch_open_orders, symbol)
            market.open = {r.client_order_id: r for r in market.open_list if r.client_order_id}
        except ExchangeError as exc:
            errors.append(f"{symbol} open orders: {exc}")
        missing = [o for o in orders if o.status is not O.NEW and o.client_order_id not in (market.open or {})]
        if not missing:
            market.since = {}
            return market
        few = len(missing) * cost("fetch_order") <= cost("fetch_orders_since")
        if not startup and few and all(o.status.is_live or o.status is O.PENDING_CANCEL for o in missing):
            return market  # a few that ended, in a periodic round: single lookups are cheaper than a page
        since = min(o.created_at for o in missing) - SKEW
        try:
            reports = await ex._call("fetch_orders_since", ex.exchange.fetch_orders_since, symbol, since)
            market.since = {}
            for report in reports:  # oldest first: a reused id ends on its newest order
                if report.client_order_id:
                    market.since[report.client_order_id] = report
        except ExchangeError as exc:
            errors.append(f"{symbol} orders since {since:%H:%M:%S}: {exc}")
        return market

    def _same(self, coid: str, market: _Market) -> bool:
        """A live order its report leaves as it is (most of a round's): no lock, no fold, as in tracking's polls."""
        current, report = self.ex.current(coid), market.report(coid)
        return (current is not None and current.status.is_live and report is not None  # over its amount: folded
                and (report.filled or ZERO) <= current.amount and _unchanged(current, report, self.ex.clock()))

    async def _settle(self, coid: str, market: _Market, startup: bool, deferred: list[datetime],
                      errors: list[str]) -> str:
        """Fold what the venue said about one order; the outcome names what happened."""
        ex = self.ex
        async with ex.locks.hold(coid):
            current = ex.current(coid)
            if current is None or (current.status.is_terminal and current.status is not O.FAILED):
                return "gone"
            before = current.status
            report = market.report(coid)
            if report is not None:
                if before is O.NEW:  # an old store's intent that did leave: it was submitted
                    await ex._commit(coid, O.SUBMITTING, source=J.RECONCILE)
                revive = before is O.FAILED
                try:
                    new = await ex._fold(coid, report, J.RECONCILE, revive=revive)
                except (StaleWrite, IllegalTransition) as exc:
                    errors.append(f"{coid}: not folded ({exc}); next round")
                    return "stale"
                if revive:
                    ex._error(f"{coid}: given up as absent, yet on the venue ({new.status}): adopted for its signal",
                              order=new, level="warning")
                    return "late"
                if before in (O.NEW, *_ACTIVE_UNPLACED) and new.status not in _ACTIVE_UNPLACED:
                    return "resolved"
                return "updated" if new.status != before or new.filled != current.filled else "same"
            if before is O.FAILED:
                if current.updated_at < ex.clock() - ABSENT_WATCH:
                    ex.absent.pop(coid, None)
                return "absent"
            if before is O.NEW:
                # Certainly never sent, and no task of this process is placing it: a crash left it
                # (at start), or its re-drive met a venue that did not answer.
                if coid not in ex.owned:
                    ex.owned.add(coid)
                    ex.spawn(self._redrive_new(coid), name=f"redrive:{coid}")
                return "new"
            if before in _ACTIVE_UNPLACED and current.updated_at > ex.clock() - timedelta(seconds=ex.lookup_window):
                # Still inside the venue's visibility window: a round after it decides, in bulk.
                deferred.append(current.updated_at + timedelta(seconds=ex.lookup_window))
                return "deferred"
            if not market.complete:
                return "lookup"
            if before in _ACTIVE_UNPLACED:
                # Not among every order of the market since before it was created: never placed.
                failed = await ex._commit(coid, O.FAILED, source=J.RECONCILE,
                                          last_error="certainly absent: not among the venue's orders")
                ex.spawn(ex.replace_absent(failed, stale_check=True), name=f"replace:{coid}")
                return "resolved"
            return "lookup"  # live in the store, unknown to the venue: confirm with one lookup

    async def _lookup_live(self, coid: str) -> bool:
        """One lookup of a live order the bulk answers did not show. Whether it changed."""
        ex = self.ex
        async with ex.locks.hold(coid):
            current = ex.current(coid)
            if current is None or current.status.is_terminal:
                return False
            report = await ex._fetch_missing(current)
            if report is None:
                return False
            return (await ex._fold(coid, report, J.RECONCILE)).version != current.version

    async def _recover(self, coid: str) -> None:
        """Lookups across the visibility window for a create the bulk answers could not settle."""
        ex = self.ex
        async with ex.locks.hold(coid):
            current = ex.current(coid)
            if current is None or current.status.is_terminal or current.status.is_live:
                return
            if current.status is O.SUBMITTING:
                await ex._commit(coid, O.UNKNOWN, source=J.RECONCILE, last_error="interrupted while submitting")
            try:
                order = await ex._resolve(coid)
            except _Unresolved as exc:
                ex._error(f"{coid}: still unknown ({exc})", order=current)
                return
        if order.status is O.FAILED and coid in ex.absent:
            await ex.replace_absent(order, stale_check=True)

    def _schedule_followup(self, when: datetime) -> None:
        running = self._followup is not None and not self._followup.done()
        if running and self._followup is not asyncio.current_task():
            return
        delay = max(0.05, (when - self.ex.clock()).total_seconds() + 0.05)

        async def followup() -> None:
            await asyncio.sleep(delay)
            await self.run()

        self._followup = self.ex.spawn(followup(), name="reconcile-followup")

    async def _orphans(self, markets: dict[str, _Market], targets: dict[str, Order]) -> tuple[int, int]:
        """Adopt live orders with our prefix that the store lacks; count the others as external."""
        ex = self.ex
        adopted = external = 0
        for market in markets.values():
            for report in market.open_list:
                coid = report.client_order_id
                if coid in targets or ex.current(coid) is not None:
                    continue
                if not coid or not has_prefix(coid, ex.client_id_prefix):
                    external += 1
                    continue
                stored = await ex.store.get_order(coid)
                if stored is not None:
                    ex._error(f"{coid}: {stored.status} in the store, yet open on the venue", order=stored)
                    continue
                now = ex.clock()
                order = Order(
                    client_order_id=coid, signal_id=None, exchange_order_id=report.exchange_order_id,
                    symbol=report.symbol, side=report.side, type=report.type, amount=report.amount,
                    price=report.price, status=O.UNKNOWN, created_at=report.ts or now, updated_at=now,
                    origin=OrderOrigin.ADOPTED,
                    last_error="adopted: on the venue with our prefix but not in the store",
                )
                async with ex.locks.hold(coid):
                    await ex._insert(order, source=J.RECONCILE, detail={"adopted": True})
                    await ex._fold(coid, report, J.RECONCILE)
                adopted += 1
                ex._error(f"{coid}: adopted an open order the store did not know", level="warning", order=order)
        return adopted, external

    async def learn_fees(self) -> None:
        """The fees round alone (tracking calls it once nothing else is active)."""
        errors: list[str] = []
        async with self._lock:
            await self._fees(errors)
        for message in errors:
            self.ex._error(f"fees: {message}", level="warning")

    async def _fees(self, errors: list[str]) -> None:
        """Fees the order answers left out (Binance's carry none), from our own trades. An order
        whose trades never add up is given up after `FEE_TRIES` rounds, with an error."""
        ex = self.ex
        for coid in [c for c, n in self._fee_tries.items() if n >= FEE_TRIES]:
            if (order := ex.fee_unknown.pop(coid, None)) is not None:
                ex._error(f"{coid}: the venue's trades never add up to its {order.filled} filled; fee left unknown",
                          order=order)
            del self._fee_tries[coid]
        by_symbol: dict[str, list[Order]] = {}
        for order in ex.fee_unknown.values():
            by_symbol.setdefault(order.symbol, []).append(order)
        for symbol, orders in by_symbol.items():
            since = min(o.created_at for o in orders) - SKEW
            try:
                trades = await ex._call("fetch_my_trades", ex.exchange.fetch_my_trades, symbol, since)
            except ExchangeError as exc:
                errors.append(f"{symbol} trades: {exc}")
                trades = []
            for order in orders:
                self._fee_tries[order.client_order_id] += 1
                await self._fee_from_trades(order, trades)

    async def _fee_from_trades(self, order: Order, trades: list[Trade]) -> None:
        """Once the trades of an order add up to its filled amount, they are its fills: the store's
        fill rows become the venue's trades (amount, price, fee and its asset) and the order's fee
        their sum. Until then nothing is written: a partial fee is no fact."""
        ex = self.ex
        coid = order.client_order_id
        mine = [t for t in trades if t.client_order_id == coid
                or (order.exchange_order_id and t.exchange_order_id == order.exchange_order_id)]
        async with ex.locks.hold(coid):
            current = ex.current(coid)
            if current is None or sum((t.amount for t in mine), ZERO) != current.filled:
                return  # some trades not listed yet (or none): asked again next round
            fees: dict[str, Decimal] = {}
            for trade in mine:
                if trade.fee_currency:
                    fees[trade.fee_currency] = fees.get(trade.fee_currency, ZERO) + trade.fee
            currency, fee = max(fees.items(), key=lambda item: item[1]) if fees else (None, ZERO)
            if len(fees) > 1:
                ex._error(f"{coid}: fees in {', '.join(sorted(fees))}; the order shows the {currency} part",
                          order=current, level="warning")
            fills = [
                Fill(fill_id=f"{coid}:t{t.trade_id}", client_order_id=coid, signal_id=current.signal_id,
                     symbol=current.symbol, side=current.side, amount=t.amount, price=t.price, fee=t.fee,
                     fee_currency=t.fee_currency, ts=t.ts or ex.clock())
                for t in mine
            ]
            await ex._commit(coid, source=J.RECONCILE, detail={"fee_from_trades": str(fee)}, fee=fee,
                             fee_currency=currency or current.fee_currency, replace_fills=fills)
            ex.fee_unknown.pop(coid, None)
            self._fee_tries.pop(coid, None)

    # -- after a restart ----------------------------------------------------------------------

    async def _redrive_new(self, coid: str) -> None:
        """A `new` intent a crash left: certainly never sent. Re-checked, then sent or given up."""
        ex = self.ex
        try:
            order = ex.current(coid)
            if order is None or order.status is not O.NEW:
                return
            try:
                record = await ex.store.get_signal(order.signal_id) if order.signal_id else None
                if record is not None and record.status is SignalStatus.APPROVED and \
                        await ex.stale_signal(record, order):
                    return
            except ExchangeError as exc:
                ex._error(f"{coid}: {STALE}: not re-checked yet ({exc}); the next round tries again", order=order,
                          level="warning")
                return
            await ex.run(coid)
        finally:
            ex.owned.discard(coid)

    async def _redrive_signals(self, errors: list[str]) -> None:
        """Approved signals that own no active order and still need one: none at all (a crash
        between approval and intent, in a store of the first version), or only orders given up as
        certainly absent (a crash before the replacement's intent). Re-checked, then given it."""
        ex = self.ex
        for record in await ex.store.approved_needing_order():
            if ex.locks.locked(f"signal:{record.id}"):
                continue
            try:
                if await ex.stale_signal(record):
                    continue
                prepared, _ = await ex.next_order(record)
                if prepared is not None and prepared.status is O.REJECTED:
                    await ex.signal_back(record, SignalStatus.PENDING, f"{STALE}: {prepared.last_error}")
                    continue
                await ex.commit_intent(record)
            except PriceMoved as exc:
                await ex.signal_back(record, SignalStatus.PENDING, f"{STALE}: {exc}", live_price=exc.live_price)
            except ExchangeError as exc:
                ex.redrive_due = True
                errors.append(f"{record.id}: approved without an order, not re-driven yet: {exc}")

    async def settle_signal(self, order: Order) -> None:
        """A late original appeared: cut the signal's other live orders back so that together
        they never exceed what it asked for; a signal already past it is a critical alert."""
        ex = self.ex
        if not order.signal_id:
            return
        record = await ex.store.get_signal(order.signal_id)
        if record is None or record.amount is None:
            return
        ex.contested.add(order.signal_id)  # an intent of it still waiting for the pacer re-checks first
        siblings = [ex.current(o.client_order_id) or o for o in await ex.store.orders_for_signal(order.signal_id)]
        filled = sum((o.filled for o in siblings), ZERO)
        if filled > record.amount:
            ex._error(f"{order.signal_id}: OVER-FILLED, {filled} of {record.amount} (a late original filled too)",
                      order=order, level="critical")
        committed = filled + sum((o.remaining for o in siblings if o.status.is_active), ZERO)
        for other in siblings:  # intents not yet sent and not being sent: given up right here
            if committed > record.amount and other.status is O.NEW and not ex.locks.locked(other.client_order_id):
                async with ex.locks.hold(other.client_order_id):
                    if (mine := ex.current(other.client_order_id)) is not None and mine.status is O.NEW:
                        await ex._commit(other.client_order_id, O.FAILED, source=J.RECONCILE,
                                         last_error="superseded: a late original of its signal covers it")
                        committed -= mine.remaining
        for other in sorted((o for o in siblings if o.status.is_live), key=lambda o: -o.replacement):
            if committed <= record.amount:
                break
            with contextlib.suppress(ExchangeError, ExecutionError):
                done = await ex.cancel_order(other.client_order_id, source=J.RECONCILE,
                                             reason="late original appeared: the extra order is canceled")
                committed -= other.remaining - (done.filled - other.filled)

    # -- balances -----------------------------------------------------------------------------

    async def _drift(self, startup: bool, errors: list[str], *, settled: bool) -> dict[str, Decimal]:
        ex = self.ex
        try:
            fresh = await ex.refresh_balances()
        except ExchangeError as exc:
            errors.append(f"balances: {exc}")
            return {}
        totals = {c: b.total for c, b in fresh.items()}
        if startup:
            self.anchor = None
        if self.anchor is None:
            # The anchor is taken on the first round that settled every order, so that a fill made
            # while the core was down is already folded on both sides of it.
            if settled:
                self.anchor = (totals, dict(ex.effect))
                self._candidate = {}
            return {}
        anchor_totals, anchor_effect = self.anchor
        candidate: dict[str, Decimal] = {}
        for ccy in set(totals) | set(anchor_totals) | set(ex.effect) | set(anchor_effect):
            moved = totals.get(ccy, ZERO) - anchor_totals.get(ccy, ZERO)
            explained = ex.effect.get(ccy, ZERO) - anchor_effect.get(ccy, ZERO)
            if abs(moved - explained) > Decimal("1e-8"):
                candidate[ccy] = moved - explained
        quiet = not ex.creating and not any(
            o.status.is_live or o.status is O.PENDING_CANCEL for o in ex.active_orders.values()
        )
        previous, self._candidate = self._candidate, candidate
        return candidate if quiet or candidate == previous else {}

