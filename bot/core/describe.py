"""Sentences about probe results, shared by incident cards, chat replies and the digest."""

from __future__ import annotations

import datetime as dt

from bot.core.services import FindingView
from bot.probe import ProbeResult, Severity, Status
from bot.probe.text import short_thumbprint

ICON = {"ok": "🟢", "warning": "🟡", "critical": "🔴", "unknown": "⚪"}


def span(delta: dt.timedelta) -> str:
    """A duration as a card says it: "40 s", "12 min", "4 h", "2 h 5 min"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def short_thumb(sha1: str) -> str:
    return short_thumbprint(sha1)


def where(result: ProbeResult) -> str:
    return f"{result.target.via} {result.address or result.target.connect_host or result.target.hostname}"


def describe(result: ProbeResult) -> str:
    """One line: where, what was served, what is wrong."""
    parts = [f"{ICON[result.status.value]} {where(result)}"]
    if result.certificate is not None:
        cert = result.certificate
        parts.append(f"cert {short_thumb(cert.sha1)}, {cert.days_left} days left")
    if result.problems:
        parts.append("; ".join(p.message for p in result.problems))
    elif result.http is not None:
        parts.append(f"HTTP {result.http.status}")
    return " · ".join(parts)


def finding_line(finding: FindingView) -> str:
    """A host finding as one line of a card or reply."""
    return f"{'🔴' if finding.severity == 'critical' else '🟡'} {finding.message}"


def failing(result: ProbeResult) -> bool:
    """A probe that did not get a good answer: critical, or unknown (the probe itself failed)."""
    return result.status in (Status.CRITICAL, Status.UNKNOWN)


def headline(site: str, results: list[ProbeResult]) -> tuple[str, str]:
    """(root problem code, one sentence) for a failing site, edge and origin together, e.g.
    "www: origin 203.0.113.10 resets TLS handshakes; the CDN edge still answers (cache HIT, Age 5400)"."""
    bad = [r for r in results if failing(r)]
    good = [r for r in results if not failing(r)]
    if not bad:
        return "none", f"{site}: every probe answers"
    worst = bad[0]
    problem = next((p for p in worst.problems if p.severity is Severity.CRITICAL), worst.problems[0])
    sentence = f"{site}: {where(worst)}: {problem.message}"
    others = len(bad) - 1
    if others:
        sentence += f" (and {others} more path{'s' if others > 1 else ''})"
    edge = next((r for r in good if r.target.via == "public"), None)
    if edge is not None and worst.target.via == "origin":
        cache = edge.http.cache if edge.http else {}
        hint = ", ".join(f"{k} {v}" for k, v in cache.items())
        sentence += "; the CDN edge still answers" + (f" ({hint})" if hint else "")
    return problem.code, sentence
