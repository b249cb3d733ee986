"""Help: every key binding, what it does, and whether it can be used right now."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

HelpRow = tuple[str, str, str]  # key as shown, what it does, a longer explanation


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
    }
    HelpScreen #dialog {
        width: 100;
        max-width: 95%;
        height: auto;
        max-height: 95%;
        border: round $primary;
        border-title-style: bold;
        background: $surface;
        padding: 1 2;
    }
    HelpScreen #keys {
        height: auto;
        max-height: 1fr;
    }
    HelpScreen #grid {
        grid-size: 3;
        grid-columns: 11 15 1fr;
        grid-rows: auto;
        height: auto;
    }
    HelpScreen #grid > Label {
        width: 100%;
        height: auto;
    }
    HelpScreen .key {
        color: $text-accent;
        text-style: bold;
    }
    HelpScreen .what {
        text-style: bold;
    }
    HelpScreen .detail {
        color: $text-muted;
    }
    HelpScreen #footnote {
        margin-top: 1;
        color: $text-warning;
    }
    HelpScreen #hint {
        color: $text-muted;
        width: 100%;
        text-align: right;
        margin-top: 1;
    }
    """

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close", id="help.close", key_display="esc")]

    def __init__(self, rows: list[HelpRow], footnote: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.footnote = footnote

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Keys"
            with VerticalScroll(id="keys"), Grid(id="grid"):
                for key, what, detail in self.rows:
                    yield Label(key, classes="key", markup=False)
                    yield Label(what, classes="what", markup=False)
                    yield Label(detail, classes="detail", markup=False)
            if self.footnote:
                yield Static(self.footnote, id="footnote")
            yield Label("esc or ? closes", id="hint")
        yield Footer()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
