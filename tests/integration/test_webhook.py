"""The signal webhook (executor/sources/webhook.py): every answer of SPEC section 12, over real
HTTP on 127.0.0.1, into a real paper core; and a TradingView alert exactly as TradingView sends it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal as signal_module
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from helpers import DATA, FakeClock, make_settings

from executor.models import SignalStatus
from executor.service import TradingService
from executor.signals import load_json
from executor.sources import webhook as webhook_module
from executor.sources.webhook import MAX_BODY, RateLimiter, Webhook

TOKEN = "wh-test-token-3f9a61"
VALID = [line for line in (DATA / "signals.valid.jsonl").read_text().splitlines() if line.strip()]
INVALID = [line for line in (DATA / "signals.invalid.jsonl").read_text().splitlines() if line.strip()]


def signal(signal_id: str, **fields) -> dict:
    body = {"id": signal_id, "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "order_type": "limit", "price": 60000}
    body.update(fields)
    return body


@asynccontextmanager
async def hooked(
    db: Path, *, approval: dict | None = None, **options
) -> AsyncIterator[tuple[TradingService, Webhook, aiohttp.ClientSession]]:
    settings = make_settings(approval=approval or {}, execution={"retry_delay_seconds": 0.01})
    service = await TradingService.open(settings, db, poll_interval=0.02)
    await service.start()
    hook = Webhook(service, TOKEN, port=0, **options)
    await hook.start()
    session = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{hook.port}")
    try:
        yield service, hook, session
    finally:
        await session.close()
        await hook.close()
        await service.close()


async def post(session: aiohttp.ClientSession, body, *, headers=None, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    async with session.post("/signals", data=data, headers=headers or {}) as response:
        text = await response.text()
        return response.status, (json.loads(text) if text else None), response.headers


def _is_json(line: str) -> bool:
    try:
        load_json(line)
    except ValueError:
        return False
    return True


def bearer(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_one_signal_with_the_token_in_a_header_is_recorded_and_answered_202(db_path):
    async with hooked(db_path) as (service, _, session):
        status, body, _ = await post(session, signal("wh-1"), headers=bearer())
        assert status == 202
        assert body == {"results": [{"id": "wh-1", "status": "pending", "reason": None}]}
        record = await service.store.get_signal("wh-1")
        assert record is not None and record.status is SignalStatus.PENDING
        assert record.source == "webhook:127.0.0.1"
        status, _, _ = await post(session, signal("wh-2"), headers={"X-Tradeconsole-Token": TOKEN})
        assert status == 202


async def test_an_array_answers_one_result_per_signal_in_order_and_400_when_any_is_invalid(db_path):
    async with hooked(db_path) as (service, _, session):
        # The invalid examples that are JSON at all (the others are whole-body 400s, below).
        batch = [json.loads(line) for line in VALID] + [json.loads(line) for line in INVALID if _is_json(line)]
        assert len(batch) > len(VALID) + 5
        status, body, _ = await post(session, batch, headers=bearer())
        assert status == 400
        results = body["results"]
        assert len(results) == len(batch)
        assert [r["id"] for r in results] == [s.get("id") if isinstance(s.get("id"), str) else None for s in batch]
        assert {r["status"] for r in results[: len(VALID)]} == {"pending"}
        assert all(r["status"] == "invalid" and r["reason"] for r in results[len(VALID) :])
        # The valid ones are recorded and decided, though the answer is 400.
        stored = {r.id: r.status for r in await service.store.signals()}
        assert all(stored[json.loads(line)["id"]] is SignalStatus.PENDING for line in VALID)


async def test_the_wrapper_with_the_token_in_the_body(db_path):
    async with hooked(db_path) as (_, _, session):
        status, body, _ = await post(session, {"token": TOKEN, "signals": [signal("wr-1"), signal("wr-2")]})
        assert status == 202
        assert [r["id"] for r in body["results"]] == ["wr-1", "wr-2"]
        status, body, _ = await post(session, {"token": TOKEN, "signals": [signal("wr-3")], "extra": 1})
        assert status == 400 and "extra" in body["reason"]


async def test_without_a_valid_token_401_and_nothing_recorded(db_path):
    async with hooked(db_path) as (service, _, session):
        attempts = [
            (signal("no-1"), None),
            (signal("no-2"), bearer("wrong")),
            (signal("no-3"), {"X-Tradeconsole-Token": TOKEN[:-1]}),
            ({**signal("no-4"), "token": "wrong"}, None),
            ({**signal("no-5"), "token": 12345}, None),
            ({"token": "wrong", "signals": [signal("no-6")]}, None),
            ([signal("no-7")], {"Authorization": TOKEN}),  # not a Bearer header
            ("just a string", None),
        ]
        for body, headers in attempts:
            status, answer, response_headers = await post(session, body, headers=headers)
            assert status == 401, body
            assert "token" in answer["reason"]
            assert response_headers["WWW-Authenticate"].startswith("Bearer")
        assert await service.store.signals() == []


async def test_tokens_are_compared_as_fixed_size_digests_in_constant_time(db_path, monkeypatch):
    compared: list[tuple[int, int]] = []
    real = webhook_module.hmac.compare_digest

    def spy(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(webhook_module.hmac, "compare_digest", spy)
    async with hooked(db_path) as (_, _, session):
        for guess in ("", "w", TOKEN[:-1], TOKEN + "x", "x" * 5000, TOKEN):
            await post(session, {**signal(f"t-{len(compared)}"), "token": guess})
    # Every guess, whatever its length, was compared through compare_digest as 32 bytes against
    # 32 bytes: no early exit on the first differing byte and no length shows in the timing.
    assert len(compared) == 6
    assert set(compared) == {(hashlib.sha256().digest_size, hashlib.sha256().digest_size)}


async def test_a_tradingview_alert_exactly_as_it_sends_it(db_path):
    """TradingView posts the alert's message as the body (text/plain unless it parses as JSON, no
    custom header, no Authorization), from its own address through the local proxy; the message
    template of the README, with its placeholders filled in."""
    template = (Path(__file__).parents[2] / "README.md").read_text()
    start = template.index("<!-- tradingview-template -->")
    block = template[start:].split("```json", 1)[1].split("```", 1)[0]
    message = (
        block.replace("{{timenow}}", "2026-12-01T14:30:00Z")
        .replace("{{strategy.order.action}}", "buy")
        .replace("{{strategy.order.contracts}}", "0.01")
        .replace("YOUR-TOKEN", TOKEN)
    )
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Go-http-client/1.1",
        "X-Forwarded-For": "52.89.214.238",
    }
    allow = ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"]
    import ipaddress

    networks = [ipaddress.ip_network(a) for a in allow]
    async with hooked(db_path, allow=networks) as (service, _, session):
        status, body, _ = await post(session, None, headers=headers, raw=message.encode())
        assert status == 202, body
        (result,) = body["results"]
        assert result["status"] == "pending"
        record = await service.store.get_signal(result["id"])
        assert record.source == "webhook:52.89.214.238"
        assert TOKEN not in record.raw and "token" not in record.raw
        # The same alert firing twice in one second ({{timenow}} is to the second): a duplicate.
        status, body, _ = await post(session, None, headers=headers, raw=message.encode())
        assert status == 202 and body["results"][0]["status"] == "duplicate"
        # From an address TradingView does not send from: 403, nothing recorded.
        status, body, _ = await post(
            session,
            None,
            headers={**headers, "X-Forwarded-For": "203.0.113.9"},
            raw=message.replace("14:30:00", "14:31:00").encode(),
        )
        assert status == 403 and "203.0.113.9" in body["reason"]
        assert len(await service.store.signals()) == 2


async def test_the_sender_is_the_last_forwarded_address(db_path):
    """A sender cannot put an allowed address first: the proxy appends the one it saw last."""
    import ipaddress

    async with hooked(db_path, allow=[ipaddress.ip_network("10.0.0.0/8")]) as (_, _, session):
        spoofed = {**bearer(), "X-Forwarded-For": "10.1.2.3, 198.51.100.7"}
        status, body, _ = await post(session, signal("xf-1"), headers=spoofed)
        assert status == 403 and "198.51.100.7" in body["reason"]
        last_is_allowed = {**bearer(), "X-Forwarded-For": "198.51.100.7, 10.9.9.9"}
        status, _, _ = await post(session, signal("xf-2"), headers=last_is_allowed)
        assert status == 202
        status, body, _ = await post(session, signal("xf-3"), headers={**bearer(), "X-Forwarded-For": "not-an-ip"})
        assert status == 400
        # No header at all: the sender is the loopback peer, outside 10.0.0.0/8.
        status, _, _ = await post(session, signal("xf-4"), headers=bearer())
        assert status == 403


async def test_a_body_over_64_kib_is_413_and_not_json_is_400(db_path):
    async with hooked(db_path) as (service, _, session):
        big = [signal(f"big-{i}", note="x" * 200) for i in range(400)]
        assert len(json.dumps(big)) > MAX_BODY
        status, body, _ = await post(session, big, headers=bearer())
        assert status == 413 and "64 KiB" in body["reason"]

        async def chunks():  # no Content-Length: the cap holds while reading
            for _ in range(80):
                yield b" " * 1024

        async with session.post("/signals", data=chunks(), headers=bearer()) as response:
            assert response.status == 413
        for raw in (b"{not json", b"", b'{"id": "a", "id": "b"}', b"[1, NaN]", b"\xff\xfe"):
            status, body, _ = await post(session, None, headers=bearer(), raw=raw)
            assert status == 400, raw
            assert body["reason"].startswith("body is not"), body
        assert await service.store.signals() == []


async def test_an_empty_array_is_400(db_path):
    async with hooked(db_path) as (_, _, session):
        status, body, _ = await post(session, [], headers=bearer())
        assert status == 400 and "no signal" in body["reason"]


async def test_a_replayed_request_is_a_duplicate_of_its_ids(db_path):
    async with hooked(db_path) as (service, _, session):
        batch = [signal("rp-1"), signal("rp-2")]
        await post(session, batch, headers=bearer())
        status, body, _ = await post(session, batch, headers=bearer())
        assert status == 202
        assert [r["status"] for r in body["results"]] == ["duplicate", "duplicate"]
        assert len(await service.store.signals()) == 4  # every arrival is its own row


async def test_a_flooding_sender_gets_429_with_retry_after(db_path):
    # A slow refill (1 a second), so that a loaded machine sending the 60 slowly still floods it.
    async with hooked(db_path, rate=1, burst=40) as (_, _, session):
        statuses = []
        headers = {**bearer(), "X-Forwarded-For": "198.51.100.20"}
        for i in range(60):
            status, _, response_headers = await post(session, signal(f"fl-{i}"), headers=headers)
            statuses.append(status)
            if status == 429:
                assert int(response_headers["Retry-After"]) >= 1
        assert statuses.count(202) >= 40 and 429 in statuses
        # Another sender is not held back by the first one's flood.
        status, _, _ = await post(session, signal("other"), headers={**bearer(), "X-Forwarded-For": "198.51.100.21"})
        assert status == 202


def test_the_rate_limiter_refills_at_its_rate():
    clock = FakeClock()
    limiter = RateLimiter(rate=20, burst=40, clock=clock)
    assert all(limiter.admit("a") == 0 for _ in range(40))
    wait = limiter.admit("a")
    assert 0 < wait <= 0.05 + 1e-9
    clock.advance(1.0)
    assert sum(limiter.admit("a") == 0 for _ in range(40)) == 20
    limiter = RateLimiter(rate=1, burst=1, clock=clock, max_senders=100)
    for i in range(1000):  # a flood of distinct senders never grows the table past its bound
        limiter.admit(f"s{i}")
    assert len(limiter._buckets) <= 100


async def test_the_answer_comes_within_the_deadline_while_a_check_is_slow(db_path, monkeypatch):
    """A venue slow to quote (a market signal needs its price) cannot hold the answer past 3 s:
    the signal is answered `received`, and its record lands once the check is done."""
    async with hooked(db_path, answer_within=0.3) as (service, _, session):
        gate = asyncio.Event()
        real_ticker = service.executor.ticker

        async def slow_ticker(symbol):
            await gate.wait()
            return await real_ticker(symbol)

        monkeypatch.setattr(service.executor, "ticker", slow_ticker)
        body = [
            signal("fast-1"),
            {"id": "slow-1", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "order_type": "market"},
        ]
        status, answer, _ = await asyncio.wait_for(post(session, body, headers=bearer()), 5)
        assert status == 202
        assert [r["status"] for r in answer["results"]] == ["pending", "received"]
        assert answer["results"][1]["id"] == "slow-1"
        gate.set()
        record = await until(lambda: service.store.get_signal("slow-1"))
        assert record.status is SignalStatus.PENDING


async def until(fetch, timeout: float = 10.0):
    """Await `fetch()` until it gives something truthy, within a generous deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await fetch()):
        assert asyncio.get_running_loop().time() < deadline, "never came"
        await asyncio.sleep(0.02)
    return value


async def test_auto_approval_through_the_webhook_answers_before_the_order_executes(db_path):
    async with hooked(db_path, approval={"mode": "auto"}) as (service, _, session):
        status, body, _ = await post(session, signal("au-1"), headers=bearer())
        assert status == 202 and body["results"][0]["status"] == "approved"
        orders = await until(lambda: service.store.orders_for_signal("au-1"))
        assert len(orders) == 1


async def test_paused_core_records_webhook_signals_without_approving_them(db_path):
    async with hooked(db_path, approval={"mode": "auto"}) as (service, _, session):
        await service.pause()
        status, body, _ = await post(session, signal("pz-1"), headers=bearer())
        assert status == 202 and body["results"][0]["status"] == "pending"
        assert await service.store.orders() == []


async def test_health_needs_no_token(db_path):
    async with hooked(db_path) as (_, _, session):
        async with session.get("/health") as response:
            assert response.status == 200
            assert (await response.json())["ok"] is True


async def test_a_stopping_core_answers_503(db_path):
    async with hooked(db_path) as (service, _, session):
        service.request_stop()
        status, _, headers = await post(session, signal("st-1"), headers=bearer())
        assert status == 503 and headers["Retry-After"]


def test_a_webhook_port_without_a_token_is_a_config_error():
    from executor.config import ConfigError, check_webhook, secrets_from_env

    settings = make_settings(signals={"webhook_port": 8088})
    with pytest.raises(ConfigError) as caught:
        check_webhook(settings, secrets_from_env({}))
    assert caught.value.key == "signals.webhook_port"
    assert "TRADECONSOLE_WEBHOOK_TOKEN" in str(caught.value)
    check_webhook(settings, secrets_from_env({"TRADECONSOLE_WEBHOOK_TOKEN": "x"}))


# -- the command line ---------------------------------------------------------------------------


def tc(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRADECONSOLE_")}
    base |= {"XDG_CONFIG_HOME": "/nonexistent-config", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_webhook_port_without_a_token_exits_2_naming_the_key(tmp_path):
    result = tc("run", "--headless", "--db", str(tmp_path / "s.db"), env={"TRADECONSOLE_SIGNALS__WEBHOOK_PORT": "8089"})
    assert result.returncode == 2
    assert "signals.webhook_port" in result.stderr and "TRADECONSOLE_WEBHOOK_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"TRADECONSOLE_SIGNALS__FOLLOW": "true"},
        {"TRADECONSOLE_SIGNALS__WEBHOOK_PORT": "8089", "TRADECONSOLE_WEBHOOK_TOKEN": "t"},
    ],
)
def test_until_idle_with_a_source_that_never_ends_is_a_usage_error(tmp_path, env):
    signals = tmp_path / "s.jsonl"
    signals.write_text(VALID[0] + "\n")
    result = tc("run", "--headless", "--until-idle", "--signals", str(signals), "--db", str(tmp_path / "s.db"), env=env)
    assert result.returncode == 2, result.stderr
    assert "--until-idle" in result.stderr and "never" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_headless_core_serves_the_webhook_and_a_taken_port_exits_1(tmp_path):
    port = free_port()
    env = {
        "TRADECONSOLE_SIGNALS__WEBHOOK_PORT": str(port),
        "TRADECONSOLE_WEBHOOK_TOKEN": TOKEN,
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRADECONSOLE_")}
    base |= {"XDG_CONFIG_HOME": "/nonexistent-config", "PYTHONUNBUFFERED": "1"}
    core = subprocess.Popen(
        [sys.executable, "-m", "console", "run", "--headless", "--db", str(tmp_path / "a.db")],
        env=base | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        async def send() -> tuple[int, dict]:
            deadline = asyncio.get_running_loop().time() + 60
            async with aiohttp.ClientSession() as session:
                while True:
                    try:
                        async with session.post(
                            f"http://127.0.0.1:{port}/signals", json=signal("cli-1"), headers=bearer()
                        ) as response:
                            return response.status, await response.json()
                    except aiohttp.ClientConnectionError:
                        assert core.poll() is None, core.stderr.read()
                        assert asyncio.get_running_loop().time() < deadline, "the webhook never listened"
                        await asyncio.sleep(0.1)

        status, body = asyncio.run(send())
        assert status == 202 and body["results"][0] == {"id": "cli-1", "status": "pending", "reason": None}
        # A second core on the same port (another store) cannot listen: exit 1, said plainly.
        second = tc("run", "--headless", "--db", str(tmp_path / "b.db"), env=env)
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr and "Traceback" not in second.stderr
    finally:
        core.send_signal(signal_module.SIGTERM)
        _, err = core.communicate(timeout=60)
    assert core.returncode == 0, err
    assert TOKEN not in err
    exported = tc("signals", "--db", str(tmp_path / "a.db"), "--json")
    assert [s["id"] for s in json.loads(exported.stdout)] == ["cli-1"]


async def test_more_signals_than_a_request_may_carry_is_400_and_nothing_recorded(db_path):
    from executor.sources.webhook import MAX_SIGNALS

    async with hooked(db_path) as (service, _, session):
        status, body, _ = await post(session, [1] * (MAX_SIGNALS + 1), headers=bearer())
        assert status == 400 and f"at most {MAX_SIGNALS}" in body["reason"]
        assert await service.store.signals() == []
