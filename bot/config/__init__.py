"""certops configuration: one TOML file, validated once; secrets are read from env or files.

The names below load with the module that defines them, on first use: `certops check URL` and
the probe need only `bot.config.site` and `bot.config.urls`, not the whole config (and with it
the host side's types), which a monitoring system pays for at every run."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config.errors import ConfigError, ConfigIssue
    from bot.config.load import load_config, missing_secrets, parse_config
    from bot.config.model import (
        BotSettings,
        Config,
        Host,
        LineSettings,
        Maintenance,
        Policy,
        SlackSettings,
        TimeOfDay,
        redact_url,
    )
    from bot.config.secrets import SecretRef, SecretUnavailable
    from bot.config.site import Site
    from bot.config.urls import split_host_port

_WHERE = {
    "ConfigError": "errors",
    "ConfigIssue": "errors",
    "load_config": "load",
    "missing_secrets": "load",
    "parse_config": "load",
    "BotSettings": "model",
    "Config": "model",
    "Host": "model",
    "LineSettings": "model",
    "Maintenance": "model",
    "Policy": "model",
    "SlackSettings": "model",
    "TimeOfDay": "model",
    "redact_url": "model",
    "SecretRef": "secrets",
    "SecretUnavailable": "secrets",
    "Site": "site",
    "split_host_port": "urls",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later lookups do not come back here
    return value


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
