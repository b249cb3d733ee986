"""The layering of SPEC section 2, checked on the source: `executor/` never imports the console or
Textual, and the console's app, screens and widgets reach the core only through the client
interface, the events and the models (plus the settings and pure helpers), never the executor,
the exchanges or the store; only the CLI's wiring and exports may."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the console's view may import from executor/: the client interface, the events and the
# models, the settings it is configured with, and pure functions of those (positions).
VIEW_MAY_IMPORT = {"executor.control.client", "executor.events", "executor.models", "executor.config",
                   "executor.positions", "executor.numbers"}
WIRING = {"console/cli.py", "console/wiring.py", "console/ctl.py", "console/__main__.py", "console/emulator_cli.py"}


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, at any depth (functions and TYPE_CHECKING blocks included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_the_executor_never_imports_the_console_or_textual() -> None:
    bad = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in sorted((ROOT / "executor").rglob("*.py"))
           for line, name in imports(p) if name.split(".")[0] in ("console", "textual", "rich")]
    assert not bad, bad


def test_the_console_view_reaches_the_core_only_through_its_public_api() -> None:
    bad = []
    for path in sorted((ROOT / "console").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in WIRING:
            continue
        for line, name in imports(path):
            if name.startswith("executor") and name not in VIEW_MAY_IMPORT:
                bad.append(f"{rel}:{line}: {name}")
    assert not bad, bad
