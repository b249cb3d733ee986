"""The webhook fuzzed over real HTTP: whatever a sender posts, the answer is a 4xx or a 202, every
signal answered is a stored row with a reason when it is not pending, nothing is recorded without
the token, no order is placed in manual mode, and the webhook still answers afterwards."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from helpers import DATA, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.service import TradingService
from executor.sources.webhook import Webhook

TOKEN = "fuzz-token-77"
VALID = [json.loads(line) for line in (DATA / "signals.valid.jsonl").read_text().splitlines() if line.strip()]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**320)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "\x00", "\u202e", "BTC/USDT", "buy", "1e999999", "-0", "NaN", "\ud800x"])
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from(
    "id symbol side amount quote_amount order_type price created_at ttl_seconds meta token signals".split()
)


@st.composite
def _mutated(draw) -> dict:
    body = dict(draw(st.sampled_from(VALID)))
    body["id"] = f"fz-{draw(st.integers(0, 10**9))}"
    for _ in range(draw(st.integers(0, 3))):
        body[draw(_fields)] = draw(_json)
    return body


@st.composite
def _bodies(draw) -> tuple[bytes, dict]:
    kind = draw(st.sampled_from(["bytes", "json", "signal", "array", "wrapper", "raw-tricks"]))
    headers = draw(
        st.sampled_from(
            [
                {},
                {"Authorization": f"Bearer {TOKEN}"},
                {"X-Tradeconsole-Token": TOKEN},
                {"Authorization": "Bearer nope"},
            ]
        )
    )
    if kind == "bytes":
        return draw(st.binary(max_size=300)), headers
    if kind == "json":
        return json.dumps(draw(_json)).encode(), headers
    if kind == "signal":
        body = draw(_mutated())
        if draw(st.booleans()):
            body["token"] = TOKEN
        return json.dumps(body).encode(), headers
    if kind == "array":
        return json.dumps(draw(st.lists(_mutated() | _json, min_size=0, max_size=5))).encode(), headers
    if kind == "wrapper":
        body = {
            "token": draw(st.sampled_from([TOKEN, "bad", 1, None])),
            "signals": draw(st.lists(_mutated(), max_size=4) | _json),
        }
        return json.dumps(body).encode(), headers
    trick = draw(
        st.sampled_from(
            [
                b'{"id": "dup", "id": "dup2", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "token": "%s"}',
                b'{"id": "nan", "symbol": "BTC/USDT", "side": "buy", "amount": NaN, "token": "%s"}',
                b'{"id": "inf", "symbol": "BTC/USDT", "side": "buy", "amount": Infinity, "token": "%s"}',
                b'{"id": "big", "symbol": "BTC/USDT", "side": "buy", "amount": 1' + b"0" * 5000 + b', "token": "%s"}',
                b'{"id": "tiny", "symbol": "BTC/USDT", "side": "buy", "amount": 1e-999999, "token": "%s"}',
                b'{"id": "huge", "symbol": "BTC/USDT", "side": "buy", "amount": 9e999999, "token": "%s"}',
                b"[" * 50_000 + b"]" * 50_000,
                b'{"token": "%s", "signals": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
                b'{"id": "ctl\\u0000\\u001b[31m", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "token": "%s"}',
            ]
        )
    )
    return (trick.replace(b"%s", TOKEN.encode()) if b"%s" in trick else trick), headers


def test_whatever_is_posted_the_webhook_answers_4xx_or_202_and_keeps_its_books(tmp_path: Path):
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_fuzz(tmp_path / "fuzz.db"))
    finally:
        loop.close()


async def _fuzz(db: Path) -> None:
    service = await TradingService.open(make_settings(), db, poll_interval=0.02)
    await service.start()
    hook = Webhook(service, TOKEN, port=0, rate=1e9, burst=10**9)
    await hook.start()
    session = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{hook.port}")
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    @settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
    @given(_bodies())
    def one(case: tuple[bytes, dict]) -> None:
        # Hypothesis drives a plain function; each example's request runs on this test's loop
        # from a worker thread, so the service and its webhook live across all examples.
        asyncio.run_coroutine_threadsafe(_check(session, service, case, seen), loop).result(timeout=60)

    try:
        await asyncio.to_thread(one)
        async with session.get("/health") as response:
            assert response.status == 200
        assert await service.store.orders() == []  # manual approval: no order, whatever came in
        assert len(seen) >= 300 and {202, 400, 401} <= set(seen)
    finally:
        await session.close()
        await hook.close()
        await service.close()


async def _check(
    session: aiohttp.ClientSession, service: TradingService, case: tuple[bytes, dict], seen: list[int]
) -> None:
    raw, headers = case
    before = len(await service.store.signals())
    async with session.post("/signals", data=raw, headers=headers) as response:
        status = response.status
        body = await response.json()
    seen.append(status)
    after = await service.store.signals()
    assert status in (202, 400, 401, 413), (status, body, raw[:200])
    if "results" in body:
        results = body["results"]
        assert len(after) - before == len(results)  # every answered signal is its own row
        for result in results:
            assert result["status"] in ("pending", "invalid", "duplicate"), result
            if result["status"] != "pending":
                assert result["reason"], result
        assert status == (400 if any(r["status"] == "invalid" for r in results) else 202)
    else:
        assert len(after) == before, (status, body)  # refused whole: nothing recorded
        assert body["reason"]
    assert TOKEN not in json.dumps([r.raw for r in after[before:]] + [r.reason for r in after[before:]])
