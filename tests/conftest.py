"""The fixtures every test folder shares: seeded randomness, fixed hypothesis examples, default
settings, a store path and a store opened there, and a short work directory. The helpers
themselves (waiting, settings, signals, a clock) are in `helpers.py`."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import DATA, FakeClock, eventually, make_settings  # noqa: F401  (until all import helpers)
from hypothesis import settings as hypothesis_settings

from executor.config import Settings
from executor.store import Store

# Property tests explore a fixed, reproducible set of examples: a red run is red every time.
hypothesis_settings.register_profile("tradeconsole", derandomize=True, database=None, deadline=None)
hypothesis_settings.load_profile("tradeconsole")


@pytest.fixture(autouse=True)
def _seeded() -> None:
    # tenacity's jitter draws from the global generator: seed it so every run backs off alike.
    random.seed(1234)


@pytest.fixture
def settings() -> Settings:
    return make_settings(execution={"retry_delay_seconds": 0.01, "max_retries": 3})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    """A store at `db_path`, closed after the test."""
    opened = await Store.open(db_path)
    yield opened
    await opened.close()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short temporary directory (a Unix socket path has ~100 bytes at most; pytest's are long)."""
    path = Path(tempfile.mkdtemp(prefix="tc"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
