"""Fixtures: an emulator on a free port of 127.0.0.1, the ccxt adapter and a raw ccxt binance on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from executor.exchanges.ccxt import CcxtExchange
from executor.venue.emulator.app import DEMO_API_KEY, DEMO_API_SECRET, RunningEmulator, start_emulator
from executor.venue.faults import FaultPlan as EmulatorFaults

from .support import CLIENT_TIMEOUT_MS, MARKETS, emulator_faults, raw_binance

pytestmark = pytest.mark.integration


@pytest.fixture
def faults() -> EmulatorFaults:
    """No random faults; tests script the ones they need with `faults.script(endpoint, ...)`."""
    return emulator_faults()


@pytest.fixture
async def emulator(faults: EmulatorFaults) -> AsyncIterator[RunningEmulator]:
    running = await start_emulator(seed=3, faults=faults, markets=list(MARKETS))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def adapter(emulator: RunningEmulator) -> AsyncIterator[CcxtExchange]:
    exchange = CcxtExchange(
        "binance",
        api_key=DEMO_API_KEY,
        api_secret=DEMO_API_SECRET,
        api_url=emulator.url,
        markets=list(MARKETS),
        timeout_ms=CLIENT_TIMEOUT_MS,
    )
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


@pytest.fixture
async def binance(emulator: RunningEmulator):
    """`ccxt.async_support.binance` itself, configured by hand the way the adapter does."""
    exchange = raw_binance(emulator.url)
    try:
        yield exchange
    finally:
        await exchange.close()
