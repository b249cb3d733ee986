"""The signal parser: the contract examples, the semantic checks, and hypothesis fuzzing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.models import Signal
from executor.signals import SignalError, parse_signal, size_signal
from executor.venue.engine import PaperEngine

SCHEMA = Path(__file__).parent.parent.parent / "executor" / "schema" / "signal.schema.json"
MARKETS = PaperEngine(seed=1, markets=["BTC/USDT", "ETH/USDT", "SOL/USDT"], balances={}).markets()
PRICES = {"BTC/USDT": Decimal(60000), "ETH/USDT": Decimal(3000), "SOL/USDT": Decimal(150)}


def check(line: str) -> Decimal:
    signal = parse_signal(line)
    return size_signal(signal, MARKETS, Decimal(repr(signal.price)) if signal.price else PRICES.get(signal.symbol))


def refused(line: str, reason: str, parse=parse_signal) -> None:
    """`parse(line)` refuses the line, for a reason that matches `reason`."""
    with pytest.raises(SignalError, match=reason):
        parse(line)


VALID = (DATA / "signals.valid.jsonl").read_text().splitlines()
INVALID = (DATA / "signals.invalid.jsonl").read_text().splitlines()

# What each invalid example's reason must name (the field, and the problem).
EXPECTED = {
    0: ("amout", "unknown field"),
    1: ("side", "'hold'"),
    2: ("amount", "greater than 0"),
    3: ("quote_amount", "only one"),
    4: ("symbol", "BASE/QUOTE"),
    5: ("id", "'bad 006'"),
    6: ("amount", "must be a number"),
    7: ("amount", "required"),
    8: ("created_at", "ISO 8601"),
    9: ("id", "required"),
    10: ("not valid JSON", ""),
    11: ("symbol", "DOGE/EUR is not a market"),
    12: ("amount", "below the BTC/USDT minimum"),
}


@pytest.mark.parametrize("line", VALID, ids=[json.loads(v)["id"] for v in VALID])
def test_every_valid_example_is_accepted(line):
    assert check(line) > 0


@pytest.mark.parametrize("index", range(len(INVALID)))
def test_every_invalid_example_is_refused_naming_its_problem(index):
    with pytest.raises(SignalError) as info:
        check(INVALID[index])
    field, problem = EXPECTED[index]
    assert field in info.value.reason and problem in info.value.reason, info.value.reason


def test_the_examples_file_has_no_line_we_did_not_expect():
    assert len(INVALID) == len(EXPECTED)


def test_model_fields_match_the_schema():
    schema = json.loads(SCHEMA.read_text())
    assert set(Signal.model_fields) == set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_quote_amount_is_converted_and_rounded_down_onto_the_grid():
    line = '{"id": "q", "symbol": "SOL/USDT", "side": "buy", "quote_amount": 250}'
    assert check(line) == Decimal("1.666")  # 250 / 150 = 1.6666.. -> never spends more than asked


def test_an_amount_off_the_grid_is_refused():
    line = '{"id": "g", "symbol": "BTC/USDT", "side": "buy", "amount": 0.0100001}'
    refused(line, "off the BTC/USDT amount grid", check)


def test_a_notional_below_the_minimum_is_refused():
    refused('{"id": "n", "symbol": "BTC/USDT", "side": "buy", "amount": 0.00005}', "notional: 3 USDT is below", check)


def test_nan_and_infinity_literals_are_refused():
    refused('{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": NaN}', "not valid JSON")
    refused('{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": Infinity}', "not valid JSON")


def test_booleans_are_not_numbers():
    refused('{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": true}', "amount: must be a number")


def test_a_unix_timestamp_is_not_a_created_at():
    refused('{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 1, "created_at": 1700000000}', "created_at")


def test_free_form_extras_go_under_meta():
    signal = parse_signal('{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 1, "meta": {"a": [1, 2]}}')
    assert signal.meta == {"a": [1, 2]}


# -- hypothesis -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
fields = st.sampled_from(
    [
        "id",
        "symbol",
        "side",
        "amount",
        "quote_amount",
        "order_type",
        "price",
        "created_at",
        "ttl_seconds",
        "meta",
        "strategy",
        "note",
        "amout",
        "extra",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(fields, json_values, max_size=8))
def test_any_json_object_is_either_a_signal_or_a_reason(obj):
    try:
        signal = parse_signal(json.dumps(obj))
    except SignalError as exc:
        assert exc.reason and "Traceback" not in exc.reason
        first_field = exc.reason.split(":")[0]
        assert first_field, exc.reason
    else:
        assert (signal.amount is None) != (signal.quote_amount is None)
        assert set(obj) <= set(Signal.model_fields)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=100).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_never_crashes_the_parser(text):
    try:
        parse_signal(text)
    except SignalError as exc:
        assert exc.reason


@settings(max_examples=200, deadline=None)
@given(
    symbol=st.sampled_from(sorted(MARKETS)),
    side=st.sampled_from(["buy", "sell"]),
    steps=st.integers(min_value=1, max_value=10**6),
)
def test_valid_signals_round_trip_through_json(symbol, side, steps):
    amount = steps * MARKETS[symbol].amount_step
    line = json.dumps({"id": f"h-{steps}", "symbol": symbol, "side": side, "amount": float(amount)})
    signal = parse_signal(line)
    assert parse_signal(signal.model_dump_json(exclude_none=True)) == signal
