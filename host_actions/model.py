"""What certops knows about a host after an inventory. Plain data, JSON-ready."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Literal

import idna

KeyStatus = Literal[
    "ok",
    "missing_keyset",
    "no_key_provider_info",
    "access_denied",
    "error",
    "key_mismatch",  # a key opens and signs, but it is not this certificate's key
    "user_key",  # the key lives in a user's key store, where IIS (SYSTEM) cannot use it
    "key_unopenable",  # the key container exists but cannot be opened or used
]
KeySource = Literal["winrm", "layer2"]
SYSTEM_IDENTITY = "NT AUTHORITY\\SYSTEM"


def a_label(name: str) -> str:
    """A host name as DNS compares it: lower case, no trailing dot, IDNA A-labels (punycode).

    Certificates carry A-labels; IIS, win-acme and PowerShell's DnsNameList may give U-labels.
    """
    name = name.strip().rstrip(".").lower()
    if name.isascii():
        return name
    labels = []
    for label in name.split("."):
        if label.isascii():
            labels.append(label)
            continue
        try:
            labels.append(idna.encode(label, uts46=True).decode("ascii"))
        except idna.IDNAError:
            labels.append(label)  # not a valid IDN: kept as it is, so it matches only itself
    return ".".join(labels)


@dataclass(frozen=True)
class Certificate:
    store: str
    thumbprint: str
    subject: str
    sans: tuple[str, ...]
    friendly_name: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    issuer: str
    serial: str
    has_private_key: bool
    key_status: KeyStatus
    key_hresult: str | None = None
    key_message: str | None = None
    provider: str | None = None
    container: str | None = None
    key_file_exists: bool | None = None
    key_algorithm: str | None = None  # "RSA" or "ECDSA", from the certificate's public key
    is_machine_key: bool | None = None
    as_identity: str | None = None  # the account the key verdict holds for
    key_source: KeySource = "winrm"  # who tested the key: the WinRM account or the Layer 2 task
    winrm_key_status: KeyStatus | None = None  # the WinRM account's verdict when Layer 2's won
    eku: tuple[str, ...] | None = None  # dotted OIDs; None when the certificate has no EKU extension
    cn: str | None = None  # the subject CN read from RawData (None when RawData was not read)
    key_link: str | None = None  # "provider|container" of the key link (KeyProvInfo) tested

    @property
    def common_name(self) -> str:
        if self.cn is not None:
            return self.cn
        for part in self.subject.split(","):
            key, _, value = part.strip().partition("=")
            if key.upper() == "CN":
                return value.strip()
        return ""

    @cached_property
    def names(self) -> tuple[str, ...]:
        names = list(dict.fromkeys(a_label(n) for n in self.sans if n))
        cn = a_label(self.common_name) if self.common_name else ""
        if cn and cn not in names:
            names.append(cn)
        return tuple(names)

    def covers(self, hostname: str) -> bool:
        hostname = a_label(hostname)
        for name in self.names:
            if name == hostname:
                return True
            if name.startswith("*.") and hostname.count(".") == name.count(".") and (hostname.endswith(name[1:])):
                return True
        return False

    @property
    def usable(self) -> bool:
        return self.key_status == "ok"


@dataclass(frozen=True)
class SslBinding:
    """One http.sys SSL binding (`netsh http show sslcert`)."""

    kind: Literal["ip", "hostname", "ccs"]
    endpoint: str
    host: str | None  # the IP or host name; None for a CCS (port-only) binding
    port: int | None
    thumbprint: str | None
    store: str | None
    app_id: str | None = None


@dataclass(frozen=True)
class SiteBinding:
    site: str
    site_id: int
    protocol: str
    ip: str
    port: int | None
    host: str  # "" when the binding has no host name
    sni: bool
    ccs: bool
    thumbprint: str | None
    store: str | None
    error: str | None = None  # a value of this binding could not be read (its hash getter threw)
    information: str = ""  # bindingInformation exactly as IIS has it ("IP:port:host")


@dataclass(frozen=True)
class InstallStep:
    plugin: str
    name: str  # "IIS", "Script", "None" or "unknown"
    script: str | None = None
    script_parameters: str | None = None
    script_exists: bool | None = None


@dataclass(frozen=True)
class HistoryEntry:
    date: dt.datetime | None
    success: bool
    thumbprint: str | None
    expires: dt.datetime | None
    due: dt.datetime | None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Renewal:
    id: str
    path: str
    friendly_name: str
    hosts: tuple[str, ...]
    store_plugins: tuple[str, ...]
    store_name: str | None
    steps: tuple[InstallStep, ...]
    history: tuple[HistoryEntry, ...]  # newest last, at most the last five
    sha256: str  # of the file text, so an edit can refuse a file that changed meanwhile
    problem: str | None = None  # why the file could not be read, when it could not

    @property
    def last(self) -> HistoryEntry | None:
        return self.history[-1] if self.history else None

    @property
    def last_success(self) -> HistoryEntry | None:
        return next((h for h in reversed(self.history) if h.success), None)

    @property
    def due(self) -> dt.datetime | None:
        success = self.last_success
        return success.due if success else None


@dataclass(frozen=True)
class FileFact:
    token: str
    path: str
    exists: bool
    text: str | None = None


@dataclass(frozen=True)
class TaskAction:
    execute: str
    arguments: str
    working_directory: str = ""
    files: tuple[FileFact, ...] = ()


@dataclass(frozen=True)
class ScheduledTask:
    path: str
    state: str
    last_run: dt.datetime | None
    last_result: int
    next_run: dt.datetime | None
    actions: tuple[TaskAction, ...]
    user: str | None = None
    user_resolves: bool | None = None
    missed_runs: int = 0

    @property
    def folder(self) -> str:
        return self.path[: self.path.rfind("\\") + 1]

    @property
    def name(self) -> str:
        return self.path[self.path.rfind("\\") + 1 :]

    @property
    def enabled(self) -> bool:
        return self.state.lower() != "disabled"

    @property
    def is_certops(self) -> bool:
        """certops's own Layer 2 task (\\certops\\certops hourly check): never a legacy task."""
        return self.path.lower().startswith("\\certops\\")

    @property
    def is_wacs(self) -> bool:
        """win-acme's own renewal task, found by name or by the program it runs."""
        return self.name.lower().startswith("win-acme") or any(
            a.execute.strip('"').lower().endswith("wacs.exe") for a in self.actions
        )


@dataclass(frozen=True)
class Layer2Report:
    """What the hourly host-side check (running as SYSTEM) last wrote to its state file."""

    at: dt.datetime | None
    identity: str
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inventory:
    host: str
    taken_at: dt.datetime
    certificates: tuple[Certificate, ...]
    ssl_bindings: tuple[SslBinding, ...]
    site_bindings: tuple[SiteBinding, ...]
    iis_available: bool
    renewals: tuple[Renewal, ...]
    tasks: tuple[ScheduledTask, ...]  # every task outside the \\Microsoft\\ folder
    services: tuple[str, ...]
    wacs_exists: bool
    iis_error: str | None = None
    # per-part degradation: what could not be read, next to what could
    iis_errors: tuple[str, ...] = ()  # single sites or bindings IIS could not give
    tasks_available: bool = True
    tasks_errors: tuple[str, ...] = ()
    renewals_available: bool = True
    renewals_errors: tuple[str, ...] = ()
    layer2: Layer2Report | None = None

    @property
    def wacs_tasks(self) -> tuple[ScheduledTask, ...]:
        return tuple(t for t in self.tasks if t.is_wacs)

    def certificate(self, thumbprint: str) -> Certificate | None:
        return next((c for c in self.certificates if c.thumbprint == thumbprint), None)

    def renewal(self, renewal_id: str) -> Renewal | None:
        return next((r for r in self.renewals if r.id == renewal_id), None)

    def sites(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(b.site for b in self.site_bindings))

    @cached_property
    def _by_name(self) -> dict[str, tuple[Certificate, ...]]:
        # diagnose asks "which certificates cover this name" once per binding and name;
        # an index keeps a 200-certificate, 50-binding host linear instead of quadratic
        index: dict[str, list[Certificate]] = {}
        for c in self.certificates:
            for name in c.names:
                index.setdefault(name, []).append(c)
        return {name: tuple(certs) for name, certs in index.items()}

    def covering(self, hostname: str) -> tuple[Certificate, ...]:
        """Certificates whose names cover the host name (exactly, or by a one-label wildcard)."""
        host = a_label(hostname)
        found = list(self._by_name.get(host, ()))
        if "." in host:
            found += self._by_name.get("*." + host.split(".", 1)[1], ())
        return tuple(dict.fromkeys(found))

    def newest_for(self, hostname: str) -> Certificate | None:
        """The certificate a renewal would have installed last for this name."""
        candidates = [c for c in self.covering(hostname) if c.not_before]
        return max(candidates, key=lambda c: (c.not_before, c.not_after), default=None)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = to_jsonable(asdict(self))
        return doc


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value
