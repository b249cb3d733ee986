"""Signal sources: async iterators of lines (JSONL file, stdin, the demo strategy), see lines.py.

`attach` wires the configured ones to a started service, the same way for the console and the
headless runner.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from executor.models import ExchangeMode

if TYPE_CHECKING:
    from executor.config import Settings
    from executor.service import TradingService

log = logging.getLogger("tradeconsole.sources")


def attach(service: TradingService, settings: Settings, signals: str | None = None) -> None:
    """Start the sources of `[signals]` (or `signals`, a path or "-"): a JSONL file and the demo strategy."""
    if settings.signals.demo:
        if service.executor is None or service.mode != ExchangeMode.PAPER:
            # The demo strategy proposes real-looking orders: never on a venue with real money.
            log.warning("signals.demo is on but the exchange is %s, not paper: the demo strategy stays off",
                        service.mode)
        else:
            from executor.sources.demo import demo_signals, run_tag

            lines = demo_signals(service.executor.ticker, service.markets, seed=settings.paper.seed,
                                 tag=run_tag(service.clock()))
            service.add_source(lines, name="demo")
    path = signals or settings.signals.jsonl
    if path:
        from executor.sources.jsonl import read_lines

        # Followed, the file's place is journaled in the store, so that a restart resumes there.
        follow = settings.signals.follow
        service.add_source(read_lines(path, follow=follow, store=service.store if follow else None),
                           name=f"jsonl:{path}")
