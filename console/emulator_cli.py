"""`tradeconsole emulator` and `demo --via-emulator`: the command line and wiring around the emulator.

Owns `serve_cli` (serve an emulator on 127.0.0.1 until SIGINT/SIGTERM, with `[paper]`'s markets,
balances and fees, the keys from the environment or the demo keys, and its record written on
exit), and `start_demo_emulator` (an emulator and the ccxt adapter pointed at it). The emulator
itself is `executor.venue.emulator`, which knows neither argparse nor the ccxt adapter.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from executor.models import ExchangeMode, to_decimal
from executor.venue.emulator.app import DEMO_API_KEY, DEMO_API_SECRET, RunningEmulator, start_emulator
from executor.venue.faults import FaultPlan, FaultsFileError

if TYPE_CHECKING:
    import argparse

    from executor.config import Settings
    from executor.exchanges.ccxt import CcxtExchange


def emulator_exchange(
    settings: Settings, url: str, *, api_key: str = DEMO_API_KEY, api_secret: str = DEMO_API_SECRET
) -> CcxtExchange:
    """The ccxt adapter (`binance`) pointed at an emulator at `url`, with the emulator's keys.

    Its mode is PAPER: the paper engine is behind it, whatever ccxt thinks it talks to.
    """
    from executor.exchanges.ccxt import CcxtExchange

    return CcxtExchange(
        "binance",
        api_key=api_key,
        api_secret=api_secret,
        api_url=url,
        markets=list(settings.exchange.markets),
        mode=ExchangeMode.PAPER,
    )


async def start_demo_emulator(
    settings: Settings, *, seed: int | None = None, faults: FaultPlan | None = None, latency_ms: float = 0.0
) -> tuple[RunningEmulator, CcxtExchange]:
    """An emulator on a free port with `[paper]`'s markets, balances and fees, and the adapter on it.

    For `demo --via-emulator`: pass the adapter to `TradingService.open(..., exchange=...)`;
    close the service (which closes the adapter), then `await running.stop()`.
    """
    running = await start_emulator(
        seed=settings.paper.seed if seed is None else seed,
        faults=faults,
        latency_ms=latency_ms,
        markets=list(settings.exchange.markets),
        balances={c: to_decimal(v) for c, v in settings.paper.balances.items()},
        fee_pct=settings.paper.fee_pct,
    )
    return running, emulator_exchange(settings, running.url)


def serve_cli(args: argparse.Namespace, settings: Settings) -> int:
    """`tradeconsole emulator`: serve until SIGINT/SIGTERM, then exit 0 (1 if it cannot start)."""
    from executor.config import API_KEY_ENV, API_SECRET_ENV, secrets_from_env

    try:
        faults = FaultPlan.load(args.faults) if args.faults else FaultPlan(seed=args.seed)
    except FaultsFileError as exc:
        print(f"tradeconsole emulator: {exc}", file=sys.stderr)
        return 2
    if (getattr(args, "max_orders_per_symbol", 0) or 0) < 0:
        print("tradeconsole emulator: --max-orders-per-symbol must not be negative", file=sys.stderr)
        return 2
    creds = secrets_from_env()
    if (creds.api_key is None) != (creds.api_secret is None):
        print(f"tradeconsole emulator: set both {API_KEY_ENV} and {API_SECRET_ENV}, or neither", file=sys.stderr)
        return 2
    from_env = creds.api_key is not None and creds.api_secret is not None
    api_key = creds.api_key.get_secret_value() if creds.api_key else DEMO_API_KEY
    api_secret = creds.api_secret.get_secret_value() if creds.api_secret else DEMO_API_SECRET
    return asyncio.run(_serve(args, settings, faults, api_key, api_secret, from_env))


async def _serve(
    args: argparse.Namespace,
    settings: Settings,
    faults: FaultPlan,
    api_key: str,
    api_secret: str,
    keys_from_env: bool,
) -> int:
    try:
        running = await start_emulator(
            "127.0.0.1",
            args.port,
            seed=args.seed,
            faults=faults,
            latency_ms=args.latency_ms,
            markets=list(settings.exchange.markets),
            balances={c: to_decimal(v) for c, v in settings.paper.balances.items()},
            fee_pct=settings.paper.fee_pct,
            api_key=api_key,
            api_secret=api_secret,
            max_orders_per_symbol=getattr(args, "max_orders_per_symbol", 0) or 0,
        )
    except OSError as exc:
        print(f"tradeconsole emulator: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"tradeconsole emulator: Binance spot REST on {running.url}", flush=True)
    if keys_from_env:
        print("  keys: the API key and secret from TRADECONSOLE_API_KEY / TRADECONSOLE_API_SECRET", flush=True)
    else:
        print(f"  keys: demo key {DEMO_API_KEY!r}, secret {DEMO_API_SECRET!r}", flush=True)
    print(
        f"  use: TRADECONSOLE_EXCHANGE__ID=binance TRADECONSOLE_EXCHANGE__API_URL={running.url}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        record = running.emulator.record()
        if getattr(args, "record", None):
            _write_record(args.record, record)
        await running.stop()
    audit = record["audit"]
    print(
        f"tradeconsole emulator: stopped; {audit['orders']} orders for {audit['signals']} signals, "
        f"audit {'clean' if audit['ok'] else 'FAILED'}",
        flush=True,
    )
    return 0


def _write_record(path: str, record: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    os.replace(tmp, path)
