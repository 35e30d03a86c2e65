"""The host an action runs against: its WinRM address, how to authenticate, and its deadlines.

host_actions is a leaf package and knows nothing of certops.toml: bot.config builds Host values
from [[hosts]] tables, while tests, benches and the simulator build them directly. A password is
any `Secret`, read only when a session opens, so a Host can be printed and logged safely.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

# the daily task had two chances after the due date (diagnose reads it from here: a config load
# stays clear of the parsers)
OVERDUE_GRACE_SECONDS = 2 * 86400.0


class SecretUnavailable(Exception):
    """The secret could not be read; the message names where we looked, never the value."""


class Secret(Protocol):
    def resolve(self) -> str:
        """The secret itself; raises SecretUnavailable when it cannot be read."""
        ...

    def describe(self) -> str:
        """Where the secret lives, for error messages (never the value)."""
        ...


SECRET_CAP = 64 * 1024  # characters; no password or token comes near it


def checked_env_value(variable: str, *, where: str = "") -> str | None:
    """The variable's value, None when it is unset or empty; SecretUnavailable when it cannot be
    a secret. `where` starts each message (a config key's path).

    The environment may hold bytes that are not UTF-8 (Python keeps them as lone surrogates);
    such a value would fail much later, with a traceback, when a header or NTLM encodes it."""
    value = os.environ.get(variable)
    if not value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SecretUnavailable(
            f"{where}environment variable {variable} is not UTF-8 text; set it to the secret written as UTF-8"
        ) from None
    if len(value) > SECRET_CAP:
        raise SecretUnavailable(
            f"{where}environment variable {variable} holds {len(value):,} characters, more than a secret "
            f"may ({SECRET_CAP:,}); set it to the secret alone"
        )
    return value


@dataclass(frozen=True)
class EnvSecret:
    """A secret in one environment variable: what the simulator and tests use without a config file."""

    variable: str

    def describe(self) -> str:
        return f"environment variable {self.variable}"

    def resolve(self) -> str:
        value = checked_env_value(self.variable)
        if not value:
            raise SecretUnavailable(f"environment variable {self.variable} is not set")
        return value


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    transport: str = "ntlm"
    username: str | None = None
    password: Secret | None = None
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    allow_insecure_basic: bool = False
    timeout: float = 120.0
    wacs_path: str = r"C:\Program Files\win-acme\wacs.exe"
    check_interval: float = 3600.0  # seconds between read-only inventory + diagnosis rounds
    renewal_grace: float = OVERDUE_GRACE_SECONDS  # after a renewal's due date, before it is overdue
    max_response_bytes: int = 16 * 1024 * 1024  # one WinRM answer beyond this is refused
    # the key the host's own scripts sign their POST /api/report with (docs/report-api.md)
    report_secret: Secret | None = None
    report_url: str | None = None  # [bot] public_url + "/api/report": where the host's scripts post
    report_interval: float = 3600.0  # seconds between the self-heal task's reports (heartbeats)
