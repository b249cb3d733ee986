"""The intent before the create, under the adapter's real pacer at its limit: real ccxt binance
against the emulator, a burst of signals through `commit_intent` into an order-rate limit of two
per second (the adapter's own: the venue announces none). Whether an intent goes in with its
`submitting` (the pacer admitted it at once) or alone before a wait, no create leaves before its
order is in the store as `submitting`.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from helpers import eventually

from executor.events import OrderUpdated
from executor.models import OrderStatus
from executor.venue.faults import Limits

from .support import MARKETS, emulator_faults, emulator_running, make_rig

pytestmark = pytest.mark.integration

O = OrderStatus
_COID = re.compile(r"newClientOrderId=([^&]+)")


async def test_under_the_pacer_at_its_limit_no_create_leaves_before_its_intent_is_in_the_store(tmp_path: Path):
    faults = emulator_faults(limits=Limits(orders_per_10s=0, orders_per_day=0, ban_after=10, ban_seconds=0.5))
    async with emulator_running(seed=3, faults=faults, markets=list(MARKETS)) as emulator:
        rig = await make_rig(emulator, tmp_path / "store.db")
        rig.exchange._set_order_limits(((2, 1.0),))  # the venue announces no ORDERS limit: ours holds
        try:
            await rig.executor.start(watch=False)
            client, sent, early = rig.exchange._ex, [], []
            fetch = client.fetch

            async def checked(url, method="GET", headers=None, body=None):
                found = _COID.search(f"{url}&{body or ''}") if method == "POST" else None
                if found is not None:
                    row = await rig.store.get_order(found.group(1))
                    if row is None or row.status is not O.SUBMITTING:
                        early.append((found.group(1), row and row.status))
                    sent.append(found.group(1))
                return await fetch(url, method, headers, body)

            client.fetch = checked
            records = [
                await rig.approved(id=f"burst-{i}", symbol="BTC/USDT", amount=0.001, order_type="market")
                for i in range(7)
            ]
            await asyncio.gather(*(rig.executor.commit_intent(record) for record in records))
            await eventually(lambda: not rig.executor._tasks, timeout=30)
            assert not early, early  # sent before its order was committed as `submitting`
            assert len(sent) == 7
            firsts = {}
            for event in rig.events:
                if isinstance(event, OrderUpdated):
                    firsts.setdefault(event.order.client_order_id, event.order.status)
            assert O.NEW in firsts.values()  # the pacer held some: their intents were committed alone
            for record in records:
                orders = await rig.store.orders_for_signal(record.id)
                assert [o.status for o in orders] == [O.FILLED]
            assert not rig.executor._promised
            assert rig.exchange.rate_limit_state().trips == 0
        finally:
            await rig.close()


async def test_one_signal_at_a_time_with_room_goes_in_with_its_submitting_in_one_transaction(tmp_path: Path):
    async with emulator_running(seed=3, faults=emulator_faults(), markets=list(MARKETS)) as emulator:
        rig = await make_rig(emulator, tmp_path / "store.db")
        try:
            await rig.executor.start(watch=False)
            for i in range(3):  # a window's first order asks the venue its count first: not at once
                record = await rig.approved(id=f"one-{i}", symbol="BTC/USDT", amount=0.001, order_type="market")
                await rig.executor.commit_intent(record)
                await eventually(lambda: not rig.executor._tasks)
            firsts: dict[str, O] = {}
            for event in rig.events:
                if isinstance(event, OrderUpdated):
                    firsts.setdefault(event.order.client_order_id, event.order.status)
            assert O.SUBMITTING in firsts.values(), firsts  # no `new` published on its own
            for coid, first in firsts.items():
                states = [e["to_state"] for e in await rig.store.events(coid)]
                assert states == ["new", "submitting", "filled"], (coid, first, states)
        finally:
            await rig.close()
