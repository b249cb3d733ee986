"""Fuzzing the signal parser and the service's intake (issue 11, part 4, the parser half).

Whatever arrives (garbage, huge and tiny numbers, NaN and Infinity, unicode and control
characters, deep nesting, duplicate keys, unknown keys), `parse_signal` answers a `Signal` or a
`SignalError` whose reason names the problem (the field, for a one-field change of a valid
signal), never another exception and never slowly; and a real paper `TradingService` records
every line (invalid with a reason, or pending/duplicate), never raises, never makes an order
from anything but a valid signal, and keeps taking signals afterwards.

Every property is derandomized (the same examples each run) with `deadline=None`; example
counts are bounded so the whole file runs in a few seconds to tens of seconds.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.exchanges.paper import PaperExchange
from executor.models import MAX_AMOUNT, MAX_PRICE, MarketInfo, Signal, SignalStatus
from executor.service import TradingService
from executor.signals import (
    MAX_NESTING,
    MAX_SIGNAL_CHARS,
    SignalError,
    floor_to_step,
    fmt,
    load_json,
    on_grid,
    parse_signal,
    size_signal,
)
from executor.venue.engine import PaperEngine

S = SignalStatus
MARKETS = PaperEngine(seed=1, markets=["BTC/USDT", "ETH/USDT", "SOL/USDT"], balances={}).markets()
PRICES = {"BTC/USDT": Decimal(60000), "ETH/USDT": Decimal(3000), "SOL/USDT": Decimal(150)}
VALID = [json.loads(line) for line in (DATA / "signals.valid.jsonl").read_text().splitlines()]
FIELDS = list(Signal.model_fields)
SLOW = 3.0  # seconds: one parse or one sizing beyond this is a hang waiting to happen

# TC_FUZZ_SCALE=20 runs every property with 20 times the examples (a longer hunt, still seeded).
SCALE = float(os.environ.get("TC_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    return settings(
        derandomize=True,
        deadline=None,
        database=None,
        max_examples=max(1, int(examples * SCALE)),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- the fuzz material -------------------------------------------------------------------------

# Number tokens exactly as they may stand in JSON text (and some that JSON does not allow).
NUMBER_TOKENS = [
    "0",
    "-0",
    "-0.0",
    "0e0",
    "1",
    "0.01",
    "60000",
    "1e12",
    "1e+12",
    "1000000000000.0001",
    "1e15",
    "1000000000000001",
    "1e308",
    "1.7976931348623157e308",
    "1.8e308",
    "1e309",
    "1e999999",
    "-1e999999",
    "1e999999999",
    "9e999999",
    "1e-320",
    "5e-324",
    "2.2250738585072014e-308",
    "1e-400",
    "1e-999999",
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "9" * 400,
    "9" * 4300,
    "9" * 4301,
    "-" + "9" * 20000,
    "0." + "0" * 5000 + "1",
    "1" + "0" * 5000 + ".0",
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
    "1_000",
    "1e",
    "--1",
    "true",
    "null",
    '"1"',
    '"NaN"',
    "[]",
    "{}",
    '"\\ud800"',
    '"\\u0000"',
]
CONTROL = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]

any_char = st.characters(codec=None, exclude_categories=())  # surrogates and controls included
texts = st.one_of(
    st.text(max_size=30),
    st.text(any_char, max_size=30),
    st.text(st.sampled_from([*CONTROL, "a", "€", "\u202e", "\ufeff", "\U0001f600"]), max_size=10),
)
special_floats = st.sampled_from(
    [5e-324, 1e-320, 2.2250738585072014e-308, 1e-12, -0.0, 1e12, 1e12 + 0.5, 1e15, 1e15 * 1.0000001, 1e308]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**15, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    special_floats,
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


def nested(depth: int, kind: str) -> str:
    opener, closer = {"list": ("[", "]"), "dict": ('{"a":', "}"), "mixed": ('[{"a":', "}]")}[kind]
    return opener * depth + "1" + closer * depth


depths = st.sampled_from([1, MAX_NESTING - 2, MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 200, 999, 1000, 5000])
deep_values = st.builds(nested, depths, st.sampled_from(["list", "dict", "mixed"]))


def dumped(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


# A value as JSON text: any JSON value (as text), a raw number token, deep nesting, a string
# with a raw control character in it (not valid JSON), or the bytes of an odd string.
value_texts = st.one_of(
    st.builds(dumped, json_values, st.booleans()),
    st.sampled_from(NUMBER_TOKENS),
    deep_values,
    st.builds(
        lambda t, c, at: json.dumps(t[:at] + "\x00" + t[at:]).replace("\\u0000", c),
        texts,
        st.sampled_from(CONTROL),
        st.integers(0, 30),
    ),
)


def obj_text(pairs: list[tuple[str, str]]) -> str:
    """An object as JSON text from (key, value text) pairs, duplicates and all."""
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"


def pairs_of(signal: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, json.dumps(v)) for k, v in signal.items()]


signal_objects = st.dictionaries(st.sampled_from([*FIELDS, "amout", "extra", ""]), json_values, max_size=8)
raw_inputs = st.one_of(
    st.text(any_char, max_size=300),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.builds(dumped, json_values, st.booleans()),
    st.builds(dumped, signal_objects, st.booleans()),
    signal_objects,  # parse_signal takes a dict too (a caller that decoded it)
    st.builds(
        lambda base, field, value: obj_text([*pairs_of(base), (field, value)]),
        st.sampled_from(VALID),
        st.sampled_from(FIELDS),
        value_texts,
    ),
    deep_values,
    st.sampled_from(
        [
            "[" * 100000,
            "{" * 100000,
            '{"a":' * 100000,
            "[" * 100000 + "]" * 100000,
            "",
            " ",
            "\ufeff{}",
            "null",
            "[]",
            '"x"',
            "1e999999",
            "{}",
        ]
    ),
)


# -- the checks --------------------------------------------------------------------------------


def check_reason(exc: SignalError) -> str:
    reason = exc.reason
    assert isinstance(reason, str) and reason.strip(), "an empty reason"
    assert reason.isprintable(), f"a reason the console cannot print: {reason!r}"
    assert len(reason) <= 2000, f"a reason of {len(reason)} characters"
    assert exc.signal_id is None or (exc.signal_id.isprintable() and 0 < len(exc.signal_id) <= 64)
    return reason


def timed(fn: Any, *args: Any) -> Any:
    """`fn(*args)`, its value or its `SignalError` returned; slow twice running fails the test
    (slow once may be a busy machine; a hang is slow every time). Anything else raised fails it."""
    for _ in range(2):
        started = time.perf_counter()
        try:
            result = fn(*args)
        except SignalError as exc:
            result = exc
        elapsed = time.perf_counter() - started
        if elapsed < SLOW:
            return result
    raise AssertionError(f"{fn.__name__} took {elapsed:.1f}s, twice")


def outcome(raw: Any) -> Signal | SignalError:
    """parse_signal's answer; any exception but SignalError (or a slow answer) fails the test."""
    result = timed(parse_signal, raw)
    if isinstance(result, SignalError):
        check_reason(result)
    else:
        assert isinstance(result, Signal)
    return result


def check_accepted(signal: Signal) -> None:
    """An accepted signal is one the store can write and read back, and the venue checks size."""
    text = signal.model_dump_json(exclude_none=True)  # as the store writes it
    assert Signal.model_validate_json(text) == signal  # as the store reads it back
    assert parse_signal(text) == signal  # and what it wrote is itself a valid signal
    for value in (signal.amount, signal.quote_amount, signal.price, signal.ttl_seconds):
        assert value is None or (math.isfinite(value) and value > 0)
    reference = Decimal(repr(signal.price)) if signal.price else PRICES.get(signal.symbol)
    amount = timed(size_signal, signal, MARKETS, reference)
    if isinstance(amount, SignalError):
        check_reason(amount)
    else:
        market = MARKETS[signal.symbol]
        assert market.min_amount <= amount <= (market.max_amount or amount)
        assert on_grid(amount, market.amount_step)


def named(field: str, reason: str) -> bool:
    """The reason names this field or key (escaped as a reason shows an odd key)."""
    return field in reason or json.dumps(field)[:30] in reason


# -- the parser ------------------------------------------------------------------------------


@fuzz(600)
@given(raw_inputs)
def test_anything_is_a_signal_or_a_reason_never_a_crash(raw):
    result = outcome(raw)
    if isinstance(result, Signal):
        check_accepted(result)


@fuzz(150)
@given(st.sampled_from(VALID), st.sampled_from(FIELDS), value_texts)
def test_one_field_replaced_is_accepted_or_named(base, field, value):
    pairs = [(k, json.dumps(v)) if k != field else (k, value) for k, v in base.items()]
    if field not in base:
        pairs.append((field, value))
    result = outcome(obj_text(pairs))
    if isinstance(result, SignalError):
        assert named(field, result.reason), (field, value[:80], result.reason)
    else:
        check_accepted(result)


@fuzz(150)
@given(st.sampled_from(VALID), st.data())
def test_a_key_given_twice_is_refused_naming_it(base, data):
    field = data.draw(st.sampled_from(sorted(base)))
    value = data.draw(st.builds(json.dumps, json_values) | st.just(json.dumps(base[field])))
    pairs = pairs_of(base)
    pairs.insert(data.draw(st.integers(0, len(pairs))), (field, value))
    result = outcome(obj_text(pairs))
    assert isinstance(result, SignalError), "a duplicate key was accepted: last one wins"
    assert f"duplicate key {json.dumps(field)}" in result.reason, result.reason
    assert "a signal names each field once" in result.reason


def test_a_key_given_twice_inside_meta_is_refused_naming_both():
    line = '{"id": "d", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "meta": {"a": 1, "b": 2, "a": 1}}'
    with pytest.raises(SignalError) as info:
        parse_signal(line)
    assert info.value.reason == 'duplicate key "a" in meta: an object names each key once'
    with pytest.raises(SignalError, match=r'duplicate key "x" in meta\.y\[1\]'):
        parse_signal(
            '{"id": "d", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "meta": {"y": [0, {"x": 1, "x": 1}]}}'
        )


@fuzz(150)
@given(st.sampled_from(VALID), texts.filter(lambda k: k not in Signal.model_fields), value_texts, st.booleans())
def test_an_unknown_key_is_refused_naming_it(base, key, value, inside_meta):
    if inside_meta:  # free-form extras belong under meta: accepted there, if the value is sound
        meta = base.get("meta", {})
        line = obj_text(
            [
                *pairs_of({k: v for k, v in base.items() if k != "meta"}),
                ("meta", obj_text([*pairs_of(meta), (key, value)])),
            ]
        )
        result = outcome(line)
        if isinstance(result, SignalError):
            assert "meta" in result.reason, result.reason
        else:
            check_accepted(result)
        return
    result = outcome(obj_text([*pairs_of(base), (key, value)]))
    assert isinstance(result, SignalError), f"unknown key {key!r} accepted"
    assert named(key, result.reason), (key, result.reason)


STRING_FIELDS = ["id", "symbol", "side", "order_type", "strategy", "note", "created_at"]


@fuzz(200)
@given(
    st.sampled_from(VALID), st.sampled_from(STRING_FIELDS), st.sampled_from(CONTROL), st.integers(0, 40), st.booleans()
)
def test_a_control_character_in_a_string_is_refused_naming_the_field(base, field, char, at, raw):
    signal = dict(base)
    original = {
        "id": "c1",
        "symbol": "BTC/USDT",
        "side": "buy",
        "order_type": "limit",
        "strategy": "sma",
        "note": "exit half",
        "created_at": "2026-11-23T10:00:00Z",
    }[field]
    text = str(signal.get(field, original))
    at = min(at, len(text))
    signal[field] = text[:at] + "\x00" + text[at:]
    line = json.dumps(signal)
    # Raw (not valid JSON below U+0020) or escaped as JSON allows (\u001b): refused either way.
    line = line.replace("\\u0000", char if raw else json.dumps(char)[1:-1])
    result = outcome(line)
    assert isinstance(result, SignalError), f"{field} with {char!r} accepted"
    assert named(field, result.reason), (field, char, result.reason)


@fuzz(100)
@given(st.sampled_from([*CONTROL, "\ud800", "\udfff", "\u202e", "\U0001f600"]), st.booleans())
def test_control_characters_and_surrogates_under_meta(char, escaped):
    meta = json.dumps({"alert": f"RSI{char}70"}, ensure_ascii=escaped)
    result = outcome('{"id": "m", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "meta": ' + meta + "}")
    if "\ud800" <= char <= "\udfff":  # not Unicode: no store and no terminal can write it
        assert isinstance(result, SignalError) and "meta" in result.reason and "surrogate" in result.reason
    elif isinstance(result, SignalError):  # a raw control character is not valid JSON
        assert not escaped and ord(char) < 0x20 and result.reason.startswith("meta: not valid JSON")
    else:
        check_accepted(result)  # free-form data, kept exactly


def short(token: str) -> str:
    return token if len(token) <= 24 else f"{token[:10]}..{len(token)}chars"


@pytest.mark.parametrize("token", NUMBER_TOKENS, ids=short)
@pytest.mark.parametrize("field", ["amount", "quote_amount", "price", "ttl_seconds", "stop_loss"])
def test_every_number_token_in_every_number_field(field, token):
    base = {"id": "n1", "symbol": "BTC/USDT", "side": "buy"}
    if field not in ("amount", "quote_amount"):
        base["amount"] = 0.01
    result = outcome(obj_text([*pairs_of(base), (field, token)]))
    if isinstance(result, SignalError):
        assert result.reason.startswith(field), result.reason
        return
    check_accepted(result)
    value = getattr(result, field)
    assert 0 < value <= (MAX_AMOUNT if field == "amount" else MAX_PRICE if field != "ttl_seconds" else 1e10)


@pytest.mark.parametrize("token", NUMBER_TOKENS, ids=short)
def test_number_tokens_under_meta_are_kept_exactly_or_refused_naming_them(token):
    result = outcome('{"id": "m", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "meta": {"x": ' + token + "}}")
    if isinstance(result, SignalError):
        assert result.reason.startswith("meta"), result.reason
    else:
        check_accepted(result)
        value = result.meta["x"]
        assert not isinstance(value, float) or (math.isfinite(value) and (value != 0 or "1" not in token))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 1e999}', "amount: 1e999 is too large"),
        ('{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 1e-999}', "amount: 1e-999 is too small"),
        ('{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": NaN}', "amount: NaN is not valid JSON"),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "meta": {"v": -Infinity}}',
            "meta.v: -Infinity is not valid JSON",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": ' + "9" * 5000 + "}",
            "amount: an integer of 5000 digits is too large",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": ' + "[" * 10000 + "}",
            "amount: not valid JSON: nested far deeper than",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "meta": ' + nested(40, "list") + "}",
            "meta: nested deeper than 32 levels",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "note": "\\u001b[2J"}',
            "note: must be plain one-line text (control character U+001B",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "note": "a\x07"}',
            "note: not valid JSON: Invalid control character",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "meta": {"k": "\\ud800"}}',
            "meta.k: a lone surrogate \\ud800 is not Unicode text",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "price": null}',
            "price: null is not a value here",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "created_at": "1700000000"}',
            "created_at: must be an ISO 8601 date-time",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "created_at": "9999-12-31T23:59:59Z"}',
            "created_at: must be between 1970-01-01 and 9000-01-01",
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "\\u001b[31m": 1}',
            '["\\u001b[31m"]: unknown field',
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01, "amount": 0.01}',
            'duplicate key "amount": a signal names each field once',
        ),
        (
            '{"id": "x", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01 "price": 1}',
            "amount: not valid JSON: Expecting ',' delimiter",
        ),
    ],
    ids=lambda value: short(value.split(", ")[-1]),
)
def test_what_the_fuzzers_found_is_refused_naming_it(line, reason):
    with pytest.raises(SignalError) as info:
        parse_signal(line)
    assert info.value.reason.startswith(reason), info.value.reason


def test_a_signal_longer_than_the_limit_is_refused_before_it_is_read():
    big = {"id": "big", "symbol": "BTC/USDT", "side": "buy", "amount": 1, "meta": {"x": "y" * MAX_SIGNAL_CHARS}}
    line = json.dumps(big)
    with pytest.raises(SignalError, match=r"^signal: \d+ characters, more than the 65536"):
        parse_signal(line)


def test_many_problems_make_one_bounded_reason():
    line = obj_text([("id", '"x"'), *[(f"k{i}", "1") for i in range(500)]])
    with pytest.raises(SignalError) as info:
        parse_signal(line)
    assert info.value.reason.endswith("more problems") and len(info.value.reason) < 1000


def test_an_unreadable_id_is_not_the_id_an_invalid_signal_is_recorded_under():
    with pytest.raises(SignalError) as info:
        parse_signal(json.dumps({"id": "\x1b[2J" + "x" * 100, "symbol": "BTC/USDT", "side": "buy"}))
    assert info.value.signal_id is None
    with pytest.raises(SignalError) as info:
        parse_signal(json.dumps({"id": "bad 006", "symbol": "BTC/USDT", "side": "buy"}))
    assert info.value.signal_id == "bad 006"


# -- load_json: the same rules for a whole body --------------------------------------------------

sound_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@fuzz(200)
@given(sound_values, st.booleans())
def test_load_json_reads_sound_json_exactly(value, ascii_only):
    assert load_json(json.dumps(value, ensure_ascii=ascii_only)) == value
    assert load_json(json.dumps(value).encode()) == value


@fuzz(300)
@given(
    st.one_of(
        st.text(any_char, max_size=200),
        st.binary(max_size=200),
        st.builds(dumped, json_values, st.booleans()),
        st.sampled_from(NUMBER_TOKENS),
        deep_values,
    )
)
def test_load_json_answers_a_value_or_a_value_error(text):
    result = timed(load_json, text)  # any ValueError but SignalError escapes and fails
    if isinstance(result, SignalError):
        assert str(result) and str(result).isprintable()


def test_load_json_names_the_place_in_a_batch():
    body = '{"token": "t", "signals": [{"id": "a"}, {"id": "b", "amount": 1, "amount": 2}]}'
    with pytest.raises(ValueError, match=r'^duplicate key "amount" in signals\[1\]: an object names each key once$'):
        load_json(body)
    with pytest.raises(ValueError, match=r"^signals\[0\]\.amount: NaN is not valid JSON"):
        load_json('{"signals": [{"amount": NaN}]}')
    with pytest.raises(ValueError, match=r"^not valid JSON: nested far deeper"):
        load_json("[" * 100000)


# -- the venue's checks at the extremes the schema lets through ---------------------------------

steps = st.sampled_from([Decimal(s) for s in ("1e-18", "1e-8", "0.00001", "0.001", "1", "0")])
schema_numbers = st.one_of(
    st.floats(min_value=5e-324, max_value=MAX_PRICE), special_floats.filter(lambda f: 0 < f <= MAX_PRICE)
)


@fuzz(300)
@given(schema_numbers, schema_numbers, steps, st.booleans())
def test_sizing_never_spends_more_than_asked_nor_stalls(quote, price, step, by_quote):
    market = MarketInfo(
        "BTC/USDT", "BTC", "USDT", amount_step=step, price_tick=Decimal(0), min_amount=Decimal(0), min_cost=Decimal(0)
    )
    size = {"quote_amount": quote} if by_quote else {"amount": min(quote, MAX_AMOUNT)}
    signal = Signal(id="z", symbol="BTC/USDT", side="buy", price=price, **size)
    reference = Decimal(repr(price))
    amount = timed(size_signal, signal, {"BTC/USDT": market}, reference)
    if isinstance(amount, SignalError):
        check_reason(amount)
    else:
        if by_quote:
            assert amount * reference <= Decimal(repr(quote)), "spends more than the quote_amount"
        assert on_grid(amount, step)


@pytest.mark.parametrize("value", ["9e999999", "1e-999999", "9e999999999", "-1e-999999999", "5e-324", "1e308"])
@pytest.mark.parametrize("step", ["0.00001", "7", "1e-18"])
def test_extreme_decimals_do_not_hang_the_helpers(value, step):
    value, step = Decimal(value), Decimal(step)
    assert "0000000000" not in timed(fmt, value)  # the exponent kept, not a million zeros
    assert timed(on_grid, value, step) in (True, False)
    if abs(value.adjusted()) <= 999999:  # past the context's exponent limit arithmetic raises
        floor = timed(floor_to_step, value, step)
        assert floor <= value and on_grid(floor, step)


def test_a_price_below_one_tick_is_no_price_on_that_market():
    signal = parse_signal('{"id": "t", "symbol": "BTC/USDT", "side": "buy", "quote_amount": 250, "price": 5e-324}')
    with pytest.raises(SignalError) as info:
        size_signal(signal, MARKETS, Decimal("5e-324"))
    assert info.value.reason == "price: 5E-324 is below the BTC/USDT price tick 0.01"


# -- the service's intake ---------------------------------------------------------------------

# Lines as a source hands them over: no lone surrogate in the text itself (a file is decoded with
# errors="replace"; the webhook decodes strict UTF-8), though "\ud800" escapes are fair game.
line_texts = st.text(st.characters(codec="utf-8"), max_size=200)
ids = st.sampled_from(["f1", "f2", "f3", "ex-001", "ex-002"])


@st.composite
def fuzz_lines(draw) -> str:
    kind = draw(st.sampled_from(["text", "value", "replace", "twice", "unknown", "valid", "deep"]))
    base = dict(draw(st.sampled_from(VALID)))
    base["id"] = draw(ids)  # a few ids, so duplicates come up
    if kind == "text":
        return draw(line_texts)
    if kind == "value":
        return json.dumps(draw(json_values))
    if kind == "deep":
        return draw(deep_values)
    if kind == "valid":
        return json.dumps(base)
    field = draw(st.sampled_from(FIELDS))
    value = draw(value_texts).encode("utf-8", "replace").decode("utf-8")
    if kind == "replace":
        return obj_text([*[(k, json.dumps(v)) for k, v in base.items() if k != field], (field, value)])
    if kind == "twice":
        return obj_text([*pairs_of(base), (draw(st.sampled_from(sorted(base))), value)])
    return obj_text([*pairs_of(base), (draw(texts).encode("utf-8", "replace").decode("utf-8"), value)])


async def open_service(root: Path, mode: str) -> TradingService:
    settings = make_settings(approval={"mode": mode}, execution={"retry_delay_seconds": 0.01})
    engine = PaperEngine(
        seed=3, markets=settings.exchange.markets, balances={"USDT": 100000, "BTC": 1, "ETH": 10, "SOL": 100}
    )
    service = await TradingService.open(settings, root / "store.db", exchange=PaperExchange(engine), poll_interval=0.02)
    await service.start()
    return service


async def feed(mode: str, lines: list[str], singles: list[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="tcfuzz"))
    service = await open_service(root, mode)
    try:
        records = await service.submit(lines, source="fuzz")
        for line in singles:  # the one-at-a-time door, as a file source uses it
            records.append(await service.receive(line, source="fuzz-one"))
        after = await service.receive(
            json.dumps({"id": "after-fuzz", "symbol": "BTC/USDT", "side": "buy", "amount": 0.01}), source="after"
        )
        stored = await service.store.signals()  # every row reads back: no poison row
        orders = await service.store.orders()
    finally:
        await service.close()
        shutil.rmtree(root, ignore_errors=True)

    assert len(records) == len(lines) + len(singles)
    assert len(stored) == len(records) + 1
    for record, line in zip(records, lines + singles, strict=True):
        assert record.status in (S.INVALID, S.DUPLICATE, S.PENDING, S.APPROVED, S.EXPIRED), record
        assert not record.reason.startswith("internal error"), (line[:200], record.reason)
        if record.status is S.INVALID:
            assert record.reason and record.reason.isprintable(), record
        elif record.status is S.DUPLICATE:
            assert "seen before" in record.reason
        else:
            assert parse_signal(line) == record.signal  # only what the parser accepts goes on
        if mode == "manual":
            assert record.status is not S.APPROVED
    approved = {r.id for r in [*records, after] if r.status is S.APPROVED}
    if mode == "manual":
        assert orders == [], "an order without an operator's approval"
    else:
        assert {o.signal_id for o in orders} <= approved, "an order for a signal that was not approved"
    assert after.status is (S.PENDING if mode == "manual" else S.APPROVED), after  # intake goes on


@fuzz(60)
@given(
    st.sampled_from(["manual", "auto"]),
    st.lists(fuzz_lines(), min_size=1, max_size=12),
    st.lists(fuzz_lines(), max_size=3),
)
def test_the_service_records_every_fuzz_line_and_keeps_going(mode, lines, singles):
    asyncio.run(feed(mode, lines, singles))


async def test_a_lone_surrogate_in_the_raw_text_is_recorded_invalid(tmp_path):
    service = await open_service(tmp_path, "manual")
    try:
        (record,) = await service.submit(['{"id": "s\ud800", "symbol": "BTC/USDT"}'], source="fuzz")
        assert record.status is S.INVALID and "surrogate" in record.reason
    finally:
        await service.close()


@pytest.mark.parametrize("mode", ["manual", "auto"])
@pytest.mark.parametrize("stale", [{"created_at": "2020-01-01T00:00:00Z"}, {"ttl_seconds": 5e-324}])
async def test_a_signal_stale_on_arrival_is_expired_and_never_ordered(tmp_path, mode, stale):
    service = await open_service(tmp_path, mode)
    try:
        raw = json.dumps(
            {
                "id": "stale-1",
                "symbol": "BTC/USDT",
                "side": "buy",
                "amount": 0.01,
                "order_type": "limit",
                "price": 60000,
                **stale,
            }
        )
        (record,) = await service.submit([raw], source="fuzz")
        assert record.status is S.EXPIRED and "TTL" in record.reason
        assert await service.store.orders() == []
    finally:
        await service.close()
