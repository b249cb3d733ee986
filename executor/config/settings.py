"""Configuration: the `Settings` model of SPEC section 4, its sections, paths and secrets.

This module owns:
- the section models and their value checks (every key of SPEC section 4, same names, same defaults);
- `Settings`, the root: plain pydantic models, so a bare `Settings()` is the defaults and reads
  nothing else; `executor.config.loading.load_config` adds the file and the environment;
- the config-variable names (`TRADECONSOLE_<SECTION>__<KEY>`, the secrets' names) and `SECTIONS`;
- the default config and database paths;
- `secrets_from_env`: the API keys and webhook token, which live in the environment only and are
  never part of `Settings` (SPEC section 12).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from executor.clientid import PREFIX_RULE

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


class ApprovalMode(StrEnum):
    MANUAL = "manual"  # every signal waits for an operator
    AUTO = "auto"  # the policy approves what passes its checks


class ApprovalConfig(_Section):
    mode: ApprovalMode = Field(ApprovalMode.MANUAL, description='"manual" or "auto"')
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


class Settings(BaseModel):
    """The whole configuration. Build it with `load_config`; a bare `Settings()` is the defaults."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    ui: UIConfig = Field(default_factory=UIConfig)

    def db_path(self, override: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Path:
        """The store file: `--db` if given, else `store.path` if set, else the platform default."""
        if override is not None and os.fspath(override) != "":
            return Path(override).expanduser()
        if self.store.path:
            return Path(self.store.path).expanduser()
        return default_db_path(env)


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
}


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
