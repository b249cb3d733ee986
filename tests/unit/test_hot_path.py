"""The shortcuts B2's hot path takes give what the long way gives: the trace's dispatch on an
event's exact type (a subclass still takes the `isinstance` way), a journal detail's kept JSON
text (never shared by values that are equal but write differently), the duplicate check's hash
kept from `check` to `add` (never another id's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from harness import open_service
from helpers import eventually
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.events import LogLine, OrderUpdated
from executor.seen import Seen, SeenIds
from executor.store.writes import _encode, _json


@dataclass(frozen=True, slots=True)
class _MarkedLine(LogLine):
    """A Log line of a type the trace's table does not name."""


async def test_a_subclass_of_a_traced_event_is_traced_as_its_base_is(tmp_path):
    service = await open_service(tmp_path / "s.db")
    try:
        service.bus.publish(LogLine("plain line (by test)", "test"))
        service.bus.publish(_MarkedLine("marked line (by test)", "test"))
        await eventually(lambda: not service._log_buffer and not service._persisting)
        messages = [row["message"] for row in await service.store.log_entries(limit=100)]
        assert "plain line (by test)" in messages and "marked line (by test)" in messages
    finally:
        await service.close()


async def test_every_order_step_still_makes_its_trace_line(tmp_path):
    service = await open_service(tmp_path / "s.db", approval={"mode": "auto"})
    try:
        seen: list[str] = []
        service.bus.subscribe(lambda e: seen.append(e.order.status) if isinstance(e, OrderUpdated) else None)
        line = json.dumps({"id": "hp-1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.001, "order_type": "market"})
        await service.submit([line], source="test")
        await eventually(service.idle)
        await eventually(lambda: not service._log_buffer and not service._persisting)
        messages = [row["message"] for row in await service.store.log_entries(limit=100)]
        assert any(m.startswith("hp-1 approved") for m in messages)
        assert any(m.startswith("hp-1 order placed and filled") for m in messages)
        assert seen[-1] == "filled"
    finally:
        await service.close()


def test_a_kept_detail_text_is_never_shared_by_values_that_write_differently():
    # True == 1 == 1.0 and Decimal("1.0") == Decimal("1.00"), but each writes its own text.
    for detail in (
        {"a": True},
        {"a": 1},
        {"a": 1.0},
        {"a": Decimal("1.0")},
        {"a": Decimal("1.00")},
        {"a": "1"},
        {"a": None},
        {"a": [1, 2]},
        {"a": {"b": 1}},
        {1: "x"},
    ):
        for _ in range(2):  # the second time from what was kept
            assert _json(detail) == _encode(detail), detail
    assert _json({}) == _json(None) == "{}"


plain = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=4), plain, max_size=3), min_size=1, max_size=8))
def test_kept_detail_texts_are_what_the_encoder_writes(details):
    for detail in details + details:
        assert _json(detail) == (_encode(detail) if detail else "{}")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["check", "add", "discard"]), st.sampled_from("abcdef")), max_size=40))
def test_the_kept_hash_never_answers_for_another_id(steps):
    kept, fresh = SeenIds(bits=10), SeenIds(bits=10)
    for op, signal_id in steps:
        if op == "check":
            assert kept.check(signal_id) is fresh.check(signal_id)
            fresh._last_id = None  # the reference never keeps one
        elif op == "add":
            kept.add(signal_id)
            fresh.add(signal_id)
            fresh._last_id = None
        else:
            kept.discard(signal_id)
            fresh.discard(signal_id)
    for signal_id in "abcdef":
        assert kept.check(signal_id) is fresh.check(signal_id)
    assert kept.check("a") in (Seen.SEEN, Seen.NEW, Seen.MAYBE)
