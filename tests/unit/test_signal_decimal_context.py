"""The sizing helpers compute in a decimal context of their own: ccxt's `decimal_to_precision`
changes the calling thread's decimal context (it sets traps and rounding), and a signal sized
after a ccxt call in the same thread must be sized exactly as before it."""

from __future__ import annotations

import decimal
from decimal import Decimal

from executor.signals import floor_to_step


def test_sizing_after_ccxt_changed_the_threads_decimal_context():
    from ccxt.base.decimal_to_precision import ROUND, TICK_SIZE, decimal_to_precision

    before = floor_to_step(Decimal("1e-999999"), Decimal("7")), floor_to_step(Decimal("1.23456789"), Decimal("0.001"))
    saved = decimal.getcontext().copy()
    try:
        decimal_to_precision("0.123456", ROUND, 0.001, TICK_SIZE)
        assert floor_to_step(Decimal("1e-999999"), Decimal("7")) == before[0]
        assert floor_to_step(Decimal("1.23456789"), Decimal("0.001")) == before[1] == Decimal("1.234")
    finally:
        decimal.setcontext(saved)
