"""`certops check` as a monitoring plugin (Nagios, Icinga, Checkmk, Naemon), by the Monitoring
Plugins development guidelines:

    CERTOPS CRITICAL - www.example.com via origin 203.0.113.10:443: ... expired ... | \
        'www_origin_203.0.113.10_days_left'=-2;21;7;0; 'www_origin_203.0.113.10_time'=0.042s;;;0;
    CRITICAL www.example.com via origin 203.0.113.10:443 - cert 4A3B…9F01 -2 days left - ...

(the first line is one line; it is wrapped here)

The first line is the service state (the same as the exit code), a summary of the worst
problems, then ` | ` and the performance data; the lines after it are the long output, one per
probed target and address, with no `|` in them (a `|` there would start more perfdata).
"""

from __future__ import annotations

import re

from bot.probe.model import ProbeResult, Status, worst_status
from bot.probe.report import render_line, where
from bot.probe.text import printable

SUMMARY_TARGETS = 3  # problem targets named on the first line; the rest are counted
_PLAIN_LABEL = re.compile(r"[A-Za-z0-9_]+")
_LABEL = {Status.OK: "OK", Status.WARNING: "WARNING", Status.CRITICAL: "CRITICAL", Status.UNKNOWN: "UNKNOWN"}


def render_plugin(results: list[ProbeResult]) -> str:
    """The whole plugin output: the status line with its perfdata, then one line per result."""
    state = worst_status(results)
    first = f"CERTOPS {_LABEL[state]} - {summary(results, state)}"
    perfdata = " ".join(p for r in results for p in perfdata_of(r))
    lines = [f"{first} | {perfdata}" if perfdata else first]
    lines += [_no_pipes(render_line(r)) for r in results]
    return "\n".join(lines)


def summary(results: list[ProbeResult], state: Status) -> str:
    if not results:
        return "nothing to probe"
    if state is Status.OK:
        days = [r.certificate.days_left for r in results if r.certificate is not None]
        valid = f", certificates valid for {min(days)} days or more" if days else ""
        return f"{len(results)} target{'s' if len(results) != 1 else ''} OK{valid}"
    worst = [r for r in results if r.status is state]
    named = [f"{where(r)}: {'; '.join(p.message for p in r.problems)}" for r in worst[:SUMMARY_TARGETS]]
    more = len(worst) - len(named)
    text = "; ".join(named) + (f"; and {more} more {_LABEL[state]}" if more else "")
    return _no_pipes(printable(text))


def perfdata_of(result: ProbeResult) -> list[str]:
    """Days left (no unit, as check_ssl_cert gives it) with the thresholds and 0 as the minimum,
    and the probe's time in seconds, for one target and address."""
    target = result.target
    stem = "_".join([target.site or target.hostname, target.via, result.address or target.connect_host or "dns"])
    pairs = []
    if result.certificate is not None:
        days = result.certificate.days_left
        pairs.append(f"{label(stem + '_days_left')}={days};{target.warn_days};{target.crit_days};0;")
    pairs.append(f"{label(stem + '_time')}={result.elapsed_ms / 1000:.3f}s;;;0;")
    return pairs


def label(text: str) -> str:
    """A perfdata label: quoted unless only letters, digits and `_`; a quote inside is doubled.
    `=` and control characters are replaced (they would end the label for every parser)."""
    cleaned = "".join("_" if ch == "=" or not ch.isprintable() else ch for ch in text)
    if _PLAIN_LABEL.fullmatch(cleaned):
        return cleaned
    return "'" + cleaned.replace("'", "''") + "'"


def _no_pipes(text: str) -> str:
    return text.replace("|", "/")


__all__ = ["label", "perfdata_of", "render_plugin", "summary"]
