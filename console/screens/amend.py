"""Amend a pending signal or an open order: a modal that validates as you type.

The modal knows nothing about the service: it is given the current values and a `check`
coroutine (the service's `check_signal_amend` / `check_order_amend`), shows the errors per field
with the resulting order price, notional and fee, the market price and how far the order price is
from it, and dismisses with the changed values only. Its fields say what they are: a signal's
"reference price" (the slippage rule turns it into the order price) or an open order's "order
price" (sent as typed). Beyond `far_from_market_pct` the core asks for a confirmation on submit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from console import formatting as f
from executor.events import MarketQuote
from executor.models import Order, OrderType, SignalRecord, distance_pct

if TYPE_CHECKING:
    from executor.events import AmendCheck

Check = Callable[[Decimal | None, Decimal | None], Awaitable["AmendCheck"]]


@dataclass(frozen=True, slots=True)
class AmendTarget:
    title: str
    summary: Content
    price: Decimal | None
    amount: Decimal
    quote: str
    base: str
    price_label: str = "price"
    amount_label: str = "amount"
    amount_hint: str = ""
    market: MarketQuote | None = None  # the core's market view when the dialog opened
    far_pct: Decimal = Decimal(0)  # `[approval] far_from_market_pct` (0 = never)
    price_hint: str = ""

    @classmethod
    def for_signal(cls, record: SignalRecord, default_type: OrderType, market: MarketQuote | None = None,
                   far_pct: Decimal = Decimal(0), slippage_pct: Decimal | float = 0) -> AmendTarget:
        signal = record.signal
        assert signal is not None and record.amount is not None
        order_type = signal.order_type or default_type
        return cls(
            title=f"Amend signal {record.id}",
            summary=Content(f.signal_summary(record, order_type.value)),
            price=record.reference_price,
            amount=record.amount,
            quote=signal.quote,
            base=signal.base,
            price_label="reference price",
            market=market,
            far_pct=far_pct,
            price_hint=f"the order price is this {'+' if signal.side.value == 'buy' else '-'} the "
            f"{f.number(Decimal(str(slippage_pct)))} % slippage rule" if order_type is OrderType.LIMIT
            else "a market order: checked against the live price when sent",
        )

    @classmethod
    def for_order(cls, order: Order, total: Decimal, market: MarketQuote | None = None,
                  far_pct: Decimal = Decimal(0)) -> AmendTarget:
        """`total` is what the signal asked for: the amount field is the signal's new total."""
        base, quote = order.symbol.split("/")
        filled = total - order.amount + order.filled
        return cls(
            title=f"Amend order {order.client_order_id}",
            summary=Content(f"{order.symbol}  {f.side_word(order.side)}  {order.type.value}  {order.status.value}"),
            price=order.price,
            amount=total,
            quote=quote,
            base=base,
            price_label="order price",
            amount_label="total amount",
            amount_hint=f"the signal's total; {f.number(filled)} filled so far, the replacement trades the rest",
            market=market,
            far_pct=far_pct,
            price_hint="sent as typed: the replacement order's limit price",
        )


@dataclass(frozen=True, slots=True)
class AmendRequest:
    """Only what the operator changed; None leaves a field as it was."""

    price: Decimal | None
    amount: Decimal | None


def parse(text: str) -> Decimal | None:
    text = text.strip().replace(",", "")
    if not text:
        return None
    value = Decimal(text)
    if not value.is_finite():
        raise InvalidOperation
    return value


class AmendScreen(ModalScreen[AmendRequest | None]):
    DEFAULT_CSS = """
    AmendScreen {
        align: center middle;
        background: $background 60%;
    }
    AmendScreen #dialog {
        width: 72;
        max-width: 95%;
        height: auto;
        border: round $primary;
        border-title-style: bold;
        background: $surface;
        padding: 0 2;
    }
    AmendScreen #summary {
        margin: 1 0;
        text-style: bold;
    }
    AmendScreen .field {
        height: 3;
    }
    AmendScreen .field-label {
        width: 24;
        padding: 1 0;
        color: $text-muted;
    }
    AmendScreen Input {
        width: 1fr;
    }
    AmendScreen Input.-invalid {
        border: tall $error;
    }
    AmendScreen .field-error {
        height: auto;
        min-height: 1;
        padding-left: 24;
        color: $text-error;
    }
    AmendScreen .field-error.-hint {
        color: $text-muted;
    }
    AmendScreen #result {
        margin: 1 0;
        height: auto;
    }
    AmendScreen #buttons {
        height: auto;
        align-horizontal: right;
        margin-bottom: 1;
    }
    AmendScreen Button {
        margin-left: 2;
    }
    """

    # esc only closes the dialog: "back", never "cancel", which would read like canceling the order.
    BINDINGS = [
        Binding("escape", "back", "back", id="amend.back"),
        Binding("ctrl+s", "submit", "amend", id="amend.submit"),
    ]

    def __init__(self, target: AmendTarget, check: Check, *, about: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.target = target
        self.check = check
        self.about = about  # ("signal", id) or ("order", client order id): the row this amends
        self.gone = ""  # why that row left while the dialog was open: nothing can be submitted
        self.errors: dict[str, str] = {}
        self.checks = 0  # validations finished, so tests can wait for one
        self._request: AmendRequest | None = None

    def compose(self) -> ComposeResult:
        t = self.target
        with Vertical(id="dialog") as dialog:
            dialog.border_title = t.title
            yield Static(t.summary, id="summary")
            yield Static(self._market_line(), id="market")
            with Horizontal(classes="field"):
                yield Label(f"{t.price_label} ({t.quote})", classes="field-label")
                yield Input(f.number(t.price) .replace(",", "") if t.price is not None else "", id="price",
                            restrict=r"[0-9.,]*", placeholder="market")
            yield Static(t.price_hint, id="price-error", classes="field-error -hint")
            with Horizontal(classes="field"):
                yield Label(f"{t.amount_label} ({t.base})", classes="field-label")
                yield Input(f.number(t.amount).replace(",", ""), id="amount", restrict=r"[0-9.,]*")
            yield Static(t.amount_hint, id="amount-error", classes="field-error -hint")
            yield Static("", id="result")
            with Horizontal(id="buttons"):
                yield Button("Amend (enter)", id="submit", variant="primary", disabled=True)
                yield Button("Back (esc)", id="back")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#amount", Input).focus()
        self.validate()

    @on(Input.Changed)
    def _changed(self) -> None:
        self._request = None  # nothing can be submitted until these values are checked
        self.validate()

    @work(group="amend-check", exclusive=True, exit_on_error=False)
    async def validate(self) -> None:
        t = self.target
        errors: dict[str, str] = {}
        values: dict[str, Decimal | None] = {}
        for name in ("price", "amount"):
            try:
                values[name] = parse(self.query_one(f"#{name}", Input).value)
            except InvalidOperation:
                errors[name] = "not a number"
        price = values.get("price")
        amount = values.get("amount")
        new_price = price if price != t.price else None
        new_amount = amount if amount != t.amount else None
        if "amount" not in errors and amount is None:
            errors["amount"] = "required"
        check: AmendCheck | None = None
        if not errors:
            try:
                check = await self.check(new_price, new_amount)
            except Exception as exc:  # the check reads the store: say so here, in the dialog
                errors["check"] = f"cannot be checked: {exc}"
            else:
                errors = dict(check.errors)
        if not errors and new_price is None and new_amount is None:
            errors["change"] = "change the price or the amount"
        if self.gone:
            errors["gone"] = self.gone
        self._show(errors, check)
        self._request = AmendRequest(new_price, new_amount) if not errors else None
        self.query_one("#submit", Button).disabled = self._request is None
        self.checks += 1

    def _show(self, errors: dict[str, str], check: AmendCheck | None) -> None:
        t = self.target
        self.errors = errors
        for name in ("price", "amount"):
            box = self.query_one(f"#{name}-error", Static)
            message = errors.get(name)
            box.set_class(message is None, "-hint")
            box.update(message or (t.amount_hint if name == "amount" else t.price_hint))
            self.query_one(f"#{name}", Input).set_class(message is not None, "-invalid")
        others = [v if k == "gone" else f"{k}: {v}" for k, v in errors.items()
                  if k not in ("price", "amount", "change")]
        parts: list[Content] = []
        if check is not None and check.notional is not None:
            parts.append(Content.from_markup(
                "notional [b]$n[/b] $q · fee $fee $q", n=f.money(check.notional), q=t.quote,
                fee=f.number(check.fee.quantize(Decimal("0.0001")) if check.fee is not None else None),
            ))
        if check is not None and check.price is not None:
            parts.insert(0, Content.from_markup("order price [b]$p[/b] $q", p=f.number(check.price), q=t.quote))
            far = self._far_note(check.price)
            if far is not None:
                parts.insert(1, far)
        if "change" in errors:
            parts.append(Content(errors["change"]).stylize("$text-muted"))
        parts.extend(Content(o).stylize("$text-error") for o in others)
        self.query_one("#result", Static).update(Content(" · ").join(parts))

    def _market_line(self) -> Content:
        quote = self.target.market
        if quote is None:
            return Content("market: no price yet").stylize("$text-muted")
        return Content.from_markup(
            "market [b]$m[/b] $q [$text-muted](mid; bid $bid, ask $ask, last $last)[/]",
            m=f.number(quote.mid), q=self.target.quote, bid=f.number(quote.bid), ask=f.number(quote.ask),
            last=f.number(quote.last),
        )

    def _far_note(self, price: Decimal) -> Content | None:
        """How far the order price is from the market; beyond the limit, that submitting asks first."""
        quote, limit = self.target.market, self.target.far_pct
        if quote is None or not quote.mid:
            return None
        distance = distance_pct(price, quote.mid)
        text = f"{f.pct(distance, 2)} from the market"
        if limit and abs(distance) > limit:
            return Content(f"{text}, beyond {f.number(limit)} %: asks to confirm").stylize("$text-warning")
        return Content(text).stylize("$text-muted")

    def _price_input(self) -> Decimal | None:
        try:
            return parse(self.query_one("#price", Input).value)
        except InvalidOperation:
            return None

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        if self._request is not None:
            self.dismiss(self._request)

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "submit":
            return None if self.gone else True
        return True

    def row_gone(self, why: str) -> None:
        """The signal or order this amends left (approved, filled, expired...): nothing to submit."""
        if self.gone:
            return
        self.gone = f"{why}: nothing to amend"
        self._request = None
        self.query_one("#submit", Button).disabled = True
        self.query_one("#dialog").add_class("-gone")
        self.refresh_bindings()
        self.validate()
