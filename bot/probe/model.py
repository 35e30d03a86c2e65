"""What a probe is asked to do and what it found. Shared by the CLI, JSON output, chat and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        """The monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
        return {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}[self.value]

    @property
    def rank(self) -> int:
        # unknown ranks below critical: a known outage matters more than a probe we could not run
        return {"ok": 0, "warning": 1, "unknown": 2, "critical": 3}[self.value]


# Every problem code the product uses, with its default severity. Chat, JSON and metrics share them.
PROBLEM_CODES: dict[str, Severity] = {
    "dns_error": Severity.CRITICAL,
    "connect_refused": Severity.CRITICAL,
    "connect_timeout": Severity.CRITICAL,
    "network_unreachable": Severity.CRITICAL,  # ENETUNREACH: no route to the address's network
    "host_unreachable": Severity.CRITICAL,  # EHOSTUNREACH: the network is there, the host does not answer
    "connect_error": Severity.CRITICAL,  # any other failed TCP connect, named by its errno
    "tls_handshake_reset": Severity.CRITICAL,
    "tls_handshake_timeout": Severity.CRITICAL,
    "tls_alert": Severity.CRITICAL,
    "tls_protocol_error": Severity.CRITICAL,
    "cert_expired": Severity.CRITICAL,
    "cert_not_yet_valid": Severity.CRITICAL,
    "cert_hostname_mismatch": Severity.CRITICAL,
    "cert_untrusted": Severity.CRITICAL,
    "cert_malformed": Severity.CRITICAL,  # a field browsers refuse to parse (e.g. a non-ASCII SAN)
    "cert_expiring": Severity.WARNING,  # critical inside crit_days
    "http_status": Severity.WARNING,  # critical for 5xx
    "http_timeout": Severity.CRITICAL,
    "http_error": Severity.CRITICAL,  # connection lost or garbled answer after the handshake
    "keyword_missing": Severity.CRITICAL,
    "redirect_elsewhere": Severity.WARNING,  # a redirect to another host, port or to http://, not followed
    "redirect_loop": Severity.CRITICAL,  # a redirect back to a URL already asked for
    "too_many_redirects": Severity.WARNING,  # follow_redirects gave up after MAX_REDIRECTS hops, unjudged
    "served_from_cache": Severity.WARNING,
    "ca_file_unreadable": Severity.CRITICAL,  # the CA file to verify against cannot be read: nothing was probed
    "probe_error": Severity.CRITICAL,  # our own failure; the status is then "unknown"
}


@dataclass(frozen=True)
class Problem:
    code: str
    severity: Severity
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity.value, "message": self.message}


# docs/probe-json.schema.json describes this version; a change that is not only an added field raises it
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ProbeTarget:
    """One thing to probe: a URL, reached at `connect_host` (an origin) or through DNS."""

    url: str
    hostname: str  # the SNI and Host header
    port: int
    path: str = "/"
    connect_host: str | None = None  # address to connect to instead of resolving `hostname`
    connect_port: int | None = None
    site: str | None = None  # the configured site's name, when it comes from the config
    via: str = "public"  # "public" (through DNS, maybe a CDN) or "origin"
    expect_status: tuple[int, ...] = ()
    keyword: str | None = None
    warn_days: int = 21
    crit_days: int = 7
    timeout: float = 10.0
    ca_file: str | None = None
    follow_redirects: bool = False  # follow up to MAX_REDIRECTS redirects and judge the final answer
    source_address: str | None = None  # the local address to connect from (a multi-homed probe agent)


@dataclass(frozen=True)
class CertificateInfo:
    sha1: str  # as Windows shows a thumbprint: 40 upper-case hex characters
    sha256: str
    subject: str
    sans: tuple[str, ...]
    issuer: str
    serial: str
    not_before: str  # ISO 8601 UTC
    not_after: str
    days_left: int
    key_type: str
    chain_length: int | None = None  # certificates the server sent, when known

    def to_json(self) -> dict[str, Any]:
        return {
            "sha1": self.sha1,
            "sha256": self.sha256,
            "subject": self.subject,
            "sans": list(self.sans),
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "days_left": self.days_left,
            "key_type": self.key_type,
            "chain_length": self.chain_length,
        }


@dataclass(frozen=True)
class TLSInfo:
    version: str
    cipher: str


@dataclass(frozen=True)
class HTTPInfo:
    status: int
    method: str
    elapsed_ms: float
    cache: dict[str, str] = field(default_factory=dict)  # cache headers seen, lower-case names
    location: str | None = None  # the final answer's Location header, absolute, escaped for printing
    redirects: tuple[str, ...] = ()  # the URLs followed to reach the final answer, in order


@dataclass(frozen=True)
class ProbeResult:
    target: ProbeTarget
    address: str | None  # the IP actually connected to
    problems: tuple[Problem, ...]
    certificate: CertificateInfo | None
    tls: TLSInfo | None
    http: HTTPInfo | None
    elapsed_ms: float
    checked_at: str  # ISO 8601 UTC

    @property
    def status(self) -> Status:
        if any(p.code == "probe_error" for p in self.problems):
            return Status.UNKNOWN
        if any(p.severity is Severity.CRITICAL for p in self.problems):
            return Status.CRITICAL
        if self.problems:
            return Status.WARNING
        return Status.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "target": self.target.url,
            "site": self.target.site,
            "via": self.target.via,
            "hostname": self.target.hostname,
            "address": self.address,
            "origin": self.target.connect_host,  # the configured origin (or --resolve address), if any
            "port": self.target.connect_port or self.target.port,
            "status": self.status.value,
            "problems": [p.to_json() for p in self.problems],
            "certificate": self.certificate.to_json() if self.certificate else None,
            "tls": {"version": self.tls.version, "cipher": self.tls.cipher} if self.tls else None,
            "http": (
                {
                    "status": self.http.status,
                    "method": self.http.method,
                    "elapsed_ms": round(self.http.elapsed_ms, 1),
                    "cache": dict(self.http.cache),
                    "location": self.http.location,
                    "redirects": list(self.http.redirects),
                }
                if self.http
                else None
            ),
            "elapsed_ms": round(self.elapsed_ms, 1),
            "checked_at": self.checked_at,
        }


def result_from_json(data: dict[str, Any]) -> ProbeResult:
    """The inverse of ProbeResult.to_json, for results read back from the store."""
    url = str(data["target"])
    parts = urlsplit(url)
    origin = data.get("origin")
    target = ProbeTarget(
        url=url,
        hostname=str(data["hostname"]),
        port=parts.port or 443,
        path=parts.path or "/",
        connect_host=str(origin) if origin else None,
        connect_port=int(data["port"]) if origin else None,
        site=data.get("site"),
        via=str(data.get("via") or "public"),
    )
    cert = data.get("certificate")
    tls = data.get("tls")
    http = data.get("http")
    return ProbeResult(
        target=target,
        address=data.get("address"),
        problems=tuple(
            Problem(str(p["code"]), Severity(p["severity"]), str(p["message"])) for p in data.get("problems") or ()
        ),
        certificate=(
            CertificateInfo(**{**cert, "sans": tuple(cert.get("sans") or ())}) if isinstance(cert, dict) else None
        ),
        tls=TLSInfo(str(tls["version"]), str(tls["cipher"])) if isinstance(tls, dict) else None,
        http=(
            HTTPInfo(
                int(http["status"]),
                str(http["method"]),
                float(http["elapsed_ms"]),
                dict(http.get("cache") or {}),
                str(http["location"]) if http.get("location") is not None else None,
                tuple(str(u) for u in http.get("redirects") or ()),
            )
            if isinstance(http, dict)
            else None
        ),
        elapsed_ms=float(data.get("elapsed_ms") or 0.0),
        checked_at=str(data["checked_at"]),
    )


def worst_status(results: list[ProbeResult]) -> Status:
    statuses = [r.status for r in results] or [Status.UNKNOWN]
    return max(statuses, key=lambda s: s.rank)
