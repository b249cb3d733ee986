"""B4: `tradeconsole demo` process start to first full screen (goal <= 0.5 s), median of 5.

The demo runs in a real pseudo-terminal: a detached `tmux` session of 120x36, its own tmux server
(`-L`, a private socket) so that nothing of the user's tmux is touched, a fresh config dir and a
fresh store in a temp dir. The pane's command is `sh -c 'date +%s.%N > started; exec tradeconsole
demo ...'`: the time stamped just before `exec` is the process start (the Python interpreter's own
start-up is counted). The pane is read with `tmux capture-pane` every 5 ms; the first full screen
is the first capture that shows every pane's border title (Signals, Orders, Log, Balances) and the
status bar with the mode the core reports (PAPER): the screen with the core's state in it, not
only the empty frame drawn before the service is up (that one's time is reported as "first paint").
The polling adds up to 5 ms plus one capture (a few ms) to each figure.
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.b7_attach import _cpu_seconds

RUNS = 5
SIZE = (120, 36)
GOAL = 0.5
TITLES = ("Signals", "Orders", "Log", "Balances")
TIMEOUT = 20.0


def _tmux(socket: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10)


# The floor under B4 (`python -m benchmarks.b4_startup --floor`): Textual alone drawing the same
# first screen (the four titled panes, a fifth, and a status line with PAPER), no pydantic, no core.
FLOOR_APP = """
from textual.app import App
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, RichLog, Static

class Floor(App):
    CSS = "Vertical, Horizontal { height: 1fr; } .pane { border: round $accent; height: 1fr; width: 1fr; }"

    def compose(self):
        yield Static(" PAPER  connected  reconciled")
        with Vertical():
            with Horizontal():
                for title in ("Signals", "Orders"):
                    table = DataTable(classes="pane")
                    table.border_title = title
                    yield table
            with Horizontal():
                for title in ("Log", "Balances", "Positions"):
                    pane = RichLog(classes="pane") if title == "Log" else Static(classes="pane")
                    pane.border_title = title
                    yield pane
        yield Footer()

    def on_mount(self):
        for table in self.query(DataTable):
            table.add_columns("id", "symbol", "side", "amount", "status")

Floor().run()
"""


def once(index: int, floor: bool = False) -> tuple[float, float, float]:
    """(first paint, first full screen), seconds from process start, and the demo's CPU seconds
    until then; `floor`: of FLOOR_APP instead of the demo."""
    exe = Path(sys.executable).with_name("tradeconsole")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "console"]
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Path(tmp) / "started"
        env = {"XDG_CONFIG_HOME": str(Path(tmp) / "config"), "TERM": "xterm-256color"}
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        demo = shlex.join(
            [sys.executable, "-c", FLOOR_APP] if floor else [*command, "demo", "--db", str(Path(tmp) / "demo.db")]
        )
        script = f"date +%s.%N > {shlex.quote(str(stamp))}; {exports} exec {demo}"
        socket = f"tcb4-{os.getpid()}-{index}"
        # As a user's installation starts: with Python's bytecode caches (pip compiles them at install;
        # a PYTHONDONTWRITEBYTECODE of the machine's would make every start compile from source).
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("TRADECONSOLE_", "TMUX")) and k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "b4", "-x",
                        str(SIZE[0]), "-y", str(SIZE[1]), "sh", "-c", script], check=True, env=clean, timeout=10)
        try:
            pane = _tmux(socket, "list-panes", "-t", "b4", "-F", "#{pane_pid}").stdout.strip()
            painted = full = None
            cpu = float("nan")
            deadline = time.time() + TIMEOUT
            screen = ""
            while full is None and time.time() < deadline:
                screen = _tmux(socket, "capture-pane", "-p", "-t", "b4").stdout
                seen = time.time()
                if painted is None and all(t in screen for t in TITLES):
                    painted = seen
                if painted is not None and " PAPER " in screen:
                    full = seen
                    cpu = _cpu_seconds(int(pane) if pane.isdigit() else None)
                    break
                time.sleep(0.005)
            if full is None:
                raise RuntimeError(f"no full screen within {TIMEOUT:g} s; the pane showed:\n{screen}")
            started = float(stamp.read_text().strip())
            return painted - started, full - started, cpu
        finally:
            _tmux(socket, "send-keys", "-t", "b4", "q")  # the demo's orders may be open: kill the server
            _tmux(socket, "kill-server")


def run() -> dict:
    if shutil.which("tmux") is None:
        return {"value": None, "unit": "s", "goal": f"<= {GOAL:g} s", "met": False,
                "detail": "tmux is not installed: not measured"}
    once(-1)  # warm-up: the interpreter's bytecode caches and the page cache, as on a second start
    runs = [once(i) for i in range(RUNS)]
    full = statistics.median(r[1] for r in runs)
    paint = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    return {
        "value": round(full, 3),
        "unit": "s",
        "goal": f"<= {GOAL:g} s",
        "met": full <= GOAL,
        "detail": f"median of {RUNS} in tmux {SIZE[0]}x{SIZE[1]} (runs: "
        f"{', '.join(f'{r[1]:.3f}' for r in runs)} s); first paint (titles, before the core's state) "
        f"median {paint:.3f} s; CPU time of the demo until then, median {cpu:.2f} s",
    }


def floor() -> str:
    once(-1, floor=True)
    runs = [once(i, floor=True)[1:] for i in range(RUNS)]
    return (
        f"floor (Textual alone, the same panes and PAPER line): median {statistics.median(r[0] for r in runs):.3f} s "
        f"to first full screen (runs: {', '.join(f'{r[0]:.3f}' for r in runs)} s), CPU median "
        f"{statistics.median(r[1] for r in runs):.2f} s"
    )


if __name__ == "__main__":
    print(floor() if "--floor" in sys.argv else run())
