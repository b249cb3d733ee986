"""The emulator itself: its faults file, its record and audit, latency, and the CLI's refusals."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import aiohttp
import pytest

from console.cli import main
from executor.clientid import client_order_id
from executor.venue.emulator.app import start_emulator
from executor.venue.emulator.record import audit_orders, signal_key
from executor.venue.faults import Draw, Fault, FaultsFileError
from executor.venue.faults import FaultPlan as EmulatorFaults

pytestmark = pytest.mark.integration

F = Fault
DOCUMENTED = {
    "seed": 1,
    "invisible_ms": 300,
    "retry_after": 1,
    "timeout_hold_s": 12,
    "limits": {"weight_per_minute": 6000, "orders_per_10s": 100, "orders_per_day": 200000, "ban_after": 10},
    "endpoints": {
        "POST /api/v3/order": {
            "timeout_after_accept": 0.1,
            "error_before": 0.1,
            "error_after": 0.1,
            "rate_limit": 0.1,
            "reset_after_accept": 0.1,
            "invisible": 0.1,
        },
        "*": {"error_before": 0.05},
    },
}


def test_the_documented_faults_file_loads(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text(json.dumps(DOCUMENTED))
    faults = EmulatorFaults.load(path)
    assert faults.seed == 1 and faults.invisible_ms == 300 and faults.timeout_hold_s == 12
    assert faults.limits.orders_per_10s == 100 and faults.limits.ban_seconds == 5
    assert faults.endpoints["POST /api/v3/order"][F.INVISIBLE] == 0.1
    assert faults.endpoints["*"] == {F.ERROR_BEFORE: 0.05}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sed": 1}, "unknown key 'sed'"),
        ({"endpoints": {"POST /api/v3/orders": {}}}, "endpoints.POST /api/v3/orders: unknown endpoint"),
        ({"endpoints": {"*": {"timeout": 0.1}}}, r"endpoints\.\*\.timeout: unknown fault"),
        ({"endpoints": {"*": {"error_before": 0.6, "error_after": 0.6}}}, "add up to 1.2, more than 1"),
        ({"retry_after": "1"}, "retry_after: must be a number"),
        ({"limits": {"orders_per_minute": 5}}, "limits.orders_per_minute: unknown key"),
        ([], "must hold a JSON object"),
    ],
)
def test_a_bad_faults_file_names_what_is_wrong(data, message):
    with pytest.raises(FaultsFileError, match=message):
        EmulatorFaults.from_json(data)


def test_a_faults_file_that_is_not_json_names_the_line(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text('{\n  "seed": 1,\n  oops\n}')
    with pytest.raises(FaultsFileError, match=r"faults\.json: line 3: not JSON"):
        EmulatorFaults.load(path)


def test_the_emulator_command_refuses_a_bad_faults_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"endpoints": {"*": {"explode": 1}}}))
    assert main(["emulator", "--port", "0", "--faults", str(path)]) == 2
    assert "unknown fault" in capsys.readouterr().err


def test_the_same_seed_draws_the_same_faults():
    table = {"endpoints": {"*": {"error_before": 0.3, "rate_limit": 0.3, "invisible": 0.5}}, "seed": 9}
    first, second = EmulatorFaults.from_json(table), EmulatorFaults.from_json(table)
    draws = [first.draw("POST /api/v3/order") for _ in range(50)]
    assert draws == [second.draw("POST /api/v3/order") for _ in range(50)]
    assert {d.fault for d in draws} == {F.NONE, F.ERROR_BEFORE, F.RATE_LIMIT}
    assert any(d.invisible for d in draws)
    assert not any(first.draw("GET /api/v3/order").invisible for _ in range(50))  # only creates hide


def test_scripted_faults_come_first_and_combine_with_invisibility():
    faults = EmulatorFaults().script("POST /api/v3/order", "error_after+invisible", "none")
    assert faults.draw("POST /api/v3/order") == Draw(F.ERROR_AFTER, invisible=True)
    assert faults.draw("POST /api/v3/order") == Draw()
    assert faults.pending("POST /api/v3/order") == 0


def record(coid, amount, filled, created, ended, order_id=None):
    out = {"client_order_id": coid, "amount": amount, "filled": filled, "created_at": created, "ended_at": ended}
    if order_id is not None:
        out["order_id"] = order_id
    return out


def coid(signal: str, replacement: int = 0) -> str:
    return client_order_id("tc", signal, replacement)


def test_the_audit_finds_over_fills_and_two_live_orders_of_one_signal():
    clean = [record(coid("a"), "1", "0.4", 1.0, 2.0), record(coid("a", 1), "0.6", "0.6", 2.0, 3.0)]
    assert audit_orders(clean).ok
    overfilled = [record(coid("b"), "1", "0.5", 1.0, 2.0), record(coid("b", 1), "1", "0.6", 2.0, 3.0)]
    audit = audit_orders(overfilled)
    assert audit.overfilled and audit.overfilled[0]["filled"] == "1.1" and not audit.concurrent
    overlapping = [record(coid("c"), "1", "0", 1.0, None, 1), record(coid("c", 1), "1", "0", 2.0, None, 2)]
    audit = audit_orders(overlapping)
    assert audit.concurrent == [
        {"signal": signal_key(coid("c")), "client_order_ids": [coid("c"), coid("c", 1)], "order_ids": [1, 2]}
    ]
    assert not audit_orders([record(coid("d"), "2", "1.5", 1.0, 2.0)], expected={signal_key(coid("d")): "1"}).ok
    assert signal_key(coid("abc", 12)) == signal_key(coid("abc")) and signal_key("external") == "external"


def test_the_audit_keys_orders_by_order_id_so_a_reused_client_order_id_is_two_orders():
    first, again = record(coid("r"), "1", "0.3", 1.0, 2.0, 7), record(coid("r"), "1", "0.7", 2.0, 3.0, 9)
    audit = audit_orders([first, again])
    assert audit.ok and audit.orders == 2 and audit.signals == 1
    # the same order twice in the input (a record merged with itself) is still one order
    assert audit_orders([first, again, first]).to_json() == audit.to_json()
    # reused while the first still lived: two live orders of one signal, named by their order ids
    overlapping = audit_orders([record(coid("s"), "1", "0", 1.0, None, 3), record(coid("s"), "1", "0", 2.0, 4.0, 4)])
    assert [c["order_ids"] for c in overlapping.concurrent] == [[3, 4]]
    # and the fills of both count towards the signal: 0.6 + 0.6 of an amount of 1 is an over-fill
    over = audit_orders([record(coid("t"), "1", "0.6", 1.0, 2.0, 5), record(coid("t"), "1", "0.6", 2.0, 3.0, 6)])
    assert [(o["order_ids"], o["filled"]) for o in over.overfilled] == [([5, 6], "1.2")]


async def test_latency_is_added_and_the_record_is_served():
    running = await start_emulator(latency_ms=80)
    try:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            async with session.get(f"{running.url}/api/v3/ping") as response:
                assert response.status == 200 and await response.json() == {}
            assert time.monotonic() - started >= 0.08
            async with session.get(f"{running.url}/_emulator/record") as response:
                served = await response.json()
        assert served["requests"] == {"GET /api/v3/ping": 1}
        assert served["audit"] == {"ok": True, "orders": 0, "signals": 0, "overfilled": [], "concurrent": []}
    finally:
        await running.stop()


async def test_an_unknown_endpoint_is_a_404():
    running = await start_emulator()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{running.url}/api/v3/historicalTrades") as response,
        ):
            # Binance's -1020 in JSON: ccxt raises BadRequest, which it never retries
            assert response.status == 404
            assert await response.json() == {"code": -1020, "msg": "This operation is not supported."}
    finally:
        await running.stop()


async def test_the_demo_helper_starts_an_emulator_and_a_paper_mode_adapter_on_it():
    from console.emulator_cli import start_demo_emulator
    from executor.config import load_config

    settings = load_config(None, env={"TRADECONSOLE_PAPER__BALANCES": '{"USDT": 500, "BTC": 0.5}'})
    running, exchange = await start_demo_emulator(settings, seed=4)
    try:
        async with exchange:
            assert (exchange.name, exchange.mode) == ("binance", "PAPER")
            assert set(await exchange.load_markets()) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
            assert (await exchange.fetch_ticker("ETH/USDT")).bid > 0
            balances = await exchange.fetch_balances()
            assert {c: b.free for c, b in balances.items()} == {"USDT": 500, "BTC": Decimal("0.5")}
    finally:
        await running.stop()
