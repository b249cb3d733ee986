"""Pre-trade checks in one place, and the balances they check against.

Every check of an order before it is sent lives here: `check_order` (precision, minimums,
maximums and free balance, with a reason per field; the service's check of an amended signal
calls it too), `check_amend` (a new price or total for a live order, never past what its signal
asked for) and `price_moved` (a market order's live price against the slippage tolerance).
Placement runs them when it prepares an intent and when a restart re-checks one. `limit_price`
puts a limit order's price the tolerance away from its reference, on the venue's grid.
After a restart, `stale_signal` runs them again (with the TTL) on an intent a crash left, and
one that may no longer be sent ends `failed`, its signal back to the operator (`signal_back`).

`balances` are the venue's, refreshed by tracking and by reconciliation; between two refreshes
`_reserve` takes what a placed intent will lock out of them, so that two signals approved at
the same moment cannot both pass the free-balance check with the same money.

A mixin of `TradeExecutor` (`executor.executor` says why the executor's jobs are mixins): it
reads `markets`, `execution_config` and the store, owns `balances`, and ends a stale intent
through the one write path (`_commit`, under the order's lock).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from executor.errors import PriceMoved
from executor.events import AmendCheck, BalancesUpdated, SignalDecided
from executor.exchanges.base import ExchangeError
from executor.models import (
    ZERO,
    Balance,
    JournalSource,
    Order,
    OrderStatus,
    OrderType,
    Side,
    SignalRecord,
    SignalStatus,
    to_decimal,
)
from executor.signals import fmt
from executor.states import check_signal_transition
from executor.store import StaleWrite, Statement

O = OrderStatus
J = JournalSource
STALE = "stale after restart"


def quantize_price(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """Put a limit price on the grid without going past the tolerance: buy rounds down, sell up."""
    if tick <= 0:
        return price
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    return (price / tick).to_integral_value(rounding=rounding) * tick


def limit_price(reference: Decimal, pct: float, tick: Decimal, side: Side) -> Decimal:
    factor = to_decimal(pct) / 100
    raw = reference * (1 + factor) if side is Side.BUY else reference * (1 - factor)
    return quantize_price(raw, tick, side)


class PreTrade:
    """The pre-trade checks and the balances (with local reservations) they check against."""

    async def refresh_balances(self) -> dict[str, Balance]:
        balances = await self._call("fetch_balances", self.exchange.fetch_balances)
        self.balances = balances
        await self._publish_balances()
        return balances

    async def _publish_balances(self) -> None:
        quote = "USDT"
        if self.markets:
            quotes = [m.quote for m in self.markets.values()]
            quote = max(set(quotes), key=quotes.count)
        prices: dict[str, Decimal] = {quote: Decimal(1)}
        for currency in self.balances:
            symbol = f"{currency}/{quote}"
            if currency != quote and symbol in self.markets:
                try:
                    prices[currency] = (await self.ticker(symbol, max_age=5.0)).mid
                except ExchangeError:
                    pass  # valued later; a missing price is shown as such, not as zero
        self.bus.publish(BalancesUpdated(dict(self.balances), prices, quote))

    def free(self, currency: str) -> Decimal:
        balance = self.balances.get(currency)
        return balance.free if balance else ZERO

    def _reserve(self, order: Order) -> None:
        """Take what a placed intent will lock out of the free balance it was checked against."""
        # Local reservation until the next balance refresh replaces the cache with the venue's truth.
        market = self.markets[order.symbol]
        if order.side is Side.BUY:
            currency, amount = market.quote, order.amount * (order.price or ZERO) * (1 + market.taker_fee)
        else:
            currency, amount = market.base, order.amount
        b = self.balances.get(currency)
        if b is not None:
            self.balances[currency] = Balance(currency, b.free - amount, b.used + amount)

    def check_order(
        self,
        symbol: str,
        side: Side,
        type_: OrderType,
        amount: Decimal | None,
        price: Decimal | None,
        *,
        releasing: Decimal = ZERO,
    ) -> AmendCheck:
        """Pre-trade checks with reasons per field: precision, minimums, maximums, free balance.

        `releasing` is quote (buy) or base (sell) that a cancel-and-replace frees first.
        """
        try:
            return self._check_order(symbol, side, type_, amount, price, releasing)
        except (InvalidOperation, ArithmeticError):  # a magnitude no venue trades
            return AmendCheck({"amount": "amount or price is out of any market's range"}, amount, price, None, None)

    def _check_order(self, symbol, side, type_, amount, price, releasing) -> AmendCheck:
        errors: dict[str, str] = {}
        market = self.markets.get(symbol)
        if market is None:
            return AmendCheck(
                {"symbol": f"{symbol} is not a market on {self.exchange.name}"}, amount, price, None, None
            )
        if amount is None or amount <= 0:
            errors["amount"] = "must be greater than 0"
        elif amount < market.min_amount:
            errors["amount"] = f"{fmt(amount)} is below the minimum {fmt(market.min_amount)} {market.base}"
        elif market.max_amount and amount > market.max_amount:
            errors["amount"] = f"{fmt(amount)} is above the maximum {fmt(market.max_amount)} {market.base}"
        elif market.amount_step > 0 and amount % market.amount_step != 0:
            errors["amount"] = f"{fmt(amount)} is off the amount grid (step {fmt(market.amount_step)})"
        if type_ is OrderType.LIMIT:
            if price is None or price <= 0:
                errors["price"] = "a limit order needs a price greater than 0"
            elif market.price_tick > 0 and price % market.price_tick != 0:
                errors["price"] = f"{fmt(price)} is off the price grid (tick {fmt(market.price_tick)})"
        notional = fee = None
        if amount and amount > 0 and price and price > 0:
            notional = amount * price
            fee_rate = market.taker_fee if type_ is OrderType.MARKET else max(market.maker_fee, market.taker_fee)
            fee = notional * fee_rate
            if market.min_cost > 0 and notional < market.min_cost and "amount" not in errors:
                errors["amount"] = (
                    f"notional {fmt(notional.quantize(Decimal('0.01')))} {market.quote} is below the minimum "
                    f"{fmt(market.min_cost)} {market.quote}"
                )
            if self.balances and "amount" not in errors:
                if side is Side.BUY:
                    need, have, ccy = notional + fee, self.free(market.quote) + releasing, market.quote
                else:
                    need, have, ccy = amount, self.free(market.base) + releasing, market.base
                if need > have:
                    errors["amount"] = f"insufficient free {ccy}: needs {fmt(_round(need))}, free {fmt(_round(have))}"
        return AmendCheck(errors, amount, price, notional, fee)

    async def price_moved(self, record: SignalRecord, type_: OrderType) -> PriceMoved | None:
        """For a market order: the refusal when the live price left the tolerance, else None."""
        signal = record.signal
        assert signal is not None
        if type_ is not OrderType.MARKET or signal.symbol not in self.markets:
            return None
        cfg = self.execution_config
        live = (await self.ticker(signal.symbol)).touch(signal.side)
        ref = record.reference_price or live
        moved = abs(live - ref) / ref * 100
        if moved <= to_decimal(cfg.slippage_tolerance_pct):
            return None
        return PriceMoved(
            f"price moved: {signal.symbol} {fmt(live)} is {fmt(moved.quantize(Decimal('0.01')))}% from "
            f"the reference {fmt(ref)} (tolerance {cfg.slippage_tolerance_pct}%)",
            live,
        )

    async def check_amend(
        self, coid: str, *, price: Decimal | None = None, amount: Decimal | None = None
    ) -> AmendCheck:
        """Validate an amend of an open order without sending anything (the modal calls this).

        `amount` is the new total for the signal, its filled part included; the replacement
        trades `amount - filled`. It may not exceed what the signal asked for.
        """
        order = self.current(coid)
        if order is None or not order.status.is_live:
            state = order.status if order else "final"
            return AmendCheck({"order": f"{coid} cannot be amended ({state})"}, amount, price, None, None)
        signal_amount = await self._signal_amount(order)
        filled = await self._signal_filled(order)
        target = amount if amount is not None else signal_amount
        new_price = price if price is not None else order.price
        remaining = target - filled
        releasing = (
            order.remaining * (order.price or ZERO) * Decimal("1.001") if order.side is Side.BUY else (order.remaining)
        )
        check = self.check_order(order.symbol, order.side, order.type, remaining, new_price, releasing=releasing)
        errors = dict(check.errors)
        if target > signal_amount:
            errors["amount"] = f"at most {fmt(signal_amount)}, what the signal asked for"
        elif remaining <= 0:
            errors["amount"] = f"{fmt(filled)} is already filled; the new total must be larger"
        elif "amount" in errors:
            errors["amount"] = f"remaining {fmt(remaining)}: {errors['amount']}"
        return AmendCheck(errors, remaining, new_price, check.notional, check.fee)

    async def _signal_filled(self, order: Order) -> Decimal:
        """Base filled across every exchange order of the order's signal."""
        if not order.signal_id:
            return (self.current(order.client_order_id) or order).filled
        siblings = await self.store.orders_for_signal(order.signal_id)
        return sum(((self.current(o.client_order_id) or o).filled for o in siblings), ZERO)

    async def _signal_amount(self, order: Order) -> Decimal:
        if order.signal_id:
            record = await self.store.get_signal(order.signal_id)
            if record is not None and record.amount is not None:
                return record.amount
        return order.amount

    # -- after a restart ----------------------------------------------------------------------

    async def stale_signal(self, record: SignalRecord, order: Order | None = None) -> str | None:
        """After a restart: why the signal's intent may no longer be sent (TTL, price moved, free
        balance), having ended the order `failed` and sent the signal back; None if it may."""
        reason: str | None = None
        status = SignalStatus.PENDING
        live: Decimal | None = None
        signal = record.signal
        if record.expires_at is not None and record.expires_at <= self.clock():
            reason, status = f"{STALE}: TTL passed", SignalStatus.EXPIRED
        elif signal is not None:
            type_ = order.type if order else OrderType(signal.order_type or self.execution_config.order_type)
            moved = await self.price_moved(record, type_)
            if moved is not None:
                reason, live = f"{STALE}: {moved}", moved.live_price
            elif order is not None:
                check = self.check_order(
                    order.symbol,
                    order.side,
                    order.type,
                    order.amount,
                    order.price or (await self.ticker(order.symbol)).touch(order.side),
                )
                if not check.ok:
                    reason = f"{STALE}: " + "; ".join(f"{k}: {v}" for k, v in check.errors.items())
        if reason is None:
            return None
        extra: list[Statement] = []
        if order is not None and order.status is O.NEW:
            async with self.locks.hold(order.client_order_id):
                mine = self.current(order.client_order_id)
                if mine is None or mine.status is not O.NEW:
                    return None  # someone sent or ended it meanwhile: nothing stale to give up
                extra = self._signal_back_statements(record, status, reason, live)
                await self._commit(order.client_order_id, O.FAILED, source=J.RECONCILE, last_error=reason, extra=extra)
            self._publish_signal(record, status, reason, live)
        else:
            await self.signal_back(record, status, reason, live_price=live)
        self._error(f"{record.id}: {reason}", signal_id=record.id, level="warning")
        return reason

    def _signal_back_statements(self, record, status, reason, live) -> list[Statement]:
        check_signal_transition(record.status, status, record.id)
        return self.store.signal_update(self._signal_copy(record, status, reason, live), record.status, "executor")

    def _signal_copy(self, record: SignalRecord, status, reason, live) -> SignalRecord:
        changes: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "decided_at": self.clock(),
            "decided_by": "executor",
        }
        if live is not None and record.signal is not None and record.signal.price is None:
            changes["reference_price"] = live  # approving again means "at today's price"
        return record.model_copy(update=changes)

    def _publish_signal(self, record, status, reason, live) -> None:
        self.bus.publish(SignalDecided(self._signal_copy(record, status, reason, live)))

    async def signal_back(
        self, record: SignalRecord, status: SignalStatus, reason: str, *, live_price: Decimal | None = None
    ) -> None:
        """An approved signal back to the operator (or expired), nothing sent."""
        try:
            await self.store.transact(self._signal_back_statements(record, status, reason, live_price))
        except StaleWrite:
            return  # decided meanwhile by someone else: theirs stands
        self._publish_signal(record, status, reason, live_price)


def _round(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00000001")).normalize()
