"""What certops knows about a host after an inventory. Plain data, JSON-ready."""

from __future__ import annotations

import datetime as dt
import re
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
SERVER_AUTH_OID = "1.3.6.1.5.5.7.3.1"
ANY_EKU_OID = "2.5.29.37.0"
# Let's Encrypt staging intermediates: "(STAGING) Artificial Apricot R3", "(STAGING) Ersatz
# Edamame E1", and before 2020 "Fake LE Intermediate X1"
STAGING_ISSUER = re.compile(r"\(STAGING\)|\bFake LE\b", re.I)
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
    # X509Chain.Build with revocation off: None when not reported, False when the chain does not
    # reach a trusted root (a `wacs --test` staging certificate, a self-signed leftover)
    chain_trusted: bool | None = None

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

    @property
    def is_staging(self) -> bool:
        """A test certificate (`wacs --test`: Let's Encrypt staging issuers, or any chain that does
        not reach a trusted root): it lands in the same store, but must never be bound."""
        return self.chain_trusted is False or bool(STAGING_ISSUER.search(self.issuer))

    @property
    def server_auth(self) -> bool:
        """May serve TLS: no EKU extension (any purpose), serverAuth, or anyExtendedKeyUsage."""
        return self.eku is None or bool({SERVER_AUTH_OID, ANY_EKU_OID} & set(self.eku))

    @property
    def eligible(self) -> bool:
        """Can be "the newest certificate" for a name, the one bindings should use."""
        return self.server_auth and not self.is_staging

    def in_store(self, store: str | None) -> bool:
        """IIS and netsh write "MY"; the certificate stores are "My" and "WebHosting"."""
        return store is not None and self.store.lower() == store.lower()


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
    # the folder under win-acme's configuration root the file lives in (one per ACME server),
    # and the --baseuri that makes wacs read that folder (None: not known for this folder)
    base_folder: str = ""
    base_uri: str | None = None

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
        """certops's own Layer 2 task (\\certops\\certops self-heal, or the older hourly check): never
        a legacy task."""
        return self.path.lower().startswith("\\certops\\")

    @property
    def is_wacs(self) -> bool:
        """win-acme's own renewal task, found by name or by the program it runs. certops's one-shot
        renew task (\\certops\\certops renew <id>) runs wacs.exe too, but has no trigger: it must not
        stand in for a missing or disabled win-acme task."""
        if self.is_certops:
            return False
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

    def certificate(self, thumbprint: str, store: str | None = None) -> Certificate | None:
        """The certificate; with `store`, the copy in the store a binding names (the same
        thumbprint in My and WebHosting is a migration leftover, each copy with its own key link),
        falling back to any copy when that store has none."""
        copies = [c for c in self.certificates if c.thumbprint == thumbprint]
        return next((c for c in copies if c.in_store(store)), copies[0] if copies else None)

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

    def renewed_thumbprints(self, hostname: str) -> tuple[str, ...]:
        """Thumbprints of the last successful run of each renewal naming this host, newest first."""
        host = a_label(hostname)
        runs = []
        for r in self.renewals:
            names = [a_label(h) for h in r.hosts]
            wildcard = "." in host and "*." + host.split(".", 1)[1] in names
            success = r.last_success
            if (host in names or wildcard) and success is not None and success.thumbprint:
                runs.append((success.date or dt.datetime.min.replace(tzinfo=dt.UTC), success.thumbprint))
        return tuple(tp for _, tp in sorted(runs, reverse=True))

    def newest_for(self, hostname: str, *, usable: bool = False, store: str | None = None) -> Certificate | None:
        """The certificate bindings for this name should use: the one a renewal installed last
        when it is still in the store, otherwise the latest by NotBefore; never a staging
        certificate nor one without serverAuth. `store`: judge the copy in that store."""
        candidates = [c for c in self.covering(hostname) if c.not_before and c.eligible and (c.usable or not usable)]
        for tp in self.renewed_thumbprints(hostname):
            renewed = [c for c in candidates if c.thumbprint == tp]
            if renewed:
                return next((c for c in renewed if c.in_store(store)), renewed[0])
        newest = max(candidates, key=lambda c: (c.not_before, c.not_after), default=None)
        if newest is None or store is None:
            return newest
        return next((c for c in candidates if c.thumbprint == newest.thumbprint and c.in_store(store)), newest)

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
