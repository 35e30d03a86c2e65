"""Checks for every value that may reach PowerShell. They run before any WinRM traffic.

fullmatch, not match: "$" in Python also matches before a trailing newline.

The scripts validate again on the host ([ValidatePattern]); this side exists so that a refused
value costs nothing and is reported in plain words.
"""

from __future__ import annotations

import re

from host_actions.errors import InvalidParameter

_THUMBPRINT = re.compile(r"^[0-9A-F]{40}$")
_RENEWAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,99}$")
_TASK_PATH = re.compile(r"^\\(?:[^\\\x00-\x1f\"'`$;|&<>*?]+\\)*[^\\\x00-\x1f\"'`$;|&<>*?]+$")
_STORES = ("My", "WebHosting")
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:\\[^\x00-\x1f\"'`$;|&<>*?]+$")


def thumbprint(value: str) -> str:
    """A SHA-1 thumbprint as Windows shows it; spaces and lower case (certutil, netsh) are fine."""
    normal = value.replace(" ", "").upper() if isinstance(value, str) else ""
    if not _THUMBPRINT.fullmatch(normal):
        raise InvalidParameter("A thumbprint is 40 hexadecimal characters; this value was refused.")
    return normal


def renewal_id(value: str) -> str:
    if not isinstance(value, str) or not _RENEWAL_ID.fullmatch(value):
        raise InvalidParameter("A win-acme renewal id is letters, digits, '-' or '_'; this value was refused.")
    return value


def site_name(value: str) -> str:
    if not isinstance(value, str) or not _SITE.fullmatch(value):
        raise InvalidParameter("An IIS site name is letters, digits, spaces and . _ ( ) -; this value was refused.")
    return value


def task_path(value: str) -> str:
    """A scheduled task's full path, e.g. \\SSL-PostRenew or \\Ops\\Renew; no quoting characters."""
    if not isinstance(value, str) or len(value) > 260 or not _TASK_PATH.fullmatch(value):
        raise InvalidParameter(
            "A scheduled task path looks like \\Folder\\Name and has no quotes or "
            "special characters; this value was refused."
        )
    if value.lower().startswith("\\microsoft\\"):
        raise InvalidParameter("Tasks under \\Microsoft\\ belong to Windows and are never touched.")
    return value


def store_name(value: str) -> str:
    for store in _STORES:
        if value.lower() == store.lower():
            return store
    raise InvalidParameter("The certificate store must be My or WebHosting.")


def windows_path(value: str) -> str:
    """An absolute local path without characters that could end a quoted string."""
    if not isinstance(value, str) or len(value) > 260 or not _WINDOWS_PATH.fullmatch(value):
        raise InvalidParameter("That is not an absolute Windows path without special characters.")
    return value


# An ACME directory URL as wacs takes it after --baseuri. No quotes, spaces or '%' (Task Scheduler
# expands %VAR% in a task's arguments), so it can sit between quotes in a task's command line.
_BASE_URI = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?$")


def base_uri(value: str) -> str:
    if not isinstance(value, str) or len(value) > 200 or not _BASE_URI.fullmatch(value):
        raise InvalidParameter(
            "An ACME server address is https://host[:port]/path without quotes, spaces or %; this value was refused."
        )
    return value
