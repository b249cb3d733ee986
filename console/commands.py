"""The command palette's provider: every console action the current mode allows, and the themes."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from console.app import TradeConsole


class ConsoleCommands(Provider):
    def _commands(self) -> list[tuple[str, str, object]]:
        app: TradeConsole = self.app  # type: ignore[assignment]
        commands: list[tuple[str, str, object]] = []
        for binding in app.console_bindings():
            if app.can(binding.action):
                name = binding.tooltip[:1].upper() + binding.tooltip[1:]
                key = app.get_key_display(binding)
                commands.append((name, f"key: {key}", partial(app.run_action, binding.action)))
        for theme in app.console_themes():
            mark = " (current)" if theme == app.theme else ""
            commands.append((f"Theme: {theme}{mark}", "switch the colour theme",
                             partial(setattr, app, "theme", theme)))
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            if (score := matcher.match(name)) > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)  # type: ignore[arg-type]
