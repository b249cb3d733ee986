"""executor.config: sources and their precedence, unknown keys, error positions, secrets, template."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from executor.config import (
    ConfigError,
    Credentials,
    Settings,
    default_config_path,
    default_db_path,
    load_config,
    render_template,
    secrets_from_env,
    write_template,
)

CANARIES = {
    "TRADECONSOLE_API_KEY": "CANARY-api-key-7f3a",
    "TRADECONSOLE_API_SECRET": "CANARY-api-secret-91bc",
    "TRADECONSOLE_WEBHOOK_TOKEN": "CANARY-webhook-token-44d0",
}


def no_file_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose default config dir is empty, so no config file is found."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg-config"), "HOME": str(tmp_path / "home"), **extra}


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None, env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    return info.value


def test_defaults_with_no_file(tmp_path: Path) -> None:
    s = load_config(None, env=no_file_env(tmp_path))

    assert s.exchange.model_dump() == {
        "id": "paper",
        "sandbox": False,
        "api_url": "",
        "markets": ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
        "client_id_prefix": "tc",
    }
    assert s.execution.model_dump() == {
        "order_type": "limit",
        "slippage_tolerance_pct": Decimal("0.1"),
        "order_timeout_seconds": 30,
        "max_retries": 3,
        "retry_delay_seconds": 1,
        "partial_fill": "cancel_remainder",
    }
    assert s.approval.model_dump() == {
        "mode": "manual",
        "auto_max_notional": 0,
        "signal_ttl_seconds": 120,
        "confirm_notional": 0,
        "far_from_market_pct": 5,
    }
    assert s.signals.model_dump() == {"jsonl": "", "follow": False, "webhook_port": 0, "webhook_allow": [],
                                      "webhook_rate": 20.0, "webhook_burst": 40, "demo": False}
    assert s.paper.model_dump() == {
        "seed": 1,
        "balances": {"USDT": 100000, "BTC": 1, "ETH": 10, "SOL": 100},
        "fee_pct": Decimal("0.1"),
        "latency_ms": 0,
    }
    assert s.store.path == ""
    assert s.reconcile.interval_seconds == 10
    assert s.ui.theme == "tradeconsole-dark"


def test_file_at_default_path_is_used(tmp_path: Path) -> None:
    env = no_file_env(tmp_path)
    path = default_config_path(env)
    path.parent.mkdir(parents=True)
    path.write_text('[ui]\ntheme = "solarized"\n', encoding="utf-8")

    assert load_config(None, env=env).ui.theme == "solarized"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    err = config_error(missing, no_file_env(tmp_path))

    assert err.file == str(missing)
    assert "not found" in err.reason
    assert str(err) == f"{missing}: config file not found"


def test_file_values_are_loaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[exchange]
id = "binance"
sandbox = true
api_url = "http://127.0.0.1:8765"
markets = [
    "BTC/USDT",   # a comment inside a multi-line array
    "ETH/BTC",
]

[execution]
order_type = "market"
max_retries = 5

[paper.balances]
USDT = 500.5
""",
    )

    s = load_config(path, env=no_file_env(tmp_path))

    assert (s.exchange.id, s.exchange.sandbox, s.exchange.api_url) == ("binance", True, "http://127.0.0.1:8765")
    assert s.exchange.markets == ["BTC/USDT", "ETH/BTC"]
    assert (s.execution.order_type, s.execution.max_retries) == ("market", 5)
    assert s.paper.balances == {"USDT": Decimal("500.5")}
    assert s.execution.retry_delay_seconds == 1  # keys the file leaves out keep their defaults


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[exchange]
id = "binance"
markets = ["BTC/USDT"]
[execution]
max_retries = 5
[paper]
balances = { USDT = 1, BTC = 2 }
""",
    )
    env = no_file_env(
        tmp_path,
        TRADECONSOLE_EXCHANGE__API_URL="http://127.0.0.1:9000",
        TRADECONSOLE_EXCHANGE__MARKETS='["ETH/USDT", "SOL/USDT"]',
        TRADECONSOLE_EXECUTION__MAX_RETRIES="7",
        TRADECONSOLE_PAPER__BALANCES='{"ETH": "3.5"}',
        tradeconsole_ui__theme="from-lower-case-env",
    )

    s = load_config(path, env=env)

    assert s.exchange.id == "binance"  # from the file: env did not set it
    assert s.exchange.api_url == "http://127.0.0.1:9000"
    assert s.exchange.markets == ["ETH/USDT", "SOL/USDT"]
    assert s.execution.max_retries == 7
    assert s.paper.balances == {"ETH": Decimal("3.5")}  # replaced whole, not merged with the file's
    assert s.ui.theme == "from-lower-case-env"


def test_real_environment_is_not_read_when_env_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADECONSOLE_UI__THEME", "leaked")
    monkeypatch.setenv("TRADECONSOLE_BOGUS__X", "1")

    assert load_config(None, env=no_file_env(tmp_path)).ui.theme == "tradeconsole-dark"


def test_unknown_key_in_file_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[exchange]\nid = "paper"\n\n[execution]\nmax_retries = 3\nmax_retry = 4\n')

    err = config_error(path, no_file_env(tmp_path))

    assert (err.file, err.line, err.key) == (str(path), 6, "execution.max_retry")
    assert str(err).startswith(f"{path}:6: execution.max_retry: unknown key in [execution]")
    assert "did you mean 'max_retries'?" in str(err)


def test_unknown_section_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[ui]\ntheme = "x"\n\n[bogus]\nx = 1\n')

    err = config_error(path, no_file_env(tmp_path))

    assert (err.file, err.line, err.key) == (str(path), 4, "bogus")
    assert "unknown section" in err.reason


def test_bad_value_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '# retries\n[execution]\norder_type = "limit"\nmax_retries = "three"\n')

    err = config_error(path, no_file_env(tmp_path))

    assert (err.file, err.line, err.key) == (str(path), 4, "execution.max_retries")
    assert str(err) == f'{path}:4: execution.max_retries: Input should be a valid integer (got "three")'


def test_line_of_a_key_after_a_multiline_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[exchange]
markets = [
  "BTC/USDT",
  "fake = 1",
]
client_id_prefix = "far-too-long-prefix"
""",
    )

    err = config_error(path, no_file_env(tmp_path))

    assert [(p.key, p.line) for p in err.problems] == [
        ("exchange.markets[1]", 2),
        ("exchange.client_id_prefix", 6),
    ]


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """[execution]
slippage_tolerance_pct = 100
order_type = "stop"
[approval]
signal_ttl_seconds = 0
nope = 1
""",
    )
    env = no_file_env(tmp_path, TRADECONSOLE_SIGNALS__WEBHOOK_PORT="70000")

    err = config_error(path, env)

    lines = str(err).splitlines()
    assert lines == [str(p) for p in err.problems]
    assert [(p.key, p.line) for p in err.problems] == [
        ("execution.slippage_tolerance_pct", 2),
        ("execution.order_type", 3),
        ("approval.signal_ttl_seconds", 5),
        ("approval.nope", 6),
        ("TRADECONSOLE_SIGNALS__WEBHOOK_PORT", None),
    ]


@pytest.mark.parametrize(
    ("section", "toml_value"),
    [
        ("exchange", 'id = "Binance"'),
        ("exchange", 'api_url = "ftp://example.com"'),
        ("exchange", "markets = []"),
        ("exchange", 'markets = ["BTC-USDT"]'),
        ("exchange", 'markets = ["BTC/USDT", "BTC/USDT"]'),
        ("exchange", 'client_id_prefix = "has space"'),
        ("exchange", 'client_id_prefix = "ninechars"'),
        ("execution", "slippage_tolerance_pct = -0.1"),
        ("execution", "order_timeout_seconds = 0"),
        ("execution", "order_timeout_seconds = inf"),
        ("execution", "max_retries = -1"),
        ("execution", "max_retries = 21"),
        ("execution", "max_retries = true"),
        ("execution", "retry_delay_seconds = -1"),
        ("execution", 'partial_fill = "cancel"'),
        ("approval", 'mode = "automatic"'),
        ("approval", "auto_max_notional = -1"),
        ("approval", "confirm_notional = nan"),
        ("approval", "far_from_market_pct = -1"),
        ("approval", "far_from_market_pct = 100"),
        ("signals", "webhook_port = 65536"),
        ("paper", "balances = { BTC = -1 }"),
        ("paper", "balances = { btc = 1 }"),
        ("paper", "fee_pct = 5.5"),
        ("paper", "latency_ms = -1"),
        ("reconcile", "interval_seconds = 0"),
        ("ui", 'theme = ""'),
    ],
)
def test_out_of_range_value_is_rejected(tmp_path: Path, section: str, toml_value: str) -> None:
    path = write(tmp_path, f"[{section}]\n{toml_value}\n")

    err = config_error(path, no_file_env(tmp_path))

    key = toml_value.split(" =")[0]
    assert err.key is not None and err.key.startswith(f"{section}.{key}")
    assert err.line == 2


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[exchange]\nid = "paper"\n\n[execution\nmax_retries = 3\n')

    err = config_error(path, no_file_env(tmp_path))

    assert (err.file, err.line, err.key) == (str(path), 4, None)
    assert str(err).startswith(f"{path}:4: invalid TOML: ")


def test_unknown_env_var_is_named(tmp_path: Path) -> None:
    env = no_file_env(
        tmp_path,
        TRADECONSOLE_EXCHANGE__NOPE="CANARY-value-of-unknown",
        TRADECONSOLE_BOGUS__X="CANARY-value-of-bogus",
    )

    err = config_error(None, env)

    assert [(p.file, p.key, p.line) for p in err.problems] == [
        (None, "TRADECONSOLE_BOGUS__X", None),
        (None, "TRADECONSOLE_EXCHANGE__NOPE", None),
    ]
    assert str(err).splitlines()[1].startswith("environment: TRADECONSOLE_EXCHANGE__NOPE: unknown key")
    assert "CANARY" not in str(err)  # a misnamed variable may hold a secret: its value is never shown


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    env = no_file_env(
        tmp_path,
        TRADECONSOLE_EXECUTION__MAX_RETRIES="three",
        TRADECONSOLE_EXCHANGE__MARKETS="BTC/USDT",  # not JSON
    )

    err = config_error(None, env)

    text = str(err)
    assert "environment: TRADECONSOLE_EXECUTION__MAX_RETRIES: Input should be a valid integer" in text
    assert "environment: TRADECONSOLE_EXCHANGE__MARKETS: exchange.markets must be JSON" in text


def test_secrets_in_env_are_neither_config_nor_shown(tmp_path: Path) -> None:
    env = no_file_env(tmp_path, **CANARIES)

    s = load_config(None, env=env)
    err = config_error(None, {**env, "TRADECONSOLE_EXECUTION__MAX_RETRIES": "three"})

    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json(), str(err), repr(err)):
        for canary in CANARIES.values():
            assert canary not in text


def test_secrets_from_env_are_masked() -> None:
    creds = secrets_from_env({**CANARIES, "TRADECONSOLE_WEBHOOK_TOKEN": ""})

    assert isinstance(creds, Credentials)
    assert creds.api_key is not None and creds.api_key.get_secret_value() == CANARIES["TRADECONSOLE_API_KEY"]
    assert creds.api_secret is not None
    assert creds.webhook_token is None  # empty counts as unset
    assert all(canary not in repr(creds) and canary not in str(creds) for canary in CANARIES.values())
    assert secrets_from_env({}) == Credentials()


def test_template_round_trips_to_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, render_template())

    assert load_config(path, env={}) == load_config(None, env=no_file_env(tmp_path))


def test_template_comments_every_key() -> None:
    lines = render_template().splitlines()

    for section, field in Settings.model_fields.items():
        assert any(line.startswith(f"[{section}]") for line in lines)
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            line = next(line for line in lines if line.startswith(f"{key} = "))
            assert "  # " in line, line


def test_write_template_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    write_template(path)
    path.write_text("# mine\n", encoding="utf-8")

    with pytest.raises(FileExistsError, match="already exists"):
        write_template(path)
    assert path.read_text(encoding="utf-8") == "# mine\n"

    write_template(path, force=True)
    assert path.read_text(encoding="utf-8") == render_template()


def test_db_path_precedence(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    default = tmp_path / "data" / "tradeconsole" / "tradeconsole.db"
    plain = load_config(None, env=no_file_env(tmp_path))
    with_store = load_config(None, env=no_file_env(tmp_path, TRADECONSOLE_STORE__PATH="/srv/tc.db"))

    assert plain.db_path(None, env=env) == default
    assert with_store.db_path(None, env=env) == Path("/srv/tc.db")
    assert with_store.db_path("/tmp/flag.db", env=env) == Path("/tmp/flag.db")
    assert plain.db_path("/tmp/flag.db", env=env) == Path("/tmp/flag.db")


def test_default_paths_follow_xdg_then_home() -> None:
    xdg = {"XDG_CONFIG_HOME": "/x/cfg", "XDG_DATA_HOME": "/x/data", "HOME": "/home/u"}
    home_only = {"HOME": "/home/u", "XDG_CONFIG_HOME": "relative/is/ignored"}

    assert default_config_path(xdg) == Path("/x/cfg/tradeconsole/config.toml")
    assert default_db_path(xdg) == Path("/x/data/tradeconsole/tradeconsole.db")
    assert default_config_path(home_only) == Path("/home/u/.config/tradeconsole/config.toml")
    assert default_db_path(home_only) == Path("/home/u/.local/share/tradeconsole/tradeconsole.db")
