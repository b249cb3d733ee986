"""Canary API keys planted in the environment turn up in no log line (ccxt's wire log at DEBUG
included), no store row, no event and no exception text, whatever the venue throws back.

The console's screen is not checked here yet: see the console's own tests."""

from __future__ import annotations

import json
import logging
import sqlite3
import traceback
import uuid
from decimal import Decimal

import pytest
from helpers import eventually

from executor.config import load_config
from executor.exchanges.base import ExchangeError
from executor.exchanges.ccxt import CcxtExchange
from executor.models import OrderType, Side
from executor.service import TradingService
from executor.venue.emulator.app import start_emulator

from .support import CLIENT_TIMEOUT_MS, emulator_faults

pytestmark = pytest.mark.integration

KEY = f"CANARYKEY{uuid.uuid4().hex}"
SECRET = f"CANARYSECRET{uuid.uuid4().hex}"


def signals(n: int) -> list[str]:
    out = []
    for i in range(n):
        s = {"id": f"canary-{i}", "symbol": "BTC/USDT", "side": "buy" if i % 2 else "sell", "quote_amount": 30}
        if i % 3 == 0:
            s["order_type"] = "market"
        out.append(json.dumps(s))
    return out


async def test_canary_keys_appear_in_no_log_store_row_event_or_exception(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TRADECONSOLE_API_KEY", KEY)
    monkeypatch.setenv("TRADECONSOLE_API_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    faults = emulator_faults()
    running = await start_emulator(faults=faults, api_key=KEY, api_secret=SECRET)
    texts: dict[str, str] = {}
    errors: list[BaseException] = []
    try:
        env = {
            "TRADECONSOLE_EXCHANGE__ID": "binance",
            "TRADECONSOLE_EXCHANGE__API_URL": running.url,
            "TRADECONSOLE_APPROVAL__MODE": "auto",
            "TRADECONSOLE_EXECUTION__RETRY_DELAY_SECONDS": "0.02",
            "TRADECONSOLE_EXECUTION__MAX_RETRIES": "5",
            "TRADECONSOLE_EXECUTION__ORDER_TIMEOUT_SECONDS": "1",
        }
        settings = load_config(None, env=env)
        for endpoint in ("POST /api/v3/order", "GET /api/v3/order"):
            faults.script(
                endpoint, "error_after", "timeout_after_accept", "rate_limit", "reset_after_accept", "error_before"
            )
        exchange = CcxtExchange.from_settings(settings, timeout_ms=CLIENT_TIMEOUT_MS)
        service = await TradingService.open(settings, tmp_path / "store.db", exchange=exchange, poll_interval=0.05)
        events: list[object] = []
        service.bus.subscribe(events.append)
        try:
            await service.start()
            for line in signals(8):
                await service.receive(line, source="test")
            await service.run_until_idle()
            # and the refusals, straight from the adapter
            for attempt in (
                exchange.create_order(
                    client_order_id="tc-canary-poor-0",
                    symbol="BTC/USDT",
                    side=Side.BUY,
                    type=OrderType.MARKET,
                    amount=Decimal(50),
                    price=None,
                ),
                exchange.fetch_order("tc-nobody-0", "BTC/USDT"),
                exchange.cancel_order("tc-nobody-0", "BTC/USDT"),
            ):
                try:
                    await attempt
                except ExchangeError as exc:
                    errors.append(exc)
            running.emulator.ban(0.2)
            try:
                await exchange.fetch_balances()
            except ExchangeError as exc:
                errors.append(exc)
            await eventually(lambda: exchange.cooldown.remaining == 0, timeout=5)
        finally:
            await service.close()
        bad = CcxtExchange("binance", api_key=KEY, api_secret="not-" + SECRET, api_url=running.url)
        try:
            await bad.fetch_balances()
        except ExchangeError as exc:
            errors.append(exc)
        finally:
            await bad.close()
        texts["events"] = "\n".join(repr(e) for e in events)
    finally:
        await running.stop()

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts["log"] = "\n".join(formatter.format(r) for r in caplog.records)
    texts["exceptions"] = "\n".join(
        "".join(traceback.format_exception(e)) + repr(e) + str(getattr(e, "__cause__", "")) for e in errors
    )
    conn = sqlite3.connect(tmp_path / "store.db")
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    texts["store"] = "\n".join(repr(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))
    conn.close()

    # the places a key would be, were it not kept out
    assert "X-MBX-APIKEY" in texts["log"]  # ccxt's wire log at DEBUG, headers and all
    assert "signature=***" in texts["log"]
    assert len(errors) == 5 and "-1022" in texts["exceptions"] and "418" in texts["exceptions"]
    assert "maybe placed" in texts["store"]
    for where, text in texts.items():
        assert KEY not in text, f"the API key is in the {where}"
        assert SECRET not in text, f"the API secret is in the {where}"
