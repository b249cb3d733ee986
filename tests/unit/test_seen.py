"""The intake's duplicate memory: never answers NEW for an id it took, in fixed memory."""

from __future__ import annotations

import json
import tracemalloc

from harness import open_service
from helpers import eventually
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.models import SignalStatus
from executor.seen import Seen, SeenIds


def test_recent_ids_are_seen_older_ones_maybe_and_strangers_new():
    seen = SeenIds(recent=3, bits=16)
    for i in range(10):
        seen.add(f"s{i}")
    assert [seen.check(f"s{i}") for i in (9, 8, 7)] == [Seen.SEEN] * 3
    assert seen.check("s0") is Seen.MAYBE  # fell out of the exact part: the store decides
    assert seen.check("never") is Seen.NEW


def test_a_discarded_reservation_is_no_longer_seen_but_still_confirmed_with_the_store():
    seen = SeenIds(recent=10, bits=16)
    seen.add("x")
    seen.discard("x")
    assert "x" not in seen
    assert seen.check("x") is Seen.MAYBE


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=300), st.integers(1, 50))
def test_an_id_once_added_is_never_answered_new(ids, recent):
    seen = SeenIds(recent=recent, bits=12)  # a small filter: many false positives, never a false NEW
    for signal_id in ids:
        seen.add(signal_id)
        assert seen.check(signal_id) is Seen.SEEN
    assert all(seen.check(signal_id) is not Seen.NEW for signal_id in ids)


def test_lone_surrogates_from_a_json_string_are_ids_like_any_other():
    seen = SeenIds(recent=2, bits=12)
    seen.add("a\ud800")
    assert seen.check("a\ud800") is Seen.SEEN


def test_memory_stays_fixed_from_10k_to_100k_ids():
    seen = SeenIds(recent=1_000)
    for i in range(10_000):
        seen.add(f"sig-{i:08d}")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(10_000, 100_000):
        seen.add(f"sig-{i:08d}")
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 200_000, grown
    false_new = sum(seen.check(f"sig-{i:08d}") is Seen.NEW for i in range(100_000))
    assert false_new == 0


def _line(signal_id: str) -> str:
    return json.dumps({"id": signal_id, "symbol": "BTC/USDT", "side": "buy", "amount": 0.001, "order_type": "market"})


async def test_an_id_older_than_the_exact_window_is_still_a_duplicate_through_the_store(tmp_path):
    service = await open_service(tmp_path / "s.db", approval={"mode": "auto"})
    try:
        service._seen = SeenIds(recent=2, bits=16)
        for i in range(6):
            assert (await service.receive(_line(f"w{i}"), source="test")).status is SignalStatus.APPROVED
        await eventually(service.idle)
        assert service._seen.check("w0") is Seen.MAYBE
        again = await service.receive(_line("w0"), source="test")
        assert again.status is SignalStatus.DUPLICATE and "seen before" in again.reason
        await eventually(service.idle)
        assert len(await service.store.orders()) == 6
    finally:
        await service.close()


async def test_after_a_restart_every_accepted_id_is_remembered(tmp_path):
    first = await open_service(tmp_path / "s.db", approval={"mode": "auto"})
    for i in range(3):
        await first.receive(_line(f"r{i}"), source="test")
    await eventually(first.idle)
    await first.close()
    second = await open_service(tmp_path / "s.db", approval={"mode": "auto"})
    try:
        assert all(second._seen.check(f"r{i}") is Seen.SEEN for i in range(3))
        assert (await second.receive(_line("r1"), source="test")).status is SignalStatus.DUPLICATE
    finally:
        await second.close()
