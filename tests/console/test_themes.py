"""Theme files: the shipped three, clear problems for broken ones, and colours only as variables."""

from __future__ import annotations

import re
from pathlib import Path

from console_harness import Clock, console_app, console_settings, ready
from helpers import eventually

from console.themes import DEFAULT_THEME, THEMES_DIR, choose, load_themes, parse_theme

SHIPPED = {"tradeconsole-dark", "tradeconsole-light", "tradeconsole-high-contrast"}


def test_the_three_shipped_themes_load_with_buy_and_sell_colours():
    loaded = load_themes(THEMES_DIR)
    assert not loaded.problems
    assert set(loaded.themes) == SHIPPED
    for theme in loaded.themes.values():
        assert {"buy", "sell", "fill-bar", "fill-bar-empty"} <= set(theme.variables)
        assert theme.variables["buy"] != theme.variables["sell"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_a_broken_theme_file_is_skipped_with_its_file_and_problem_named(tmp_path):
    write(tmp_path, "bad-toml", 'name = "x"\nprimary = \n')
    write(tmp_path, "bad-colour", 'name = "bad-colour"\nprimary = "blurple"\n')
    write(tmp_path, "unknown-key", 'name = "unknown-key"\nprimary = "#112233"\nsparkle = true\n')
    write(tmp_path, "no-primary", 'name = "no-primary"\n')
    write(tmp_path, "good", 'primary = "#112233"\n[variables]\nbuy = "#00ff00"\n')
    loaded = load_themes(tmp_path)
    assert set(loaded.themes) == {"good"}
    problems = "\n".join(loaded.problems)
    assert f"{tmp_path / 'bad-toml.toml'}: not valid TOML" in problems
    assert "bad-colour.toml: primary: 'blurple' is not a colour" in problems
    assert "unknown-key.toml: sparkle: unknown key" in problems
    assert "no-primary.toml: primary: required" in problems


def test_an_unknown_configured_theme_falls_back_to_the_default_and_says_so():
    problems: list[str] = []
    assert choose("solarized", {DEFAULT_THEME, "textual-dark"}, problems) == DEFAULT_THEME
    assert "[ui] theme 'solarized' is not a known theme" in problems[0]


def test_a_variable_that_is_not_a_colour_is_refused(tmp_path):
    path = write(tmp_path, "x", 'primary = "#112233"\n[variables]\nsell = "reddish"\n')
    try:
        parse_theme(path)
    except ValueError as exc:
        assert "variables.sell: 'reddish' is not a colour" in str(exc)
    else:
        raise AssertionError("accepted a bad colour")


async def test_the_console_reports_a_broken_theme_and_keeps_the_default(tmp_path):
    write(tmp_path, "tradeconsole-broken", 'name = "tradeconsole-broken"\nprimary = "nope"\n')
    app = console_app(
        tmp_path / "console.db",
        Clock(),
        console_settings(ui={"theme": "tradeconsole-broken"}),
        theme_dirs=[THEMES_DIR, tmp_path],
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app, pilot.pause)
        assert app.theme == DEFAULT_THEME
        await eventually(lambda: len(app.state.log) >= 2, pause=pilot.pause, what="the problems in the log")
        reasons = [entry.reason for entry in app.state.log]
        assert any("tradeconsole-broken.toml: primary: 'nope' is not a colour" in r for r in reasons)
        assert any("[ui] theme 'tradeconsole-broken'" in r for r in reasons)
        assert any("tradeconsole-broken.toml" in str(n.message) for n in app._notifications)


def test_colours_appear_only_as_theme_variables_in_console_code_and_styles():
    console = Path(__file__).resolve().parents[2] / "console"
    hex_colour = re.compile(r"#(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")
    offenders = [
        f"{path.name}: {match.group()}"
        for path in [*console.rglob("*.py"), *console.rglob("*.tcss")]
        for match in hex_colour.finditer(path.read_text())
    ]
    assert not offenders


def test_a_user_theme_named_like_a_shipped_theme_is_refused_with_a_message(tmp_path):
    write(tmp_path, "mine", 'name = "tradeconsole-dark"\nprimary = "#112233"\n')
    write(tmp_path, "textual", 'name = "textual-dark"\nprimary = "#112233"\n')
    loaded = load_themes(THEMES_DIR, tmp_path)
    shipped = parse_theme(THEMES_DIR / "tradeconsole-dark.toml")
    assert loaded.themes["tradeconsole-dark"].primary == shipped.primary  # never silently replaced
    assert "textual-dark" not in loaded.themes
    problems = "\n".join(loaded.problems)
    assert f"{tmp_path / 'mine.toml'}: name 'tradeconsole-dark' is already a shipped theme; refused" in problems
    assert "name 'textual-dark' is already a theme built into Textual" in problems
