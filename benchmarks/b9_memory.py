"""B9: the core's resident memory, growth from 10,000 to 100,000 paper signals (goal <= 10 MB).

The real headless path: `tradeconsole run --headless --until-idle --signals -` in its own process
(paper exchange, auto approval, slippage tolerance 5 % so that every market signal gets its order,
a temporary SQLite store, its control socket, logging at INFO to stderr as always), fed market
signals (3 markets, buys and sells, the sizes of B2) on its stdin.
The first FIRST signals are written, and once the core has logged every one of their orders
terminal and a second has passed, its resident set (VmRSS in /proc/<pid>/status) is read; then the
rest up to TOTAL, the same wait, the second reading. The value is the difference, in MB (2**20
bytes). Then stdin is closed and the core must exit 0 on its own (idle).

`make bench` measures the row's full interval, 10,000 -> 100,000 (about two minutes of its five
at 800 signals/s); `python -m benchmarks.b9_memory FIRST TOTAL` measures any other interval
(`10000 30000` to iterate on a change in half a minute), and its `met` is only ever given for the
full one (a shorter one cannot show that 90,000 signals fit in 10 MB).

`python -m benchmarks.b9_memory --tracemalloc [FIRST TOTAL]` runs the same path in-process (the
service `run --headless` builds, a stdin-like source fed as the core takes it; no log lines)
under tracemalloc and prints the top allocators (file:line, and by file) of the growth between
the two points, and the core's containers that grew (their lengths): what the growth is made of.
What tracemalloc does not see is the allocators' own: RSS also holds pymalloc's partly used
arenas and glibc's heap (`sys._debugmallocstats()` tells them apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST = 10_000
TOTAL = 100_000
GOAL_MB = 10.0
SIZES = {"BTC/USDT": 0.001, "ETH/USDT": 0.01, "SOL/USDT": 0.1}
BALANCES = {"USDT": 10**10, "BTC": 10**6, "ETH": 10**7, "SOL": 10**8}
TERMINAL = re.compile(r" order \S+ \S+ \S+ \S+ \S+ (filled|canceled|expired|rejected|failed)$")
SETTLE = 1.0
STALL = 60
# The last diagnosis (10,000 -> 100,000 with `sys._debugmallocstats()` at each point and tracemalloc
# 10,000 -> 20,000, 2026-12-01, before executor/seen.py); rerun it after a change.
MADE_OF = (
    "what it is made of (the last diagnosis, before accepted ids were kept in fixed memory): the paper "
    "engine holds every open order and the last 5,000 ended ones its client was told of "
    "(executor/venue/records.py), no more; about 3 MB of pymalloc arenas are left partly used "
    "(allocator fragmentation, all of it by 30,000); the accepted signal ids, then a growing set "
    "(+5.8 MB of objects, +3.8 MB of heap), are now a fixed 20,000 recent ids and a 2 MB Bloom filter "
    "(executor/seen.py)"
)


def signals(start: int, stop: int, seed: int = 9) -> list[str]:
    rng = random.Random(f"{seed}:{start}")
    picks = [(rng.choice(sorted(SIZES)), rng.choice(["buy", "sell"])) for _ in range(start, stop)]
    return [
        json.dumps({"id": f"b9-{i}", "symbol": symbol, "side": side, "amount": SIZES[symbol], "order_type": "market"})
        for i, (symbol, side) in enumerate(picks, start)
    ]


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


def _env(tmp: str) -> dict[str, str]:
    from benchmarks._venue import clean_env

    return clean_env(
        tmp,
        TRADECONSOLE_EXCHANGE__ID="paper",
        TRADECONSOLE_EXCHANGE__MARKETS=json.dumps(sorted(SIZES)),
        TRADECONSOLE_APPROVAL__MODE="auto",
        # Every signal gets its order: none goes back to pending because the synthetic
        # price moved 0.1 % between its intake and its order (that one would never end).
        TRADECONSOLE_EXECUTION__SLIPPAGE_TOLERANCE_PCT="5",
        TRADECONSOLE_PAPER__BALANCES=json.dumps(BALANCES),
    )


async def measure(first: int = FIRST, total: int = TOTAL, also: tuple[int, ...] = ()) -> dict:
    """RSS after `first` and after `total` signals (and after each count in `also`, for --growth)."""
    counts = sorted({first, total, *also})
    with tempfile.TemporaryDirectory(prefix="tcbench-b9-") as tmp:
        db = Path(tmp) / "b9.db"
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "console",
            "run",
            "--headless",
            "--until-idle",
            "--signals",
            "-",
            "--db",
            str(db),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_env(tmp),
            limit=1 << 20,
        )
        assert proc.stdin is not None and proc.stderr is not None
        terminal = 0
        reached: dict[int, asyncio.Event] = {n: asyncio.Event() for n in counts}
        tail: list[str] = []
        problems: list[str] = []

        async def read() -> None:
            nonlocal terminal
            assert proc.stderr is not None
            while raw := await proc.stderr.readline():
                line = raw.decode(errors="replace").rstrip()
                if TERMINAL.search(line):
                    terminal += 1
                    if line.endswith((" rejected", " failed", " expired", " canceled")) and len(problems) < 5:
                        problems.append(line)
                    if terminal in reached:
                        reached[terminal].set()
                else:
                    tail.append(line)
                    del tail[:-30]
            for event in reached.values():
                event.set()  # the core exited: nobody waits forever

        reader = asyncio.create_task(read())
        points = {}
        try:
            for start, stop in zip([0, *counts[:-1]], counts, strict=True):
                t0 = time.perf_counter()
                for k in range(start, stop, 5000):
                    proc.stdin.write(("\n".join(signals(k, min(stop, k + 5000))) + "\n").encode())
                    await proc.stdin.drain()
                seen = -1
                while not reached[stop].is_set():  # give up after STALL s without one more order
                    if terminal == seen:
                        raise RuntimeError(f"no order ended in {STALL} s, {terminal} so far:\n" + "\n".join(tail))
                    seen = terminal
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reached[stop].wait(), timeout=STALL)
                if terminal < stop:
                    raise RuntimeError(f"the core exited after {terminal} orders:\n" + "\n".join(tail))
                seconds = time.perf_counter() - t0
                await asyncio.sleep(SETTLE)
                rss, hwm = rss_mb(proc.pid)
                points[stop] = {"rss_mb": rss, "hwm_mb": hwm, "seconds": seconds, "rate": (stop - start) / seconds}
            proc.stdin.close()
            code = await asyncio.wait_for(proc.wait(), timeout=120)
            await reader
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            reader.cancel()
    return {
        "first": first,
        "total": total,
        "points": points,
        "exit": code,
        "terminal": terminal,
        "problems": problems,
        "wall_s": time.perf_counter() - started,
        "growth_mb": points[total]["rss_mb"] - points[first]["rss_mb"],
    }


def run(total: int = TOTAL, first: int = FIRST) -> dict:
    r = asyncio.run(measure(first, total))
    a, b = r["points"][first], r["points"][total]
    full = first == FIRST and total == TOTAL
    per_10k = r["growth_mb"] / (total - first) * 10_000
    ok = r["exit"] == 0 and not r["problems"]
    scale = (
        "the full interval"
        if full
        else "a shorter interval than the row's 10,000 -> 100,000: met is only given for the full interval"
    )
    return {
        "value": round(r["growth_mb"], 1),
        "unit": "MB",
        "goal": f"<= {GOAL_MB:g} MB",
        "met": full and ok and r["growth_mb"] <= GOAL_MB,
        "detail": f"{first:,} -> {total:,} signals ({scale}): VmRSS {a['rss_mb']:.1f} MB -> {b['rss_mb']:.1f} MB "
        f"(+{per_10k:.1f} MB per 10,000 signals; peak {b['hwm_mb']:.1f} MB) of `run --headless --until-idle "
        f"--signals -` (paper, auto-approved market signals); {a['rate']:.0f} then {b['rate']:.0f} signals/s, "
        f"{r['wall_s']:.0f} s in all, exit {r['exit']}"
        + (f"; problems: {r['problems']}" if r["problems"] else "")
        + f"; {MADE_OF}",
    }


# -- what the growth is made of (not part of `make bench`) ----------------------------------------


async def _traced(first: int, total: int, top: int = 15) -> None:
    import tracemalloc

    from executor.config import load_config
    from executor.events import OrderUpdated
    from executor.service import TradingService

    with tempfile.TemporaryDirectory(prefix="tcbench-b9t-") as tmp:
        settings = load_config(None, env=_env(tmp))
        service = await TradingService.open(settings, Path(tmp) / "b9.db")
        await service.start()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def stdin_like():
            while (line := await queue.get()) is not None:
                yield line

        service.add_source(stdin_like(), name="stdin")
        terminal = [0]

        def count(event) -> None:
            if isinstance(event, OrderUpdated) and event.order.status.is_terminal:
                terminal[0] += 1

        service.bus.subscribe(count)
        tracemalloc.start(1)
        snaps, census = {}, {}
        for start, stop in ((0, first), (first, total)):
            batch = signals(start, stop)
            for k in range(0, len(batch), 500):  # as the core takes them from a pipe, not all at once
                for line in batch[k : k + 500]:
                    queue.put_nowait(line)
                while terminal[0] < start + k:
                    await asyncio.sleep(0.05)
            while terminal[0] < stop:
                await asyncio.sleep(0.2)
            await asyncio.sleep(SETTLE)
            snaps[stop] = tracemalloc.take_snapshot()
            census[stop] = _census(service)
            print(
                f"{stop:,} signals: traced {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MB, "
                f"VmRSS {rss_mb()[0]:.1f} MB",
                flush=True,
            )
        queue.put_nowait(None)
        await service.run_until_idle()
        await service.close()
    stats = snaps[total].compare_to(snaps[first], "lineno")
    print(f"top {top} allocators of the growth {first:,} -> {total:,} (size diff, count diff):")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / 2**20:+8.2f} MB {stat.count_diff:+9,d}  {frame.filename}:{frame.lineno}")
    print("by file:")
    for stat in snaps[total].compare_to(snaps[first], "filename")[:8]:
        print(f"  {stat.size_diff / 2**20:+8.2f} MB {stat.count_diff:+9,d}  {stat.traceback[0].filename}")
    print("containers of the core that grew (length at each point):")
    a, b = census[first], census[total]
    for name in sorted(b, key=lambda k: a.get(k, 0) - b[k]):
        if b[name] - a.get(name, 0) >= (total - first) // 10:
            print(f"  {a.get(name, 0):>9,d} -> {b[name]:>9,d}  {name}")


def _census(
    root: object, name: str = "service", depth: int = 0, seen: set[int] | None = None, out: dict[str, int] | None = None
) -> dict[str, int]:
    """The lengths of every container attribute of the core's objects (its own modules), 3 levels deep."""
    seen = set() if seen is None else seen
    out = {} if out is None else out
    if id(root) in seen or depth > 3:
        return out
    seen.add(id(root))
    attrs = dict(getattr(root, "__dict__", {}))
    for slot in getattr(type(root), "__slots__", ()):
        if hasattr(root, slot):
            attrs[slot] = getattr(root, slot)
    for key, value in attrs.items():
        if isinstance(value, dict | set | list | tuple | frozenset) or (
            hasattr(value, "__len__") and not isinstance(value, str | bytes)
        ):
            try:
                out[f"{name}.{key}"] = len(value)
            except TypeError:
                pass
        if type(value).__module__.startswith(("executor", "console")) and hasattr(value, "__dict__"):
            _census(value, f"{name}.{key}", depth + 1, seen, out)
    return out


if __name__ == "__main__":
    if "--tracemalloc" in sys.argv:
        nums = [int(a) for a in sys.argv[1:] if a.isdigit()]
        asyncio.run(_traced(*(nums or [FIRST, TOTAL])))
    else:
        nums = [int(a) for a in sys.argv[1:] if a.isdigit()]
        print(run(*(nums[:2][::-1] or [TOTAL])))
