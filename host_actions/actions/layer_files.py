"""What certops keeps in %ProgramData%\\certops on a host, and how an install describes what it
changed: shared by install-self-heal (Layer 2) and add-post-renew-step (Layer 3).

The host-side layers sign their reports with `report.key` and post them where `report.json`
says (docs/report-api.md). Both come from the host's config: `report_url` ([bot] public_url)
and `report_secret` ([[hosts]] report_secret_env / report_secret_file). The secret is read only
here, right before a job is built, travels only in the job on stdin (report_config.ps1's
ReportKey) and is held in a `Hidden` string, whose repr and str never show it: it is in no
result, summary, log line, audit entry or exception. layer_state.ps1 says whether report.key
holds it by comparing SHA-256 digests on the host, so a what-if never sends it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from host_actions.errors import HostActionError
from host_actions.layer_config import FOLDER, SELF_HEAL_TASK, interval_minutes, missing_report_settings
from host_actions.target import Host, SecretUnavailable

# the protected ACL the scripts put on the folder and each file: SYSTEM and Administrators only
LOCKED_SIDS = frozenset({"S-1-5-18", "S-1-5-32-544"})
# report_config.ps1 validates both again with exactly these patterns (ValidatePattern); a secret
# is checked here first so that PowerShell, whose validation error quotes the value, never sees a
# bad one
SECRET_PATTERN = re.compile(r"[ -~]{1,1024}")
REPORT_JSON_PATTERN = re.compile(r'\{"url": "https?://[^"\\\s]+", "host": "[A-Za-z0-9][A-Za-z0-9._-]{0,62}"\}')

Outcome = Literal["written", "unchanged", "created", "updated", "removed", "locked"]


class Hidden(str):
    """A secret on its way into a job: json.dumps sends its text; repr, str and format never show it."""

    def __repr__(self) -> str:
        return "'(the secret is not shown)'"

    def __str__(self) -> str:
        return "(the secret is not shown)"

    def __format__(self, spec: str) -> str:
        return "(the secret is not shown)"


@dataclass(frozen=True)
class ReportSettings:
    """report.json's text and the secret for report.key, ready for report_config.ps1."""

    json_text: str
    secret: Hidden
    key_sha256: str  # stays in the job too: layer_state.ps1 compares it with report.key's

    @property
    def json_sha256(self) -> str:
        return sha256(self.json_text)


def sha256(text: str) -> str:
    """SHA-256 of the UTF-8 bytes the scripts write (no BOM), as Get-CertopsSha256 prints it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def report_settings(host: Host) -> ReportSettings | None:
    """The report configuration to write, None when the config does not have it. Raises
    HostActionError (before anything is sent) when the secret cannot be read or written."""
    if missing_report_settings(host) or host.report_secret is None or not host.report_url:
        return None
    try:
        secret = host.report_secret.resolve().strip()
    except SecretUnavailable:
        raise HostActionError(
            "script_failed",
            f"{host.name}: the report secret is not available ({host.report_secret.describe()}); nothing was sent.",
            host=host.name,
        ) from None
    if not SECRET_PATTERN.fullmatch(secret):
        raise HostActionError(
            "script_failed",
            f"{host.name}: the report secret ({host.report_secret.describe()}) must be printable ASCII of at most "
            "1,024 characters, as openssl rand -hex 32 makes one; nothing was sent.",
            host=host.name,
        )
    json_text = json.dumps({"url": host.report_url, "host": host.name})
    if not REPORT_JSON_PATTERN.fullmatch(json_text):
        raise HostActionError(
            "script_failed",
            f"{host.name}: [bot] public_url has quotes, backslashes, spaces or non-ASCII characters, which "
            "report.json cannot carry; nothing was sent.",
            host=host.name,
        )
    return ReportSettings(json_text, Hidden(secret), sha256(secret))


def require_report_settings(host: Host, action: str) -> ReportSettings:
    """As report_settings, but a host without them is refused with the keys to set."""
    missing = missing_report_settings(host)
    if missing:
        raise HostActionError(
            "script_failed",
            f"{host.name}: {action} needs {' and '.join(missing)}. Nothing was sent to the host.",
            host=host.name,
        )
    settings = report_settings(host)
    assert settings is not None
    return settings


def acl_locked(acl: Any) -> bool:
    """Protected (no inherited entries) and granting only SYSTEM and Administrators."""
    if not isinstance(acl, dict) or not acl.get("protected"):
        return False
    who = {str(rule).split(":", 1)[0] for rule in acl.get("rules") or ()}
    return bool(who) and who <= LOCKED_SIDS


@dataclass(frozen=True)
class Change:
    """One thing an install found as wanted, changed, or (what-if) would change. `before` and
    `after` are SHA-256 digests of a file's content; report.key has none (a digest of a secret is
    not shown either)."""

    item: str  # a file's or the folder's path, or a task's path
    outcome: Outcome
    detail: str = ""
    before: str | None = None
    after: str | None = None

    @property
    def changed(self) -> bool:
        return self.outcome != "unchanged"

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "outcome": self.outcome,
            "detail": self.detail,
            "sha256_before": self.before,
            "sha256_after": self.after,
        }

    def sentence(self, *, would: bool, short: str | None = None) -> str:
        """ "self-heal.ps1: written (new)"; with `would`, "self-heal.ps1: would be written (new)"."""
        name = short or self.item
        verb = self.outcome if not would or not self.changed else f"would be {self.outcome}"
        return f"{name}: {verb}" + (f" ({self.detail})" if self.detail else "")


def folder_change(doc: Mapping[str, Any]) -> Change:
    folder = doc.get("folder") or {}
    path = str(folder.get("path") or FOLDER)
    if not folder.get("exists"):
        return Change(path, "created", "SYSTEM and Administrators only")
    if not acl_locked(folder.get("acl")):
        return Change(path, "locked", "its permissions were not SYSTEM and Administrators only")
    return Change(path, "unchanged")


def file_change(doc: Mapping[str, Any] | None, path: str, text: str) -> Change:
    """A file certops writes in full: unchanged only when its SHA-256 and its ACL are as wanted."""
    doc = doc or {}
    want = sha256(text)
    before = doc.get("sha256") if doc.get("exists") else None
    if not doc.get("exists"):
        return Change(path, "written", "new", None, want)
    if before != want:
        return Change(path, "written", "its content differs", before, want)
    if not acl_locked(doc.get("acl")):
        return Change(path, "written", "its permissions were not SYSTEM and Administrators only", before, want)
    return Change(path, "unchanged", "", before, want)


def key_change(doc: Mapping[str, Any] | None, path: str) -> Change:
    doc = doc or {}
    if not doc.get("exists"):
        return Change(path, "written", "the secret is not shown")
    if doc.get("matches") is not True:
        return Change(path, "written", "it holds another secret; the secret is not shown")
    if not acl_locked(doc.get("acl")):
        return Change(path, "written", "its permissions were not SYSTEM and Administrators only")
    return Change(path, "unchanged")


def report_changes(doc: Mapping[str, Any], settings: ReportSettings) -> tuple[Change, Change, Change]:
    """The folder, report.json and report.key against what `settings` wants."""
    json_doc = doc.get("report_json") or {}
    key_doc = doc.get("report_key") or {}
    folder = folder_change(doc)
    base = folder.item
    return (
        folder,
        file_change(json_doc, str(json_doc.get("path") or f"{base}\\report.json"), settings.json_text),
        key_change(key_doc, str(key_doc.get("path") or f"{base}\\report.key")),
    )


def report_params(changes: tuple[Change, Change, Change], settings: ReportSettings) -> dict[str, Any] | None:
    """report_config.ps1's parameters for what must be written; None when nothing must."""
    folder, json_file, key_file = changes
    if not (folder.changed or json_file.changed or key_file.changed):
        return None
    params: dict[str, Any] = {}
    if json_file.changed:
        params["ReportJson"] = settings.json_text
    if key_file.changed:
        params["ReportKey"] = settings.secret
    return params


def report_problems(doc: Mapping[str, Any], settings: ReportSettings) -> list[str]:
    """What is not as written after a write, read back from layer_state."""
    return [f"{c.item} is not as written ({c.detail})" for c in report_changes(doc, settings) if c.changed]


def short_name(item: str, folder: str | None = None) -> str:
    """How a sentence that named the folder already calls an item: "the folder", a file's name,
    a task's full path."""
    if folder is not None and item.lower() == folder.lower():
        return "the folder"
    return item.rsplit("\\", 1)[-1] if "\\" in item and not item.startswith("\\") else item


def describe(changes: list[Change], *, would: bool, folder: str) -> str:
    """ "report.key: written (the secret is not shown); self-heal.ps1: unchanged": what changed (or
    would), one sentence each, then what is already as wanted (the folder only when it changes)."""
    said = [c.sentence(would=would, short=short_name(c.item, folder)) for c in changes if c.changed]
    same = [short_name(c.item, folder) for c in changes if not c.changed and c.item.lower() != folder.lower()]
    if same:
        said.append("unchanged: " + ", ".join(same))
    return "; ".join(said)


__all__ = [
    "FOLDER",
    "LOCKED_SIDS",
    "REPORT_JSON_PATTERN",
    "SECRET_PATTERN",
    "SELF_HEAL_TASK",
    "Change",
    "Hidden",
    "Outcome",
    "ReportSettings",
    "acl_locked",
    "describe",
    "file_change",
    "folder_change",
    "interval_minutes",
    "key_change",
    "missing_report_settings",
    "report_changes",
    "report_params",
    "report_problems",
    "report_settings",
    "require_report_settings",
    "sha256",
    "short_name",
]
