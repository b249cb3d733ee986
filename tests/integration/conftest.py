"""Fixtures: an emulator on a free port of 127.0.0.1, the ccxt adapter and a raw ccxt binance on it;
a `run --headless` core in a subprocess and a core in this process, for the control-socket tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from executor.control.client import LocalClient
from executor.exchanges.ccxt import CcxtExchange
from executor.venue.emulator.app import RunningEmulator
from executor.venue.faults import FaultPlan as EmulatorFaults

from .cores import Core, local_core
from .support import CLIENT_TIMEOUT_MS, MARKETS, emulator_adapter, emulator_faults, emulator_running, raw_binance

pytestmark = pytest.mark.integration


@pytest.fixture
def faults() -> EmulatorFaults:
    """No random faults; tests script the ones they need with `faults.script(endpoint, ...)`."""
    return emulator_faults()


@pytest.fixture
async def emulator(faults: EmulatorFaults) -> AsyncIterator[RunningEmulator]:
    async with emulator_running(seed=3, faults=faults, markets=list(MARKETS)) as running:
        yield running


@pytest.fixture
async def adapter(emulator: RunningEmulator) -> AsyncIterator[CcxtExchange]:
    async with emulator_adapter(emulator.url, timeout_ms=CLIENT_TIMEOUT_MS) as exchange:
        await exchange.load_markets()
        yield exchange


@pytest.fixture
async def binance(emulator: RunningEmulator):
    """`ccxt.async_support.binance` itself, configured by hand the way the adapter does."""
    async with raw_binance(emulator.url) as exchange:
        yield exchange


@pytest.fixture
def core(workdir: Path) -> Iterator[Core]:
    """`run --headless` in a subprocess, the three `cores.SIGNALS` waiting for an operator."""
    with Core(workdir).running() as core:
        yield core


@pytest.fixture
async def local(workdir: Path) -> AsyncIterator[LocalClient]:
    async with local_core(workdir) as client:
        yield client
