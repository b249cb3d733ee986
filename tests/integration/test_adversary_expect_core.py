"""Adversary test, through the core, of a create's place in ccxt's bucket asked for ahead of its
signal (`ExchangePort.expect_order`): see test_adversary_expect.py, whose rigs it uses."""

from __future__ import annotations

import json
import time

import pytest
from helpers import eventually

from .support import CLIENT_TIMEOUT_MS, emulator_adapter, emulator_faults, emulator_running
from .test_adversary_expect import BTC, in_a_minutes_last_order_window, use_venue_weight

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("ahead", [True], ids=["asked-ahead"])  # `False`: the flow before the change (slow: a minute)
async def test_a_market_signal_through_intake_waits_out_the_full_window_its_own_ticker_read_warned_of(
    tmp_path, ahead: bool
):
    """The same through the core: a TradingService in auto-approval, a quiet moment between its
    periodic rounds (their loops stopped, so nothing else of the core talks to the venue). One
    signal with a price earlier in the 10 s order window; then another process on the key uses
    the venue's weight up to 2 short of its 6,000; then a market signal without a price arrives.
    Intake asks for its create's place (given: the window looks empty), reads the ticker (the
    answer says 6000 of 6000), approves; the create takes the place given before that answer and
    draws a 429 instead of waiting for the next minute.

    `asked-at-admission`: the port's `expect_order` is the default no-op (what intake did before
    the change); the create waits for the next minute and is placed without a 429 (passes).
    """
    from helpers import make_settings

    from executor.service import TradingService
    from executor.store import Store

    faults = emulator_faults(seed=52)
    async with emulator_running(seed=52, faults=faults, markets=[BTC]) as running:
        emulator = running.emulator
        settings = make_settings(
            approval={"mode": "auto", "far_from_market_pct": 0},
            execution={"retry_delay_seconds": 0.02, "max_retries": 5, "order_timeout_seconds": 120.0},
            exchange={"markets": [BTC]},
        )
        exchange = emulator_adapter(running.url, markets=[BTC], timeout_ms=CLIENT_TIMEOUT_MS)
        exchange._ex.timeout_on_exit = 0
        if not ahead:
            exchange.expect_order = lambda: None  # type: ignore[method-assign]
        store = await Store.open(tmp_path / "store.db")
        service = TradingService(settings, store, exchange, poll_interval=60.0)
        try:
            await service.start()
            for task in service._loops:  # a quiet moment: no poll, no ticker round in between
                task.cancel()
            await in_a_minutes_last_order_window()
            price = float(emulator.engine.ticker(BTC).ask)
            first = {"id": "s-1", "symbol": BTC, "side": "buy", "amount": 0.001, "order_type": "market", "price": price}
            [record] = await service.submit([json.dumps(first)], source="test")
            assert record.status.value == "approved", record
            await eventually(lambda: not service.executor._tasks, timeout=20)
            # The second signal's intake reads the ticker itself (the cached one is over a second old).
            tickers = service.executor._tickers
            await eventually(lambda: all(time.monotonic() - at > 1.0 for at, _ in tickers.values()), timeout=5)
            await use_venue_weight(running.url, emulator, emulator.limits.limits.weight_per_minute - 2)
            second = {"id": "s-2", "symbol": BTC, "side": "buy", "amount": 0.001, "order_type": "market"}
            [record] = await service.submit([json.dumps(second)], source="test")
            assert record.status.value == "approved", record
            await eventually(lambda: not service.executor._tasks, timeout=120)
            assert emulator.codes[-1003] == 0, (
                f"the core drew a request-weight 429: {emulator.record()['error_codes']}, "
                f"cooldown trips {exchange.rate_limit_state().trips}"
            )
        finally:
            await service.close()
