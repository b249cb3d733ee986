"""`make chaos`: the kill -9 soak at full size, at Binance's limits and at the emulator's defaults.

    .venv/bin/python -m tests.chaos [--kills 110] [--signals 400] [--seed 1] [--jobs 2] [--workdir DIR]
    .venv/bin/python tests/chaos/run.py ...
    .venv/bin/python -m tests.chaos --recheck DIR   # the checks again on a finished soak's workdir

`--kills` and `--signals` are per soak (two soaks: 220 kills by default). Prints a line per run,
then the counts of both soaks as one table and every failed invariant with its evidence; exits
1 if any invariant failed, 0 otherwise. Everything a soak leaves (faults file, signals, store,
the venue's record, one log per run) stays in its workdir for the post-mortem.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python tests/chaos/run.py`: import the tree this file is in
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.chaos.harness import BINANCE_LIMITS, DEFAULT_LIMITS, Scenario, format_table, recheck, run_soaks


def scenarios(kills: int, signals: int, seed: int) -> list[Scenario]:
    return [
        Scenario("binance-limits", BINANCE_LIMITS, kills=kills, signals=signals, seed=seed),
        Scenario("default-limits", DEFAULT_LIMITS, kills=kills, signals=signals, seed=seed + 1),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=110, help="SIGKILLs per soak (default: 110, 220 in all)")
    parser.add_argument("--signals", type=int, default=400, help="signals per soak (default: 400)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="soaks run at once (default: 2)")
    parser.add_argument("--workdir", default=None, help="default: /tmp/tradeconsole-chaos-<pid>")
    parser.add_argument("--recheck", metavar="DIR", help="run nothing: check the soaks a run left in DIR again")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.recheck:
        workdir = Path(args.recheck)
        soaks = [recheck(soak.parent) for soak in sorted(workdir.glob("*/soak.json"))]
        if not soaks:
            parser.error(f"no soak (*/soak.json) in {workdir}")
    else:
        workdir = Path(args.workdir or f"/tmp/tradeconsole-chaos-{os.getpid()}")
        soaks = run_soaks(scenarios(args.kills, args.signals, args.seed), workdir, jobs=args.jobs)
    for soak in soaks:
        if not soak.ok:
            print(f"\n==== {soak.counts.scenario}: FAILED\n{soak.report()}")
    print(f"\n{format_table([s.counts for s in soaks])}")
    verdict = "every invariant held" if all(s.ok for s in soaks) else "INVARIANTS FAILED"
    took = "rechecked" if args.recheck else f"{time.monotonic() - started:.0f}s wall"
    print(f"\nchaos: {sum(s.counts.kills for s in soaks)} kills, {verdict}, {took}")
    print(f"workdir: {workdir}")
    return 0 if all(s.ok for s in soaks) else 1


if __name__ == "__main__":
    sys.exit(main())
