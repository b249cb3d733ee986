"""The kill -9 soak at the size of `make test`: 20 SIGKILLs of `tradeconsole run --headless`.

Two soaks side by side (they share nothing but the CPU), with a few percent of every fault class
on order creates: 7 kills at Binance's announced limits (1,200 weight/min, 50 orders/10 s), where
the core's pacing makes every restart slower, and 13 at the emulator's defaults (6,000/100).
`make chaos` runs the same at 220 kills. Then the checks themselves, on hand-made outcomes: each
invariant must catch its breach.
"""

from __future__ import annotations

import pytest

from executor.clientid import client_order_id

from .harness import (
    BINANCE_LIMITS,
    CHECKS,
    DEFAULT_LIMITS,
    PREFIX,
    Outcome,
    Run,
    Scenario,
    StoreRows,
    format_table,
    run_soaks,
)
from .venue import BANNED, INJECTED, INSIDE_INJECTED, RateLimits

pytestmark = pytest.mark.integration

# Faults on reads at half a percent each: a held answer costs 10 s, and the suite's budget is ~90 s.
SOAKS = [
    Scenario("binance-limits", BINANCE_LIMITS, kills=7, signals=40, seed=1, other_fault_pct=0.5),
    Scenario("default-limits", DEFAULT_LIMITS, kills=13, signals=70, seed=2, other_fault_pct=0.5),
]


def test_kill9_soaks_execute_nothing_twice_and_agree_with_the_venue(tmp_path):
    soaks = run_soaks(SOAKS, tmp_path, jobs=2, quiet=True)
    table = format_table([s.counts for s in soaks])
    print(table)
    reports = "\n\n".join(s.report() for s in soaks if not s.ok)
    assert sum(s.counts.kills for s in soaks) >= 20, table
    assert all(s.ok for s in soaks), reports


# -- the checks themselves ----------------------------------------------------------------------------

SIGNAL = {"id": "s1", "symbol": "BTC/USDT", "side": "buy", "quote_amount": 60, "order_type": "market"}


def _outcome(tmp_path, *, venue_orders=None, store_orders=None, fills=None, venue_fills=None, rate_limited=None):
    coid = client_order_id(PREFIX, "s1", 0)
    venue_orders = venue_orders or [
        {
            "client_order_id": coid,
            "order_id": 1,
            "symbol": "BTC/USDT",
            "side": "buy",
            "type": "market",
            "amount": "0.001",
            "price": None,
            "filled": "0.001",
            "status": "filled",
            "created_at": 10.0,
            "ended_at": 10.0,
        }
    ]
    store_orders = store_orders or [
        {
            "client_order_id": coid,
            "signal_id": "s1",
            "exchange_order_id": "1",
            "status": "filled",
            "amount": "0.001",
            "filled": "0.001",
            "fee": "0.06",
            "fee_currency": "USDT",
            "origin": "executor",
            "attempts": 1,
            "last_error": "",
            "replacement": 0,
            "created_at": "2026-01-01T00:00:00+00:00",
        }
    ]
    fills = (
        fills
        if fills is not None
        else [{"client_order_id": coid, "amount": "0.001", "price": "60000", "fee": "0.06", "fee_currency": "USDT"}]
    )
    record = {
        "orders": venue_orders,
        "fills": venue_fills
        or {"1": {"client_order_id": coid, "trades": 1, "amount": "0.001", "fees": {"USDT": "0.06"}}},
        "faults": {},
        "rate_limited": {"by_cause": {}, "by_path": rate_limited or {}},
    }
    store = StoreRows(
        signals=[{"id": "s1", "status": "approved", "amount": "0.001", "reason": "approved by auto"}],
        orders=store_orders,
        fills=fills,
    )
    runs = [Run(1, True, None, 1, tmp_path / "run-001.log", exit_code=0)]
    return Outcome(Scenario("unit", DEFAULT_LIMITS, kills=0, signals=1), [SIGNAL], runs, record, store, 0)


def _found(outcome) -> dict[str, list[str]]:
    return {check.__name__: [p.detail for p in check(outcome)] for check in CHECKS if check(outcome)}


def test_a_clean_outcome_passes_every_check(tmp_path):
    assert _found(_outcome(tmp_path)) == {}


def test_two_live_orders_of_one_signal_are_a_double_execution_and_an_overfill(tmp_path):
    first = _outcome(tmp_path).record["orders"][0]
    second = {
        **first,
        "client_order_id": client_order_id(PREFIX, "s1", 1),
        "order_id": 2,
        "ended_at": None,
        "status": "open",
        "filled": "0.0005",
        "created_at": 9.0,
    }
    found = _found(_outcome(tmp_path, venue_orders=[first, second]))
    assert "check_no_double_execution" in found and "check_no_overfill" in found
    assert any("not in the store" in d for d in found["check_orders_agree"])


def test_store_and_venue_disagreeing_on_filled_or_fees_are_caught(tmp_path):
    store = _outcome(tmp_path).store
    half = [{**store.orders[0], "filled": "0.0005", "status": "canceled"}]
    assert "check_orders_agree" in _found(_outcome(tmp_path, store_orders=half))
    no_fee = [{**store.fills[0], "fee": "0", "fee_currency": None}]
    found = _found(_outcome(tmp_path, fills=no_fee))
    assert list(found) == ["check_fills_agree"] and "store fills fee 0" in found["check_fills_agree"][0]


def test_an_approved_signal_whose_order_failed_and_was_never_replaced_is_lost(tmp_path):
    failed = [
        {
            **_outcome(tmp_path).store.orders[0],
            "exchange_order_id": None,
            "status": "failed",
            "filled": "0",
            "fee": "0",
            "last_error": "certainly absent: not among the venue's orders",
        }
    ]
    found = _found(_outcome(tmp_path, store_orders=failed, fills=[], venue_orders=[], venue_fills={}))
    assert "never placed" in found["check_signals_settled"][0]


def test_only_the_fault_plans_429s_are_allowed(tmp_path):
    allowed = {"POST /api/v3/order": {INJECTED: 2, INSIDE_INJECTED: 3}}
    assert _found(_outcome(tmp_path, rate_limited=allowed)) == {}
    drawn = {"GET /api/v3/myTrades": {"weight limit": 1}, "GET /api/v3/order": {BANNED: 4}}
    assert len(_found(_outcome(tmp_path, rate_limited=drawn))["check_rate_limits"]) == 2


def test_the_venue_tells_an_injected_429_and_its_echoes_from_a_drawn_one():
    limits = RateLimits()
    limits.note("POST /api/v3/order", 429, {"code": -1003}, 0.5, injected=True)
    limits.note("GET /api/v3/order", 429, {"code": -1003}, 0.4, injected=False)  # inside its Retry-After
    limits.window_until = 0.0  # the window passed
    limits.note("POST /api/v3/order", 429, {"code": -1015}, 3.0, injected=False)
    limits.note("GET /api/v3/account", 418, {"code": -1003}, 5.0, injected=False)
    assert limits.to_json()["by_cause"] == {BANNED: 1, INJECTED: 1, INSIDE_INJECTED: 1, "order count limit (-1015)": 1}
