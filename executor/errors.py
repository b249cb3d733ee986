"""The executor's operator-facing refusals: `ExecutionError` and `PriceMoved`.

A leaf module, so that each of the executor's modules can raise them without importing
`TradeExecutor`; everything outside the executor imports them from `executor.executor`, its
public face.
"""

from __future__ import annotations

from decimal import Decimal


class ExecutionError(Exception):
    """An operator-facing refusal (pre-trade check, wrong state). The message is the reason."""


class PriceMoved(ExecutionError):
    """A market order's live price left the slippage tolerance: back to the operator."""

    def __init__(self, message: str, live_price: Decimal) -> None:
        super().__init__(message)
        self.live_price = live_price
