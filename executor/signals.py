"""Signal parsing and checking: one line of JSON in, a `Signal` or a reason naming the field out.

Two stages, as SPEC section 5 orders them: the schema (`parse_signal`, pure, no exchange needed)
and the semantic checks against the venue's markets (`size_signal`: unknown market, amount off
the precision grid or below the minimum, notional below the minimum). Balance is checked later,
at execution, because it changes while a signal waits for its operator.

JSON is read strictly (`load_json`, which the webhook uses for a whole body too): a key given
twice is refused, never "last one wins"; NaN, Infinity and numbers a float cannot carry (1e999,
1e-999, an integer of thousands of digits) are refused naming where they stand instead of
turning into inf, 0 or a crash; so are nesting deeper than `MAX_NESTING` and text that is not
Unicode (a lone surrogate such as "\\ud800", which no store or terminal can write). Every
problem is a `SignalError`, a `ValueError` whose message names the place.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, DefaultContext, localcontext
from typing import Any

from pydantic import ValidationError

from executor.models import MarketInfo, Signal, to_decimal
from executor.numbers import fmt  # the one number formatter; importable from here too

MAX_NESTING = 32  # levels of objects/arrays in one document: a signal needs 3 (itself, meta, one more)
MAX_SIGNAL_CHARS = 64 * 1024  # one signal's text; note is 280 characters, meta is small
MAX_REASONS = 8  # problems named in one reason; the rest are counted
_FLAT = (str, int, float, bool, type(None))  # one object of these, decoded from text without escapes: see _decode
# created_at: the unix epoch to a year whose date plus the longest TTL still fits a datetime.
EARLIEST_CREATED_AT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_CREATED_AT = datetime(9000, 1, 1, tzinfo=UTC)


class SignalError(ValueError):
    """A signal that cannot be accepted. `reason` names the field and the problem."""

    def __init__(self, reason: str, signal_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.signal_id = signal_id


# -- strict JSON ------------------------------------------------------------------------------


class _Bad:
    """What the decoder's hooks leave in place of a number it cannot carry, to be named by path."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


class _Twice(dict):
    """An object in which a key appeared more than once (the first such key is `key`)."""

    __slots__ = ("key",)


def _number_text(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-8:]} ({len(text)} characters)"


def _parse_float(text: str) -> Any:
    value = float(text)
    if math.isinf(value):
        return _Bad(f"{_number_text(text)} is too large for a number (the limit is about 1.8e308)")
    if value == 0 and re.search(r"[1-9]", text.split("e")[0].split("E")[0]):
        return _Bad(f"{_number_text(text)} is too small for a number: it would read as 0")
    return value


def _parse_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (4300): no signal means that
        return _Bad(f"an integer of {len(text.lstrip('-'))} digits is too large for a number")


def _parse_constant(name: str) -> Any:
    return _Bad(f"{name} is not valid JSON (a JSON number is finite)")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    twice = None
    for key, value in pairs:
        if twice is None and key in obj:
            twice = key
        obj[key] = value
    if twice is None:
        return obj
    marked = _Twice(obj)
    marked.key = twice
    return marked


_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _quoted(key: str) -> str:
    """A key as a reason shows it: quoted, control characters and the like escaped, cut short."""
    text = json.dumps(key)
    return text if len(text) <= 42 else text[:38] + '..."'


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _SIMPLE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{_quoted(str(part))}]"
    return out


def _check_tree(value: Any, duplicate_hint: str) -> list[str]:
    """Every problem the strict decoder marked in a decoded document, each naming its path.
    Iterative, so that a document nested as deep as the decoder allows cannot exhaust the stack."""
    problems: list[str] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        kind = type(node)
        if kind is int or kind is bool or node is None:  # most of a big document: nothing to check
            continue
        # The path in words only for a problem (for every node, a 64 KiB body of small values took 1 s).
        if kind is str or kind is float or isinstance(node, str | float):
            if (problem := _scalar_problem(node)) is not None:
                problems.append(f"{_path(path) or 'document'}: {problem}")
        elif isinstance(node, _Bad):
            problems.append(f"{_path(path) or 'document'}: {node.problem}")
        elif isinstance(node, dict | list):
            where = _path(path) or "document"
            if len(path) >= MAX_NESTING:
                problems.append(f"{_path(path[:1])}: nested deeper than {MAX_NESTING} levels")
                continue
            if isinstance(node, _Twice):
                key = _quoted(node.key)
                if path:
                    problems.append(f"duplicate key {key} in {where}: an object names each key once")
                else:
                    problems.append(f"duplicate key {key}: {duplicate_hint}")
            if isinstance(node, dict):
                children = []
                for key, item in node.items():
                    if isinstance(key, str) and (bad := _SURROGATE.search(key)) is not None:
                        problems.append(f"{_path((*path, key))}: the key is not valid text: {_lone(bad.group())}")
                    children.append((item, (*path, key)))
                stack.extend(reversed(children))
            else:
                stack.extend(reversed([(item, (*path, i)) for i, item in enumerate(node)]))
    return problems


def _scalar_problem(value: str | float | int | None) -> str | None:
    """A float not finite (only in a caller's dict: text never decodes to one) or a lone surrogate."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if isinstance(value, str) and (bad := _SURROGATE.search(value)) is not None:
        return _lone(bad.group())
    return None


def _lone(char: str) -> str:
    return f"a lone surrogate \\u{ord(char):04x} is not Unicode text"


_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[\[\]{}]')


def _field_at(text: str | bytes | bytearray, pos: int | None = None, *, deeper_than: int | None = None) -> str:
    """The top-level field of the object `text` holds at character `pos` (or where its nesting
    first passes `deeper_than`), as `"amount: "`; "" if none (the top level, or not an object).
    Only for a reason: it reads past any syntax error and never raises."""
    try:
        if not isinstance(text, str):
            text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
        depth, field, root = 0, None, None
        for token in _TOKEN.finditer(text):
            if pos is not None and token.end() > pos:
                break
            mark = token.group()
            if mark[0] == '"':
                if depth == 1 and token.group(1) and root == "{":
                    field = json.loads(mark[: mark.rindex('"') + 1], strict=False)
            elif mark in "[{":
                root = root or mark
                depth += 1
                if deeper_than is not None and depth > deeper_than:
                    break
            else:
                depth -= 1
                if depth == 0:
                    field = None
        if depth >= 1 and field is not None:
            return f"{_path((field,))}: "
    except Exception:  # a better reason is not worth any failure
        pass
    return ""


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_parse_constant
)


def _decode(text: str | bytes | bytearray, duplicate_hint: str) -> Any:
    if isinstance(text, str) and (bad := _SURROGATE.search(text)) is not None:
        where = _field_at(text, bad.start())
        raise SignalError(f"{where}not valid text: {_lone(bad.group())} (at character {bad.start()})")
    unescaped = isinstance(text, str) and "\\" not in text  # no escape: no lone surrogate in its strings
    try:
        # What `json.loads` does, with one decoder for every call: bytes decoded as JSON allows, a BOM refused.
        if isinstance(text, bytes | bytearray):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        elif isinstance(text, str) and text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except RecursionError:
        where = _field_at(text, deeper_than=MAX_NESTING)
        raise SignalError(f"{where}not valid JSON: nested far deeper than {MAX_NESTING} levels") from None
    except json.JSONDecodeError as exc:
        raise SignalError(f"{_field_at(exc.doc, exc.pos)}not valid JSON: {exc}") from None
    except ValueError as exc:  # UnicodeDecodeError for bytes
        raise SignalError(f"not valid JSON: {exc}") from None
    if unescaped and type(value) is dict and all(type(v) in _FLAT for v in value.values()):
        return value  # no nesting, no key twice (a `_Twice` is no dict), no marker: nothing to look for
    problems = _check_tree(value, duplicate_hint)
    if problems:
        raise SignalError(_join(problems))
    return value


def load_json(text: str | bytes | bytearray) -> Any:
    """Decode one JSON document by the rules a signal is read with, for a caller that takes a
    whole body (the webhook): the value, or `SignalError` (a `ValueError`) saying what is wrong
    and where, e.g. `duplicate key "amount" in [1]: ...` or `[0].meta.x: NaN is not valid JSON`.

    Refused: a key given twice in one object (never "last one wins"); NaN and Infinity; a number
    a float cannot hold (1e999, 1e-999 which would read as 0, an integer of more than 4300
    digits); nesting deeper than `MAX_NESTING`; a lone surrogate ("\\ud800") anywhere. Never
    raises anything else for any text (bytes are decoded as JSON allows: UTF-8/16/32); the size
    of the text is the caller's to bound (`MAX_SIGNAL_CHARS` bounds one signal's).
    """
    return _decode(text, "an object names each key once")


def _join(reasons: list[str]) -> str:
    unique = list(dict.fromkeys(reasons))
    if len(unique) > MAX_REASONS:
        more = len(unique) - MAX_REASONS
        unique = [*unique[:MAX_REASONS], f"and {more} more problem{'s' if more > 1 else ''}"]
    return "; ".join(unique)


# -- the schema -------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_FIELD_HINTS = {
    "id": "must be 1-64 characters of A-Z a-z 0-9 . _ : -",
    "symbol": "must be BASE/QUOTE in capitals, e.g. BTC/USDT",
    "side": "must be 'buy' or 'sell'",
    "order_type": "must be 'market' or 'limit'",
    "created_at": "must be an ISO 8601 date-time with a timezone, e.g. 2026-11-23T10:00:00Z",
}


def _describe(error: dict[str, Any]) -> str:
    loc = _path(tuple(error["loc"])) or "signal"
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return f"{loc}: unknown field (not in the signal schema; free-form extras go under 'meta')"
    if kind == "missing":
        return f"{loc}: required"
    top = str(error["loc"][0]) if error["loc"] else ""
    if top in _FIELD_HINTS:
        return f"{loc}: {_FIELD_HINTS[top]} (got {_shown(value)})"
    if kind in ("float_type", "float_parsing"):
        if isinstance(value, int) and not isinstance(value, bool):  # too many digits for a float
            return f"{loc}: must be a number no market exceeds (got an integer of {len(str(abs(value)))} digits)"
        return f"{loc}: must be a number (got {_shown(value)})"
    if kind == "finite_number":
        return f"{loc}: must be a finite number (got {_shown(value)})"
    if kind == "greater_than":
        return f"{loc}: must be greater than 0 (got {_shown(value)})"
    if kind == "less_than_equal":
        limit = error.get("ctx", {}).get("le")
        return f"{loc}: must be at most {limit:g}, no market trades more (got {_shown(value)})"
    if kind in ("string_type",):
        return f"{loc}: must be a string (got {_shown(value)})"
    if kind == "string_too_long":
        limit = error.get("ctx", {}).get("max_length")
        return f"{loc}: longer than {limit} characters"
    if kind in ("dict_type",):
        return f"{loc}: must be a JSON object"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "value_error" and not error["loc"]:
        return f"amount, quote_amount: {message}"
    return f"{loc}: {message}"


def _shown_id(value: Any) -> str | None:
    """The id an invalid signal is recorded under: what it says, if a person can read it."""
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
        return value
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _after_schema(signal: Signal) -> list[str]:
    """Checks past the schema's letter that keep a signal writable and showable: free text
    without control characters (the console prints it; an ESC would drive the terminal), and a
    created_at whose date, plus the longest TTL, is still a date."""
    problems = []
    for name in ("strategy", "note"):
        text = getattr(signal, name)
        if text is not None and (bad := _CONTROL.search(text)) is not None:
            problems.append(
                f"{name}: must be plain one-line text (control character U+{ord(bad.group()):04X} "
                f"at character {bad.start()})"
            )
    created = signal.created_at
    if created is not None:
        try:
            in_range = EARLIEST_CREATED_AT <= created < LATEST_CREATED_AT
        except OverflowError:
            in_range = False
        if not in_range:
            problems.append(
                f"created_at: must be between {EARLIEST_CREATED_AT:%Y-%m-%d} and {LATEST_CREATED_AT:%Y-%m-%d} "
                f"(got {_shown(created.isoformat())})"
            )
    return problems


def parse_signal(raw: str | bytes | bytearray | dict[str, Any]) -> Signal:
    """Validate one signal against the schema. Raises `SignalError` naming every bad field.

    Text is read with `load_json`'s rules (a duplicate key is refused as
    `duplicate key "amount": a signal names each field once`) and may be at most
    `MAX_SIGNAL_CHARS` long. Never raises anything but `SignalError`, whatever the input.
    """
    if isinstance(raw, dict):
        obj: Any = raw
        problems = _check_tree(raw, "a signal names each field once")
        if problems:
            raise SignalError(_join(problems), _shown_id(raw.get("id")))
    elif isinstance(raw, str | bytes | bytearray):
        if len(raw) > MAX_SIGNAL_CHARS:
            raise SignalError(f"signal: {len(raw)} characters, more than the {MAX_SIGNAL_CHARS} one signal may have")
        obj = _decode(raw, "a signal names each field once")
    else:
        raise SignalError(f"a signal must be JSON text, got {type(raw).__name__}")
    if not isinstance(obj, dict):
        raise SignalError(f"a signal must be a JSON object, got {_kind(obj)}")
    signal_id = _shown_id(obj.get("id"))
    # The schema gives every field a type and null is none of them: an optional field is left
    # out, not sent as null (the model alone would take null for "absent").
    nulls = [
        f"{name}: null is not a value here (leave the field out instead)"
        for name, value in obj.items()
        if value is None and name in Signal.model_fields and not Signal.model_fields[name].is_required()
    ]
    try:
        signal = Signal.model_validate(obj)
    except ValidationError as exc:
        reasons = [_describe(e) for e in exc.errors(include_url=False)]
        raise SignalError(_join(nulls + reasons), signal_id) from None
    problems = nulls + _after_schema(signal)
    if problems:
        raise SignalError(_join(problems), signal_id)
    return signal


def _kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# -- the venue's checks -----------------------------------------------------------------------


_MAX_DIGITS = 1000  # working precision at most: a quotient beyond it is no market's (1e970 steps)


def _digits(value: Decimal, step: Decimal) -> int:
    """Digits enough for `value / step`'s integer part and 30 past it, within `_MAX_DIGITS`."""
    return min(_MAX_DIGITS, max(28, value.adjusted() - step.adjusted() + 30))


def on_grid(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole multiple of `step`, exactly, whatever the magnitudes (integer
    arithmetic on the digits: `value % step` raises once the quotient outgrows the context)."""
    if step <= 0:
        return True
    if not value.is_finite() or not step.is_finite():
        return False
    _, v_digits, v_exp = value.as_tuple()
    _, s_digits, s_exp = step.as_tuple()
    v = int(Decimal((0, v_digits, 0)))
    s = int(Decimal((0, s_digits, 0)))
    if v == 0:
        return True
    assert isinstance(v_exp, int) and isinstance(s_exp, int)
    if v_exp >= s_exp:  # v * 10**(v_exp - s_exp) divisible by s
        return v % s * pow(10, v_exp - s_exp, s) % s == 0
    shift = s_exp - v_exp  # v divisible by s * 10**shift, which outgrows v past its length
    return shift < len(v_digits) and v % (s * 10**shift) == 0


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """`value` rounded down onto the grid of `step`; never above `value`, whatever the digits."""
    if step <= 0 or on_grid(value, step):
        return value
    with localcontext(DefaultContext) as ctx:  # not a context ccxt set traps in
        ctx.prec = _digits(value, step)
        ctx.rounding = ROUND_DOWN  # a rounded quotient or product can only fall short, never over
        return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def _quote_to_base(quote: Decimal, price: Decimal, step: Decimal) -> Decimal:
    """`quote / price` rounded down onto the grid: the amount never costs more than `quote`."""
    with localcontext(DefaultContext) as ctx:
        ctx.prec = min(_MAX_DIGITS, max(60, quote.adjusted() - price.adjusted() - step.adjusted() + 60))
        ctx.rounding = ROUND_DOWN
        return floor_to_step(quote / price, step)


def size_signal(signal: Signal, markets: dict[str, MarketInfo], reference_price: Decimal | None) -> Decimal:
    """The base amount this signal trades, after the venue's checks. Raises `SignalError`.

    An explicit `amount` must already sit on the market's grid (a strategy that sends an
    amount the venue would round is told, not silently changed); a `quote_amount` is converted
    at the reference price and rounded down onto the grid, so it never spends more than asked.
    A `price` below one tick of the market is no price there (5e-324 would make a quote_amount
    an astronomical amount).
    """
    market = markets.get(signal.symbol)
    if market is None:
        known = ", ".join(sorted(markets)[:6]) + (", ..." if len(markets) > 6 else "")
        raise SignalError(f"symbol: {signal.symbol} is not a market on this exchange (markets: {known})", signal.id)
    if signal.price is not None and market.price_tick > 0 and to_decimal(signal.price) < market.price_tick:
        raise SignalError(
            f"price: {fmt(to_decimal(signal.price))} is below the {market.symbol} price tick {fmt(market.price_tick)}",
            signal.id,
        )
    if signal.amount is not None:
        amount = to_decimal(signal.amount)
        if amount < market.min_amount:
            raise SignalError(
                f"amount: {fmt(amount)} is below the {market.symbol} minimum amount {fmt(market.min_amount)}",
                signal.id,
            )
        if not on_grid(amount, market.amount_step):
            raise SignalError(
                f"amount: {fmt(amount)} is off the {market.symbol} amount grid (step {fmt(market.amount_step)})",
                signal.id,
            )
    else:
        if reference_price is None or reference_price <= 0:
            raise SignalError(f"quote_amount: no reference price for {market.symbol} to convert it", signal.id)
        quote = to_decimal(signal.quote_amount)  # type: ignore[arg-type]
        amount = _quote_to_base(quote, reference_price, market.amount_step)
        if amount < market.min_amount or amount <= 0:
            raise SignalError(
                f"quote_amount: {fmt(quote)} {market.quote} buys {fmt(amount)} "
                f"{market.base}, below the {market.symbol} minimum amount {fmt(market.min_amount)}",
                signal.id,
            )
    if reference_price is not None and market.min_cost > 0:
        notional = amount * reference_price
        if notional < market.min_cost:
            raise SignalError(
                f"notional: {fmt(notional.quantize(Decimal('0.01')))} {market.quote} is below the "
                f"{market.symbol} minimum notional {fmt(market.min_cost)} {market.quote}",
                signal.id,
            )
    if market.max_amount is not None and amount > market.max_amount:
        raise SignalError(
            f"amount: {fmt(amount)} is above the {market.symbol} maximum amount {fmt(market.max_amount)}", signal.id
        )
    return amount
