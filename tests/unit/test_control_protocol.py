"""The control socket's wire format: every event and answer survives the trip, bad requests get
an error answer, and the socket's default path follows the store."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import make_settings
from hypothesis import given
from hypothesis import strategies as st

from executor import events
from executor.control import protocol as wire
from executor.control.client import TOO_LONG_KEPT, CoreStatus, SubmitResult
from executor.control.paths import ControlError, check_length, default_socket_path, prepare_directory
from executor.control.watchers import OrderTexts
from executor.executor import AmendCheck, KillSwitchResult
from executor.models import Balance, ExchangeMode, MarketInfo, Order, OrderStatus, Signal, SignalRecord, SignalStatus
from executor.sources.lines import MAX_LINE

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))


def signal_record(**changes) -> SignalRecord:
    signal = Signal.model_validate({
        "id": "sig-7", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "order_type": "limit",
        "price": 60000.5, "strategy": "sma", "note": "entrée …", "created_at": "2026-03-04T07:06:07+02:00",
        "ttl_seconds": 120, "meta": {"bar": 17, "tags": ["a", None], "nested": {"x": 1.5}},
    })
    fields = dict(seq=12, id="sig-7", status=SignalStatus.PENDING, reason="", source="jsonl:x", received_at=T0,
                  raw=signal.model_dump_json(), signal=signal, reference_price=Decimal("60000.50"),
                  amount=Decimal("0.01000000"), expires_at=T0 + timedelta(seconds=120),
                  decided_at=None, decided_by=None)
    return SignalRecord(**(fields | changes))


def order(**changes) -> Order:
    fields = dict(client_order_id="tcabc0001", signal_id="sig-7", replacement=1, exchange_order_id="ex-1",
                  symbol="BTC/USDT", side="buy", type="limit", amount=Decimal("0.01"), price=Decimal("60060.00"),
                  status=OrderStatus.PARTIALLY_FILLED, filled=Decimal("0.004"), average=Decimal("60001.1234"),
                  fee=Decimal("0.000004"), fee_currency="BTC", attempts=2, created_at=T0,
                  updated_at=T0.astimezone(PLUS2), timeout_at=T0 + timedelta(seconds=30), last_error="timeout",
                  origin="executor", version=5)
    return Order(**(fields | changes))


QUOTE = events.MarketQuote("BTC/USDT", Decimal("60000.1"), Decimal("59999.9"), Decimal("60000.3"), None, T0,
                           change_since=T0 - timedelta(hours=3))
RESULT = events.ReconcileResult(at=T0, checked=3, updated=1, resolved_unknown=1, adopted=0, external=2, open=1,
                                unknown=0, drift={"BTC": Decimal("-0.00000001"), "USDT": Decimal("12.5")},
                                errors=["fetch failed"])
MARKETS = {"BTC/USDT": MarketInfo("BTC/USDT", "BTC", "USDT", Decimal("0.00001"), Decimal("0.01"),
                                  Decimal("0.00001"), Decimal(5), max_amount=Decimal(9000), extra={"raw": 1})}

EVENTS: list[events.Event] = [
    events.SignalReceived(signal_record()),
    events.SignalReceived(SignalRecord(id=None, status=SignalStatus.INVALID, reason="not JSON", source="webhook",
                                       received_at=T0, raw="{oops")),
    events.SignalDecided(signal_record(status=SignalStatus.APPROVED, reason="approved by ann@desk from 10.0.0.5",
                                       decided_at=T0, decided_by="ann@desk from 10.0.0.5")),
    events.OrderUpdated(order()),
    events.OrderUpdated(Order(client_order_id="tc2", signal_id=None, symbol="ETH/USDT", side="sell", type="market",
                              amount=Decimal("1E+1"), created_at=T0, updated_at=T0)),
    events.RetryScheduled("create_order", 2, 5, 0.25, "rate limited", client_order_id="tc2", ts=T0),
    events.RetryScheduled("fetch_balance", 1, 3, 1.0, "timeout", ts=T0),
    events.ErrorOccurred("reconciliation failed: boom", level="warning", signal_id="sig-7", ts=T0),
    events.LogLine("sig-7 approved (by ann@desk)", "ann@desk", "info", None, "sig-7", T0),
    events.MarketsUpdated({"BTC/USDT": QUOTE,
                           "ETH/USDT": events.MarketQuote("ETH/USDT", Decimal(3000), Decimal(2999), Decimal(3001),
                                                          Decimal("-1.25"), T0)}),
    events.BalancesUpdated({"BTC": Balance("BTC", Decimal("0.5"), Decimal("0.25")),
                            "USDT": Balance("USDT", Decimal(0), Decimal(0))},
                           {"BTC": Decimal("60000.1"), "USDT": Decimal(1)}, "USDT"),
    events.Reconciled(RESULT),
    events.Reconciled(events.ReconcileResult(at=T0)),
    events.StateChanged(paused=True, intake_done=False, mode=ExchangeMode.PAPER),
]

VALUES = [
    (events.Snapshot, events.Snapshot(signals=[signal_record()], orders=[order()],
                                      balances={"BTC": Balance("BTC", Decimal(1), Decimal(0))},
                                      prices={"BTC": Decimal("60000.1")}, quote="USDT", reconcile=RESULT, paused=False,
                                      mode=ExchangeMode.PAPER, exchange="paper", markets={"BTC/USDT": QUOTE})),
    (events.Snapshot, events.Snapshot([], [], {}, {}, "USDT", None, True, ExchangeMode.LIVE, "binance")),
    (AmendCheck, AmendCheck({"amount": "below the minimum 0.00001"}, Decimal("0.000001"), None, None, None)),
    (AmendCheck, AmendCheck({}, Decimal("0.02"), Decimal("59000.00"), Decimal("1180.0000"), Decimal("1.18"))),
    (KillSwitchResult, KillSwitchResult((order(status=OrderStatus.CANCELED), order(client_order_id="tc3")), 1)),
    (KillSwitchResult, KillSwitchResult((), 0)),
    (CoreStatus, CoreStatus(ExchangeMode.PAPER, "paper", False, 2, 1, 3, T0.isoformat(), 4.5, {"BTC": "0.1"},
                            "cooling down 3 s", False, 4242, "/srv/tc/store.db")),
    (CoreStatus, CoreStatus(ExchangeMode.LIVE, "binance", True, 0, 0, 0, None, None, {}, None, False, 1, "x.db")),
    (dict[str, MarketInfo], MARKETS),
    (list[SubmitResult], [SubmitResult("sig-7", SignalStatus.PENDING), SubmitResult(None, SignalStatus.INVALID, "id: "
                                                                                   "required"),
                          SubmitResult("sig-7", SignalStatus.DUPLICATE, "id sig-7 seen before")]),
    (list[SubmitResult], []),
]


def through_json(data):
    return json.loads(json.dumps(data))


def test_every_event_class_of_the_core_has_a_wire_name() -> None:
    classes = {c for c in vars(events).values()
               if isinstance(c, type) and issubclass(c, events.Event) and c is not events.Event}
    assert classes == set(wire.EVENT_TYPES.values())
    assert {type(e) for e in EVENTS} == classes  # and every one is exercised below


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_event_decodes_to_what_was_encoded(event: events.Event) -> None:
    message = json.loads(wire.event_text(event))
    assert message["v"] == 1 and message["type"] == "event" and message["event"] == type(event).__name__
    assert wire.decode_event(message) == event
    assert wire.decode(type(event), through_json(wire.encode(event))) == event


@pytest.mark.parametrize(("kind", "value"), VALUES, ids=lambda v: getattr(v, "__name__", None) or "")
def test_answers_and_snapshots_decode_to_what_was_encoded(kind, value) -> None:
    assert wire.decode(kind, through_json(wire.encode(value, kind))) == value


def test_decimals_travel_as_strings_and_datetimes_with_their_offset() -> None:
    data = wire.encode(events.OrderUpdated(order()))["order"]
    assert data["price"] == "60060.00" and data["filled"] == "0.004"
    assert data["updated_at"] == "2026-03-04T07:06:07.891011+02:00"
    back = wire.decode(events.OrderUpdated, through_json(wire.encode(events.OrderUpdated(order())))).order
    assert back.price.as_tuple() == Decimal("60060.00").as_tuple()  # not even the trailing zeros are lost


def test_the_snapshot_message_carries_the_markets_without_the_venue_raw_data() -> None:
    snapshot = VALUES[1][1]
    message = json.loads(wire.snapshot_text(snapshot, MARKETS, "connect"))
    assert message["type"] == "snapshot" and message["reason"] == "connect"
    assert "extra" not in message["markets"]["BTC/USDT"]
    assert wire.decode(events.Snapshot, message["data"]) == snapshot
    assert wire.decode_markets(message["markets"]) == MARKETS


def test_a_snapshot_from_the_orders_kept_encoded_is_the_same_message_and_follows_a_changed_order() -> None:
    texts = OrderTexts()
    snapshot = VALUES[0][1]
    plain = wire.snapshot_text(snapshot, MARKETS, "connect")
    assert wire.snapshot_text(snapshot, MARKETS, "connect", texts(snapshot.orders)) == plain
    assert wire.snapshot_text(snapshot, MARKETS, "connect", texts(snapshot.orders)) == plain  # from what was kept
    moved = replace(snapshot, orders=[o.model_copy(update={"filled": Decimal("0.005"), "version": o.version + 1})
                                      for o in snapshot.orders])
    message = json.loads(wire.snapshot_text(moved, MARKETS, "reply", texts(moved.orders)))
    assert wire.decode(events.Snapshot, message["data"]) == moved
    assert message["data"]["orders"] and all(o["filled"] == "0.005" for o in message["data"]["orders"])


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None, min_value=-10**15, max_value=10**15)
moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                       timezones=st.sampled_from([UTC, PLUS2, timezone(timedelta(hours=-9, minutes=-30))]))


@given(amount=decimals, price=st.none() | decimals, filled=decimals, at=moments, status=st.sampled_from(OrderStatus),
       error=st.text(max_size=40))
def test_any_order_update_survives_the_trip(amount, price, filled, at, status, error) -> None:
    event = events.OrderUpdated(order(amount=amount, price=price, filled=filled, updated_at=at, status=status,
                                      last_error=error))
    assert wire.decode_event(json.loads(wire.event_text(event))) == event


@given(last=decimals, change=st.none() | decimals, at=moments, drift=st.dictionaries(st.sampled_from("ABC"), decimals))
def test_any_quote_and_reconciliation_survive_the_trip(last, change, at, drift) -> None:
    quotes = events.MarketsUpdated({"BTC/USDT": events.MarketQuote("BTC/USDT", last, last, last, change, at)})
    reconciled = events.Reconciled(events.ReconcileResult(at=at, drift=drift))
    for event in (quotes, reconciled):
        assert wire.decode_event(json.loads(wire.event_text(event))) == event


# -- requests ----------------------------------------------------------------------------------


def kind_of(raw) -> str:
    with pytest.raises(wire.BadMessage) as caught:
        wire.parse_request(raw)
    assert caught.value.answer.ok is False
    return caught.value.answer.error.kind


def request(**fields) -> bytes:
    return json.dumps({"v": 1, "id": 3, "command": "approve", "args": {"signal_id": "sig-7"}} | fields).encode()


def test_a_request_names_its_command_and_arguments() -> None:
    parsed, args = wire.parse_request(request(client={"host": "desk", "ssh": "10.0.0.5", "role": "operator"}))
    assert (parsed.id, parsed.command, parsed.client.host, parsed.client.ssh) == (3, "approve", "desk", "10.0.0.5")
    assert args == wire.ApproveArgs(signal_id="sig-7", confirm=False)
    _, amend = wire.parse_request(request(command="amend_order", args={"coid": "tc1", "price": "60000.10"}))
    assert amend.price == Decimal("60000.10") and amend.amount is None


@pytest.mark.parametrize(("raw", "kind"), [
    (b"{not json", "bad_request"),
    (b"\xff\xfe", "bad_request"),
    (b"[1, 2]", "bad_request"),
    (request(v=2), "bad_request"),
    (request(v=True), "bad_request"),
    (json.dumps({"id": 1, "command": "pause"}).encode(), "bad_request"),
    (request(id="seven"), "bad_request"),
    (request(command="sell_everything"), "unknown_command"),
    (request(args={}), "bad_request"),
    (request(args={"signal_id": "sig-7", "confirm": "maybe"}), "bad_request"),
    (request(args={"signal_id": "sig-7", "extra": 1}), "bad_request"),
    (request(command="amend_signal", args={"signal_id": "s", "price": "NaN"}), "bad_request"),
    (request(client={"host": "desk; rm -rf /"}), "bad_request"),
    (request(client={"role": "admin"}), "bad_request"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_request_gets_an_error_answer(raw, kind) -> None:
    assert kind_of(raw) == kind


def test_the_error_answer_echoes_the_request_id_when_it_has_one() -> None:
    with pytest.raises(wire.BadMessage) as caught:
        wire.parse_request(request(v=9, id=41))
    assert caught.value.answer.id == 41 and "version 9" in caught.value.answer.error.message


def submit_request(**args) -> bytes:
    return json.dumps({"v": 1, "id": 5, "command": "submit", "args": args}).encode()


def test_a_submit_request_carries_lines_and_the_indexes_of_those_cut() -> None:
    parsed, args = wire.parse_request(submit_request(lines=['{"id": "a"}', "x"], too_long=[1]))
    assert parsed.command == "submit" and args == wire.SubmitArgs(lines=['{"id": "a"}', "x"], too_long=[1])
    assert wire.parse_request(submit_request(lines=[]))[1] == wire.SubmitArgs(lines=[], too_long=[])
    assert wire.parse_request(submit_request())[1] == wire.SubmitArgs()  # no lines: nothing to record
    assert wire.COMMANDS["submit"].read_only is False  # a read-only client may not submit


@pytest.mark.parametrize("args", [
    {"lines": "one line"},
    {"lines": [1, 2]},
    {"lines": ["a"], "too_long": [1]},
    {"lines": ["a"], "too_long": [-1]},
    {"lines": ["a"], "source": "me"},
], ids=["not a list", "not strings", "index past the lines", "negative index", "extra field"])
def test_a_bad_submit_request_gets_bad_request(args) -> None:
    assert kind_of(submit_request(**args)) == "bad_request"


def test_more_lines_than_a_request_may_carry_is_refused_naming_the_limit() -> None:
    assert len(wire.parse_request(submit_request(lines=["x"] * wire.MAX_SUBMIT_LINES))[1].lines) == 1000
    with pytest.raises(wire.BadMessage) as caught:
        wire.parse_request(submit_request(lines=["x"] * (wire.MAX_SUBMIT_LINES + 1)))
    error = caught.value.answer.error
    assert error.kind == "bad_request" and "at most 1000 lines" in error.message and "1001" in error.message


def test_batches_are_bounded_by_lines_and_bytes_and_keep_the_order() -> None:
    lines = [f"line {i}" for i in range(1234)]
    got = list(wire.batches(lines))
    assert [len(b) for b in got] == [500, 500, 234] and [x for b in got for x in b] == lines
    wide = ["é" * 1000] * 600  # 2 bytes a character: 2003 bytes a line as sent, with its quotes and comma
    assert [len(b) for b in wire.batches(wide)] == [261, 261, 78]
    assert all(sum(len(json.dumps(x, ensure_ascii=False).encode()) + 1 for x in b) <= wire.BATCH_BYTES
               for b in wire.batches(wide))
    assert list(wire.batches([])) == []
    assert [len(b) for b in wire.batches(["a"] * 7, max_lines=3)] == [3, 3, 1]


def test_a_line_larger_than_a_batch_goes_alone_and_a_too_long_one_costs_its_start() -> None:
    big, huge = "b" * (wire.BATCH_BYTES + 1), "h" * (MAX_LINE + 1)
    assert list(wire.batches(["a", big, "c", huge, "d"])) == [["a"], [big], ["c", huge, "d"]]
    # Escaped characters count as sent: 100,000 quotes are 200,000 bytes on the wire.
    assert [len(b) for b in wire.batches(['"' * 100_000] * 3)] == [2, 1]


def test_submit_args_cut_and_mark_the_lines_longer_than_1_mib() -> None:
    edge, over, wide = "e" * MAX_LINE, "o" * (MAX_LINE + 1), "€" * (MAX_LINE // 3 + 1)  # 3 bytes each
    args = wire.submit_args(["a", edge, over, wide, "z\udc80"])
    assert args["too_long"] == [2, 3]
    assert args["lines"][:2] == ["a", edge] and args["lines"][4] == "z?"  # no lone surrogate goes out
    assert args["lines"][2] == "o" * TOO_LONG_KEPT
    assert args["lines"][3] == "€" * (TOO_LONG_KEPT // 3)  # cut on a character boundary
    assert wire.SubmitArgs.model_validate(args).too_long == [2, 3]
    # The biggest line that is not cut fits a request, however it escapes.
    worst = len(wire.dumps({"v": 1, "id": 1, "command": "submit", "args": wire.submit_args(["\x01" * MAX_LINE])}))
    assert wire.MAX_REQUEST < worst <= wire.MAX_SUBMIT_REQUEST


# -- the socket's path -------------------------------------------------------------------------


def test_the_default_socket_is_in_the_runtime_dir_named_after_the_store(tmp_path: Path, monkeypatch) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    path = default_socket_path(tmp_path / "a" / "store.db", env=env)
    assert path.parent == tmp_path / "run" / "tradeconsole" and path.suffix == ".sock" and len(path.stem) == 12
    monkeypatch.chdir(tmp_path)
    assert default_socket_path(Path("a/../a/store.db"), env=env) == path  # the same store, however named
    assert default_socket_path(tmp_path / "b.db", env=env) != path


def test_without_a_runtime_dir_the_socket_is_in_a_private_cache_dir(tmp_path: Path) -> None:
    path = default_socket_path(tmp_path / "store.db", env={"HOME": "/home/ann", "XDG_RUNTIME_DIR": "relative"})
    assert path.parent == Path("/home/ann/.cache/tradeconsole") / f"run-{os.getuid()}"
    assert len(os.fsencode(path)) < 100


def test_a_socket_path_too_long_for_unix_sockets_is_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match=r"over the 100-byte limit.*\[control\] socket"):
        check_length(tmp_path / ("x" * 100) / "c.sock")


def test_control_socket_setting_wins(tmp_path: Path) -> None:
    settings = make_settings(control={"socket": "~/tc.sock"})
    assert default_socket_path(tmp_path / "store.db", settings) == Path("~/tc.sock").expanduser()


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ControlError, match="writable by others"):
        prepare_directory(shared, 0o700, ours=False)


def test_a_missing_directory_is_created_private(tmp_path: Path) -> None:
    prepare_directory(tmp_path / "new" / "dir", 0o700, ours=True)
    assert (tmp_path / "new" / "dir").stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a directory to another user")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 54321, 54321)
    with pytest.raises(ControlError, match="belongs to uid 54321"):
        prepare_directory(theirs, 0o700, ours=False)
