"""One readable line per probed target and address, for people at a terminal."""

from __future__ import annotations

from bot.probe.model import ProbeResult
from bot.probe.text import printable, short_thumbprint

_LABEL = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL", "unknown": "UNKNOWN"}


def where(result: ProbeResult) -> str:
    target = result.target
    port = target.connect_port or target.port
    address = result.address or target.connect_host or target.hostname
    shown = f"[{address}]" if ":" in address else address
    return printable(f"{target.hostname} via {target.via} {shown}:{port}")


def render_line(result: ProbeResult) -> str:
    parts = [f"{_LABEL[result.status.value]:<8}", where(result)]
    cert = result.certificate
    if cert is not None:
        parts.append(
            f"cert {short_thumbprint(cert.sha1)} {cert.days_left} day{'' if cert.days_left == 1 else 's'} left"
        )
    http = result.http
    if http is not None:
        hops = len(http.redirects)
        after = f" after {hops} redirect{'' if hops == 1 else 's'}" if hops else ""
        parts.append(f"HTTP {http.status} in {http.elapsed_ms:.0f} ms{after}")
    if result.problems:
        parts.append("; ".join(p.message for p in result.problems))
    # messages are escaped where they are made; a result read back from an older store may not be
    # " - ", not " | ": a monitoring system reads everything after a "|" as performance data
    return printable(" - ".join(parts)).replace("|", "/")
