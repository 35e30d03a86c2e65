"""The external TLS/HTTPS probe."""

from bot.probe.engine import Resolver, StaticResolver, SystemResolver, probe, probe_many
from bot.probe.model import (
    PROBLEM_CODES,
    CertificateInfo,
    ProbeResult,
    ProbeTarget,
    Problem,
    Severity,
    Status,
    result_from_json,
    worst_status,
)

__all__ = [
    "PROBLEM_CODES",
    "CertificateInfo",
    "ProbeResult",
    "ProbeTarget",
    "Problem",
    "Resolver",
    "Severity",
    "StaticResolver",
    "Status",
    "SystemResolver",
    "probe",
    "probe_many",
    "result_from_json",
    "worst_status",
]
