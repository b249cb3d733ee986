"""Configuration: the `Settings` model of SPEC section 4, where it is loaded from, and its template.

This module owns:
- the section models and their value checks (every key of SPEC section 4, same names, same defaults);
- `load_config`: defaults, overridden by the TOML file, overridden by `TRADECONSOLE_<SECTION>__<KEY>`
  environment variables, with unknown keys rejected and every problem reported as one `ConfigError`
  that names the file, line and key (the CLI prints it and exits 2);
- `secrets_from_env`: the API keys and webhook token, which live in the environment only and are
  never part of `Settings` (SPEC section 12);
- the default config and database paths, and the commented template written by `config init`.

Why `load_config` does its own reading instead of leaning on pydantic-settings' sources: the
stock env source silently ignores unknown `TRADECONSOLE_*` variables, deep-merges dict values
across sources, stops at the first bad JSON value with a message that names neither the variable
nor the key, and always reads `os.environ`. Here the file and the environment are read and checked
by hand (so every problem is reported, with its origin), and the merged result is validated by
`Settings` with the init source only. A bare `Settings()` still works the pydantic-settings way
(defaults + `os.environ`) but without the unknown-key checks: use `load_config`.
"""

from __future__ import annotations

import contextvars
import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from executor.clientid import PREFIX_RULE

__all__ = [
    "ENV_PREFIX",
    "SECRET_ENV_VARS",
    "ApprovalConfig",
    "ConfigError",
    "ConfigProblem",
    "ControlConfig",
    "Credentials",
    "ExchangeConfig",
    "ExecutionConfig",
    "PaperConfig",
    "ReconcileConfig",
    "Settings",
    "SignalsConfig",
    "StoreConfig",
    "UIConfig",
    "check_webhook",
    "default_config_path",
    "default_db_path",
    "load_config",
    "render_template",
    "secrets_from_env",
    "write_template",
]

ENV_PREFIX = "TRADECONSOLE_"
ENV_DELIMITER = "__"
# Secrets share the config prefix but are not config keys: skipped by the unknown-key check and
# never copied into Settings, so they cannot leak through repr, model_dump or error text.
API_KEY_ENV = "TRADECONSOLE_API_KEY"
API_SECRET_ENV = "TRADECONSOLE_API_SECRET"
WEBHOOK_TOKEN_ENV = "TRADECONSOLE_WEBHOOK_TOKEN"
SECRET_ENV_VARS = frozenset({API_KEY_ENV, API_SECRET_ENV, WEBHOOK_TOKEN_ENV})

APP_DIR = "tradeconsole"
CONFIG_FILE = "config.toml"
DB_FILE = "tradeconsole.db"

_CLIENT_ID_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,8}$")
_MARKET_RE = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+)$")
_CURRENCY_RE = re.compile(r"^[A-Z0-9]+$")
_EXCHANGE_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")


# --- value checks -----------------------------------------------------------------------------------


def _reject_bool(value: Any) -> Any:
    # pydantic's lax mode turns `true` into 1; `max_retries = true` is a typo, not a number.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


def _check_market(value: str) -> str:
    match = _MARKET_RE.match(value)
    if match is None:
        raise ValueError('market must be BASE/QUOTE in upper case, like "BTC/USDT"')
    if match.group(1) == match.group(2):
        raise ValueError("market base and quote must differ")
    return value


def _check_currency(value: str) -> str:
    if not _CURRENCY_RE.match(value):
        raise ValueError('currency must be an upper-case code, like "USDT"')
    return value


_NoBool = BeforeValidator(_reject_bool)
Int = Annotated[int, _NoBool]
Float = Annotated[float, _NoBool, Field(allow_inf_nan=False)]
Dec = Annotated[Decimal, _NoBool, Field(allow_inf_nan=False)]
Market = Annotated[str, AfterValidator(_check_market)]
Currency = Annotated[str, AfterValidator(_check_currency)]


class _Section(BaseModel):
    # validate_default: a bad default is a bug here, caught by the first test rather than at runtime.
    model_config = ConfigDict(extra="forbid", validate_default=True)


# --- sections (SPEC section 4; every field's description is its comment in the template) -------------


class ExchangeConfig(_Section):
    id: str = Field("paper", description='"paper" or any ccxt exchange id ("binance", "okx", ...)')
    sandbox: bool = Field(False, description="ccxt set_sandbox_mode")
    api_url: str = Field(
        "",
        description="REST base URL override for Binance-compatible venues: a testnet, a proxy, `tradeconsole emulator`",
    )
    markets: list[Market] = Field(
        default_factory=lambda: ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
        description="spot markets to trade, BASE/QUOTE in upper case",
    )
    client_id_prefix: str = Field("tc", description="client order id prefix: 1-8 letters and digits")

    @field_validator("id")
    @classmethod
    def _id_is_an_exchange_id(cls, value: str) -> str:
        if not _EXCHANGE_ID_RE.match(value):
            raise ValueError('must be "paper" or a ccxt exchange id in lower case, like "binance"')
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url_is_http(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError('must be empty or an http(s) URL, like "http://127.0.0.1:8765"')
        return value

    @field_validator("markets")
    @classmethod
    def _markets_listed_once(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('must list at least one market, like ["BTC/USDT"]')
        seen: set[str] = set()
        for market in value:
            if market in seen:
                raise ValueError(f"{market} is listed twice")
            seen.add(market)
        return value

    @field_validator("client_id_prefix")
    @classmethod
    def _prefix_fits_client_ids(cls, value: str) -> str:
        # Client order ids are letters and digits only, at most 32 characters (OKX's clOrdId rule).
        if not _CLIENT_ID_PREFIX_RE.match(value):
            raise ValueError(f"must be {PREFIX_RULE}")
        return value


class ExecutionConfig(_Section):
    order_type: Literal["limit", "market"] = Field("limit", description='"limit" or "market"')
    slippage_tolerance_pct: Dec = Field(
        Decimal("0.1"), ge=0, lt=100, description="price slippage accepted against the signal's price, in %"
    )
    order_timeout_seconds: Float = Field(
        30.0, gt=0, description="an order still open after this long is given up on (see partial_fill)"
    )
    max_retries: Int = Field(3, ge=0, le=20, description="retries of a failed exchange call before giving up")
    retry_delay_seconds: Float = Field(1.0, ge=0, description="delay before retrying a failed exchange call")
    partial_fill: Literal["cancel_remainder", "keep_open"] = Field(
        "cancel_remainder", description='timed-out partial fill: "cancel_remainder" or "keep_open"'
    )


class ApprovalConfig(_Section):
    mode: Literal["manual", "auto"] = Field("manual", description='"manual" or "auto"')
    auto_max_notional: Dec = Field(
        Decimal(0),
        ge=0,
        description="auto mode: signals above this quote notional still wait for an operator (0 = no cap)",
    )
    signal_ttl_seconds: Float = Field(
        120.0, gt=0, description="a pending signal older than this expires and can no longer be approved"
    )
    confirm_notional: Dec = Field(
        Decimal(0),
        ge=0,
        description="approving a signal above this notional asks for confirmation (0 = never)",
    )
    far_from_market_pct: Dec = Field(
        Decimal(5),
        ge=0,
        lt=100,
        description="approving or amending further than this from the market needs a confirmation; "
        "auto-approval leaves it pending (0 = never)",
    )


class SignalsConfig(_Section):
    jsonl: str = Field("", description='path of a JSONL signal file, or "-" for stdin ("" = none)')
    follow: bool = Field(False, description="keep reading the file as it grows")
    webhook_port: Int = Field(
        0, ge=0, le=65535, description="0 = off; binds 127.0.0.1; token from env TRADECONSOLE_WEBHOOK_TOKEN"
    )
    webhook_allow: list[str] = Field(
        default_factory=list,
        description="addresses or networks allowed to post (empty = any that has the token)",
    )
    webhook_rate: Float = Field(20.0, gt=0, description="webhook requests per second per sender before 429")
    webhook_burst: Int = Field(40, ge=1, description="webhook requests a sender may send at once before 429")
    demo: bool = Field(False, description="the demo strategy on the paper market")

    @field_validator("webhook_allow")
    @classmethod
    def _addresses_or_networks(cls, value: list[str]) -> list[str]:
        # Checked here, so a typo stops the start with the key named, not the first alert.
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an address or a network (like 52.89.214.238 or 10.0.0.0/8)"
                ) from None
        return value

    def webhook_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False) for item in self.webhook_allow]


class PaperConfig(_Section):
    seed: Int = Field(1, ge=0, description="seed of the paper exchange and synthetic market")
    balances: dict[Currency, Annotated[Dec, Field(ge=0)]] = Field(
        default_factory=lambda: {
            "USDT": Decimal(100000),
            "BTC": Decimal(1),
            "ETH": Decimal(10),
            "SOL": Decimal(100),
        },
        description="starting balances of the paper account",
    )
    fee_pct: Dec = Field(Decimal("0.1"), ge=0, le=5, description="paper trading fee, % of notional")
    latency_ms: Float = Field(0.0, ge=0, description="simulated venue latency of the paper exchange, ms")


class StoreConfig(_Section):
    path: str = Field("", description="SQLite database file; default: platform data dir / tradeconsole.db")


class ReconcileConfig(_Section):
    interval_seconds: Float = Field(10.0, gt=0, description="how often open orders are checked against the exchange")


class ControlConfig(_Section):
    socket: str = Field(
        "",
        description="default: $XDG_RUNTIME_DIR/tradeconsole/<hash of the store path>.sock; mode 0600",
    )
    allow: list[int | str] = Field(
        default_factory=list,
        description="extra uids or group names allowed to connect (the owner always is)",
    )

    @field_validator("socket")
    @classmethod
    def _socket_fits_sun_path(cls, value: str) -> str:
        # A Unix socket path has a hard limit (108 bytes on Linux, 104 on macOS) and must be a path.
        if value and len(os.fsencode(os.path.expanduser(value))) >= 100:
            raise ValueError("must be shorter than 100 bytes (a Unix socket path limit)")
        if value.endswith("/"):
            raise ValueError('must be a socket file path, like "/run/tradeconsole/core.sock"')
        return value

    @field_validator("allow", mode="before")
    @classmethod
    def _allow_uids_or_groups(cls, value: Any) -> Any:
        # `true` would pass as the uid 1 in lax mode; a float uid is a typo.
        if isinstance(value, list):
            for item in value:
                if isinstance(item, bool) or not isinstance(item, int | str):
                    raise ValueError(f"each entry must be a uid (a number) or a group name (a string), not {item!r}")
                if isinstance(item, int) and item < 0:
                    raise ValueError(f"uid {item} must not be negative")
                if isinstance(item, str) and not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$", item):
                    raise ValueError(f"{item!r} is not a group name")
        return value


class UIConfig(_Section):
    theme: str = Field("tradeconsole-dark", min_length=1, description="console theme name (themes/*.toml)")


# --- root -------------------------------------------------------------------------------------------

# Set while load_config validates its merged data, so Settings reads nothing but that data
# (not os.environ, not a dotenv file). A ContextVar rather than a class flag: safe across threads
# and tasks, and no subclassing per call.
_INIT_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("config_init_only", default=False)


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_config`; a bare `Settings()` skips the checks."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        case_sensitive=False,
        extra="forbid",
        env_file=None,
    )

    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    ui: UIConfig = Field(default_factory=UIConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _INIT_ONLY.get():
            return (init_settings,)
        return (init_settings, env_settings)

    def db_path(self, override: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Path:
        """The store file: `--db` if given, else `store.path` if set, else the platform default."""
        if override is not None and os.fspath(override) != "":
            return Path(override).expanduser()
        if self.store.path:
            return Path(self.store.path).expanduser()
        return default_db_path(env)


_SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
}


def _defaults() -> Settings:
    token = _INIT_ONLY.set(True)
    try:
        return Settings()
    finally:
        _INIT_ONLY.reset(token)


# --- paths ------------------------------------------------------------------------------------------


def _xdg_dir(env: Mapping[str, str] | None, var: str, fallback: tuple[str, ...]) -> Path:
    environ = os.environ if env is None else env
    value = environ.get(var, "")
    # The XDG spec says a relative path in these variables is invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()).joinpath(*fallback)


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/tradeconsole/config.toml`, default `~/.config/tradeconsole/config.toml`."""
    return _xdg_dir(env, "XDG_CONFIG_HOME", (".config",)) / APP_DIR / CONFIG_FILE


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/tradeconsole/tradeconsole.db`, default `~/.local/share/tradeconsole/...`."""
    return _xdg_dir(env, "XDG_DATA_HOME", (".local", "share")) / APP_DIR / DB_FILE


# --- secrets ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """Secrets from the environment. SecretStr keeps them masked in repr, str and logs."""

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    webhook_token: SecretStr | None = None


def _lookup_ci(environ: Mapping[str, str], name: str) -> str | None:
    # Exact name first; then any case, matching the case-insensitive config variables.
    if name in environ:
        return environ[name]
    for key, value in environ.items():
        if key.upper() == name:
            return value
    return None


def secrets_from_env(env: Mapping[str, str] | None = None) -> Credentials:
    """The API key/secret and webhook token from the environment; unset or empty -> None."""
    environ = os.environ if env is None else env

    def secret(name: str) -> SecretStr | None:
        value = _lookup_ci(environ, name)
        return SecretStr(value) if value else None

    return Credentials(
        api_key=secret(API_KEY_ENV),
        api_secret=secret(API_SECRET_ENV),
        webhook_token=secret(WEBHOOK_TOKEN_ENV),
    )


def check_webhook(settings: Settings, credentials: Credentials) -> None:
    """A webhook port needs its token: without one the webhook would take anyone's orders (exit 2)."""
    port = settings.signals.webhook_port
    if port and credentials.webhook_token is None:
        raise ConfigError([ConfigProblem(
            None, "signals.webhook_port",
            None, f"is {port}, but {WEBHOOK_TOKEN_ENV} is not set: the webhook needs a token "
            f"(set {WEBHOOK_TOKEN_ENV} in the core's environment, or webhook_port = 0)",
        )])


# --- errors -----------------------------------------------------------------------------------------


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


# --- TOML line finding ------------------------------------------------------------------------------

# tomllib reports no positions, so lines are found by scanning the text: table headers set the
# current table, `key =` lines record `table + key`. Multi-line arrays, inline tables and
# multi-line strings are skipped over so that their contents are not taken for keys.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEY_LINE_RE = re.compile(rf"^\s*({_DOTTED})\s*=")
_KEY_PART_RE = re.compile(_KEY_PART)


def _split_dotted(dotted: str) -> tuple[str, ...]:
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _KEY_PART_RE.findall(dotted))


class _ValueScanner:
    """Tracks whether a line starts inside a multi-line value (open brackets or a ''' string)."""

    def __init__(self) -> None:
        self.depth = 0
        self.ml_quote: str | None = None

    @property
    def inside(self) -> bool:
        return self.depth > 0 or self.ml_quote is not None

    def feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self.ml_quote is not None:
                end = text.find(self.ml_quote, i)
                if end < 0:
                    return
                i = end + 3
                self.ml_quote = None
                continue
            ch = text[i]
            if ch == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.ml_quote = text[i : i + 3]
                i += 3
                continue
            if ch in "\"'":
                i += 1
                while i < n and text[i] != ch:
                    i += 2 if ch == '"' and text[i] == "\\" else 1
            elif ch in "[{":
                self.depth += 1
            elif ch in "]}":
                self.depth = max(0, self.depth - 1)
            i += 1


def _toml_key_lines(text: str) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    scanner = _ValueScanner()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if scanner.inside:
            scanner.feed(line)
            continue
        header = _HEADER_RE.match(line)
        if header:
            table = _split_dotted(header.group(1))
            path = table
            rest = ""
        else:
            key = _KEY_LINE_RE.match(line)
            if not key:
                continue
            path = table + _split_dotted(key.group(1))
            rest = line[key.end() :]
        for n in range(1, len(path) + 1):
            lines.setdefault(path[:n], lineno)
        scanner.feed(rest)
    return lines


def _line_of(lines: Mapping[tuple[str, ...], int], loc: Iterable[Any]) -> int | None:
    path: list[str] = []
    for part in loc:
        if not isinstance(part, str) or part == "[key]":
            break
        path.append(part)
    # Longest known prefix: a bad item of `markets` points at the `markets =` line.
    for n in range(len(path), 0, -1):
        line = lines.get(tuple(path[:n]))
        if line is not None:
            return line
    return None


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
        line = _line_of(lines, (section,))
        if section not in _SECTIONS:
            what = "section" if isinstance(body, dict) else "top-level key (every key belongs to a section)"
            problems.append(ConfigProblem(label, section, line, f"unknown {what}; {_did_you_mean(section, _SECTIONS)}"))
            continue
        if not isinstance(body, dict):
            problems.append(ConfigProblem(label, section, line, f"must be a table: [{section}]"))
            continue
        fields = _SECTIONS[section].model_fields
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
                        _line_of(lines, (section, key)),
                        f"unknown key in [{section}]; {hint}",
                    )
                )
        data[section] = clean
    return data


def _is_complex(section: str, key: str) -> bool:
    return get_origin(_SECTIONS[section].model_fields[key].annotation) in (list, dict)


def _env_var_names() -> list[str]:
    names = sorted(SECRET_ENV_VARS)
    for section, model in _SECTIONS.items():
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

        if section not in _SECTIONS:
            # Suggest on the part after the prefix, which every candidate shares.
            rest = upper[len(ENV_PREFIX) :]
            close = difflib.get_close_matches(rest, [n[len(ENV_PREFIX) :] for n in _env_var_names()], n=1)
            hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
            unknown(f"unknown variable; config variables are {ENV_PREFIX}<SECTION>__<KEY>{hint}")
            continue
        fields = _SECTIONS[section].model_fields
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
            line = _line_of(lines, loc) if label is not None else None
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
            lines = _toml_key_lines(text)
            raw = _parse_toml(text, label, problems)
            if raw is not None:
                data = _check_file_keys(raw, label, lines, problems)

    env_data, env_origin = _read_env(environ, problems)
    # Key-level override: an env value replaces the file's whole value, dicts included (the stock
    # pydantic-settings merge would deep-merge `paper.balances` from both).
    for section, values in env_data.items():
        data.setdefault(section, {}).update(values)

    settings: Settings | None = None
    token = _INIT_ONLY.set(True)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems += _validation_problems(exc, label, lines, env_origin)
    finally:
        _INIT_ONLY.reset(token)

    if problems:
        # File problems in file order, then the environment's.
        problems.sort(key=lambda p: (p.file is None, p.line or 0))
        raise ConfigError(problems)
    assert settings is not None
    return settings


# --- template ---------------------------------------------------------------------------------------

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
    defaults = _defaults()
    out = [_TEMPLATE_HEADER]
    for section, model in _SECTIONS.items():
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
