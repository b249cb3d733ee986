"""`make bench`: run every benchmark of SPEC section 11, print the budget as a table and write
`benchmarks/results.json` (`{"machine": {...}, "results": [{"id", "what", "value", "unit", "goal",
"met"}]}`). A row that has no measurement yet says so (`"value": null, "met": false`); no number
here is estimated.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import traceback
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")

BENCHMARKS = [
    ("B1", "signal-to-ack through the executor / bare ccxt create_order (emulator, 5 ms latency)", None),
    ("B2", "headless paper throughput, auto-approved, full lifecycle, journal on", "b2_paper_throughput"),
    ("B3", "console, 10,000 open orders, 500 updates/s: key press to screen p95", "b3_console"),
    ("B4", "demo process start to first full screen", "b4_startup"),
    ("B5", "restart after kill -9 with 1,000 resting orders (emulator, 6,000 weight/min) to reconciled", "b5_restart"),
    ("B6", "burst of 500 resting orders: share of the venue's order-rate limit, zero 429s", None),
    ("B7", "attach start to first full screen, core running", "b7_attach"),
    ("B8", "core event to an attached console's screen at 500 updates/s, p95", "b8_attached_latency"),
    ("B9", "core resident memory growth from 10,000 to 100,000 paper signals", None),
]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()}


def main() -> int:
    results = []
    for bid, what, module in BENCHMARKS:
        row = {"id": bid, "what": what, "value": None, "unit": None, "goal": None, "met": False, "detail": ""}
        if module is None:
            row["detail"] = "not measured yet"
        else:
            try:
                row |= importlib.import_module(f"benchmarks.{module}").run()
            except Exception as exc:  # one broken benchmark must not hide the others
                traceback.print_exc()
                row["detail"] = f"error: {exc}"
        results.append(row)
    RESULTS.write_text(json.dumps({"machine": machine(), "results": results}, indent=1) + "\n")
    header = ("id", "measured", "goal", "met", "what / detail")
    table = [
        (r["id"], "-" if r["value"] is None else f"{r['value']:,} {r['unit']}", r["goal"] or "", "yes" if r["met"]
         else "no", f"{r['what']}: {r['detail']}")
        for r in results
    ]
    widths = [max(len(h), *(len(str(t[i])) for t in table)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
