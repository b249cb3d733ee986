"""Signal parsing and checking: one line of JSON in, a `Signal` or a reason naming the field out.

Two stages, as SPEC section 5 orders them: the schema (`parse_signal`, pure, no exchange needed)
and the semantic checks against the venue's markets (`size_signal`: unknown market, amount off
the precision grid or below the minimum, notional below the minimum). Balance is checked later,
at execution, because it changes while a signal waits for its operator.
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from typing import Any

from pydantic import ValidationError

from executor.models import MarketInfo, Signal, to_decimal


class SignalError(ValueError):
    """A signal that cannot be accepted. `reason` names the field and the problem."""

    def __init__(self, reason: str, signal_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.signal_id = signal_id


def fmt(value: Decimal | float | int) -> str:
    """A number as a human writes it: 0.00001, not 1E-5; 60000, not 6E+4."""
    d = to_decimal(value) if not isinstance(value, Decimal) else value
    text = format(d.normalize(), "f")
    return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


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
    loc = ".".join(str(p) for p in error["loc"]) or "signal"
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


def parse_signal(raw: str | bytes | dict[str, Any]) -> Signal:
    """Validate one signal against the schema. Raises `SignalError` naming every bad field."""
    if isinstance(raw, dict):
        obj: Any = raw
    else:
        try:
            obj = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise SignalError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SignalError(f"a signal must be a JSON object, got {type(obj).__name__}")
    signal_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    try:
        return Signal.model_validate(obj)
    except ValidationError as exc:
        reasons = [_describe(e) for e in exc.errors(include_url=False)]
        raise SignalError("; ".join(dict.fromkeys(reasons)), signal_id) from None


def on_grid(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def size_signal(signal: Signal, markets: dict[str, MarketInfo], reference_price: Decimal | None) -> Decimal:
    """The base amount this signal trades, after the venue's checks. Raises `SignalError`.

    An explicit `amount` must already sit on the market's grid (a strategy that sends an
    amount the venue would round is told, not silently changed); a `quote_amount` is converted
    at the reference price and rounded down onto the grid, so it never spends more than asked.
    """
    market = markets.get(signal.symbol)
    if market is None:
        known = ", ".join(sorted(markets)[:6]) + (", ..." if len(markets) > 6 else "")
        raise SignalError(f"symbol: {signal.symbol} is not a market on this exchange (markets: {known})", signal.id)
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
        amount = floor_to_step(to_decimal(signal.quote_amount) / reference_price, market.amount_step)  # type: ignore[arg-type]
        if amount < market.min_amount or amount <= 0:
            raise SignalError(
                f"quote_amount: {fmt(to_decimal(signal.quote_amount))} {market.quote} buys {fmt(amount)} "  # type: ignore[arg-type]
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
