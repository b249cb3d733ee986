"""Theme files (`themes/*.toml`) loaded into Textual `Theme`s.

A theme file names the Textual colour system's base colours plus the console's own variables
(`buy`, `sell`, `fill-bar`, `fill-bar-empty`) under `[variables]`. A file that cannot be used is
skipped with a problem that names the file and what is wrong; the console reports it and keeps
its default theme.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import BUILTIN_THEMES, Theme

DEFAULT_THEME = "tradeconsole-dark"
FALLBACK_THEME = "textual-dark"  # built into Textual: used only when the default's file is broken
THEMES_DIR = Path(__file__).resolve().parent.parent / "themes"

COLOURS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background", "surface",
           "panel", "boost")
OPTIONS = {"name": str, "dark": bool, "luminosity_spread": float, "text_alpha": float}
# The console's own variables, with the theme colour each falls back to when a theme leaves it out.
VARIABLES = {"buy": "success", "sell": "error", "fill-bar": "primary", "fill-bar-empty": "panel"}


@dataclass(slots=True)
class ThemeLoad:
    themes: dict[str, Theme] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _colour(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be a colour string, hex or rgb() (got {value!r})")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{where}: {value!r} is not a colour") from None
    return value


def parse_theme(path: Path) -> Theme:
    """One theme file as a `Theme`. Raises ValueError naming the key and problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read: {exc}") from None
    kwargs: dict = {}
    for key, value in data.items():
        if key in COLOURS:
            kwargs[key] = _colour(value, key)
        elif key in OPTIONS:
            kind = OPTIONS[key]
            ok = isinstance(value, kind) or (kind is float and isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                raise ValueError(f"{key}: must be a {kind.__name__} (got {value!r})")
            kwargs[key] = value
        elif key == "variables":
            if not isinstance(value, dict):
                raise ValueError("variables: must be a table of name = value")
            variables = {}
            for name, v in value.items():
                if name in VARIABLES:
                    variables[name] = _colour(v, f"variables.{name}")
                elif isinstance(v, str):
                    variables[name] = v
                else:
                    raise ValueError(f"variables.{name}: must be a string (got {v!r})")
            kwargs["variables"] = variables
        else:
            known = ", ".join((*OPTIONS, *COLOURS, "variables"))
            raise ValueError(f"{key}: unknown key (known: {known})")
    if "primary" not in kwargs:
        raise ValueError("primary: required")
    kwargs.setdefault("name", path.stem)
    return Theme(**kwargs)


def load_themes(*directories: Path) -> ThemeLoad:
    """Every `*.toml` in `directories`; the first holds the shipped themes.

    A theme is never replaced silently: a file whose name is taken (a shipped theme, one of
    Textual's, or an earlier file) is refused with a problem saying so, and the first one stays.
    """
    result = ThemeLoad()
    where: dict[str, Path] = {}
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = parse_theme(path)
            except ValueError as exc:
                result.problems.append(f"theme file {path}: {exc}")
                continue
            taken = where.get(theme.name)
            if taken is not None or theme.name in BUILTIN_THEMES:
                owner = f"the theme in {taken}" if taken is not None else "a theme built into Textual"
                if taken is not None and taken.parent == directories[0]:
                    owner = "a shipped theme"
                result.problems.append(
                    f"theme file {path}: name {theme.name!r} is already {owner}; refused (give it "
                    f"another name, e.g. name = \"{theme.name}-mine\")")
                continue
            where[theme.name] = path
            result.themes[theme.name] = theme
    return result


def choose(wanted: str, available: set[str], problems: list[str]) -> str:
    """The theme to start with: `wanted` if it exists, else the default (saying why)."""
    if wanted in available:
        return wanted
    fallback = DEFAULT_THEME if DEFAULT_THEME in available else FALLBACK_THEME
    if wanted != DEFAULT_THEME:
        names = ", ".join(sorted(n for n in available if n.startswith("tradeconsole"))) or "none"
        problems.append(f"[ui] theme {wanted!r} is not a known theme (available: {names}); using {fallback}")
    elif fallback != wanted:
        problems.append(f"theme {wanted!r} could not be loaded; using {fallback}")
    return fallback


def variable_defaults(theme: Theme) -> dict[str, str]:
    """The console's variables for a theme that leaves them out, taken from its own colours."""
    colours = theme.to_color_system().generate()
    return {name: colours[source] for name, source in VARIABLES.items()}
