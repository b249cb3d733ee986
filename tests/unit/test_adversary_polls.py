"""Adversarial review of 8d0d3a9: a poll's skip of the (order, report) pairs it found unchanged
last round (`Following.poll`, `_polled_unchanged`, the paper venue's per-version answers), and the
headless log handler that hands plain records to the writer thread unformatted (`console.logs`).

Every change of an order after a round that cached it must still be folded on the next round;
what time makes due must still start; the over-fill alert must still fire. A log line must say
what a standard `QueueHandler` would have said, never a secret, and a bad record must not stop
the writer."""

from __future__ import annotations

import dataclasses
import enum
import io
import logging
import logging.handlers
import queue
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from harness import make_harness, running
from helpers import eventually

from console.logs import _hand_off
from executor.events import ErrorOccurred
from executor.exchanges.ccxt.errors import RedactingLogger
from executor.exchanges.paper import PaperExchange
from executor.models import JournalSource, OrderStatus
from executor.venue.faults import FaultPlan

O = OrderStatus
D = Decimal


@pytest.fixture
async def h(settings, db_path):
    harness = await make_harness(settings, db_path, faults=FaultPlan(seed=3, invisible_ms=0))
    async with running(harness, watch=False):
        yield harness


async def _resting(h, sid: str, amount=2.0):
    order = await h.placed(id=sid, symbol="SOL/USDT", amount=amount, price=50)
    assert order.status is O.OPEN
    return order.client_order_id


async def _cached(h, coid: str) -> None:
    """Two rounds: the second finds the very same (order, report) pair as the first."""
    await h.executor.poll()
    first = h.executor._polled_unchanged[coid]
    await h.executor.poll()
    assert h.executor._polled_unchanged[coid][0] is first[0]
    assert h.executor._polled_unchanged[coid][1] is first[1]  # the skip is taken


# -- change 1: nothing a venue does is missed after a skipped round ------------------------------


async def test_a_partial_fill_after_skipped_rounds_is_folded_next_round(h):
    c = await _resting(h, "pf")
    await _cached(h, c)
    h.engine.force_fill(c, D("0.5"))
    await h.executor.poll()
    order = h.executor.active_orders[c]
    assert order.status is O.PARTIALLY_FILLED and order.filled == D("0.5")
    await h.executor.poll()  # and the new pair is cached, then another fill still seen
    h.engine.force_fill(c, D("0.25"))
    await h.executor.poll()
    assert h.executor.active_orders[c].filled == D("0.75")
    assert sum(f.amount for f in await h.store.fills(c)) == D("0.75")


async def test_a_full_fill_and_a_venue_cancel_after_skipped_rounds_end_the_orders(h):
    filled, canceled = await _resting(h, "ff"), await _resting(h, "vc")
    await _cached(h, filled)
    await _cached(h, canceled)
    h.engine.force_fill(filled, D("2"))
    h.engine.cancel_order(client_order_id=canceled)  # the venue's own cancel: not ours
    await h.executor.poll()
    assert (await h.store.get_order(filled)).status is O.FILLED
    assert (await h.store.get_order(canceled)).status is O.CANCELED
    assert filled not in h.executor._polled_unchanged and canceled not in h.executor._polled_unchanged


async def test_many_orders_random_fills_across_rounds_match_the_venue(h):
    rng = random.Random(13)
    coids = [await _resting(h, f"m{i}", amount=1.0) for i in range(6)]
    for _ in range(12):
        await h.executor.poll()
        for c in coids:
            eng = h.engine.get_order(client_order_id=c)
            if eng.is_open and rng.random() < 0.3:
                h.engine.force_fill(c, min(eng.remaining, D("0.25")))
    await h.executor.poll()
    for c in coids:
        eng = h.engine.get_order(client_order_id=c)
        ours = await h.store.get_order(c)
        assert (ours.filled, ours.status) == (eng.filled, eng.status)


async def test_a_timeout_falls_due_on_a_skipped_round(h):
    c = await _resting(h, "to")
    timeout_at = h.executor.active_orders[c].timeout_at
    assert timeout_at is not None
    frozen = timeout_at - timedelta(seconds=1)
    h.executor.clock = lambda: frozen
    await _cached(h, c)
    later = timeout_at + timedelta(seconds=1)
    h.executor.clock = lambda: later  # same order, same answer: only time moved
    await h.executor.poll()
    assert await eventually(lambda: h.executor.current(c) is None or h.executor.current(c).status.is_terminal)
    assert (await h.store.get_order(c)).status is O.CANCELED


async def test_an_unconfirmed_cancel_is_sent_again_on_a_skipped_round(h):
    c = await _resting(h, "pc")
    h.executor.cancel_resend_after = 1e9
    async with h.executor.locks.hold(c):
        await h.executor._commit(c, O.PENDING_CANCEL, source=JournalSource.REQUEST)  # the cancel was lost
    h.executor._cancel_sent[c] = 0.0
    await _cached(h, c)  # open on the venue, pending_cancel here: unchanged
    h.executor.cancel_resend_after = 0.0
    await h.executor.poll()
    await eventually(lambda: h.executor.current(c) is None)
    assert (await h.store.get_order(c)).status is O.CANCELED


class OverFilling(PaperExchange):
    """A venue that, once told, reports an order filled past its amount (a venue bug)."""

    over: dict[str, Decimal] = {}

    async def fetch_open_orders(self, symbol=None):
        answer = await super().fetch_open_orders(symbol)
        return [
            dataclasses.replace(r, filled=self.over[r.client_order_id], status=O.FILLED)
            if r.client_order_id in self.over
            else r
            for r in answer
        ]


async def test_the_over_fill_alert_fires_after_skipped_rounds(settings, db_path):
    h = await make_harness(settings, db_path, exchange_cls=OverFilling, faults=FaultPlan(seed=3, invisible_ms=0))
    async with running(h, watch=False):
        c = await _resting(h, "of")
        await _cached(h, c)
        h.exchange.over = {c: D("2.5")}
        await h.executor.poll()
        alerts = [e for e in h.of(ErrorOccurred) if "capped at the order amount" in str(e)]
        assert alerts, h.of(ErrorOccurred)
        assert (await h.store.get_order(c)).filled == D("2")


async def test_a_restart_tracks_resting_orders_afresh(settings, db_path):
    from harness import restart

    h = await make_harness(settings, db_path, faults=FaultPlan(seed=3, invisible_ms=0))
    await h.executor.start(watch=False)
    c = await _resting(h, "rs")
    await _cached(h, c)
    h2 = await restart(h, settings, db_path)
    async with running(h2, watch=False):
        h2.engine.force_fill(c, D("1"))
        await h2.executor.poll()
        assert h2.executor.active_orders[c].filled == D("1")


async def _answer(h, c: str, symbol: str | None):
    answer = {r.client_order_id: r for r in await h.exchange.fetch_open_orders(symbol)}
    return answer[c]


async def test_the_paper_answer_is_a_new_object_at_every_visible_change(h):
    c = await _resting(h, "po")
    first = await _answer(h, c, "SOL/USDT")
    again = await _answer(h, c, "SOL/USDT")
    assert first is again
    h.engine.force_fill(c, D("0.1"))
    third = await _answer(h, c, "SOL/USDT")
    assert third is not first and third.filled == D("0.1")
    other = await _answer(h, c, None)
    assert other == third  # the all-markets memo agrees


# -- change 2: the log line is the standard handler's line -----------------------------------------


class Color(enum.IntEnum):
    RED = 1


class Mode(enum.StrEnum):
    LIVE = "live"


def _lines(handler_factory, records) -> list[str]:
    out = io.StringIO()
    q: queue.SimpleQueue = queue.SimpleQueue()
    writer = logging.StreamHandler(out)
    writer.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    listener = logging.handlers.QueueListener(q, writer, respect_handler_level=True)
    listener.start()
    try:
        handler = handler_factory(q)
        for r in records:
            handler.handle(r)
    finally:
        listener.stop()
    return out.getvalue().splitlines()


def _record(msg, args):
    return logging.LogRecord("tradeconsole.x", logging.INFO, __file__, 1, msg, args, None)


def test_plain_values_print_as_the_standard_handler_prints_them():
    rng = random.Random(5)
    values = [True, False, Color.RED, Mode.LIVE, D("1.50"), D("-0"), D("NaN"), 1e-9, 3, None, "50%", "x\ny"]
    formats = ["%s", "%r", "%d", "%.2f", "%5s"]
    cases = []
    for _ in range(200):
        v = rng.choice(values)
        f = rng.choice(formats)
        try:
            (f % (v,))
        except (TypeError, ValueError):
            continue
        cases.append((f"v={f} end", (v,)))
    ours = _lines(_hand_off, [_record(m, a) for m, a in cases])
    standard = _lines(logging.handlers.QueueHandler, [_record(m, a) for m, a in cases])
    assert ours == standard


def test_a_record_that_cannot_be_formatted_does_not_stop_the_writer(capsys):
    records = [_record("bad %d", ("x",)), _record("good %s", ("after",))]
    assert _lines(_hand_off, records)[-1] == "INFO tradeconsole.x: good after"


def test_a_secret_is_scrubbed_before_the_record_is_queued():
    secret = "APIKEY-123456"
    q: queue.SimpleQueue = queue.SimpleQueue()
    logger = logging.getLogger("tradeconsole.adversary.wire")
    logger.propagate = False
    handler = _hand_off(q)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        RedactingLogger(logger, [secret]).debug("GET https://x/api?signature=abc&k=%s key %s", secret, secret)
    finally:
        logger.removeHandler(handler)
    record = q.get_nowait()
    assert secret not in record.getMessage() and "abc" not in record.getMessage()


class Tagged(str):
    """A str subclass with state of its own that its `__str__` shows (none in the codebase)."""

    __slots__ = ("note",)

    def __str__(self) -> str:
        return f"{str.__str__(self)}[{self.note}]"


def test_a_str_subclass_changed_after_the_call_logs_what_it_was():
    value = Tagged("tc1")
    value.note = "at-call"
    q: queue.SimpleQueue = queue.SimpleQueue()
    _hand_off(q).handle(_record("order %s", (value,)))
    value.note = "later"
    assert q.get_nowait().getMessage() == "order tc1[at-call]"
