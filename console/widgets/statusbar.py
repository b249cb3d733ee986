"""The status bar: mode, exchange, reconciliation summary, intake state and rate-limit state."""

from __future__ import annotations

from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label

from console import formatting as f
from console.widgets.labels import relabel
from executor.events import ReconcileResult
from executor.models import ExchangeMode


def reconcile_summary(result: ReconcileResult | None, now: datetime, open_orders: int, unknown: int) -> Content:
    """When the last reconciliation ran and what it found (drift, errors), with today's order counts."""
    if result is None:
        parts = [Content("not reconciled yet").stylize("$text-muted")]
    else:
        parts = [Content(f"reconciled {f.duration((now - result.at).total_seconds())} ago")]
    parts.append(Content(f"{open_orders} open"))
    unknown_text = Content(f"{unknown} unknown")
    parts.append(unknown_text.stylize("$text-error bold") if unknown else unknown_text)
    if result is None:
        return Content(" · ").join(parts)
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
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: dict[Label, object] = {}
        self.mode = Label("", id="mode")
        self.exchange = Label("", id="exchange")
        self.reconcile = Label("", id="reconcile")
        self.intake = Label("", id="intake")
        self.rate_limit = Label("", id="rate-limit")

    def _update(self, label: Label, content: str | Content) -> None:
        # Only when its text really changed; the screen is laid out again only when its width did.
        relabel(label, content, self._shown)

    def compose(self) -> ComposeResult:
        yield from (self.mode, self.exchange, self.reconcile, self.intake, self.rate_limit)

    def show(
        self, *, mode: str, exchange: str, reconcile: ReconcileResult | None, open_orders: int, unknown: int,
        now: datetime, paused: bool, intake_done: bool, rate_limit: str | None, read_only: bool = False,
        disconnected: str | None = None,
    ) -> None:
        badge = self.mode
        self._update(badge, f" {mode or '…'} ")
        for name in ExchangeMode:
            badge.set_class(mode == name, f"-{name.lower()}")
        self._update(self.exchange, exchange)
        summary = reconcile_summary(reconcile, now, open_orders, unknown)
        if disconnected:  # an attached console whose core went away: what it shows is as of then
            summary = Content(" · ").join([Content(disconnected).stylize("$text-error bold"), summary])
        self._update(self.reconcile, summary)
        intake = self.intake
        self._update(intake, " PAUSED " if paused else "intake done" if intake_done else "intake live")
        intake.set_class(paused, "-paused")
        intake.set_class(not paused and not intake_done, "-live")
        intake.set_class(read_only and not paused, "-none")  # a reader cannot see the writer's intake
        limit = self.rate_limit
        limit.set_class(rate_limit is None, "-none")
        self._update(limit, f"rate limit {rate_limit}")
        limit.set_class(rate_limit not in (None, "ok"), "-cooldown")
        limit.set_class(rate_limit == "ok", "-ok")
