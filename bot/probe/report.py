"""One readable line per probed target and address, for people at a terminal."""

from __future__ import annotations

from bot.probe.model import ProbeResult

_LABEL = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL", "unknown": "UNKNOWN"}


def where(result: ProbeResult) -> str:
    target = result.target
    port = target.connect_port or target.port
    address = result.address or target.connect_host or target.hostname
    shown = f"[{address}]" if ":" in address else address
    return f"{target.hostname} via {target.via} {shown}:{port}"


def render_line(result: ProbeResult) -> str:
    parts = [f"{_LABEL[result.status.value]:<8}", where(result)]
    cert = result.certificate
    if cert is not None:
        parts.append(
            f"cert {cert.sha1[:4]}…{cert.sha1[-4:]} {cert.days_left} day{'' if cert.days_left == 1 else 's'} left"
        )
    if result.http is not None:
        parts.append(f"HTTP {result.http.status} in {result.http.elapsed_ms:.0f} ms")
    if result.problems:
        parts.append("; ".join(p.message for p in result.problems))
    return " | ".join(parts)
