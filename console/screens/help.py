"""Help: every key binding, what it does, and whether it can be used right now."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

HelpRow = tuple[str, str, str]  # key as shown, what it does, a longer explanation


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close", id="help.close")]

    def __init__(self, rows: list[HelpRow], footnote: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.footnote = footnote

    def compose(self) -> ComposeResult:
        width = max(len(key) for key, _, _ in self.rows)
        lines = [
            Content.from_markup("[b $text-accent]$key[/]  [b]$what[/]  [$text-muted]$detail",
                                key=key.ljust(width), what=what.ljust(14), detail=detail)
            for key, what, detail in self.rows
        ]
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Keys"
            with VerticalScroll(id="keys"):
                yield Static(Content("\n").join(lines))
            if self.footnote:
                yield Static(self.footnote, id="footnote")
            yield Label("esc or ? closes", id="hint")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
