"""One long text whole: a Log line or a finished order's reason, opened with `enter`."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class DetailScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DetailScreen {
        align: center middle;
        background: $background 60%;
    }
    DetailScreen #dialog {
        width: 90;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: round $primary;
        border-title-style: bold;
        background: $surface;
        padding: 1 2;
    }
    DetailScreen #text-scroll {
        height: auto;
        max-height: 1fr;
    }
    DetailScreen #text {
        width: 100%;
    }
    """

    BINDINGS = [Binding("escape,enter,q", "close", "back", id="detail.close", key_display="esc")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            with VerticalScroll(id="text-scroll"):
                yield Static(self.text, id="text", markup=False)
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
