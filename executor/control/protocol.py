"""The control socket's wire format, version 1: requests, answers, and the event stream.

HTTP on a Unix socket (served by `server.py`, spoken by `remote.py`):

- `POST /v1/command` with a `Request`
  `{"v": 1, "id": 7, "command": "approve", "args": {"signal_id": "sig-7", "confirm": false},
  "client": {"host": "desk", "ssh": "10.0.0.5", "role": "operator"}}`, answered with
  `{"v": 1, "id": 7, "ok": true, "result": ...}` or
  `{"v": 1, "id": 7, "ok": false, "error": {"kind": "refused", "message": "...", "subject": ""}}`.
  `kind` is one of `ERROR_KINDS`. The commands are the `CoreClient` API (`COMMANDS`).
  A request is at most `MAX_REQUEST` bytes, but `submit`'s: `{"lines": [...], "too_long": [i, ...]}`
  (at most `MAX_SUBMIT_LINES` lines, `MAX_SUBMIT_REQUEST` bytes; `too_long` lists the lines the
  client cut for being longer than `MAX_LINE` bytes) is answered with one `{"id", "status",
  "reason"}` per line, in order. Clients send `batches` of at most `BATCH_LINES` lines and
  `BATCH_BYTES` bytes; a line larger than that goes alone.
- `GET /v1/events` upgrades to a WebSocket. The core sends `{"v": 1, "type": "snapshot", "data":
  <Snapshot>, "markets": {symbol: <MarketInfo>}, "reason": "connect" | "reply" | "resync"}` first,
  then `{"v": 1, "type": "event", "event": "<class name>", "data": <event>}` for every event in
  publish order, and `{"v": 1, "type": "status", "data": <CoreStatus>}` every second. The client
  may send `{"v": 1, "type": "resnapshot", "history": 200}`; the snapshot it gets back sits at its
  place in the stream (every event after it happened after it).

Values are the core's own dataclasses and pydantic models, encoded by pydantic `TypeAdapter`s:
Decimals as strings, datetimes ISO 8601 with their offset, enums as their values; decoding gives
back equal objects (`decode(T, encode(x)) == x`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from executor import events as _events
from executor.control.client import CoreStatus, SubmitResult, cut_line
from executor.events import AmendCheck, Event, KillSwitchResult, Snapshot
from executor.models import MarketInfo, Order, SignalRecord

__all__ = [
    "BATCH_BYTES",
    "BATCH_LINES",
    "COMMANDS",
    "ERROR_KINDS",
    "EVENT_HEAD",
    "EVENT_TYPES",
    "MAX_REQUEST",
    "MAX_SUBMIT_LINES",
    "MAX_SUBMIT_REQUEST",
    "VERSION",
    "Answer",
    "BadMessage",
    "ClientInfo",
    "ErrorInfo",
    "Request",
    "SubmitArgs",
    "batches",
    "decode",
    "decode_event",
    "decode_event_text",
    "dumps",
    "encode",
    "event_text",
    "loads",
    "order_json",
    "parse_request",
    "submit_args",
]

VERSION = 1
ERROR_KINDS = ("refused", "needs_confirmation", "bad_request", "forbidden", "unknown_command", "internal")
ErrorKind = Literal["refused", "needs_confirmation", "bad_request", "forbidden", "unknown_command", "internal"]

MAX_REQUEST = 64 * 1024  # bytes of a request, but submit's
MAX_SUBMIT_LINES = 1000  # lines of one submit request
# A line of up to MAX_LINE (1 MiB) bytes goes whole, alone in its request: JSON-escaped, 6 MiB at
# worst (control characters as \u00XX). Bigger lines are cut by the client (see `too_long`).
MAX_SUBMIT_REQUEST = 8 * 1024 * 1024
BATCH_LINES = 500  # what a client sends in one submit request, at most
BATCH_BYTES = 512 * 1024

# Every event the core publishes, by class name (the wire's "event" field). A test checks that
# every Event subclass of executor.events is here.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        _events.SignalReceived,
        _events.SignalDecided,
        _events.OrderUpdated,
        _events.RetryScheduled,
        _events.ErrorOccurred,
        _events.LogLine,
        _events.MarketsUpdated,
        _events.BalancesUpdated,
        _events.Reconciled,
        _events.StateChanged,
    )
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- requests -----------------------------------------------------------------------------------

Id = Annotated[str, Field(min_length=1, max_length=64)]
Amount = Annotated[Decimal, Field(allow_inf_nan=False)]


class ClientInfo(_Strict):
    """Who sends the command, as the client says: the core trusts only the peer uid it reads from
    the socket, and adds these to the actor's name (`ann@desk from 10.0.0.5`)."""

    host: Annotated[str, Field(max_length=253, pattern=r"^[A-Za-z0-9._-]*$")] = ""
    ssh: Annotated[str, Field(max_length=64, pattern=r"^[0-9A-Za-z:.%_-]*$")] = ""  # SSH_CONNECTION: client address
    role: Literal["operator", "read_only"] = "operator"


class NoArgs(_Strict):
    pass


class SignalArgs(_Strict):
    signal_id: Id


class ApproveArgs(SignalArgs):
    confirm: bool = False


class RejectArgs(SignalArgs):
    reason: Annotated[str, Field(max_length=280)] = ""


class _Changes(_Strict):
    """What an amend changes (price, amount), after the key of the signal or order it amends."""

    price: Amount | None = None
    amount: Amount | None = None


class SignalAmendCheckArgs(_Changes, SignalArgs):
    pass


class SignalAmendArgs(SignalAmendCheckArgs):
    confirm: bool = False


class OrderArgs(_Strict):
    coid: Id


class OrderAmendCheckArgs(_Changes, OrderArgs):
    pass


class OrderAmendArgs(OrderAmendCheckArgs):
    confirm: bool = False


class SnapshotArgs(_Strict):
    history: Annotated[int, Field(ge=0, le=100_000)] = 200


class SubmitArgs(_Strict):
    """JSONL lines, one signal each; `too_long`: the indexes of those the client cut to their first
    bytes, being longer than `MAX_LINE` bytes (recorded invalid, never parsed)."""

    lines: Annotated[list[str], Field(max_length=MAX_SUBMIT_LINES)] = []  # none: the core answers []
    too_long: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=MAX_SUBMIT_LINES)] = []

    @model_validator(mode="after")
    def _indexes_name_lines(self) -> SubmitArgs:
        if any(i >= len(self.lines) for i in self.too_long):
            raise ValueError(f"too_long names a line past the {len(self.lines)} sent")
        return self


@dataclass(frozen=True, slots=True)
class Command:
    """One command of the API: its arguments, what it answers, whether a read-only client may send it."""

    args: type[BaseModel]
    result: Any = None  # the type of `result`, None when the command answers nothing
    read_only: bool = False


COMMANDS: dict[str, Command] = {
    "approve": Command(args=ApproveArgs),
    "reject": Command(args=RejectArgs),
    "check_signal_amend": Command(args=SignalAmendCheckArgs, result=AmendCheck),
    "amend_signal": Command(args=SignalAmendArgs),
    "check_order_amend": Command(args=OrderAmendCheckArgs, result=AmendCheck),
    "amend_order": Command(args=OrderAmendArgs),
    "cancel_order": Command(args=OrderArgs),
    "pause": Command(args=NoArgs),
    "resume": Command(args=NoArgs),
    "kill_switch": Command(args=NoArgs, result=KillSwitchResult),
    "submit": Command(args=SubmitArgs, result=list[SubmitResult]),
    "snapshot": Command(args=SnapshotArgs, result=Snapshot, read_only=True),
    "status": Command(args=NoArgs, result=CoreStatus, read_only=True),
    "stop": Command(args=NoArgs),
}


class Request(_Strict):
    v: Literal[1]
    id: int
    command: str
    args: dict[str, Any] = Field(default_factory=dict)
    client: ClientInfo = ClientInfo()


class ErrorInfo(_Strict):
    kind: ErrorKind
    message: str
    subject: str = ""


class Answer(_Strict):
    v: int = VERSION
    id: int | None = None
    ok: bool
    result: Any = None
    error: ErrorInfo | None = None

    @classmethod
    def failure(cls, request_id: int | None, kind: ErrorKind, message: str, subject: str = "") -> Answer:
        return cls(id=request_id, ok=False, error=ErrorInfo(kind=kind, message=message, subject=subject))


class BadMessage(Exception):
    """A request the core cannot take; `answer` is what it says back."""

    def __init__(self, answer: Answer) -> None:
        assert answer.error is not None
        super().__init__(answer.error.message)
        self.answer = answer


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        if error["type"] == "too_long" and error["loc"] == ("lines",):
            parts.append(f"lines: at most {MAX_SUBMIT_LINES} lines a request, not {len(error['input'])}: "
                         f"send them in batches")
            continue
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


class _Twice(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Twice(f"duplicate key {json.dumps(key)[:40]}: an object names each key once")
        obj[key] = value
    return obj


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:24]} is too large for a number")
    if value == 0 and any(c in "123456789" for c in text.lower().split("e")[0]):
        raise ValueError(f"{text[:24]} is too small for a number: it would read as 0")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (4300)
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits is too large for a number") from None


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (a JSON number is finite)")


def loads(raw: bytes | str) -> Any:
    """One message as the control socket reads it, strictly: a key given twice in one object is
    refused (never "last one wins"), so are NaN, Infinity, numbers a float cannot hold (1e999,
    1e-999) and nesting deeper than the decoder goes. Any problem is a `ValueError` saying what;
    nothing else is raised, whatever `raw` holds. (Lone surrogates pass: a submitted line's
    text is the core's to judge, line by line.)"""
    try:
        return json.loads(raw, object_pairs_hook=_pairs, parse_float=_float, parse_int=_int,
                          parse_constant=_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def parse_request(raw: bytes | str) -> tuple[Request, BaseModel]:
    """A request and its validated arguments, or `BadMessage` with the answer to give."""
    try:
        data = loads(raw)
    except ValueError as exc:  # UnicodeDecodeError too
        raise BadMessage(Answer.failure(None, "bad_request", f"not JSON: {exc}")) from None
    if not isinstance(data, dict):
        raise BadMessage(Answer.failure(None, "bad_request", "a request is a JSON object"))
    request_id = data.get("id") if isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool) else None
    version = data.get("v")
    if isinstance(version, bool) or version != VERSION:
        raise BadMessage(Answer.failure(
            request_id, "bad_request", f"unsupported protocol version {version!r}: this core speaks {VERSION}"))
    try:
        request = Request.model_validate(data)
    except ValidationError as exc:
        raise BadMessage(Answer.failure(request_id, "bad_request", _problems(exc))) from None
    command = COMMANDS.get(request.command)
    if command is None:
        raise BadMessage(Answer.failure(
            request.id, "unknown_command", f"unknown command {request.command!r}; known: {', '.join(COMMANDS)}"))
    try:
        args = command.args.model_validate(request.args)
    except ValidationError as exc:
        raise BadMessage(Answer.failure(request.id, "bad_request", f"{request.command}: {_problems(exc)}")) from None
    return request, args


def _cost(line: str) -> int:
    """Bytes `line` adds to a submit request (JSON-escaped, and its comma)."""
    return len(json.dumps(line, ensure_ascii=False).encode("utf-8", "replace")) + 1


def batches(lines: Iterable[str], *, max_lines: int = BATCH_LINES, max_bytes: int = BATCH_BYTES,
            ) -> Iterator[list[str]]:
    """`lines` in order, in lists of at most `max_lines` lines and `max_bytes` bytes as sent (a line
    longer than `MAX_LINE` bytes counts as the start of it that is sent); a line bigger than
    `max_bytes` alone. Reads `lines` lazily: any number of them takes one batch of memory."""
    batch: list[str] = []
    size = 0
    for line in lines:
        cost = _cost(cut_line(line)[0])
        if batch and (len(batch) >= max_lines or size + cost > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += cost
    if batch:
        yield batch


def submit_args(lines: Iterable[str]) -> dict[str, Any]:
    """The `submit` arguments carrying `lines` (one batch), the too long ones cut and marked."""
    sent: list[str] = []
    too_long: list[int] = []
    for i, line in enumerate(lines):
        text, cut = cut_line(line)
        sent.append(text)
        if cut:
            too_long.append(i)
    return {"lines": sent, "too_long": too_long}


# --- values -------------------------------------------------------------------------------------


@cache
def adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


# MarketInfo.extra is the venue's raw market description: not compared, not needed by a console.
_EXCLUDE: dict[Any, Any] = {dict[str, MarketInfo]: {"__all__": {"extra"}}, MarketInfo: {"extra"}}


def encode(value: Any, kind: Any | None = None) -> Any:
    """`value` as JSON-ready data (Decimals as strings, datetimes ISO 8601)."""
    kind = kind if kind is not None else type(value)
    return adapter(kind).dump_python(value, mode="json", exclude=_EXCLUDE.get(kind))


def encode_json(value: Any, kind: Any | None = None) -> str:
    kind = kind if kind is not None else type(value)
    return adapter(kind).dump_json(value, exclude=_EXCLUDE.get(kind)).decode()


def decode(kind: Any, data: Any) -> Any:
    """The value of type `kind` that `encode` gave `data` for (ValidationError when it is not one)."""
    return adapter(kind).validate_python(data)


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


EVENT_HEAD = f'{{"v":{VERSION},"type":"event","event":"'  # how `event_text` begins


def event_text(event: Event) -> str:
    """An event as one WebSocket text message."""
    name = type(event).__name__
    return f'{EVENT_HEAD}{name}","data":{encode_json(event)}}}'


def decode_event(message: Mapping[str, Any]) -> Event:
    kind = EVENT_TYPES.get(str(message.get("event")))
    if kind is None:
        raise ValueError(f"unknown event {message.get('event')!r}")
    return decode(kind, message.get("data"))


def decode_event_text(text: str) -> Event:
    """The event of one message as `event_text` writes it, parsed and validated in one pass of
    pydantic's JSON decoder (no dict in between); any other shape of event message is read as
    JSON first, as `decode_event` reads it."""
    start = len(EVENT_HEAD)
    end = text.find('","data":', start)
    kind = EVENT_TYPES.get(text[start:end]) if end > 0 else None
    if kind is None or not text.endswith("}"):
        return decode_event(json.loads(text))
    return adapter(kind).validate_json(text[end + 9 : -1])


_NO_ORDERS = '{"signals":[],"orders":[]'  # how a snapshot without signals and orders begins


def order_json(order: Order) -> str:
    """One order as a snapshot carries it (what `snapshot_text` writes for it)."""
    return adapter(Order).dump_json(order, exclude_defaults=True).decode()


def snapshot_text(snapshot: Snapshot, markets: Mapping[str, MarketInfo], reason: str,
                  orders: Sequence[str] | None = None) -> str:
    """A snapshot as one message. Values equal to their field's default are left out (decoding
    puts them back): a third less to send and to read for 10,000 orders, at no cost to write.
    `orders`: `order_json` of each of the snapshot's orders, in order, when the caller kept them."""
    lean = adapter(Snapshot).dump_json
    rest = lean(replace(snapshot, signals=[], orders=[]), exclude_defaults=True).decode() if orders else ""
    if orders is None or not rest.startswith(_NO_ORDERS):
        data = lean(snapshot, exclude_defaults=True).decode()
    else:
        signals = adapter(list[SignalRecord]).dump_json(snapshot.signals, exclude_defaults=True).decode()
        data = f'{{"signals":{signals},"orders":[{",".join(orders)}]{rest[len(_NO_ORDERS):]}'
    return (f'{{"v":{VERSION},"type":"snapshot","reason":"{reason}","data":{data},'
            f'"markets":{encode_json(dict(markets), dict[str, MarketInfo])}}}')


def status_text(status: CoreStatus) -> str:
    return f'{{"v":{VERSION},"type":"status","data":{encode_json(status)}}}'


def decode_markets(data: Any) -> dict[str, MarketInfo]:
    return decode(dict[str, MarketInfo], data or {})
