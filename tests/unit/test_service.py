"""The service: intake (invalid, duplicate, semantic checks), approval policies, TTL, operator
commands with their audit trail, pause and the kill switch, and read-only refusal."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from conftest import DATA, FakeClock, eventually, make_settings

from executor.events import SignalDecided, SignalReceived
from executor.exchanges.paper import PaperExchange
from executor.executor import ExecutionError
from executor.models import OrderStatus, SignalStatus
from executor.service import ReadOnlyError, TradingService, operator_actor
from executor.sources.jsonl import read_lines
from executor.venue.engine import PaperEngine

S = SignalStatus
BALANCES = {"USDT": 100000, "BTC": 1, "ETH": 10, "SOL": 100}


async def open_service(db_path, *, clock=None, **sections) -> TradingService:
    sections.setdefault("execution", {})
    sections["execution"] = {"retry_delay_seconds": 0.01, **sections["execution"]}
    settings = make_settings(**sections)
    engine = PaperEngine(seed=3, markets=settings.exchange.markets, balances=BALANCES, clock=clock or FakeClock())
    service = await TradingService.open(
        settings, db_path, exchange=PaperExchange(engine), actor="ops@desk", poll_interval=0.02
    )
    await service.start()
    return service


@pytest.fixture
async def manual(db_path):
    service = await open_service(db_path)
    yield service
    await service.close()


@pytest.fixture
async def auto(db_path):
    service = await open_service(db_path, approval={"mode": "auto"})
    yield service
    await service.close()


def line(**fields) -> str:
    base = {"id": "s1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01}
    return json.dumps(base | fields)


async def test_manual_mode_keeps_signals_pending(manual):
    record = await manual.receive(line(), source="test")
    assert record.status is S.PENDING and record.amount == Decimal("0.01")
    assert await manual.store.orders() == []


async def test_the_contract_files_are_recorded_line_by_line(manual):
    manual.add_source(read_lines(DATA / "signals.invalid.jsonl"), name="invalid")
    manual.add_source(read_lines(DATA / "signals.valid.jsonl"), name="valid")
    await manual.sources_done()
    rows = await manual.store.signals()
    invalid = [r for r in rows if r.source == "invalid"]
    valid = [r for r in rows if r.source == "valid"]
    assert len(invalid) == 13 and all(r.status is S.INVALID and r.reason for r in invalid)
    assert len(valid) == 4 and all(r.status is S.PENDING for r in valid)


async def test_a_repeated_id_is_recorded_as_duplicate_and_never_executed(auto):
    await auto.receive(line(order_type="market"), source="test")
    await eventually(auto.idle)
    again = await auto.receive(line(order_type="market"), source="test")
    assert again.status is S.DUPLICATE and "seen before" in again.reason
    await eventually(auto.idle)
    assert len(await auto.store.orders()) == 1


async def test_reading_the_same_file_after_a_restart_executes_nothing_twice(db_path):
    first = await open_service(db_path, approval={"mode": "auto"}, execution={"order_type": "market"})
    engine = first.exchange.engine
    first.add_source(read_lines(DATA / "signals.valid.jsonl"), name="file")
    await first.run_until_idle()
    await first.close()
    second = await TradingService.open(first.settings, db_path, exchange=PaperExchange(engine), actor="ops@desk")
    await second.start()
    second.add_source(read_lines(DATA / "signals.valid.jsonl"), name="file")
    await second.run_until_idle()
    rows = await second.store.signals()
    assert [r.status for r in rows].count(S.DUPLICATE) == 4
    assert len(await second.store.orders()) == 4
    assert len(engine.all_orders()) == 4
    await second.close()


async def test_auto_mode_approves_at_or_below_the_cap_and_holds_the_rest(db_path):
    service = await open_service(db_path, approval={"mode": "auto", "auto_max_notional": 1000})
    try:
        small = await service.receive(line(id="small", amount=0.01, order_type="market"), source="t")  # ~600
        large = await service.receive(line(id="large", amount=0.1, order_type="market"), source="t")  # ~6000
        await eventually(service.idle)
        assert (await service.store.get_signal(small.id)).status is S.APPROVED
        held = await service.store.get_signal(large.id)
        assert held.status is S.PENDING and "auto_max_notional" in held.reason
    finally:
        await service.close()


async def test_semantic_problems_are_invalid_with_a_reason(manual):
    record = await manual.receive(line(id="tiny", amount=0.00001), source="t")
    assert record.status is S.INVALID and "notional" in record.reason
    record = await manual.receive(line(id="doge", symbol="DOGE/USDT"), source="t")
    assert record.status is S.INVALID and "DOGE/USDT is not a market" in record.reason


async def test_approve_places_the_order_and_audits_the_actor(manual):
    await manual.receive(line(order_type="market"), source="t")
    await manual.approve("s1")
    await eventually(manual.idle)
    assert (await manual.store.get_signal("s1")).status is S.APPROVED
    orders = await manual.store.orders()
    assert len(orders) == 1 and orders[0].status is OrderStatus.FILLED
    audit = await manual.store.audit()
    assert [(a["actor"], a["action"], a["target"]) for a in audit] == [("ops@desk", "approve", "s1")]


async def test_reject_is_final(manual):
    await manual.receive(line(), source="t")
    await manual.reject("s1", reason="not today")
    record = await manual.store.get_signal("s1")
    assert record.status is S.REJECTED and record.reason == "not today"
    with pytest.raises(ExecutionError, match="not pending"):
        await manual.approve("s1")


async def test_a_signal_past_its_ttl_expires_and_cannot_be_approved(db_path):
    service = await open_service(db_path, approval={"signal_ttl_seconds": 60})
    try:
        await service.receive(line(created_at="2020-01-01T00:00:00Z"), source="t")
        with pytest.raises(ExecutionError, match="expired"):
            await service.approve("s1")
        assert (await service.store.get_signal("s1")).status is S.EXPIRED
        # Stale on arrival: expired at once, never pending (nor approvable by an auto policy).
        stale = await service.receive(line(id="s2", created_at="2020-01-01T00:00:00Z"), source="t")
        assert stale.status is S.EXPIRED and "TTL" in stale.reason
        # Fresh on arrival, then its TTL passes: the expiry sweep takes it.
        await service.receive(line(id="s3"), source="t")
        later = service.clock() + timedelta(seconds=61)
        service.clock = lambda: later
        assert await service.expire_due() == 1
        assert (await service.store.get_signal("s3")).status is S.EXPIRED
    finally:
        await service.close()


async def test_amend_a_pending_signal_validates_then_changes_it(manual):
    await manual.receive(line(), source="t")
    with pytest.raises(ExecutionError, match="amount"):
        await manual.amend_signal("s1", amount=Decimal("0.000001"))
    updated = await manual.amend_signal("s1", amount=Decimal("0.02"), price=Decimal("59000"))
    assert updated.amount == Decimal("0.02") and updated.signal.price == 59000
    assert (await manual.store.get_signal("s1")).amount == Decimal("0.02")
    assert [a["action"] for a in await manual.store.audit()] == ["amend_signal"]


async def test_a_market_order_whose_price_moved_goes_back_to_the_operator(manual):
    events = []
    manual.bus.subscribe(events.append)
    await manual.receive(line(order_type="market", price=50000), source="t")
    await manual.approve("s1")
    await eventually(manual.idle)
    record = await manual.store.get_signal("s1")
    assert record.status is S.PENDING and record.reason.startswith("price moved")
    assert await manual.store.orders() == []
    assert any(isinstance(e, SignalDecided) and e.record.status is S.PENDING for e in events)


async def test_pause_stops_intake_until_resumed(manual):
    await manual.pause()
    source = manual.add_source(read_lines(DATA / "signals.valid.jsonl"), name="file")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(source), timeout=0.2)
    assert await manual.store.signals() == []
    await manual.resume()
    await manual.sources_done()
    assert len(await manual.store.signals()) == 4


async def test_kill_switch_pauses_and_cancels_every_open_order(manual):
    for n in range(3):
        await manual.receive(line(id=f"k{n}", price=30000), source="t")  # rests far below the market
        await manual.approve(f"k{n}", confirm=True)
    await eventually(lambda: not manual.executor.tasks_named("place"))
    assert [o.status for o in manual.executor.active_orders.values()] == [OrderStatus.OPEN] * 3
    result = await manual.kill_switch()
    assert manual.paused
    assert [o.status for o in result.orders] == [OrderStatus.CANCELED] * 3
    assert result.left_open == 0 and result.describe().endswith("canceled 3; none left open")
    assert "kill_switch" in [a["action"] for a in await manual.store.audit()]


async def test_inspect_mode_refuses_every_command(manual, db_path):
    await manual.receive(line(), source="t")
    ro = await TradingService.open(manual.settings, db_path, read_only=True)
    await ro.start()
    try:
        assert ro.mode == "READ-ONLY" and ro.exchange is None
        for command in (
            ro.approve("s1"),
            ro.reject("s1"),
            ro.cancel_order("x"),
            ro.pause(),
            ro.resume(),
            ro.kill_switch(),
            ro.amend_signal("s1", amount=Decimal(1)),
            ro.amend_order("x"),
            ro.receive(line(id="s9"), source="t"),
        ):
            with pytest.raises(ReadOnlyError):
                await command
        assert [a for a in await ro.store.audit()] == []
        assert (await ro.store.get_signal("s1")).status is S.PENDING
    finally:
        await ro.close()


async def test_inspect_mode_follows_what_another_process_writes(manual, db_path):
    ro = await TradingService.open(manual.settings, db_path, read_only=True)
    events = []
    ro.bus.subscribe(events.append)
    await ro.start()
    try:
        await manual.receive(line(id="live"), source="t")
        await eventually(lambda: any(isinstance(e, SignalReceived) and e.record.id == "live" for e in events))
    finally:
        await ro.close()


def test_the_actor_names_the_ssh_client_when_there_is_one():
    assert operator_actor({"SSH_CONNECTION": "203.0.113.9 52000 10.0.0.2 22"}).endswith(" from 203.0.113.9")
    assert "@" in operator_actor({}) and " from " not in operator_actor({})


async def test_retries_and_errors_are_journaled_for_inspect(db_path):
    from executor.events import ErrorOccurred, RetryScheduled
    from executor.venue.faults import Fault, FaultPlan

    service = await open_service(db_path)
    try:
        service.exchange.faults = FaultPlan(seed=1, retry_after=0.01).script("create_order", Fault.REFUSED)
        await service.receive(line(order_type="market"), source="t")
        await service.approve("s1")
        await eventually(service.idle)
        await service.receive(line(id="bad", symbol="DOGE/USDT"), source="t")  # a warning line
    finally:
        await service.close()
    ro = await TradingService.open(service.settings, db_path, read_only=True)
    events = []
    ro.bus.subscribe(events.append)
    await ro.start()
    try:
        retries = [e for e in events if isinstance(e, RetryScheduled)]
        assert [(r.operation, r.attempt, r.max_attempts) for r in retries] == [("create_order", 1, 4)]
        assert "connection refused" in retries[0].reason
        assert all(isinstance(e.ts, type(retries[0].ts)) for e in events if isinstance(e, ErrorOccurred))
    finally:
        await ro.close()


def test_a_paper_core_never_imports_ccxt(tmp_path):
    # The ccxt adapter is imported only when a ccxt venue is configured: paper and demo start without it.
    code = f"""
import asyncio, sys
from executor.config import Settings
from executor.service import TradingService

async def main():
    settings = Settings()
    settings = settings.model_copy(update={{"exchange": settings.exchange.model_copy(update={{"id": "paper"}})}})
    service = await TradingService.open(settings, {str(tmp_path / "paper.db")!r})
    await service.start()
    await service.close()

asyncio.run(main())
print(sorted(m for m in sys.modules if m == "ccxt" or m.startswith(("ccxt.", "executor.exchanges.ccxt"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
