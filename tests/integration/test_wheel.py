"""A real package: the wheel, installed (not editable), has its themes, stylesheet and signal schema.

The wheel is built from a copy of the source (so the build leaves no `build/` or egg-info behind
in the checkout) with `pip wheel --no-deps`, in pip's usual isolated build environment. It is
installed with `--no-deps --no-index` into a fresh virtualenv that sees the project's own
virtualenv's site-packages through a `.pth` line: the dependencies (textual, ccxt, pydantic...)
come from there instead of PyPI, which keeps the test to seconds and off the network, while
`console` and `executor` can only come from the wheel. (`venv --system-site-packages` would not
do: it exposes the base interpreter's site-packages, not this virtualenv's; and the `.pth` files
in the directory a `.pth` line adds are not run, so the checkout's editable-install hook stays
off.) The checks run with `python -I` from an empty directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["tradeconsole-dark", "tradeconsole-high-contrast", "tradeconsole-light"]

CHECK = textwrap.dedent("""
    import asyncio, json, sys

    import console, executor
    from console.app import TradeConsole
    from console.themes import DEFAULT_THEME, THEMES_DIR, load_themes
    from executor.config import load_config
    from executor.schema import SIGNAL_SCHEMA, signal_schema


    async def never():  # a core that never comes up: the screen is drawn without one
        await asyncio.Event().wait()


    async def main():
        loaded = load_themes(THEMES_DIR)
        app = TradeConsole(never, settings=load_config(None, env={}))  # the default theme directories
        out = {
            "packages": [console.__file__, executor.__file__],
            "themes_dir": str(THEMES_DIR), "themes": sorted(loaded.themes), "problems": loaded.problems,
            "theme": app.theme, "startup_problems": list(app._startup_problems),
            "schema": str(SIGNAL_SCHEMA), "schema_title": signal_schema()["title"],
        }
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            out["stylesheets"] = [str(path) for path, _ in app.stylesheet.source if path.endswith(".tcss")]
            out["bottom_height"] = str(app.query_one("#bottom").styles.height)  # set by app.tcss
        print(json.dumps(out))


    asyncio.run(main())
""")


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(tmp_path: Path) -> Path:
    source, dist = tmp_path / "source", tmp_path / "dist"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("console", "executor"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("tradeconsole-*.whl")
    return wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel,
        cwd=tmp_path)
    return venv


def test_an_installed_wheel_loads_the_shipped_themes_stylesheet_and_schema(tmp_path):
    venv = fresh_venv(tmp_path, build_wheel(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env |= {"XDG_CONFIG_HOME": str(elsewhere / "config"), "HOME": str(elsewhere)}  # no user themes

    out = json.loads(run(venv / "bin" / "python", "-I", "-c", CHECK, cwd=elsewhere, env=env))

    installed = str(venv)
    assert all(path.startswith(installed) for path in out["packages"]), out["packages"]  # the wheel, not the checkout
    assert out["themes_dir"].startswith(installed)
    assert out["themes"] == SHIPPED and out["problems"] == []
    assert out["theme"] == "tradeconsole-dark" and out["startup_problems"] == []  # not "using textual-dark"
    assert out["schema"].startswith(installed) and out["schema_title"] == "Trading signal"
    assert len(out["stylesheets"]) == 1 and out["stylesheets"][0].startswith(installed)
    assert out["bottom_height"] == "12"
    assert "inspect" in run(venv / "bin" / "tradeconsole", "--help", cwd=elsewhere, env=env)  # the entry point
