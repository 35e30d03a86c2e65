"""A model of one IIS host: stores, key links, http.sys and IIS bindings, win-acme, tasks.

Certificates are real X.509 objects minted with `cryptography`, so thumbprints, names and dates
are what a probe of a TLS server using them would see.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# What the key link of a certificate leads to. "wrong_key": an existing key that is not this
# certificate's (a relink to the wrong container); "user_store": the key sits in a user's store.
KeyState = Literal["ok", "missing_keyset", "no_key_provider_info", "access_denied", "wrong_key", "user_store"]
KeyAlg = Literal["rsa", "ecdsa"]
ProviderKind = Literal["capi", "cng"]  # win-acme's default RSA key is CAPI (the SChannel CSP)
SCHANNEL_CSP = "Microsoft RSA SChannel Cryptographic Provider"
SOFTWARE_KSP = "Microsoft Software Key Storage Provider"
WINRM_IDENTITY = "IIS01\\certops"
SYSTEM_IDENTITY = "NT AUTHORITY\\SYSTEM"
CERTOPS_TASK = "\\certops\\certops hourly check"
SELF_HEAL_TASK = "\\certops\\certops self-heal"
LAYER2_STATE = "C:\\ProgramData\\certops\\key-verdicts.json"
IIS_APP_ID = "{4dc3e181-e14b-4a21-b022-59fc669b0914}"
PLUGIN_IIS = "ea6a5be3-f8de-4d27-a6bd-750b619b2ee2"
PLUGIN_SCRIPT = "3bb22c70-358d-4251-86bd-11858363d913"
PLUGIN_STORE = "e30adc8e-d756-4e16-a6f2-450f784b1a97"
PLUGIN_TARGET_IIS = "54deb3ee-b5df-4381-8485-fe386054055b"
WINACME_ROOT = "C:\\ProgramData\\win-acme\\acme-v02.api.letsencrypt.org"
DEFAULT_CONFIG_ROOT = "C:\\ProgramData\\win-acme"
DEFAULT_BASE_URI = "https://acme-v02.api.letsencrypt.org/"
STAGING_BASE_URI = "https://acme-staging-v02.api.letsencrypt.org/"
DEFAULT_ENVIRONMENT = {
    "windir": "C:\\Windows",
    "SystemRoot": "C:\\Windows",
    "ProgramFiles": "C:\\Program Files",
    "ProgramFiles(x86)": "C:\\Program Files (x86)",
    "ProgramW6432": "C:\\Program Files",
    "ProgramData": "C:\\ProgramData",
}
STAGING_ISSUER_CN = "(STAGING) Artificial Apricot R3"  # Let's Encrypt's staging intermediate

# One issuer key for the whole process: minting is the slow part of building a big model.
_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())
_LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
_RSA_LEAF_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class SimCert:
    store: str
    pem: bytes
    thumbprint: str
    subject: str
    sans: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    issuer: str
    serial: str
    friendly_name: str = ""
    key_state: KeyState = "ok"  # as the WinRM account sees it
    container: str = ""  # the key file's name (UniqueName)
    key_lost: bool = False  # the key file is gone for good: certutil -repairstore cannot help
    der: bytes = b""  # RawData
    key_alg: KeyAlg = "ecdsa"
    provider_kind: ProviderKind = "cng"
    system_key_state: KeyState | None = None  # as SYSTEM (schannel) sees it, when that differs
    chain_trusted: bool = True  # X509Chain.Build reaches a trusted root (False: staging, self-signed)

    @property
    def link_container(self) -> str:
        """The container name the key link (KeyProvInfo) names."""
        return f"te-{self.thumbprint[:8].lower()}-certops-sim"

    @property
    def provider(self) -> str:
        return SCHANNEL_CSP if self.provider_kind == "capi" else SOFTWARE_KSP


@dataclass
class HttpBinding:
    kind: Literal["ip", "hostname", "ccs"]
    endpoint: str  # "0.0.0.0:443", "www.example.com:443" or "443"
    thumbprint: str  # upper case; rendered lower case like netsh does
    store: str = "MY"


@dataclass
class SiteBinding:
    protocol: str
    information: str  # "IP:port:host"
    ssl_flags: int = 0
    thumbprint: str = ""
    store: str = ""
    hash_getter_throws: bool = False  # MWA's Binding.CertificateHash throws for this binding


@dataclass
class Site:
    name: str
    id: int
    bindings: list[SiteBinding] = field(default_factory=list)


@dataclass
class TaskAction:
    execute: str
    arguments: str = ""
    working_directory: str = ""


@dataclass
class Task:
    path: str  # "\\", "\\Ops\\"
    name: str
    state: str = "Ready"
    user: str = "SYSTEM"
    actions: list[TaskAction] = field(default_factory=list)
    last_run: dt.datetime | None = None
    last_result: int = 0x41303
    next_run: dt.datetime | None = None
    xml_malformed: bool = False  # Get-ScheduledTask writes an error for it instead of listing it
    polls_left: int = 0  # a running task: status reads until it ends (certops's renew task)

    @property
    def full_path(self) -> str:
        return self.path + self.name


@dataclass
class DefinedTask(Task):
    """A task with the parts of its definition install-self-heal compares: certops's self-heal task
    as install_self_heal.ps1 registers it (a plain Task reads as one that differs from it)."""

    run_level: str = "Highest"
    every_minutes: float | None = None  # the trigger's repetition interval
    multiple_instances: str = "IgnoreNew"
    time_limit_minutes: float | None = None  # Settings.ExecutionTimeLimit


@dataclass
class Renewal:
    id: str
    path: str
    data: dict[str, Any]

    def text(self) -> str:
        return json.dumps(self.data, indent=2)


@dataclass
class HostModel:
    """Everything the scripts can see or change. Guard it with `lock` when serving requests."""

    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    certs: list[SimCert] = field(default_factory=list)
    http_bindings: list[HttpBinding] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    # non-English Windows: PowerShell 5.1's DnsNameList shows only the subject CN
    localised: bool = False
    # how Microsoft.Web.Administration loads: by path (inetsrv), by full name, or not at all
    # (the partial-name Add-Type the scripts used to do fails on some hosts)
    mwa_loads_by: Literal["path", "full_name", "none"] = "path"
    access_denied_folders: list[str] = field(default_factory=list)  # under the win-acme root
    winrm_identity: str = WINRM_IDENTITY
    renewals: list[Renewal] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path (lower case) -> content
    services: set[str] = field(default_factory=lambda: {"W3SVC", "WAS", "WinRM", "Schedule"})
    users: set[str] = field(default_factory=lambda: {"SYSTEM", "Administrator"})
    iis_available: bool = True
    wacs_path: str = "C:\\Program Files\\win-acme\\wacs.exe"
    # What the next win-acme run leaves behind; "missing_keyset" replays the incident.
    next_renewal_key_state: KeyState = "ok"
    next_renewal_fails: bool = False
    next_renewal_key_alg: KeyAlg = "rsa"
    # what the Script installation step exits with on the next run; win-acme 2.2 logs an error and
    # still records Success: true (OrderProcessor "This is not truly fatal")
    next_script_exit: int = 0
    # "2.2.3": DueDate only when ACME Renewal Info moved the date, as an object {Start, End, Source};
    # "string": the ISO string older win-acme wrote on every success
    due_date_style: Literal["string", "2.2.3"] = "string"
    # $ExecutionContext.SessionState.LanguageMode of a WinRM session: "ConstrainedLanguage" plays
    # a host under AppLocker/WDAC script enforcement, where the bootstrap stops with exit 3
    language_mode: str = "FullLanguage"
    # what [Environment]::ExpandEnvironmentVariables knows (names case-insensitive)
    environment: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENVIRONMENT))
    # settings.json Client.ConfigurationPath ("": %ProgramData%\win-acme). wacs and winacme.ps1
    # read renewals only under it, one folder per ACME server (CleanUri of its base URI)
    configuration_path: str = ""
    # how many status reads certops's one-shot renew task keeps running for after its start
    # (0: it has ended by the time the start returns); wacs's effect lands when it ends
    renew_task_polls: int = 0
    # a wacs.exe process runs now (win-acme's own task, or someone at the console)
    wacs_running: bool = False
    # the next run reuses win-acme's cached certificate (Cache.ReuseDays; --force does not bypass
    # it, only --nocache does): exit 0, a history entry with the old thumbprint, nothing new
    next_renewal_no_certificate: bool = False
    # protected ACLs scripts set on files: path (lower case) -> "SID:Rights" entries, comma-separated
    file_acls: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.files.setdefault(self.wacs_path.lower(), "")

    # -- lookups -----------------------------------------------------------------------------

    def cert(self, thumbprint: str, store: str | None = None) -> SimCert | None:
        for c in self.certs:
            if c.thumbprint == thumbprint.upper() and (store is None or c.store.lower() == store.lower()):
                return c
        return None

    def site(self, name: str) -> Site | None:
        return next((s for s in self.sites if s.name.lower() == name.lower()), None)

    def task(self, full_path: str) -> Task | None:
        return next((t for t in self.tasks if t.full_path.lower() == full_path.lower()), None)

    def file_exists(self, path: str) -> bool:
        return path.lower() in self.files

    # -- building ----------------------------------------------------------------------------

    def add_cert(
        self,
        names: list[str],
        *,
        store: str = "WebHosting",
        days_old: float = 10,
        days_valid: float = 90,
        key_state: KeyState = "ok",
        friendly_name: str = "",
        key_alg: KeyAlg = "rsa",
        provider_kind: ProviderKind | None = None,
        staging: bool = False,
        server_auth: bool = True,
    ) -> SimCert:
        """`staging`: issued by Let's Encrypt's staging CA (`wacs --test`), whose chain reaches no
        trusted root; `server_auth=False`: its EKU is clientAuth only."""
        cert = mint_certificate(
            names,
            self.now - dt.timedelta(days=days_old),
            days_valid,
            key_alg,
            issuer_cn=STAGING_ISSUER_CN if staging else None,
            server_auth=server_auth,
        )
        sim = sim_cert(cert, store, key_state, friendly_name, provider_kind)
        sim.chain_trusted = not staging
        self.certs.append(sim)
        return sim

    def bind_site(
        self,
        site_name: str,
        hostname: str,
        cert: SimCert | None,
        *,
        port: int = 443,
        sni: bool = True,
        ccs: bool = False,
        ip: str = "*",
    ) -> None:
        """One https binding. Without SNI the host name (if any) stays in the binding information
        while http.sys serves the IP:port entry, which every non-SNI binding on that socket shares.
        A CCS binding (SslFlags 2) has no hash: IIS takes the certificate from the share."""
        site = self.site(site_name)
        if site is None:
            site = Site(site_name, len(self.sites) + 1)
            site.bindings.append(SiteBinding("http", f"*:80:{hostname}"))
            self.sites.append(site)
        info = f"{ip}:{port}:{hostname}"
        if ccs:
            site.bindings.append(SiteBinding("https", info, 2 | (1 if sni else 0)))
            if not any(h.kind == "ccs" and h.endpoint == str(port) for h in self.http_bindings):
                self.http_bindings.append(HttpBinding("ccs", str(port), "", "MY"))
            return
        if cert is None:
            raise ValueError("a binding that is not a CCS binding needs a certificate")
        store = "MY" if cert.store == "My" else cert.store
        site.bindings.append(SiteBinding("https", info, 1 if sni else 0, cert.thumbprint, store))
        endpoint = f"{hostname}:{port}" if sni else f"{'0.0.0.0' if ip == '*' else ip}:{port}"  # noqa: S104 - http.sys's wildcard address
        existing = next((h for h in self.http_bindings if h.endpoint.lower() == endpoint.lower()), None)
        if existing is not None:  # a shared non-SNI socket: one certificate for all of its bindings
            existing.thumbprint, existing.store = cert.thumbprint, store
        else:
            kind: Literal["ip", "hostname"] = "hostname" if sni else "ip"
            self.http_bindings.append(HttpBinding(kind, endpoint, cert.thumbprint, store))

    def add_renewal(
        self,
        renewal_id: str,
        hosts: list[str],
        site_id: int,
        *,
        thumbprint: str,
        script: str | None = None,
        history: list[dict[str, Any]] | None = None,
        store: str = "WebHosting",
        base_uri: str = DEFAULT_BASE_URI,
    ) -> Renewal:
        """`base_uri`: the ACME server; the file goes to its folder under the configuration root."""
        installation: list[dict[str, Any]] = [{"SiteId": site_id, "Plugin": PLUGIN_IIS}]
        if script:
            installation.append({"Script": script, "ScriptParameters": "{CertThumbprint}", "Plugin": PLUGIN_SCRIPT})
        data: dict[str, Any] = {
            "Id": renewal_id,
            "FriendlyName": f"[IIS] {hosts[0]}",
            "TargetPluginOptions": {
                "IncludeHosts": hosts,
                "IncludeSiteIds": [site_id],
                "Plugin": PLUGIN_TARGET_IIS,
            },
            "ValidationPluginOptions": {"Plugin": "c7d5e050-9363-4ba1-b3a8-931b31c618b7"},
            "CsrPluginOptions": {"Plugin": "b9060d4b-c2d3-49ac-b37f-962e7c3cbe9d"},
            "StorePluginOptions": [{"StoreName": store, "Plugin": PLUGIN_STORE}],
            "InstallationPluginOptions": installation,
            "History": history if history is not None else [self.history_entry(True, thumbprint, days_ago=10)],
        }
        renewal = Renewal(renewal_id, f"{self.base_folder_path(base_uri)}\\{renewal_id}.renewal.json", data)
        self.renewals.append(renewal)
        return renewal

    def set_wacs_settings(self, renewal_days: int) -> None:
        """settings.json next to wacs.exe with ScheduledTask.RenewalDays."""
        path = self.wacs_path.rsplit("\\", 1)[0] + "\\settings.json"
        self.files[path.lower()] = json.dumps({"ScheduledTask": {"RenewalDays": renewal_days}})

    @property
    def config_root(self) -> str:
        """win-acme's configuration root: settings.json's ConfigurationPath, else ProgramData."""
        return self.configuration_path.rstrip("\\") or DEFAULT_CONFIG_ROOT

    def base_folder_path(self, base_uri: str) -> str:
        return f"{self.config_root}\\{clean_uri(base_uri)}"

    def log_file(self, base_uri: str) -> str:
        """The day's disk log of wacs runs against this ACME server (Serilog rolls it daily)."""
        return f"{self.base_folder_path(base_uri)}\\Log\\log-{self.now:%Y%m%d}.txt"

    def history_entry(
        self,
        success: bool,
        thumbprint: str,
        *,
        days_ago: float,
        error: str | None = None,
        ari_due: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """`ari_due`: the date ACME Renewal Info moved the renewal to (2.2.3 style only)."""
        date = self.now - dt.timedelta(days=days_ago)
        due: Any = _iso(date + dt.timedelta(days=55)) if success else None
        if self.due_date_style == "2.2.3":
            due = None
            if ari_due is not None and success:
                due = {"Start": _iso(ari_due - dt.timedelta(days=1)), "End": _iso(ari_due), "Source": "ari"}
        order: dict[str, Any] = {
            "Name": "main",
            "Success": success,
            "Thumbprint": thumbprint if success else None,
            "ExpireDate": _iso(date + dt.timedelta(days=90)) if success else None,
            "ErrorMessages": [error] if error else [],
        }
        if due is not None or self.due_date_style == "string":
            order["DueDate"] = due
        return {
            "Date": _iso(date),
            "Success": success,
            "OrderResults": [order],
            "ErrorMessages": [error] if error else [],
        }

    def add_task(
        self,
        name: str,
        execute: str,
        arguments: str = "",
        *,
        path: str = "\\",
        last_result: int = 0,
        state: str = "Ready",
        user: str = "SYSTEM",
        script: tuple[str, str] | None = None,
    ) -> Task:
        if script:
            self.files[script[0].lower()] = script[1]
        task = Task(
            path,
            name,
            state,
            user,
            [TaskAction(execute, arguments)],
            self.now - dt.timedelta(hours=5),
            last_result,
            self.now + dt.timedelta(hours=19),
        )
        self.tasks.append(task)
        return task

    def add_certops_task(self, *, last_result: int = 0) -> Task:
        """certops's older Layer 2 task, as install-certops-tasks.ps1 registered it before
        self-heal.ps1 replaced it (install-self-heal removes it)."""
        script = "C:\\ProgramData\\certops\\certops-hourly-check.ps1"
        self.files[script.lower()] = "# certops Layer 2: the hourly, idempotent host check\r\n"
        return self.add_task(
            "certops hourly check",
            "powershell.exe",
            f"-NoProfile -NonInteractive -ExecutionPolicy Bypass -File {script}",
            path="\\certops\\",
            last_result=last_result,
        )

    def add_wacs_task(self, *, enabled: bool = True, last_result: int = 0) -> Task:
        return self.add_task(
            "win-acme renew (acme-v02.api.letsencrypt.org)",
            self.wacs_path,
            '--renew --baseuri "https://acme-v02.api.letsencrypt.org/"',
            last_result=last_result,
            state="Ready" if enabled else "Disabled",
        )


@overload
def leaf_key(alg: Literal["ecdsa"] = "ecdsa") -> ec.EllipticCurvePrivateKey: ...
@overload
def leaf_key(alg: KeyAlg) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey: ...
def leaf_key(alg: KeyAlg = "ecdsa") -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """The private key of every simulated certificate of that type (the TLS server needs it)."""
    return _LEAF_KEY if alg == "ecdsa" else _RSA_LEAF_KEY


ISSUER_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Simulated Issuer R3")])


def issuer_pem() -> bytes:
    """A CA certificate for the simulated issuer, so probes of a ModelTLSServer can trust it."""
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(ISSUER_NAME)
        .issuer_name(ISSUER_NAME)
        .public_key(_ISSUER_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=3650))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(_ISSUER_KEY, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def mint_certificate(
    names: list[str],
    not_before: dt.datetime,
    days: float,
    key_alg: KeyAlg = "ecdsa",
    *,
    issuer_cn: str | None = None,
    server_auth: bool = True,
) -> x509.Certificate:
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]) if issuer_cn else ISSUER_NAME
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_auth else ExtendedKeyUsageOID.CLIENT_AUTH
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(leaf_key(key_alg).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
        .sign(_ISSUER_KEY, hashes.SHA256())
    )


def sim_cert(
    cert: x509.Certificate,
    store: str,
    key_state: KeyState,
    friendly_name: str = "",
    provider_kind: ProviderKind | None = None,
) -> SimCert:
    der = cert.public_bytes(serialization.Encoding.DER)
    key_alg: KeyAlg = "rsa" if isinstance(cert.public_key(), rsa.RSAPublicKey) else "ecdsa"
    if provider_kind is None or key_alg == "ecdsa":  # ECDSA keys are CNG keys
        provider_kind = "capi" if key_alg == "rsa" else "cng"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    thumbprint = hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - Windows thumbprints are SHA-1
    return SimCert(
        store=store,
        pem=cert.public_bytes(serialization.Encoding.PEM),
        thumbprint=thumbprint,
        subject=cert.subject.rfc4514_string(),
        sans=list(sans.value.get_values_for_type(x509.DNSName)),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "X"),
        friendly_name=friendly_name,
        key_state=key_state,
        container=f"{thumbprint[:32].lower()}_7989b711-2e3f-4107-9aae-fb8df2e3b958",
        der=der,
        key_alg=key_alg,
        provider_kind=provider_kind,
    )


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def clean_uri(uri: str) -> str:
    """win-acme's CleanUri, written here on its own (not imported from certops, whose copy the
    simulator checks): scheme and user info dropped, then every character Windows forbids in a
    file name, so "https://acme.zerossl.com/v2/DV90" becomes "acme.zerossl.comv2DV90"."""
    text = re.sub(r"^https?://([^/@]*@)?", "", uri)
    return "".join(ch for ch in text if ch not in '"<>|:*?\\/' and ord(ch) >= 32)
