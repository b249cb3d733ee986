"""`make bench`: run every benchmark of SPEC section 11 and print the budget as a table.

A row that has no measurement yet says so; no number here is estimated.
"""

from __future__ import annotations

import importlib
import sys
import traceback

BENCHMARKS = [
    ("B1", "signal-to-ack through the executor / bare ccxt create_order (emulator, 5 ms latency)", None),
    ("B2", "headless paper throughput, auto-approved, full lifecycle, journal on", "b2_paper_throughput"),
    ("B3", "console, 10,000 open orders, 500 updates/s: key press to screen p95", None),
    ("B4", "demo process start to first full screen", None),
    ("B5", "restart after kill -9 with 1,000 open orders to reconciled", None),
    ("B6", "burst of 500 orders: share of the venue's order-rate limit, zero 429s", None),
]


def main() -> int:
    rows = []
    for bid, what, module in BENCHMARKS:
        if module is None:
            rows.append((bid, what, "not measured yet", "", ""))
            continue
        try:
            mod = importlib.import_module(f"benchmarks.{module}")
            measured, goal, detail = mod.run()
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            measured, goal, detail = "error", "", str(exc)
        rows.append((bid, what, measured, goal, detail))
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    header = ("id", "what", "measured", "goal", "detail")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
