"""Theme files (`*.toml`) loaded into Textual `Theme`s: the three shipped beside this module, and the user's.

The shipped themes are package data of `console.themes` (found with `importlib.resources`, so an
installed wheel has them as a source checkout does). A theme file names the Textual colour
system's base colours plus the console's own variables (`buy`, `sell`, `fill-bar`,
`fill-bar-empty`) under `[variables]`; `ThemeFile` is its pydantic model. A file that cannot be
used is skipped with a problem that names the file, the field and what is wrong; the console
reports it and keeps its default theme (Textual's own dark theme if even that one is broken).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError
from textual.color import Color, ColorParseError
from textual.theme import BUILTIN_THEMES, Theme

DEFAULT_THEME = "tradeconsole-dark"
FALLBACK_THEME = "textual-dark"  # built into Textual: used only when the default's file is broken
THEMES_DIR: Traversable = files(__name__)  # the shipped themes, wherever the package is installed

COLOURS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background", "surface",
           "panel", "boost")
OPTIONS = ("name", "dark", "luminosity_spread", "text_alpha")
# The console's own variables, with the theme colour each falls back to when a theme leaves it out.
VARIABLES = {"buy": "success", "sell": "error", "fill-bar": "primary", "fill-bar-empty": "panel"}
KINDS = {"bool_type": "a bool", "float_type": "a number", "string_type": "a string"}

ThemeDir = Path | Traversable


def _colour(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("colour", "must be a colour string, hex or rgb() (got {got})", {"got": repr(value)})
    try:
        Color.parse(value)
    except ColorParseError:
        raise PydanticCustomError("colour", "{got} is not a colour", {"got": repr(value)}) from None
    return value


Colour = Annotated[str, PlainValidator(_colour)]


class ThemeVariables(BaseModel):
    """`[variables]`: the console's four are colours; any other (a Textual variable) is a string."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, str] = Field(init=False)

    buy: Colour | None = None
    sell: Colour | None = None
    fill_bar: Colour | None = Field(None, alias="fill-bar")
    fill_bar_empty: Colour | None = Field(None, alias="fill-bar-empty")


class ThemeFile(BaseModel):
    """One theme file; unknown keys are errors. Only the keys it sets reach the `Theme`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = None  # default: the file's name
    dark: bool = True
    luminosity_spread: float = 0.15
    text_alpha: float = 0.95
    primary: Colour
    secondary: Colour | None = None
    warning: Colour | None = None
    error: Colour | None = None
    success: Colour | None = None
    accent: Colour | None = None
    foreground: Colour | None = None
    background: Colour | None = None
    surface: Colour | None = None
    panel: Colour | None = None
    boost: Colour | None = None
    variables: ThemeVariables = Field(default_factory=ThemeVariables)

    def theme(self, default_name: str) -> Theme:
        kwargs: dict[str, Any] = self.model_dump(exclude_unset=True, by_alias=True)
        kwargs.setdefault("name", default_name)
        return Theme(**kwargs)


def _problem(error: ErrorDetails) -> str:
    """One validation error as "field: what is wrong", in the words the console has always used."""
    where = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "missing":
        what = "required"
    elif kind == "extra_forbidden":
        what = f"unknown key (known: {', '.join((*OPTIONS, *COLOURS, 'variables'))})"
    elif where == "variables" and kind in ("model_type", "model_attributes_type"):
        what = "must be a table of name = value"
    elif kind in KINDS:
        what = f"must be {KINDS[kind]} (got {error['input']!r})"
    else:
        what = error["msg"]
    return f"{where}: {what}"


@dataclass(slots=True)
class ThemeLoad:
    themes: dict[str, Theme] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def parse_theme(path: ThemeDir) -> Theme:
    """One theme file as a `Theme`. Raises ValueError naming each bad field and its problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read: {exc}") from None
    try:
        model = ThemeFile.model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(_problem(e) for e in exc.errors(include_url=False))) from None
    return model.theme(path.name.removesuffix(".toml"))


def load_themes(*directories: ThemeDir) -> ThemeLoad:
    """Every `*.toml` in `directories`; the first holds the shipped themes.

    A theme is never replaced silently: a file whose name is taken (a shipped theme, one of
    Textual's, or an earlier file) is refused with a problem saying so, and the first one stays.
    """
    result = ThemeLoad()
    where: dict[str, tuple[ThemeDir, int]] = {}  # theme name: its file, and which directory
    for index, directory in enumerate(directories):
        if not directory.is_dir():
            continue
        for path in sorted((p for p in directory.iterdir() if p.name.endswith(".toml")), key=lambda p: p.name):
            try:
                theme = parse_theme(path)
            except ValueError as exc:
                result.problems.append(f"theme file {path}: {exc}")
                continue
            taken = where.get(theme.name)
            if taken is not None or theme.name in BUILTIN_THEMES:
                owner = f"the theme in {taken[0]}" if taken is not None else "a theme built into Textual"
                if taken is not None and taken[1] == 0:
                    owner = "a shipped theme"
                result.problems.append(
                    f"theme file {path}: name {theme.name!r} is already {owner}; refused (give it "
                    f"another name, e.g. name = \"{theme.name}-mine\")")
                continue
            where[theme.name] = (path, index)
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
