"""The main screen's footer: Textual's `Footer`, recomposed once for a burst of binding changes,
and only when what it shows changed.

Textual's footer mounts and styles every key again whenever any binding change is announced;
at start-up focus, size and readiness each announce one, and a console with a live stream
announces them as the selection moves. What it shows (keys, labels, enabled, tooltips) is the
same as Textual's.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class ConsoleFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._recompose_pending = False
        self._composed: tuple | None = None  # what the keys on show were composed from

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._recompose_pending:
            self._recompose_pending = True
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        self._recompose_pending = False
        if self._shows() != self._composed:
            await self.recompose()

    def compose(self) -> ComposeResult:
        self._composed = self._shows()
        for widget in super().compose():
            if isinstance(widget, FooterKey) and "compact" in (widget._reactive_connect or {}):
                # Born with the footer's compactness it is bound to: the binding would otherwise
                # restyle it twice as it mounts (Textual's default, then the footer's value).
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget

    def _shows(self) -> tuple:
        """What `Footer.compose` draws the keys from."""
        if not self._bindings_ready:
            return ()
        active = self.screen.active_bindings.values()
        return (
            self.show_command_palette,
            self.app.ENABLE_COMMAND_PALETTE,
            tuple(
                (b.key, b.action, b.description, b.show, b.group, b.key_display, b.tooltip, enabled, tooltip)
                for _, b, enabled, tooltip in active
            ),
        )
