"""The control socket fuzzed (issue 11, part 4; SPEC section 12: "messages are versioned and
validated; a bad one gets an error answer and never disturbs the core").

A real core (paper exchange, manual approval) serves its `ControlServer` on a Unix socket in this
process; hypothesis (the project's seeded profile, tests/conftest.py) drives plain functions whose
requests run on the test's event loop, so one core lives across all the examples of a test:

- raw bodies POSTed to `/v1/command`: bytes, JSON of any shape, request-shaped objects with wrong
  versions, ids, commands, arguments and clients, numbers too large, too small, NaN and Infinity,
  deep nesting, duplicate keys, unicode and control characters, odd content encodings;
- `submit` with fuzzed lines (mutated valid examples, garbage, tricks);
- garbage messages on the `/v1/events` WebSocket.

Properties: every answer is a well-formed `Answer`: 200 with `ok` or a 4xx with an error kind
(never a 5xx, never `internal`); nothing the client sends raises into the core (no ERROR is
logged); the core answers `status` after every example; manual mode places no order; `submit`
answers one result per line, in order, a reason with each that is not `pending`, each one a
stored row with the source `ctl`; the event stream answers every message (a snapshot for a
good `resnapshot`, an error for anything else) and stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from helpers import DATA, make_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from executor.control import protocol as wire
from executor.control.server import ControlServer
from executor.models import SignalStatus
from executor.service import TradingService

BASE = "http://tradeconsole"
VALID = [json.loads(line) for line in (DATA / "signals.valid.jsonl").read_text().splitlines() if line.strip()]
SEED = {
    "id": "fz-seed",
    "symbol": "BTC/USDT",
    "side": "buy",
    "amount": 0.01,
    "order_type": "limit",
    "price": 30000,
}  # pending all along: the amend and reject commands have a real signal to work on
STATUSES = {s.value for s in SignalStatus}
ANSWER_STATUS = {
    "bad_request": {400, 413},
    "unknown_command": {400},
    "forbidden": {403},
    "refused": {409},
    "needs_confirmation": {409},
}

# -- strategies -------------------------------------------------------------------------------

_odd_texts = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\x1b[31m",
        "\u202e",
        "\ufeff",
        "\ud800",
        "x\udfffy",
        "€",
        "\U0001f600",
        "1e999999",
        "-0",
        "NaN",
        "Infinity",
        "BTC/USDT",
        "fz-seed",
        "tc0000",
        "c" * 65,
        "\r\n",
        "a\nb",
    ]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**320)
    | st.floats()
    | st.sampled_from([1e308, 5e-324, -0.0])
    | st.text(max_size=20)
    | _odd_texts
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | _odd_texts, inner, max_size=4),
    max_leaves=12,
)

COMMANDS = [name for name in wire.COMMANDS if name != "stop"]  # stop would end the core under test
ARG_NAMES = sorted({name for c in wire.COMMANDS.values() for name in c.args.model_fields} | {"pad", "signal"})
_arg_values = (
    st.sampled_from(
        [
            "fz-seed",
            "missing-1",
            "tc0000",
            "60000",
            "0.01",
            "-1",
            "0",
            "1e999999",
            "1e-999999",
            "NaN",
            "-Infinity",
            "sNaN",
            "1" * 5000,
            200,
            100_001,
            -1,
            True,
            ["{}"],
            [0],
            [],
        ]
    )
    | _scalars
    | _json
)


def _args(command: str) -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(ARG_NAMES)
    values = _arg_values
    if command == "approve":
        # Approving the seed (with confirm) would be a legitimate order: approve other ids only.
        values = _arg_values.filter(lambda v: v != "fz-seed")
    return st.dictionaries(names, values, max_size=4)


@st.composite
def _request_objects(draw) -> Any:
    command = draw(st.sampled_from(COMMANDS) | st.text(max_size=12) | _odd_texts)
    body: dict[str, Any] = {
        "v": draw(st.sampled_from([1, 1, 1, 0, 2, -1, "1", True, 1.0, None, 10**40, 1e308, [1]])),
        "id": draw(st.integers() | st.sampled_from([True, None, "7", 1.5, 10**100, -(10**30), [], {}])),
        "command": command,
        "args": draw(_args(command) if isinstance(command, str) else _json),
        "client": draw(
            st.sampled_from(
                [
                    {},
                    {"role": "read_only"},
                    {"host": "desk", "ssh": "10.0.0.5"},
                    {"role": "admin"},
                    {"host": "a b"},
                    {"extra": 1},
                    None,
                ]
            )
            | _json
        ),
    }
    for key in draw(st.lists(st.sampled_from(sorted(body)), max_size=2)):
        body.pop(key, None)
    if draw(st.booleans()):
        body[draw(st.text(max_size=6))] = draw(_scalars)
    return body


def _encode(value: Any, *, ascii_only: bool) -> bytes:
    # NaN and Infinity go out as the bare words; a lone surrogate as invalid UTF-8 when not escaped.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


_TRICKS = [
    b"[" * 20_000 + b"]" * 20_000,  # under 64 KiB: parsed as a request
    b"[" * 100_000,  # over 64 KiB: looked at as a possible submit first
    b'{"v":1,"id":1,"command":"submit","args":{"lines":' + b"[" * 70_000 + b"]" * 70_000 + b"}}",
    b'{"v":1,"id":1,"command":"status","args":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}",
    b'{"v":1,"id":1,"command":"status","command":"pause"}',
    b'{"v":1,"v":2,"id":1,"command":"status"}',
    b'{"v":1,"id":1,"command":"reject","args":{"signal_id":"missing-1","signal_id":"fz-seed"}}',
    b'{"v":1,"id":NaN,"command":"status"}',
    b'{"v":Infinity,"id":1,"command":"status"}',
    b'{"v":1,"id":1e999,"command":"status"}',
    b'{"v":1,"id":1e-999,"command":"status"}',
    b'{"v":1,"id":' + b"9" * 5000 + b',"command":"status"}',
    b'{"v":1,"id":1,"command":"snapshot","args":{"history":1e999}}',
    b'{"v":1,"id":1,"command":"snapshot","args":{"history":-Infinity}}',
    b'{"v":1,"id":1,"command":"amend_signal","args":{"signal_id":"fz-seed","amount":"1e999999999"}}',
    b'{"v":1,"id":1,"command":"check_signal_amend","args":{"signal_id":"fz-seed","price":1e308}}',
    b'{"v":1,"id":1,"command":"check_signal_amend","args":{"signal_id":"fz-seed","amount":"0.' + b"0" * 3000 + b'1"}}',
    b'{"v":1,"id":1,"command":"approve","args":{"signal_id":"\\ud800"}}',
    b'{"v":1,"id":1,"command":"stat\\u0000us"}',
    b'\xef\xbb\xbf{"v":1,"id":1,"command":"status"}',
    '{"v":1,"id":1,"command":"status"}'.encode("utf-16"),
    b'{"v":1,"id":1,"command":"status"}\x00',
    b'{"v":1,"id":1,"command":"status"} {"v":1}',
    b"\xff\xfe\xfd",
    b"",
    b"null",
    b"{}",
    b"[]",
    b'"status"',
]


@st.composite
def _command_bodies(draw) -> tuple[bytes, dict[str, str]]:
    headers = draw(
        st.sampled_from(
            [
                {},
                {},
                {"Content-Type": "application/json"},
                {"Content-Type": "text/plain; charset=latin-1"},
                {"Content-Encoding": "gzip"},
                {"Content-Encoding": "deflate"},
            ]
        )
    )
    kind = draw(st.sampled_from(["bytes", "json", "request", "request", "request", "trick"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)), headers
    if kind == "json":
        return _encode(draw(_json), ascii_only=draw(st.booleans())), headers
    if kind == "request":
        return _encode(draw(_request_objects()), ascii_only=draw(st.booleans())), headers
    return draw(st.sampled_from(_TRICKS)), headers


_FIELDS = (
    "id symbol side amount quote_amount order_type price created_at ttl_seconds stop_loss take_profit strategy note"
    " meta token"
).split()


@st.composite
def _lines(draw) -> str:
    kind = draw(st.sampled_from(["mutated", "mutated", "valid", "garbage", "trick"]))
    if kind in ("mutated", "valid"):
        body = dict(draw(st.sampled_from(VALID)))
        body["id"] = f"fz-{draw(st.integers(0, 10**6))}"
        if kind == "mutated":
            for _ in range(draw(st.integers(1, 3))):
                field = draw(st.sampled_from(_FIELDS))
                if draw(st.booleans()):
                    body.pop(field, None)
                else:
                    body[field] = draw(_json)
        return json.dumps(body, ensure_ascii=draw(st.booleans()))
    if kind == "garbage":
        return draw(st.text(max_size=60) | _odd_texts)
    valid = json.dumps({**VALID[0], "id": f"fz-t{draw(st.integers(0, 10**6))}"})
    return draw(
        st.sampled_from(
            [
                "[" * 50_000,
                '{"a":' * 10_000,
                '{"id":"fz-d1","id":"fz-d2","symbol":"BTC/USDT","side":"buy","amount":0.01}',
                '{"id":"fz-nan","symbol":"BTC/USDT","side":"buy","amount":NaN}',
                '{"id":"fz-inf","symbol":"BTC/USDT","side":"buy","amount":Infinity}',
                '{"id":"fz-big","symbol":"BTC/USDT","side":"buy","amount":1' + "0" * 5000 + "}",
                '{"id":"fz-tiny","symbol":"BTC/USDT","side":"buy","amount":1e-999999}',
                '{"id":"fz-\\u001b[2J","symbol":"BTC/USDT","side":"buy","amount":0.01}',
                '{"id":"fz-ls","symbol":"BTC/USDT","side":"buy","amount":0.01,"note":"\\ud800"}',
                "\ufeff" + valid,
                valid + "\r",
                valid + "\r\n",
                " " + valid + " ",
                valid + valid,
                "",
                "   ",
                "\x00",
            ]
        )
    )


@st.composite
def _ws_messages(draw) -> tuple[str, str | bytes]:
    kind = draw(st.sampled_from(["json", "resnapshot", "resnapshot", "text", "binary", "trick"]))
    if kind == "json":
        return "text", json.dumps(draw(_json))
    if kind == "resnapshot":
        message: dict[str, Any] = {
            "v": draw(st.sampled_from([1, 1, 2, True, "1", None])),
            "type": draw(st.sampled_from(["resnapshot", "resnapshot", "snapshot", "", "x"])),
        }
        if draw(st.booleans()):
            message["history"] = draw(
                st.integers(-5, 100_005)
                | st.sampled_from(
                    [
                        0,
                        100_000,
                        10**40,
                        1e308,
                        -1e308,
                        2.5,
                        True,
                        "200",
                        None,
                        [],
                        {},
                        float("nan"),
                        float("inf"),
                        float("-inf"),
                    ]
                )
            )
        return "text", json.dumps(message)
    if kind == "text":  # a text frame is UTF-8: no lone surrogate can be sent in one
        return "text", draw(st.text(max_size=80) | _odd_texts).encode("utf-8", "replace").decode()
    if kind == "binary":
        return "binary", draw(st.binary(max_size=80))
    return "text", draw(
        st.sampled_from(
            [
                '{"v":1,"type":"resnapshot","history":Infinity}',
                '{"v":1,"type":"resnapshot","history":-Infinity}',
                '{"v":1,"type":"resnapshot","history":NaN}',
                '{"v":1,"type":"resnapshot","history":1e999}',
                '{"v":1,"type":"resnapshot","history":' + "9" * 5000 + "}",
                '{"v":1,"type":"resnapshot","history":5,"history":100001}',
                '{"v":1,"type":"resnapshot","type":"other"}',
                "[" * 30_000,
                '{"a":' * 10_000,
                "\ufeff{}",
                "\x00",
                "",
            ]
        )
    )


# -- the harness ------------------------------------------------------------------------------


class _Errors(logging.Handler):
    """Every record at ERROR or above, from any logger (aiohttp's "Error handling request" too)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else f"{r.name}: {r.getMessage()}"
            for r in self.records
        ]


class Harness:
    def __init__(self, service: TradingService, http: aiohttp.ClientSession, errors: _Errors) -> None:
        self.service = service
        self.http = http
        self.errors = errors

    async def command(self, raw: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        async with self.http.post(f"{BASE}/v1/command", data=raw, headers=headers or {}) as response:
            text = await response.text()
            status = response.status
        try:
            body = json.loads(text)
        except ValueError:
            raise AssertionError(f"HTTP {status}, not a JSON answer: {text[:300]!r} (request {raw[:200]!r})") from None
        return status, body

    async def still_answers(self) -> None:
        status, body = await self.command(json.dumps({"v": 1, "id": 1, "command": "status"}).encode())
        assert status == 200 and body["ok"] is True and body["result"]["mode"] == "PAPER", (status, body)

    def no_errors(self) -> None:
        assert not self.errors.records, self.errors.messages()


def _run(db: Path, socket: Path, body: Callable[[Harness], Awaitable[None]]) -> None:
    errors = _Errors()
    root = logging.getLogger()
    root.addHandler(errors)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_core(db, socket, errors, body))
    finally:
        loop.close()
        root.removeHandler(errors)


async def _core(db: Path, socket: Path, errors: _Errors, body: Callable[[Harness], Awaitable[None]]) -> None:
    service = await TradingService.open(make_settings(execution={"retry_delay_seconds": 0.01}), db, poll_interval=0.02)
    await service.start()
    try:
        seeded = await service.receive(json.dumps(SEED), source="test")
        assert seeded.status is SignalStatus.PENDING
        async with (
            ControlServer(service, socket, heartbeat=60),
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket))) as http,
        ):
            harness = Harness(service, http, errors)
            await body(harness)
            await harness.still_answers()
        assert await service.store.orders() == [], "manual approval: no order, whatever came in"
        assert not service.stopping
        harness.no_errors()
    finally:
        await service.close()


def _drive(
    examples: int,
    strategy: st.SearchStrategy[Any],
    check: Callable[[Any], Awaitable[None]],
    pinned: tuple[Any, ...] = (),
) -> Callable[[], Awaitable[None]]:
    """A coroutine running `check` on `examples` examples of `strategy` (and on each `pinned` case
    first), on the caller's loop: hypothesis drives a plain function in a worker thread, each
    example's requests run on the loop that holds the core."""

    async def run() -> None:
        loop = asyncio.get_running_loop()

        def one(case: Any) -> None:
            asyncio.run_coroutine_threadsafe(check(case), loop).result(timeout=60)

        test = given(strategy)(one)
        for case in reversed(pinned):
            test = example(case)(test)
        test = settings(max_examples=examples, suppress_health_check=list(HealthCheck), deadline=None)(test)
        await asyncio.to_thread(test)

    return run


# -- (a) whatever is POSTed to /v1/command ------------------------------------------------------


def test_whatever_is_posted_as_a_command_the_answer_is_well_formed_and_never_5xx(workdir: Path) -> None:
    seen: dict[int, int] = {}

    async def body(h: Harness) -> None:
        async def check(case: tuple[bytes, dict[str, str]]) -> None:
            raw, headers = case
            status, answer = await h.command(raw, headers)
            seen[status] = seen.get(status, 0) + 1
            assert status < 500, (status, answer, raw[:200], headers)
            parsed = wire.Answer.model_validate(answer)  # the answer any client can read
            assert parsed.v == wire.VERSION
            if parsed.ok:
                assert status == 200 and parsed.error is None, (status, answer)
            else:
                assert parsed.error is not None and parsed.error.message, answer
                assert parsed.error.kind != "internal", (answer, raw[:200])
                assert status in ANSWER_STATUS[parsed.error.kind], (status, answer, raw[:200])
            await h.still_answers()
            h.no_errors()

        pinned = (  # whatever the fuzz draws, these reach the commands: answered, refused, unknown
            (b'{"v": 1, "id": 1, "command": "snapshot", "args": {"history": 5}}', {}),
            (b'{"v": 1, "id": 2, "command": "approve", "args": {"signal_id": "missing-1"}}', {}),
            (b'{"v": 1, "id": 3, "command": "check_signal_amend", "args": {"signal_id": "fz-seed", "price": "1"}}', {}),
            (b'{"v": 1, "id": 4, "command": "launch"}', {}),
        )
        await _drive(300, _command_bodies(), check, pinned)()
        assert seen.get(200) and seen.get(400) and seen.get(409), seen
        seed = await h.service.store.get_signal("fz-seed")
        assert seed is not None and seed.status in (SignalStatus.PENDING, SignalStatus.REJECTED)

    _run(workdir / "a.db", workdir / "a.sock", body)


# -- (b) submit with fuzzed lines ---------------------------------------------------------------


def test_submit_answers_one_stored_result_per_fuzzed_line(workdir: Path) -> None:
    async def body(h: Harness) -> None:
        async def check(lines: list[str]) -> None:
            before = await _all_signals(h.service)
            request = {"v": 1, "id": 5, "command": "submit", "args": {"lines": lines}}
            status, answer = await h.command(_encode(request, ascii_only=True))
            assert status == 200 and answer["ok"] is True, (status, answer, [line[:80] for line in lines])
            results = answer["result"]
            assert len(results) == len(lines), (results, lines)
            for result, line in zip(results, lines, strict=True):
                assert result["status"] in STATUSES, result
                assert result["id"] is None or isinstance(result["id"], str), result
                if result["status"] != "pending":
                    assert result["reason"] and result["reason"].strip(), (result, line[:200])
            after = await _all_signals(h.service)
            new = after[len(before) :]
            assert [(r.id, r.status.value, r.reason) for r in new] == [
                (r["id"], r["status"], r["reason"]) for r in results
            ], "every line is its own stored row, in order"
            assert {r.source for r in new} <= {"ctl"}
            await h.still_answers()
            h.no_errors()

        await _drive(120, st.lists(_lines(), min_size=0, max_size=6), check)()

    _run(workdir / "b.db", workdir / "b.sock", body)


async def _all_signals(service: TradingService) -> list[Any]:
    """Every stored signal row, oldest first."""
    return sorted(await service.store.signals(), key=lambda r: r.seq)


# -- (c) garbage on the event stream ------------------------------------------------------------


def test_the_event_stream_answers_every_message_and_stays_open(workdir: Path) -> None:
    async def body(h: Harness) -> None:
        ws = await _watch(h.http)
        replies = {"snapshot": 0, "error": 0}

        async def check(case: tuple[str, str | bytes]) -> None:
            kind, message = case
            if kind == "binary":
                await ws.send_bytes(message)  # type: ignore[arg-type]
            else:
                await ws.send_str(message)  # type: ignore[arg-type]
            reply = await _reply(ws, message)
            replies[reply["type"]] += 1
            if reply["type"] == "snapshot":
                assert reply["reason"] == "reply", reply
                data = json.loads(message)
                assert isinstance(data, dict) and data.get("type") == "resnapshot", (message, reply["reason"])
            else:
                assert reply["error"]["kind"] == "bad_request" and reply["error"]["message"], reply
            await h.still_answers()
            h.no_errors()

        try:
            await _drive(150, _ws_messages(), check)()
        finally:
            await ws.close()
        assert replies["snapshot"] and replies["error"], replies

    _run(workdir / "c.db", workdir / "c.sock", body)


async def _watch(http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{BASE}/v1/events", max_msg_size=0)
    first = json.loads((await ws.receive(timeout=30)).data)
    assert first["type"] == "snapshot" and first["reason"] == "connect"
    return ws


async def _reply(ws: aiohttp.ClientWebSocketResponse, sent: str | bytes) -> dict[str, Any]:
    """The server's answer to what was just sent: the next snapshot or error, past events and status."""
    while True:
        message = await ws.receive(timeout=30)
        assert message.type is aiohttp.WSMsgType.TEXT, (
            f"the event stream closed or broke ({message.type!r} {message.data!r} {message.extra!r}) after "
            f"{sent[:120]!r}"
        )
        data = json.loads(message.data)
        if data["type"] in ("snapshot", "error"):
            return data
