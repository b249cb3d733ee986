"""A yes/no question as a modal screen: kill switch, large approvals, quitting with open orders."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True on `y`/the confirm button, False on `n`/escape/the other button."""

    BINDINGS = [
        Binding("y", "confirm", "yes", id="confirm.yes"),
        Binding("n,escape", "back_out", "no", id="confirm.no"),
    ]

    def __init__(self, title: str, message: str, *, confirm: str = "Yes", back_out: str = "No",
                 danger: bool = False) -> None:
        super().__init__(classes="-danger" if danger else "")
        self.title_text = title
        self.message = message
        self.confirm_label = confirm
        self.back_out_label = back_out

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            yield Static(self.message, id="message")
            with Horizontal(id="buttons"):
                yield Button(f"{self.confirm_label} (y)", id="confirm", variant="error" if self.has_class(
                    "-danger") else "primary")
                yield Button(f"{self.back_out_label} (n)", id="back-out")
            yield Label("y confirms · n or esc backs out", id="hint")

    def on_mount(self) -> None:
        self.query_one("#back-out", Button).focus()  # the safe answer is the default

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#back-out")
    def action_back_out(self) -> None:
        self.dismiss(False)
