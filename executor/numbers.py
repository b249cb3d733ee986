"""The one number formatter: how a quantity, price or amount of money becomes text, everywhere.

`fmt` is used by the executor's reasons and messages, the JSON exports (positions), the CLI's
tables and the console's cells (`console/formatting.py` adds only what a screen needs on top:
"—" for unknown, a market's precision, a column's width). One set of rules:

- a number reads as a human writes it: 0.00001, not 1E-5; 60000, not 6E+4; trailing zeros dropped;
- `places`: exactly that many decimals (rounded half to even, as `Decimal` does); `at_most`: at
  most that many, trailing zeros still dropped;
- `grouping`: thousands separators (1,234.5); `sign`: always a sign (+1.50, -1.50);
- zero has no minus sign (-0 reads 0), but a rounded figure keeps its sign: -0.004 to two places
  is -0.00, which says on which side of zero it lies;
- a magnitude no market has (5E-324, 2E+300, which only a bad signal carries) keeps its exponent
  instead of hundreds of zeros, unless fixed `places` ask for a rounded figure; so do NaN and
  Infinity, and a number past what `Decimal` can normalise.
"""

from __future__ import annotations

from decimal import Decimal

from executor.models import to_decimal

PLAIN_RANGE = 30  # |exponent| up to which a number is written out in full


def fmt(value: Decimal | float | int, places: int | None = None, *, at_most: int | None = None,
        grouping: bool = False, sign: bool = False) -> str:
    """`value` as text, by the rules above. A float is taken as it prints (0.1 is 0.1)."""
    d = to_decimal(value)
    spec = ("+" if sign else "") + ("," if grouping else "")
    if not d.is_finite():
        return str(d)
    if places is not None:
        return format(d, f"{spec}.{places}f")
    try:
        d = d.normalize()
    except ArithmeticError:  # an exponent past the context's (Decimal("9e999999999")): as it is
        return str(d)
    if d and not -PLAIN_RANGE <= d.adjusted() <= PLAIN_RANGE:
        return str(d)
    if at_most is not None and d.as_tuple().exponent < -at_most:  # type: ignore[operator]
        d = d.quantize(Decimal(1).scaleb(-at_most)).normalize()
    if not d:
        d = abs(d)  # -0
    return format(d, f"{spec}f")


def places_of(value: Decimal) -> int:
    """How many decimals `value` has, trailing zeros aside: 0.010 has 2, 100 has 0."""
    return max(0, -value.normalize().as_tuple().exponent)  # type: ignore[operator]

