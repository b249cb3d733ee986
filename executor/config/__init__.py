"""Configuration (SPEC section 4): `from executor.config import Settings, load_config, ...`.

The package's public names, re-exported from where they live:
- `settings`: the `Settings` model and its sections, the default paths, the secrets;
- `loading`: `load_config` (defaults < TOML file < environment, unknown keys fatal), `ConfigError`,
  `ConfigProblem` and `check_webhook`; `toml_lines` finds each key's line in the file;
- `template`: the commented template `config init` writes.
"""

from executor.config.loading import ConfigError, ConfigProblem, check_webhook, load_config
from executor.config.settings import (
    API_KEY_ENV,
    API_SECRET_ENV,
    ENV_PREFIX,
    SECRET_ENV_VARS,
    WEBHOOK_TOKEN_ENV,
    ApprovalConfig,
    ApprovalMode,
    ControlConfig,
    Credentials,
    ExchangeConfig,
    ExecutionConfig,
    PaperConfig,
    ReconcileConfig,
    Settings,
    SignalsConfig,
    StoreConfig,
    UIConfig,
    default_config_path,
    default_db_path,
    secrets_from_env,
)
from executor.config.template import render_template, write_template

__all__ = [
    "API_KEY_ENV",
    "API_SECRET_ENV",
    "ENV_PREFIX",
    "SECRET_ENV_VARS",
    "WEBHOOK_TOKEN_ENV",
    "ApprovalConfig",
    "ApprovalMode",
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
