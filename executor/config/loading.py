"""Loading the configuration: defaults < the TOML file < `TRADECONSOLE_<SECTION>__<KEY>` variables.

This module owns:
- `load_config`: reads the file and the environment by hand, rejects unknown sections, keys and
  variables, and validates the merged data with `Settings`; every problem is reported as one
  `ConfigError` that names the file, line and key (the CLI prints it and exits 2);
- `ConfigProblem` and `ConfigError`, and the wording of each problem;
- `check_webhook`: the check of the settings against the secrets (a webhook needs its token).

Why not pydantic-settings' sources: the stock env source silently ignores unknown
`TRADECONSOLE_*` variables, deep-merges dict values across sources, stops at the first bad JSON
value with a message that names neither the variable nor the key, and always reads `os.environ`.
Here the file and the environment are read and checked by hand (so every problem is reported,
with its origin), and `Settings` is a plain pydantic model.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin

from pydantic import ValidationError

from executor.config.settings import (
    ENV_DELIMITER,
    ENV_PREFIX,
    SECRET_ENV_VARS,
    SECTIONS,
    WEBHOOK_TOKEN_ENV,
    Credentials,
    Settings,
    default_config_path,
)
from executor.config.toml_lines import key_lines, line_of


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration, and where it came from.

    `file` is the config file as given (None when the problem came from the environment), `line`
    1-based in that file when known, `key` the dotted key (`execution.max_retries`) or, for the
    environment, the variable name.
    """

    file: str | None
    key: str | None
    line: int | None
    reason: str

    def __str__(self) -> str:
        where: str | None = None
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        elif self.key and self.key.upper().startswith(ENV_PREFIX):
            where = "environment"
        return ": ".join(part for part in (where, self.key, self.reason) if part)


class ConfigError(Exception):
    """Bad configuration: every problem found, one per line. The CLI prints it and exits 2.

    `file`, `key`, `line` and `reason` are those of the first problem; `problems` has them all.
    """

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("ConfigError needs at least one problem")
        first = self.problems[0]
        self.file = first.file
        self.key = first.key
        self.line = first.line
        self.reason = first.reason
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable (multiprocessing, pytest-xdist): rebuild from the problems, not from the message.
        return (type(self), (self.problems,))


def _show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it, shortened: `"three"`, `3`, `true`, `["a"]`."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "known: " + ", ".join(choices)


# --- loading ----------------------------------------------------------------------------------------


def _read_file(path: Path, label: str, problems: list[ConfigProblem]) -> str | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problems.append(ConfigProblem(label, None, None, "config file not found"))
        return None
    except IsADirectoryError:
        problems.append(ConfigProblem(label, None, None, "is a directory, not a config file"))
        return None
    except OSError as exc:
        problems.append(ConfigProblem(label, None, None, f"cannot read: {exc.strerror or exc}"))
        return None
    try:
        # utf-8-sig: tolerate the BOM some Windows editors write.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(ConfigProblem(label, None, line, "not valid UTF-8 text"))
        return None


_TOML_POS_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_EOF_RE = re.compile(r"\s*\(at end of document\)\s*$")


def _parse_toml(text: str, label: str, problems: list[ConfigProblem]) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError carries no lineno attribute: the position is in the message.
        message = str(exc)
        line: int | None = None
        pos = _TOML_POS_RE.search(message)
        if pos:
            line = int(pos.group(1))
            message = f"{message[: pos.start()]} (column {pos.group(2)})"
        else:
            eof = _TOML_EOF_RE.search(message)
            if eof:
                line = max(1, len(text.splitlines()))
                message = f"{message[: eof.start()]} (at end of file)"
        problems.append(ConfigProblem(label, None, line, f"invalid TOML: {message}"))
        return None


def _check_file_keys(
    raw: Mapping[str, Any], label: str, lines: Mapping[tuple[str, ...], int], problems: list[ConfigProblem]
) -> dict[str, dict[str, Any]]:
    """The file's known sections and keys; each unknown one becomes a problem (value never shown)."""
    data: dict[str, dict[str, Any]] = {}
    for section, body in raw.items():
        line = line_of(lines, (section,))
        if section not in SECTIONS:
            what = "section" if isinstance(body, dict) else "top-level key (every key belongs to a section)"
            problems.append(ConfigProblem(label, section, line, f"unknown {what}; {_did_you_mean(section, SECTIONS)}"))
            continue
        if not isinstance(body, dict):
            problems.append(ConfigProblem(label, section, line, f"must be a table: [{section}]"))
            continue
        fields = SECTIONS[section].model_fields
        clean: dict[str, Any] = {}
        for key, value in body.items():
            if key in fields:
                clean[key] = value
            else:
                hint = _did_you_mean(key, fields)
                if f"{ENV_PREFIX}{key}".upper() in SECRET_ENV_VARS:
                    hint = f"secrets are read from the environment only, as {ENV_PREFIX}{key.upper()}"
                problems.append(
                    ConfigProblem(
                        label,
                        f"{section}.{key}",
                        line_of(lines, (section, key)),
                        f"unknown key in [{section}]; {hint}",
                    )
                )
        data[section] = clean
    return data


def _is_complex(section: str, key: str) -> bool:
    return get_origin(SECTIONS[section].model_fields[key].annotation) in (list, dict)


def _env_var_names() -> list[str]:
    names = sorted(SECRET_ENV_VARS)
    for section, model in SECTIONS.items():
        names += [f"{ENV_PREFIX}{section}{ENV_DELIMITER}{key}".upper() for key in model.model_fields]
    return names


def _read_env(
    environ: Mapping[str, str], problems: list[ConfigProblem]
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], str]]:
    """Config values from `TRADECONSOLE_<SECTION>__<KEY>` variables, and which variable set each key.

    Values of unknown variables are never shown: a misnamed variable may well hold a secret.
    """
    data: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in SECRET_ENV_VARS:
            continue
        parts = upper[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)
        section, key = parts[0], parts[1] if len(parts) > 1 else ""

        def unknown(reason: str, name: str = name) -> None:
            problems.append(ConfigProblem(None, name, None, reason))

        if section not in SECTIONS:
            # Suggest on the part after the prefix, which every candidate shares.
            rest = upper[len(ENV_PREFIX) :]
            close = difflib.get_close_matches(rest, [n[len(ENV_PREFIX) :] for n in _env_var_names()], n=1)
            hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
            unknown(f"unknown variable; config variables are {ENV_PREFIX}<SECTION>__<KEY>{hint}")
            continue
        fields = SECTIONS[section].model_fields
        if len(parts) == 1:
            unknown(f"set one key per variable, like {ENV_PREFIX}{section.upper()}{ENV_DELIMITER}<KEY>")
            continue
        if key not in fields:
            unknown(f"unknown key in [{section}]; {_did_you_mean(key, fields)}")
            continue
        if len(parts) > 2:
            whole = f"{ENV_PREFIX}{section}{ENV_DELIMITER}{key}".upper()
            unknown(f"too deep: set {section}.{key} as a whole, as JSON, in {whole}")
            continue
        if (section, key) in origin:
            unknown(f"{section}.{key} is also set by {origin[section, key]}")
            continue
        value: Any = environ[name]
        if _is_complex(section, key):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                example = {"markets": '["BTC/USDT"]', "allow": '[1001, "traders"]'}.get(key, '{"USDT": 1000}')
                unknown(f"{section}.{key} must be JSON, like '{example}': {exc.msg} (got {_show(value)})")
                continue
        data.setdefault(section, {})[key] = value
        origin[section, key] = name
    return data, origin


_PARSING_TYPES = {"int_parsing", "float_parsing", "bool_parsing", "decimal_parsing"}


def _dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    if error["type"] in _PARSING_TYPES:
        # "Input should be a valid integer, unable to parse string as an integer": the tail adds nothing.
        message = message.split(", unable to")[0]
    if "input" in error:
        message += f" (got {_show(error['input'])})"
    return message


def _validation_problems(
    exc: ValidationError,
    label: str | None,
    lines: Mapping[tuple[str, ...], int],
    env_origin: Mapping[tuple[str, str], str],
) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        dotted = _dotted(loc)
        reason = _reason(error)
        var = env_origin.get((loc[0], loc[1])) if len(loc) > 1 else None
        if var is not None:
            # Deeper than the key (an item of a list from JSON): say which part in the reason.
            if len(loc) > 2:
                reason = f"{dotted}: {reason}"
            problems.append(ConfigProblem(None, var, None, reason))
        else:
            line = line_of(lines, loc) if label is not None else None
            # Not from the environment, so from the file (a default failing its own check is a bug
            # that validate_default and the tests catch).
            problems.append(ConfigProblem(label, dotted, line, reason))
    return problems


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults < the TOML file < `TRADECONSOLE_<SECTION>__<KEY>` variables.

    `path` None means `default_config_path(env)` if that file exists, else no file; an explicit
    path must exist. `env` defaults to `os.environ`. Raises `ConfigError` listing every problem.
    """
    environ = os.environ if env is None else env
    problems: list[ConfigProblem] = []
    label: str | None = None
    lines: dict[tuple[str, ...], int] = {}
    data: dict[str, dict[str, Any]] = {}

    if path is None:
        candidate = default_config_path(environ)
        if candidate.exists():
            path = candidate
    if path is not None:
        label = os.fspath(path)
        text = _read_file(Path(path), label, problems)
        if text is not None:
            lines = key_lines(text)
            raw = _parse_toml(text, label, problems)
            if raw is not None:
                data = _check_file_keys(raw, label, lines, problems)

    env_data, env_origin = _read_env(environ, problems)
    # Key-level override: an env value replaces the file's whole value, dicts included (the stock
    # pydantic-settings merge would deep-merge `paper.balances` from both).
    for section, values in env_data.items():
        data.setdefault(section, {}).update(values)

    settings: Settings | None = None
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems += _validation_problems(exc, label, lines, env_origin)

    if problems:
        # File problems in file order, then the environment's.
        problems.sort(key=lambda p: (p.file is None, p.line or 0))
        raise ConfigError(problems)
    assert settings is not None
    return settings


def check_webhook(settings: Settings, credentials: Credentials) -> None:
    """A webhook port needs its token: without one the webhook would take anyone's orders (exit 2)."""
    port = settings.signals.webhook_port
    if port and credentials.webhook_token is None:
        reason = (
            f"is {port}, but {WEBHOOK_TOKEN_ENV} is not set: the webhook needs a token "
            f"(set {WEBHOOK_TOKEN_ENV} in the core's environment, or webhook_port = 0)"
        )
        raise ConfigError([ConfigProblem(None, "signals.webhook_port", None, reason)])
