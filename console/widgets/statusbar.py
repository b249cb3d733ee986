"""The status bar: mode, exchange, reconciliation summary, intake state and rate-limit state."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label

from console import formatting as f
from executor.events import ReconcileResult

MODES = ("PAPER", "SANDBOX", "LIVE", "READ-ONLY")


def reconcile_summary(result: ReconcileResult | None, now: datetime) -> Content:
    if result is None:
        return Content.from_markup("[$text-muted]not reconciled yet")
    ago = f.duration((now - result.at).total_seconds())
    parts = [Content.from_markup("reconciled $ago ago", ago=ago),
             Content(f"{result.open} open")]
    unknown = Content(f"{result.unknown} unknown")
    parts.append(unknown.stylize("$text-error bold") if result.unknown else unknown)
    if result.drift:
        drift = ", ".join(f"{c} {'+' if d > 0 else ''}{f.number(d)}" for c, d in sorted(result.drift.items()))
        parts.append(Content(f"drift {drift}").stylize("$text-warning"))
    else:
        parts.append(Content("drift none"))
    if result.errors:
        n = len(result.errors)
        parts.append(Content(f"{n} error{'s' if n != 1 else ''}").stylize("$text-error bold"))
    return Content(" · ").join(parts)


class StatusBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Label("", id="mode")
        yield Label("", id="exchange")
        yield Label("", id="reconcile")
        yield Label("", id="intake")
        yield Label("", id="rate-limit")

    def show(
        self, *, mode: str, exchange: str, reconcile: ReconcileResult | None, now: datetime, paused: bool,
        intake_done: bool, rate_limit: str | None,
    ) -> None:
        badge = self.query_one("#mode", Label)
        badge.update(f" {mode or '…'} ")
        for name in MODES:
            badge.set_class(mode == name, f"-{name.lower()}")
        self.query_one("#exchange", Label).update(exchange)
        self.query_one("#reconcile", Label).update(reconcile_summary(reconcile, now))
        intake = self.query_one("#intake", Label)
        intake.update(" PAUSED " if paused else "intake done" if intake_done else "intake live")
        intake.set_class(paused, "-paused")
        limit = self.query_one("#rate-limit", Label)
        limit.display = rate_limit is not None
        limit.update(f"rate limit {rate_limit}")
        limit.set_class(rate_limit not in (None, "ok"), "-cooldown")
