"""certops configuration: one TOML file, validated once; secrets are read from env or files."""

from bot.config.errors import ConfigError, ConfigIssue
from bot.config.load import load_config, missing_secrets, parse_config, split_host_port
from bot.config.model import (
    BotSettings,
    Config,
    Host,
    LineSettings,
    Maintenance,
    Policy,
    Site,
    SlackSettings,
    TimeOfDay,
    redact_url,
)
from bot.config.secrets import SecretRef, SecretUnavailable

__all__ = [
    "BotSettings",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Host",
    "LineSettings",
    "Maintenance",
    "Policy",
    "SecretRef",
    "SecretUnavailable",
    "Site",
    "SlackSettings",
    "TimeOfDay",
    "load_config",
    "missing_secrets",
    "parse_config",
    "redact_url",
    "split_host_port",
]
