"""What the emulator benchmarks share: `tradeconsole emulator` in its own process (only its CLI:
`--port 0 --latency-ms N --faults FILE`, markets and balances from the `TRADECONSOLE_*`
environment), the venue's record (`GET /_emulator/record`), a core's settings for it, and that
core itself, started (`running_core`).

A subprocess, not an in-process app: on a 2-core machine the venue then has a core of its own,
as a remote venue would, and its work never queues on the event loop being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor.venue.emulator.app import DEMO_API_KEY, DEMO_API_SECRET

MARKETS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
BALANCES = {"USDT": 10**9, "BTC": 10**5, "ETH": 10**6, "SOL": 10**7}
_URL = re.compile(r"(http://127\.0\.0\.1:\d+)")


def clean_env(tmp: str | Path, **extra: str) -> dict[str, str]:
    """This process's environment without any TRADECONSOLE_ setting, config and runtime dirs in `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECONSOLE_")}
    env |= {
        "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
        "XDG_RUNTIME_DIR": str(Path(tmp) / "run"),
        "XDG_DATA_HOME": str(Path(tmp) / "data"),
    }
    (Path(tmp) / "run").mkdir(mode=0o700, exist_ok=True)
    return env | extra


@dataclass
class Venue:
    url: str
    proc: asyncio.subprocess.Process
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    async def record(self) -> dict[str, Any]:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/_emulator/record") as response:
            return await response.json()


@contextlib.asynccontextmanager
async def emulator(
    *,
    latency_ms: float = 0.0,
    limits: dict[str, float] | None = None,
    seed: int = 1,
    markets: list[str] = MARKETS,
    balances: dict[str, int] = BALANCES,
) -> AsyncIterator[Venue]:
    """`tradeconsole emulator` on a free port; `limits`: the faults file's "limits" (0 switches one off)."""
    with tempfile.TemporaryDirectory(prefix="tcbench-venue-") as tmp:
        faults = Path(tmp) / "faults.json"
        faults.write_text(json.dumps({"seed": seed, "limits": limits or {}}))
        errors = (Path(tmp) / "stderr").open("wb")
        env = clean_env(
            tmp, TRADECONSOLE_EXCHANGE__MARKETS=json.dumps(markets), TRADECONSOLE_PAPER__BALANCES=json.dumps(balances)
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "console",
            "emulator",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--latency-ms",
            str(latency_ms),
            "--faults",
            str(faults),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        drain = None
        try:
            assert proc.stdout is not None
            url = None
            while url is None:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
                if not line:
                    raise RuntimeError("the emulator did not start: " + venue_log(tmp)[-2000:])
                if (match := _URL.search(line.decode())) is not None:
                    url = match.group(1)
            # Its further output (a few lines) must never fill a pipe and block it.
            drain = asyncio.ensure_future(proc.stdout.read())
            yield Venue(url, proc, Path(tmp) / "stderr")
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), timeout=10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            if drain is not None:
                with contextlib.suppress(Exception):
                    await drain
            errors.close()


def venue_log(tmp: str | Path) -> str:
    return (Path(tmp) / "stderr").read_text(errors="replace")


def core_env(url: str, tmp: str | Path, **extra: str) -> dict[str, str]:
    """The `TRADECONSOLE_*` settings of a core trading on the emulator at `url` (binance through ccxt)."""
    return {
        "XDG_CONFIG_HOME": str(Path(tmp) / "config"),
        "TRADECONSOLE_EXCHANGE__ID": "binance",
        "TRADECONSOLE_EXCHANGE__API_URL": url,
        "TRADECONSOLE_EXCHANGE__MARKETS": json.dumps(MARKETS),
        "TRADECONSOLE_APPROVAL__MODE": "auto",
    } | extra


def core_exchange(settings: Any) -> Any:
    """The exchange `run` builds for these settings (`CcxtExchange.from_settings`), with the emulator's keys."""
    from executor.exchanges.ccxt import CcxtExchange

    return CcxtExchange.from_settings(settings, api_key=DEMO_API_KEY, api_secret=DEMO_API_SECRET)


@contextlib.asynccontextmanager
async def running_core(venue: Venue, tmp: str | Path, **env: str) -> AsyncIterator[Any]:
    """A `TradingService` as `run` builds it (`core_env`, `core_exchange`, a store in `tmp`), trading on
    `venue`, started (reconciled) and closed after; the venue's log is printed when anything fails."""
    from executor.config import load_config
    from executor.service import TradingService

    settings = load_config(None, env=core_env(venue.url, tmp, **env))
    service = await TradingService.open(
        settings, Path(tmp) / "core.db", exchange=core_exchange(settings), actor="bench@local"
    )
    try:
        await service.start()
        yield service
    except Exception:
        print(venue.log()[-4000:])
        raise
    finally:
        await service.close()


def rate_limited(record: dict[str, Any]) -> int:
    return sum(v for k, v in record["statuses"].items() if k in ("429", "418"))
