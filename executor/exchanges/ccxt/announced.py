"""What Binance says about its limits, read: its rate-limit lists and its count headers.

Owns reading the entries of Binance's rate-limit lists (exchangeInfo's `rateLimits`, the answer to
`GET /api/v3/rateLimit/order`), the name of its order-count header for a window
(X-MBX-ORDER-COUNT-10S, -1D) and the number in a header of an answer, for `discipline`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

INTERVALS = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86_400.0}
USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
_INTERVAL_LETTERS = ((86_400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def order_count_header(seconds: float) -> str:
    """Binance's header for the order count of a window of `seconds` (10 -> X-MBX-ORDER-COUNT-10S)."""
    for unit, letter in _INTERVAL_LETTERS:
        if seconds >= unit and seconds % unit == 0:
            return f"x-mbx-order-count-{int(seconds // unit)}{letter}"
    return f"x-mbx-order-count-{seconds:g}s"


def limit_entries(entries: Any, field: str) -> Iterator[tuple[Any, float, float]]:
    """(rateLimitType, seconds, `field`) of each entry of a Binance rate-limit list we can read
    (exchangeInfo's `rateLimits`, with "limit"; rateLimit/order's answer, with "count")."""
    for entry in entries if isinstance(entries, list) else ():
        try:
            seconds = INTERVALS[str(entry["interval"])] * int(entry.get("intervalNum", 1))
            kind, value = entry.get("rateLimitType"), float(entry[field])
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
        yield kind, seconds, value


def header_number(headers: Any, name: str) -> float | None:
    """The number in header `name` (any case; the largest where ccxt joined repeats with ", ")."""
    if not isinstance(headers, dict):
        return None
    value = headers.get(name, headers.get(name.upper()))
    if value is None:
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
        if value is None:
            return None
    numbers = []
    for part in str(value).split(","):
        with contextlib.suppress(ValueError):
            numbers.append(float(part))
    return max(numbers) if numbers else None
