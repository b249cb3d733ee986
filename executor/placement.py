"""Placing an approved signal's order: the intent, the pacer, the create, the ambiguity path.

`commit_intent` writes the signal's next order as `new` (with its approval, in one transaction)
before anything is sent, and reserves its balance; `run` places it. `submitting` is journaled
only once the venue's pacer admitted the request (a venue without a pacer admits at once: then
the task placing it writes the intent and its `submitting` as one transaction, committed before
the create leaves), and the create is sent once per attempt:
- certainly not placed (`NotPlaced`): back to `new`, retried with backoff (`failed` once out of
  retries);
- rejected: `rejected` with the venue's reason, never retried;
- maybe placed (`MaybePlaced`, or the venue already holds the id): never sent again. It becomes
  `unknown` and is looked up by client order id (`lookup`) across the venue's visibility window
  until found (folded like any report) or certainly absent (`failed`); while the lookups keep
  failing it stays `unknown` for reconciliation. A certainly absent order's signal then gets
  its next order under the next replacement number (`replace_absent`), at most
  `MAX_RESUBMISSIONS` times before it goes back to the operator.
While a create may still go live (`in_flight`), the kill switch waits for it.

After a restart, `stale_signal` (in `executor.pretrade`) re-checks an intent a crash left before
it is placed; `replace_absent` does too before it replaces an order.

A mixin of `TradeExecutor` (`executor.executor` says why the executor's jobs are mixins): it
owns `creating` and `_settled` (what the kill switch waits for), shares `owned` (the intents a
task of this process is placing) with the write path and reconciliation, and reads `contested`,
which reconciliation fills.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from tenacity import RetryError
from tenacity import wait_exponential_jitter as _jitter

from executor.clientid import client_order_id
from executor.errors import ExecutionError, PriceMoved
from executor.exchanges.base import (
    DuplicateOrder,
    ExchangeError,
    ExchangeOrder,
    MaybePlaced,
    NotPlaced,
    OrderNotFound,
    Rejected,
)
from executor.models import ZERO, JournalSource, Order, OrderStatus, OrderType, SignalRecord, SignalStatus, to_decimal
from executor.pretrade import STALE, limit_price
from executor.store import Statement

O = OrderStatus
J = JournalSource
# Certainly absent orders of one signal replaced before it goes back to the operator (crashes while
# submitting, a venue that keeps losing creates): never left approved without an order.
MAX_RESUBMISSIONS = 10
# How long a "certainly absent" order is watched for a late original: well past any venue's
# visibility delay, short enough that the orders-since window it keeps open stays one page.
ABSENT_WATCH = timedelta(minutes=15)


class _Unresolved(Exception):
    def __init__(self, order: Order, reason: str) -> None:
        super().__init__(reason)
        self.order = order


class _Intent:
    """An intent not written yet, handed to the task that places it: with no pacer to wait for,
    that task writes it together with its `submitting` (one transaction, then the create) and
    tells `commit_intent`, which waits on `written`, once it is committed."""

    __slots__ = ("detail", "extra", "order", "written")

    def __init__(self, order: Order, detail: dict[str, Any], extra: Sequence[Statement]) -> None:
        self.order = order
        self.detail = detail
        self.extra = extra
        self.written: asyncio.Future[list[int | None]] = asyncio.get_running_loop().create_future()

    def task_ended(self, task: asyncio.Task) -> None:
        """Its placing task ended (done callback): a `written` still unanswered (the task was
        cancelled before it wrote, or failed on the way) is answered, so that `commit_intent`
        never waits for ever; nothing of the intent is in the store then."""
        if self.written.done():
            return
        if task.cancelled():
            self.written.cancel()
        else:
            exc = task.exception()
            self.written.set_exception(
                exc
                if isinstance(exc, Exception)
                else ExecutionError(
                    f"{self.order.client_order_id}: its placing task ended before its intent was written"
                )
            )


class _InFlight:
    """`with executor.in_flight(coid):` (a class, not a generator: every create takes one)."""

    __slots__ = ("_coid", "_ex")

    def __init__(self, ex: Placement, coid: str) -> None:
        self._ex = ex
        self._coid = coid

    def __enter__(self) -> None:
        self._ex.creating[self._coid] += 1
        self._ex._settled.clear()

    def __exit__(self, *exc_info: object) -> None:
        creating = self._ex.creating
        creating[self._coid] -= 1
        if creating[self._coid] <= 0:
            del creating[self._coid]
        if not creating:
            self._ex._settled.set()


class _NotWritten(Exception):
    """An intent's transaction failed: nothing of it was written or sent, and its caller was told."""


class Placement:
    """From an approved signal to a placed (or certainly absent, or rejected) order."""

    async def prepare(self, record: SignalRecord, *, replacement: int, amount: Decimal) -> Order:
        """The next order of an approved signal, not yet written: `new`, or `rejected` by a
        pre-trade check. Raises `PriceMoved` (nothing to write: back to the operator) and
        `ExchangeError` when the venue could not be asked for a price."""
        signal = record.signal
        assert signal is not None and record.id is not None
        cfg = self.execution_config
        market = self.markets.get(signal.symbol)
        type_ = OrderType(signal.order_type or cfg.order_type)
        price: Decimal | None = None
        if market is not None and type_ is OrderType.LIMIT:
            reference = (
                to_decimal(signal.price) if signal.price else (await self.ticker(signal.symbol)).touch(signal.side)
            )
            price = limit_price(reference, cfg.slippage_tolerance_pct, market.price_tick, signal.side)
        elif market is not None:
            if (moved := await self.price_moved(record, type_)) is not None:
                raise moved
            price = (await self.ticker(signal.symbol)).touch(signal.side)  # for the checks only
        now = self.clock()
        order = Order(
            client_order_id=client_order_id(self.client_id_prefix, record.id, replacement),
            signal_id=record.id,
            replacement=replacement,
            symbol=signal.symbol,
            side=signal.side,
            type=type_,
            amount=amount,
            price=price if type_ is OrderType.LIMIT else None,
            created_at=now,
            updated_at=now,
            timeout_at=now + timedelta(seconds=cfg.order_timeout_seconds) if type_ is OrderType.LIMIT else None,
        )
        if self.halted:
            return order.model_copy(update={"status": O.REJECTED, "last_error": "kill switch engaged: not sent"})
        check = self.check_order(signal.symbol, signal.side, type_, amount, price)
        if not check.ok:
            reason = "; ".join(f"{k}: {v}" for k, v in check.errors.items())
            return order.model_copy(update={"status": O.REJECTED, "last_error": f"pre-trade check: {reason}"})
        return order

    async def next_order(
        self, record: SignalRecord, *, allow_new: bool = True, fresh: bool = False
    ) -> tuple[Order | None, list[Order]]:
        """(the signal's next order prepared, or None when nothing remains; its orders so far).
        `fresh`: the signal's row is being inserted with the intent, so it has no orders yet."""
        assert record.id is not None and record.amount is not None
        siblings = (
            []
            if fresh
            else [self.current(o.client_order_id) or o for o in await self.store.orders_for_signal(record.id)]
        )
        if siblings and not allow_new:
            return None, siblings
        filled = sum((o.filled for o in siblings), ZERO)
        remaining = record.amount - filled
        if remaining <= 0 or any(o.status.is_active for o in siblings):
            return None, siblings
        replacement = max((o.replacement for o in siblings), default=-1) + 1
        return await self.prepare(record, replacement=replacement, amount=remaining), siblings

    async def commit_intent(
        self, record: SignalRecord, *, extra: list[Statement] | None = None, allow_new: bool = True, launch: bool = True
    ) -> tuple[Order | None, list[int | None]]:
        """Write the signal's next order (with `extra`, e.g. its approval, in the same
        transaction) and start placing it. Returns the order written (or the signal's latest
        order when it needs no new one) and the rowids of the statements written."""
        fresh = bool(extra) and self.store.inserts_signal(extra, record.id)  # then no store read is needed
        async with self.locks.hold(f"signal:{record.id}"):
            order, siblings = await self.next_order(record, allow_new=allow_new, fresh=fresh)
            if order is None:
                ids = await self.store.transact(extra) if extra else []
                return (siblings[-1] if siblings else None), ids
            detail = {"intent": True} if order.status is O.NEW else {"reason": order.last_error}
            if launch and order.status is O.NEW and self._admits_now(order):
                # Nothing to wait for before the create: its task writes the intent with `submitting`.
                intent = _Intent(order, detail, extra or ())
                task = self.spawn(self.run(order.client_order_id, intent), name=f"place:{order.client_order_id}")
                task.add_done_callback(intent.task_ended)
                return order, await intent.written
            ids = await self._insert(order, source=J.REQUEST, detail=detail, extra=extra or ())
        if order.status is O.REJECTED:
            self._error(f"{record.id}: {order.last_error}", order=order, level="warning")
            return order, ids
        self._reserve(order)
        if launch:
            self.spawn(self.run(order.client_order_id), name=f"place:{order.client_order_id}")
        return order, ids

    async def execute_signal(self, record: SignalRecord) -> Order:
        """Place the order of an approved signal; returns it once placed or final.

        Raises `PriceMoved` (nothing sent, signal goes back to the operator). Every other
        outcome, including pre-trade refusals, is an order in the store with its reason.
        Approved twice (restart, race): never a second order.
        """
        order, _ = await self.commit_intent(record, allow_new=False, launch=False)
        assert order is not None
        if order.status is not O.NEW or self.current(order.client_order_id) is None:
            return self.current(order.client_order_id) or order
        return await self.run(order.client_order_id)

    async def run(self, coid: str, intent: _Intent | None = None) -> Order:
        """Place one intent (`intent`: not written yet, see `_Intent`); a certainly absent one is
        replaced under the next replacement number."""
        self.owned.add(coid)
        try:
            async with self.locks.hold(coid):
                order = await self._place(coid, intent)
        except _NotWritten:
            assert intent is not None
            return intent.order
        finally:
            self.owned.discard(coid)
        if order.status is O.FAILED and coid in self.absent and order.signal_id:
            try:
                return await self.replace_absent(order) or order
            except ExchangeError as exc:
                self.redrive_due = True  # reconciliation gives the signal its order once the venue answers
                self._error(f"{coid} certainly absent; its replacement waits: {exc}", order=order, level="warning")
        return order

    async def _superseded(self, order: Order) -> str | None:
        """Why an intent of a signal whose late original appeared may no longer be sent."""
        assert order.signal_id is not None
        record = await self.store.get_signal(order.signal_id)
        siblings = [self.current(o.client_order_id) or o for o in await self.store.orders_for_signal(order.signal_id)]
        others = [o for o in siblings if o.client_order_id != order.client_order_id]
        filled = sum((o.filled for o in siblings), ZERO)
        active = sum((o.remaining for o in others if o.status.is_active), ZERO)
        if record is None or record.amount is None or filled + active + order.amount > record.amount:
            return "superseded: a late original of its signal covers it"
        return None

    async def _place(self, coid: str, intent: _Intent | None = None) -> Order:
        """Get one order placed under the error policy (caller holds its lock). `intent`, not
        written yet, is written by the first attempt."""
        counts = {"counted": 0, "limited": 0}
        unwritten = intent

        def attempt() -> Awaitable[Order]:
            nonlocal unwritten
            given, unwritten = unwritten, None
            return self._create_once(coid, given)

        try:
            return await self._attempts(
                "create_order",
                attempt,
                NotPlaced,
                counts=counts,
                order=intent.order if intent else self.active_orders.get(coid),
            )
        except RetryError as exc:
            last = exc.last_attempt.exception()
            order = await self._commit(
                coid, O.FAILED, source=J.REQUEST, last_error=f"not placed after {counts['counted']} attempts: {last}"
            )
            self._error(f"{coid}: {order.last_error}", order=order)
            return order
        except Rejected as exc:
            order = await self._commit(coid, O.REJECTED, source=J.REQUEST, last_error=str(exc))
            self._error(f"{coid}: rejected: {exc}", order=order, level="warning")
            return order
        except _Unresolved as exc:
            self._error(
                f"{coid}: outcome unknown after lookups ({exc}); reconciliation will resolve it", order=exc.order
            )
            return self.current(coid) or exc.order

    async def _create_once(self, coid: str, intent: _Intent | None = None) -> Order:
        """One create attempt. Raises NotPlaced to retry, Rejected to stop, _Unresolved to leave it;
        `_NotWritten` when `intent` (written by this attempt) could not be."""
        order = self.current(coid) if intent is None else intent.order
        assert order is not None
        if order.status is not O.NEW:  # the state a crash or an earlier attempt left it in
            return await self._resolve(coid) if order.status in (O.SUBMITTING, O.UNKNOWN) else order
        before_wait = None
        if intent is not None:
            # `admits_now` was a forecast: should the admission wait after all (another create
            # took the room, a cooldown tripped, the window needs a question to the venue), the
            # intent (and the signal's rows in `extra`) is written before it waits, on its own.
            pending = intent

            async def before_wait() -> None:
                nonlocal intent
                if intent is pending:
                    intent = None
                    await self._write_intent(pending)

        async with self.exchange.admit() if before_wait is None else self.exchange.admit(before_wait):
            with self.in_flight(coid):  # from here the kill switch waits for this create's outcome
                if intent is not None and (self.halted or order.signal_id in self.contested):
                    await self._write_intent(intent)  # on its own: the checks below end it
                    intent = None
                if self.halted:
                    return await self._commit(coid, O.FAILED, source=J.REQUEST, last_error="kill switch: not sent")
                if order.signal_id in self.contested and (reason := await self._superseded(order)):
                    return await self._commit(coid, O.FAILED, source=J.REQUEST, last_error=reason)
                if intent is not None:
                    order = await self._write_intent(intent, sending=True)
                else:
                    order = await self._commit(coid, O.SUBMITTING, source=J.REQUEST, attempts=order.attempts + 1)
                try:
                    report = await self.exchange.create_order(
                        client_order_id=coid,
                        symbol=order.symbol,
                        side=order.side,
                        type=order.type,
                        amount=order.amount,
                        price=order.price,
                    )
                except DuplicateOrder:
                    # The venue already holds this client order id: it was placed. Find it; never re-send.
                    await self._commit(coid, O.UNKNOWN, source=J.REQUEST, last_error="duplicate client order id")
                    return await self._resolve(coid, duplicate=True)
                except NotPlaced as exc:
                    await self._commit(coid, O.NEW, source=J.REQUEST, last_error=str(exc))  # certainly not sent
                    raise
                except MaybePlaced as exc:
                    await self._commit(coid, O.UNKNOWN, source=J.REQUEST, last_error=f"maybe placed: {exc}")
                    return await self._resolve(coid)
                return await self._fold(coid, report, J.REQUEST)

    async def _write_intent(self, intent: _Intent, *, sending: bool = False) -> Order:
        """Write `intent` (with its `extra`), and with `sending` its `submitting` too, as one
        transaction (`_insert`); its balance is reserved and `commit_intent` told. Returns the
        order as written."""
        order = intent.order
        try:
            ids = await self._insert(order, source=J.REQUEST, detail=intent.detail, extra=intent.extra, sending=sending)
        except Exception as exc:
            if not intent.written.done():
                intent.written.set_exception(exc)
            raise _NotWritten from exc
        except BaseException:  # cancelled: so is the wait for it
            intent.written.cancel()
            raise
        self._reserve(order)
        if not intent.written.done():
            intent.written.set_result(ids)
        written = self.current(order.client_order_id)
        assert written is not None
        return written

    def in_flight(self, coid: str) -> _InFlight:
        """A create of `coid` may still go live until this block ends with its outcome journaled:
        the kill switch waits for every such block before it says that none is left open."""
        return _InFlight(self, coid)

    async def _resolve(self, coid: str, *, duplicate: bool = False) -> Order:
        """Look a maybe-placed order up by client order id until found or certainly absent."""
        order = self.current(coid)
        assert order is not None
        with self.in_flight(coid):
            report = await self.lookup(order)
            if report is not None:
                found = await self._fold(coid, report, J.REQUEST)
                if found.signal_id in self.contested:
                    self.spawn(self.reconciler.settle_signal(found), name=f"late-original:{coid}")
                return found
        if duplicate:
            # The venue said the id exists, then every lookup said it does not: nobody can tell.
            raise _Unresolved(order, "duplicate client order id, yet no lookup finds it")
        return await self._commit(
            coid, O.FAILED, source=J.REQUEST, last_error="certainly absent after lookups across the visibility window"
        )

    async def lookup(self, order: Order) -> ExchangeOrder | None:
        """The venue's report for this order; None if it is certainly absent.

        Certainly absent: at least `lookup_attempts` answers "not found", spread over at least the
        visibility window. Raises `_Unresolved` when lookups kept failing so nobody can tell yet.
        """
        attempts, wait = self._lookup_schedule()
        first_absent: float | None = None
        absent_answers = 0
        last_error: Exception | None = None
        retrying, _ = self._retrying(
            "lookup", (OrderNotFound, NotPlaced, MaybePlaced), order=order, attempts=attempts, wait_strategy=wait
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        return await self.exchange.fetch_order(order.client_order_id, order.symbol)
                    except OrderNotFound:
                        now = time.monotonic()
                        first_absent = now if first_absent is None else first_absent
                        absent_answers += 1
                        if absent_answers >= self.lookup_attempts and now - first_absent >= self.lookup_window:
                            return None
                        raise
        except RetryError as exc:
            last_error = exc.last_attempt.exception()
        except Rejected as exc:
            last_error = exc
        if first_absent is not None and absent_answers >= 2 and time.monotonic() - first_absent >= self.lookup_window:
            return None  # "not found" answers spanned the window; a transient error at the end changes nothing
        raise _Unresolved(order, str(last_error))

    def _lookup_schedule(self):
        """How many lookups, and how far apart, so that together they outlast `lookup_window`:
        exponential from `retry_delay_seconds`, but never further apart than the window spread
        over the attempts (a venue hides an order for a moment, not for half a minute)."""
        delay = max(self.execution_config.retry_delay_seconds, 0.05)
        cap = max(delay, self.lookup_window / max(self.lookup_attempts - 1, 1))
        attempts, covered = self.lookup_attempts, 0.0
        for k in range(attempts - 1):
            covered += min(delay * 2**k, cap)
        while covered < self.lookup_window:
            covered += cap
            attempts += 1
        return attempts + 2, _jitter(multiplier=delay, max=cap, jitter=delay / 2)

    async def replace_absent(self, absent: Order, *, stale_check: bool = False) -> Order | None:
        """A certainly absent order's signal gets its next order (next replacement number), for
        what the signal still needs; with `stale_check` (after a restart) only if still valid."""
        record = await self.store.get_signal(absent.signal_id) if absent.signal_id else None
        if record is None or record.status is not SignalStatus.APPROVED or self.halted:
            return None
        siblings = await self.store.orders_for_signal(record.id or "")
        absent_orders = sum(1 for o in siblings if o.last_error.startswith("certainly absent"))
        if absent_orders > MAX_RESUBMISSIONS:
            reason = f"{absent_orders} orders certainly absent: back to the operator"
            await self.signal_back(record, SignalStatus.PENDING, reason)
            self._error(f"{record.id}: {reason}", order=absent)
            return None
        if stale_check and await self.stale_signal(record):
            return None
        try:
            order, _ = await self.commit_intent(record, launch=False)
        except PriceMoved as exc:
            await self.signal_back(record, SignalStatus.PENDING, f"{STALE}: {exc}", live_price=exc.live_price)
            return None
        if order is None or order.status is not O.NEW:
            return order
        self._error(
            f"{absent.client_order_id} certainly absent: resubmitted as {order.client_order_id}",
            order=order,
            level="warning",
        )
        return await self.run(order.client_order_id)
