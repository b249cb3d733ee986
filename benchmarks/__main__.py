"""`make bench`: run every benchmark of SPEC section 11, print the budget as a table and write
`benchmarks/results.json` (`{"machine": {...}, "results": [{"id", "what", "value", "unit", "goal",
"met"}]}`). A row that has no measurement yet says so (`"value": null, "met": false`); no number
here is estimated.

`make bench ARGS=--growth` (`python -m benchmarks --growth`) instead measures how B2, B3 and B5
change from 100 to 10,000 orders and the core's resident memory after 100 to 100,000 paper
signals (B9's full 10,000 -> 100,000), prints a markdown table for the README's performance section
and writes it to `benchmarks/growth.md`; it leaves `results.json` alone and takes longer than the
5 minutes of `make bench`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")
GROWTH = Path(__file__).with_name("growth.md")

BENCHMARKS = [
    ("B1", "signal-to-ack through the executor / bare ccxt create_order (emulator, 5 ms latency)", "b1_ack_ratio"),
    ("B2", "headless paper throughput, auto-approved, full lifecycle, journal on", "b2_paper_throughput"),
    ("B3", "console, 10,000 open orders, 500 updates/s: key press to screen p95", "b3_console"),
    ("B4", "demo process start to first full screen", "b4_startup"),
    ("B5", "restart after kill -9 with 1,000 resting orders (emulator, 6,000 weight/min) to reconciled", "b5_restart"),
    ("B6", "burst of 500 resting orders: share of the venue's order-rate limit, zero 429s", "b6_order_rate"),
    ("B7", "attach start to first full screen, core running", "b7_attach"),
    ("B8", "core event to an attached console's screen at 500 updates/s, p95", "b8_attached_latency"),
    ("B9", "core resident memory growth from 10,000 to 100,000 paper signals", "b9_memory"),
]
GROWTH_SIZES = (100, 1_000, 10_000)
# (id, what the row shows, module): each module's run(n) at each of GROWTH_SIZES.
GROWTH_ROWS = [
    ("B2", "headless paper throughput (signals/s), n signals", "b2_paper_throughput"),
    ("B3", "console key press to screen p95 (ms), n open orders, 500 updates/s", "b3_console"),
    ("B5", "restart after kill -9 to reconciled (s), n resting orders", "b5_restart"),
]
B9_COUNTS = (100, 1_000, 10_000, 100_000)


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


def machine_line(m: dict) -> str:
    return f"{m['cpu']}, {m['cores']} cores, Python {m['python']}"


def _cell(value: float | None) -> str:
    if value is None:
        return "error"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"


def growth() -> int:
    """`--growth`: B2, B3 and B5 at 100, 1,000 and 10,000; the core's RSS from 100 to 100,000 signals."""
    from benchmarks import b9_memory

    m = machine()
    where = machine_line(m)
    load = [os.getloadavg()[0]]  # other work on the machine slows every row: say how much there was
    started = time.perf_counter()
    lines = ["| what | 100 | 1,000 | 10,000 | 100,000 | machine |", "|---|---|---|---|---|---|"]
    notes = []
    for bid, what, module in GROWTH_ROWS:
        run = importlib.import_module(f"benchmarks.{module}").run
        cells = []
        for n in GROWTH_SIZES:
            t0 = time.perf_counter()
            try:
                row = run(n)
                cells.append(row["value"])
                notes.append(f"{bid} at {n:,}: {row['value']} {row['unit']} ({row['detail']}) "
                             f"[{time.perf_counter() - t0:.0f} s]")
            except Exception as exc:
                traceback.print_exc()
                cells.append(None)
                notes.append(f"{bid} at {n:,}: error: {exc}")
            print(notes[-1], flush=True)
        lines.append(f"| {bid} {what} | " + " | ".join(_cell(c) for c in cells) + f" | — | {where} |")
    try:
        r = asyncio.run(b9_memory.measure(b9_memory.FIRST, b9_memory.TOTAL, also=B9_COUNTS))
        rss = [r["points"][n]["rss_mb"] for n in B9_COUNTS]
        what = (f"B9 core resident memory (MB) after n paper signals, `run --headless`; 10,000 -> 100,000: "
                f"{r['growth_mb']:+.1f} MB (goal <= 10 MB)")
        lines.append(f"| {what} | " + " | ".join(_cell(v) for v in rss) + f" | {where} |")
        notes.append("B9: " + ", ".join(f"{n:,}: {p['rss_mb']:.1f} MB (peak {p['hwm_mb']:.1f}, {p['rate']:.0f} "
                                        f"signals/s)" for n, p in sorted(r["points"].items()))
                     + f"; exit {r['exit']}; {r['wall_s']:.0f} s")
    except Exception as exc:
        traceback.print_exc()
        lines.append(f"| B9 core resident memory (MB) after n paper signals |{' error |' * 4} {where} |")
        notes.append(f"B9: error: {exc}")
    print(notes[-1], flush=True)
    elapsed = time.perf_counter() - started
    load.append(os.getloadavg()[0])
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    text = "\n".join([
        f"Growth (`make bench ARGS=--growth`, {stamp}, {where}, {m['os']}; {elapsed / 60:.0f} min, "
        f"load average {load[0]:.1f} at the start, {load[1]:.1f} at the end):",
        "",
        *lines,
        "",
        "<details><summary>each measurement</summary>",
        "",
        *(f"- {note}" for note in notes),
        "",
        "</details>",
        "",
    ])
    GROWTH.write_text(text)
    print()
    print("\n".join(lines))
    print(f"written to {GROWTH} ({elapsed:.0f} s)")
    return 0


def main() -> int:
    if "--growth" in sys.argv[1:]:
        return growth()
    started = time.perf_counter()
    results = []
    for bid, what, module in BENCHMARKS:
        row = {"id": bid, "what": what, "value": None, "unit": None, "goal": None, "met": False, "detail": ""}
        if module is None:
            row["detail"] = "not measured yet"
        else:
            t0 = time.perf_counter()
            try:
                row |= importlib.import_module(f"benchmarks.{module}").run()
            except Exception as exc:  # one broken benchmark must not hide the others
                traceback.print_exc()
                row["detail"] = f"error: {exc}"
            print(f"{bid}: {row['value']} {row['unit'] or ''} in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
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
    print(f"written to {RESULTS} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
