"""Shared fixtures: a paper exchange, a store in a temp dir, an executor and a service on them."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from executor.config import Settings, load_config

# Property tests explore a fixed, reproducible set of examples: a red run is red every time.
hypothesis_settings.register_profile("tradeconsole", derandomize=True, database=None, deadline=None)
hypothesis_settings.load_profile("tradeconsole")

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _seeded() -> None:
    # tenacity's jitter draws from the global generator: seed it so every run backs off alike.
    random.seed(1234)


def make_settings(**sections: dict) -> Settings:
    """Defaults (no file, no environment) with some keys changed, e.g. execution={"max_retries": 2}."""
    settings = load_config(None, env={})
    updates = {}
    for name, changes in sections.items():
        updates[name] = getattr(settings, name).model_copy(update=changes)
    return settings.model_copy(update=updates)


class FakeClock:
    """A monotonic clock that moves only when told (paper market frozen unless advanced)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def eventually(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Wait for a condition with a generous deadline; fail loudly if it never holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}")
        await asyncio.sleep(interval)


@pytest.fixture
def settings() -> Settings:
    return make_settings(execution={"retry_delay_seconds": 0.01, "max_retries": 3})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short temporary directory (a Unix socket path has ~100 bytes at most; pytest's are long)."""
    path = Path(tempfile.mkdtemp(prefix="tc"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
