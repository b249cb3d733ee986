"""The commented config template that `config init` writes: every key with its default.

This module owns `render_template` (the TOML text, each key's comment being its field's
description) and `write_template` (writing it without clobbering an existing file).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from executor.config.settings import API_KEY_ENV, API_SECRET_ENV, APP_DIR, CONFIG_FILE, SECTIONS, Settings

_TEMPLATE_HEADER = f"""\
# tradeconsole configuration (TOML). Every key is shown with its default.
# Default location: $XDG_CONFIG_HOME/{APP_DIR}/{CONFIG_FILE} (~/.config/{APP_DIR}/{CONFIG_FILE}),
# or pass --config FILE. Unknown keys are an error.
# Every key can be overridden by an environment variable TRADECONSOLE_<SECTION>__<KEY>,
# e.g. TRADECONSOLE_EXCHANGE__API_URL; lists and tables as JSON:
# TRADECONSOLE_EXCHANGE__MARKETS='["BTC/USDT"]'.
# Secrets never go in this file: they are read from the environment only.
"""

_SECTION_NOTES = {
    "exchange": "where orders go",
    "execution": "the seed's execution_config, same names and defaults",
    "approval": "which signals need an operator",
    "signals": "where signals come from",
    "paper": "the built-in paper exchange",
    "store": "the durable record",
    "reconcile": "keeping the store in step with the exchange",
    "control": "the control socket consoles and `ctl` attach to",
    "ui": "the console",
}

_SECTION_TRAILERS = {
    "exchange": f"# keys: env {API_KEY_ENV} and {API_SECRET_ENV} only",
}

_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_COMMENT_COLUMN = 27


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        # "f": never an exponent, which TOML would not read.
        return format(value, "f")
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{k if _BARE_KEY_RE.match(k) else json.dumps(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"no TOML rendering for {type(value).__name__}")


def _commented(text: str, comment: str) -> str:
    # Comments line up in one column, as in SPEC section 4; a longer line keeps two spaces.
    return f"{text.ljust(_COMMENT_COLUMN - 2)}  # {comment}"


def render_template() -> str:
    """A commented TOML file of every key with its default: what `config init` writes."""
    defaults = Settings()
    out = [_TEMPLATE_HEADER]
    for section, model in SECTIONS.items():
        out.append(_commented(f"[{section}]", _SECTION_NOTES[section]))
        values = getattr(defaults, section)
        for key, field in model.model_fields.items():
            if not field.description:
                raise RuntimeError(f"{section}.{key} has no description for the template")
            out.append(_commented(f"{key} = {_toml_value(getattr(values, key))}", field.description))
        if section in _SECTION_TRAILERS:
            out.append(_SECTION_TRAILERS[section])
        out.append("")
    return "\n".join(out)


def write_template(path: Path | str, force: bool = False) -> Path:
    """Write `render_template()` to `path` (creating its directory); an existing file needs force."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # "x" closes the gap between the check above and the write: a file appearing meanwhile is kept.
    with path.open("w" if force else "x", encoding="utf-8") as handle:
        handle.write(render_template())
    return path
