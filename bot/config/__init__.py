"""certops configuration: one TOML file, validated once; secrets are read from env or files."""

from bot.config.errors import ConfigError, ConfigIssue
from bot.config.load import load_config, missing_secrets, parse_config, split_host_port
from bot.config.model import Config, Host, LineSettings, Policy, Site, SlackSettings
from bot.config.secrets import SecretRef, SecretUnavailable

__all__ = [
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Host",
    "LineSettings",
    "Policy",
    "SecretRef",
    "SecretUnavailable",
    "Site",
    "SlackSettings",
    "load_config",
    "missing_secrets",
    "parse_config",
    "split_host_port",
]
