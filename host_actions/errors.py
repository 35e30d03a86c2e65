"""The one error a host action raises: a kind for code to branch on, a sentence for users.

The message is written by us, never copied from an exception: pywinrm and requests put URLs,
headers and sometimes response bodies into their messages, and none of that belongs in chat.
"""

from __future__ import annotations

from typing import Literal, get_args

ErrorKind = Literal[
    "unreachable",
    "auth_failed",
    "tls_failed",
    "timeout",
    "script_failed",
    "bad_output",
    "too_large",  # one answer, or a command's output, was bigger than the host's max_response_bytes
    "redirected",  # WinRM answered with an HTTP redirect, which certops never follows
    "tls_mismatch",  # an https:// address answered in plain HTTP (or the other way round)
    "constrained_language",  # PowerShell on the host runs in Constrained Language Mode (AppLocker/WDAC)
]

KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)


class HostActionError(Exception):
    """A host action failed. `message` is safe to show to users; `kind` is for code."""

    def __init__(self, kind: ErrorKind, message: str, *, host: str | None = None) -> None:
        self.kind: ErrorKind = kind
        self.message = message
        self.host = host
        super().__init__(message)

    def __repr__(self) -> str:
        return f"HostActionError(kind={self.kind!r}, host={self.host!r}, message={self.message!r})"


class InvalidParameter(HostActionError):
    """A value was refused before anything was sent to the host."""

    def __init__(self, message: str) -> None:
        super().__init__("script_failed", message)
