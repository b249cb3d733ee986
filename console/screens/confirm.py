"""A yes/no question as a modal screen: kill switch, large approvals, quitting with open orders."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static


class ConfirmScreen(ModalScreen[bool | None]):
    """Dismisses with True on `y`/the confirm button, False on `n`/escape/the other button.

    With `stay`, a third answer: escape or its button dismisses with None (neither)."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        background: $background 60%;
    }
    ConfirmScreen #dialog {
        width: 64;
        max-width: 95%;
        height: auto;
        border: round $primary;
        border-title-style: bold;
        background: $surface;
        padding: 1 2;
    }
    ConfirmScreen.-danger #dialog {
        border: round $error;
        border-title-color: $text-error;
    }
    ConfirmScreen #message {
        margin-bottom: 1;
    }
    ConfirmScreen #buttons {
        height: auto;
        align-horizontal: right;
    }
    ConfirmScreen Button {
        margin-left: 2;
    }
    ConfirmScreen #hint {
        color: $text-muted;
        width: 100%;
        text-align: right;
        margin-top: 1;
    }
    """

    BINDINGS = [
        Binding("y", "confirm", "yes", id="confirm.yes"),
        Binding("n,escape", "back_out", "no", id="confirm.no", key_display="n/esc"),
    ]

    def __init__(self, title: str, message: str, *, confirm: str = "Yes", back_out: str = "No",
                 danger: bool = False, about: tuple[str, str] | None = None, stay: str | None = None,
                 default_confirm: bool = False) -> None:
        super().__init__(classes="-danger" if danger else "")
        self.about = about  # ("signal", id): the row this question is about, if any
        self.gone = ""
        self.danger = danger
        self.title_text = title
        self.message = message
        self.confirm_label = confirm
        self.back_out_label = back_out
        self.stay_label = stay
        self.default_confirm = default_confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            yield Static(self.message, id="message", markup=False)
            with Horizontal(id="buttons"):
                yield Button(f"{self.confirm_label} (y)", id="confirm", variant="error" if self.danger else "primary")
                yield Button(f"{self.back_out_label} (n)", id="back-out")
                if self.stay_label:
                    yield Button(f"{self.stay_label} (esc)", id="stay")
            hint = f"y: {self.confirm_label.lower()} · n: {self.back_out_label.lower()} · esc: " \
                f"{self.stay_label.lower()}" if self.stay_label else "y confirms · n or esc backs out"
            yield Label(hint, id="hint")
        yield Footer()

    def on_mount(self) -> None:
        # The safe answer is the default.
        self.query_one("#confirm" if self.default_confirm else "#back-out", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        if not self.gone:
            self.dismiss(True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if action == "confirm" and self.gone else True

    @on(Button.Pressed, "#stay")
    def action_stay(self) -> None:
        self.dismiss(None)  # only offered by ThreeWayScreen

    def row_gone(self, why: str) -> None:
        """What this asks about left while it was open: it can only be backed out of now."""
        if self.gone:
            return
        self.gone = why
        self.query_one("#confirm", Button).disabled = True
        left = f"{why}: nothing left to {self.confirm_label.lower()}."
        self.query_one("#message", Static).update(f"{self.message}\n\n{left}")
        self.query_one("#hint", Label).update("n or esc goes back")
        self.refresh_bindings()

    @on(Button.Pressed, "#back-out")
    def action_back_out(self) -> None:
        self.dismiss(False)


class DetachScreen(ConfirmScreen):
    """Quitting a console attached to a core in another process: `n` (the default while orders are
    open) detaches and leaves the core trading, `y` stops the core, escape stays. Dismisses with
    False (detach), True (stop the core) or None (stay)."""

    DEFAULT_CSS = """
    DetachScreen #dialog {
        width: 76;
    }
    """
    inherit_bindings = False
    BINDINGS = [
        Binding("y", "confirm", "stop the core", id="confirm.yes"),
        Binding("n", "back_out", "detach", id="confirm.no"),
        Binding("escape", "stay", "stay", id="confirm.stay", key_display="esc"),
    ]

    def __init__(self, title: str, message: str, **kwargs) -> None:
        super().__init__(title, message, confirm="Stop the core", back_out="Detach", stay="Stay", danger=True,
                         **kwargs)
