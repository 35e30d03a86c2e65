"""Config problems are collected, not raised one by one, so the operator sees every mistake at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# scheme://USERINFO@: up to the last "@" before a space or quote, so a password that holds "@"
# or an unencoded "/" is hidden whole; and USER:PASSWORD@ without a scheme ("origins", a typo)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s\"']*)@")
_BARE_USERINFO = re.compile(r"(?<![\w.:/*-])(?P<user>[^\s\"':/@]+):(?P<password>[^\s\"'/]*)@")
_PORT_THEN_PATH = re.compile(r"^[^:/]*:[0-9]*/")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"']*")
_QUERY_VALUE = re.compile(r"(?P<name>[?&;][^=\s\"'&;#]*=)[^\s\"'&;#]+")


def mask_credentials(text: str) -> str:
    """'https://svc:hunter2@iis01/wsman' -> 'https://svc:***@iis01/wsman', wherever it appears.

    Every config message passes through here: a URL that has a password and another problem too
    must never be printed whole. So is a query's values ("?token=***"): tokens travel there too."""
    text = _URL.sub(lambda m: _QUERY_VALUE.sub(r"\g<name>***", m[0]), text)
    return _BARE_USERINFO.sub(r"\g<user>:***@", _URL_USERINFO.sub(_mask_url_userinfo, text))


def _mask_url_userinfo(match: re.Match[str]) -> str:
    scheme, info = match["scheme"], match["info"]
    if "/" in info and ("@" not in info.partition("/")[0]) and (":" not in info or _PORT_THEN_PATH.match(info)):
        return match[0]  # an "@" in the path ("https://example.com:8443/@team"), not a user name
    user, colon, _password = info.partition(":")
    if colon:
        return f"{scheme}{user}:***@"
    return f"{scheme}***@"  # a lone user name may well be a token ("https://ghp_…@github.com")


@dataclass(frozen=True)
class ConfigIssue:
    path: str  # e.g. "sites[2].warn_days"; "" for the file as a whole
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", mask_credentials(self.message))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.issues)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {issue}" for issue in self.issues)])


_QUOTE_AT_MOST = 80  # characters of a value shown in a message
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def quoted(value: Any) -> str:
    """A value as a message shows it: short, on one line, with no control characters."""
    if isinstance(value, str):
        return f'"{_shown(value)}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"a number of {len(str(abs(value)))} digits"  # TOML allows 4300; no message needs them
    return _shown(str(value))


def _shown(text: str) -> str:
    text = _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
    if len(text) > _QUOTE_AT_MOST:
        return f"{text[: _QUOTE_AT_MOST - 20]}… ({len(text):,} characters)"
    return text
