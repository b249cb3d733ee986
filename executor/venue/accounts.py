"""The paper engine's accounts: free and locked balances, and the money side of every fill.

Owns `Accounts`, the half of `PaperEngine` that moves money: opening balances, deposits, the
funds check of a new order, its lock (`used`), and the settlement of a fill (what it costs,
brings and charges, and the share of the lock it releases). Money is `Decimal` throughout.

Fees as Binance charges them without BNB discounts: in the asset the trade brings in, so a buy
pays its fee in the base currency (it receives `amount - fee` and pays `amount * price`), a sell
in the quote currency (it receives `amount * price - fee`). Each trade's fee is rounded to
`FEE_DECIMALS` places (Binance's commission precision), and that rounded fee is what moves.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from executor.models import Balance, Side, to_decimal
from executor.venue.market import Market
from executor.venue.orders import ZERO, EngineError, EngineOrder, ErrorKind, fmt

FEE_DECIMALS = 8  # Binance's baseCommissionPrecision / quoteCommissionPrecision
_FEE_QUANTUM = Decimal(1).scaleb(-FEE_DECIMALS)


class Accounts:
    """Balances per currency; `PaperEngine` mixes this in and sets the fee rates."""

    maker_fee: Decimal
    taker_fee: Decimal
    _lock_fee: Decimal  # what a buy limit order locks per unit of its cost
    _free: dict[str, Decimal]
    _used: dict[str, Decimal]

    def _open_accounts(self, balances: dict[str, Decimal | float | int | str]) -> None:
        self._free = {}
        self._used = {}
        for currency, amount in balances.items():
            value = to_decimal(amount)
            if value < 0:
                raise ValueError(f"balance of {currency} is negative")
            self._free[currency] = value
            self._used[currency] = ZERO

    def balances(self) -> dict[str, Balance]:
        return {c: Balance(c, self._free[c], self._used[c]) for c in self._free}

    def balance(self, currency: str) -> Balance:
        return Balance(currency, self._free.get(currency, ZERO), self._used.get(currency, ZERO))

    def deposit(self, currency: str, amount: Decimal | float | int | str) -> Balance:
        """Test and demo hook: money in (or out, when negative) that no trade explains, like a transfer."""
        value = to_decimal(amount)
        self._require(currency, -value)
        self._credit(currency, value)
        return self.balance(currency)

    def _credit(self, currency: str, amount: Decimal) -> None:
        if currency not in self._free:
            self._free[currency] = ZERO
            self._used[currency] = ZERO
        self._free[currency] += amount

    def _require(self, currency: str, needed: Decimal) -> None:
        free = self._free.get(currency, ZERO)
        if needed > free:
            raise EngineError(
                ErrorKind.INSUFFICIENT_FUNDS,
                f"Account has insufficient balance for requested action: needs {fmt(needed)} {currency}, "
                f"{fmt(free)} {currency} free.",
            )

    def _lock(self, currency: str, amount: Decimal) -> None:
        self._free[currency] -= amount
        self._used[currency] += amount

    def _release(self, m: Market, order: EngineOrder) -> None:
        """Give back whatever an order still locks (it ended)."""
        if order.locked:
            currency = m.info.quote if order.side is Side.BUY else m.info.base
            self._used[currency] -= order.locked
            self._free[currency] += order.locked
            order.locked = ZERO

    def _settle(self, m: Market, order: EngineOrder, qty: Decimal, price: Decimal, maker: bool) -> tuple[Decimal, str]:
        """Move the money of one trade of `order`; returns its fee and the fee's currency."""
        info = m.info
        cost = qty * price
        rate = self.maker_fee if maker else self.taker_fee
        if order.side is Side.BUY:
            # Charged in what the buy brings in, the base currency, as Binance does.
            fee, fee_currency = _fee(qty * rate), info.base
            if order.price is not None:
                release = qty * order.price * self._lock_fee
                order.locked -= release
                self._used[info.quote] -= release
                self._free[info.quote] += release
            self._free[info.quote] -= cost
            self._credit(info.base, qty - fee)
        else:
            fee, fee_currency = _fee(cost * rate), info.quote
            if order.price is not None:
                order.locked -= qty
                self._used[info.base] -= qty
            else:
                self._free[info.base] -= qty
            self._credit(info.quote, cost - fee)
        return fee, fee_currency


def _fee(value: Decimal) -> Decimal:
    """A trade's fee at Binance's commission precision."""
    return value.quantize(_FEE_QUANTUM, rounding=ROUND_HALF_UP)
