"""Small helpers the command modules share: looking up names, and describing probe results."""

from __future__ import annotations

from typing import TypeVar

from bot.config import Host, Site
from bot.config.reader import did_you_mean
from bot.probe import ProbeResult, Status, worst_status
from commands.context import Context
from commands.model import Tone
from commands.registry import UsageError

T = TypeVar("T")

TONE_OF_STATUS = {"ok": Tone.OK, "warning": Tone.WARNING, "critical": Tone.CRITICAL, "unknown": Tone.WARNING}
ICON = {"ok": "🟢", "warning": "🟡", "critical": "🔴", "unknown": "⚪"}


def find_site(ctx: Context, name: str) -> Site:
    return _named(name, "site", ctx.config.site(name), [s.name for s in ctx.config.sites])


def find_host(ctx: Context, name: str) -> Host:
    return _named(name, "host", ctx.config.host(name), [h.name for h in ctx.config.hosts])


def _named(name: str, kind: str, found: T | None, known: list[str]) -> T:
    if found is None:
        listed = ", ".join(known) or "none"
        raise UsageError(f'No {kind} named "{name}".{did_you_mean(name, known)} {kind.capitalize()}s: {listed}.')
    return found


def host_of(ctx: Context, site: Site) -> Host:
    if site.host is None:
        raise UsageError(
            f'Site "{site.name}" names no host: add host = "..." to its [[sites]] entry to use host actions.'
        )
    return find_host(ctx, site.host)


def worst(statuses: list[str]) -> str:
    """The worst of stored statuses ("ok", "warning", ...), ranked as the probe ranks them."""
    return max((Status(s) for s in statuses), key=lambda s: s.rank, default=Status.UNKNOWN).value


def short_thumb(sha1: str) -> str:
    return f"{sha1[:2]}…{sha1[-2:]}"


def describe(result: ProbeResult | dict[str, object]) -> str:
    """One line: where, what was served, what is wrong."""
    data = result.to_json() if isinstance(result, ProbeResult) else result
    where = f"{data['via']} {data['address'] or data['hostname']}"
    parts = [f"{ICON[str(data['status'])]} {where}"]
    cert = data.get("certificate")
    if isinstance(cert, dict):
        parts.append(f"cert {short_thumb(str(cert['sha1']))}, {cert['days_left']} days left")
    problems = data.get("problems")
    if isinstance(problems, list) and problems:
        parts.append("; ".join(str(p["message"]) for p in problems))
    elif isinstance(data.get("http"), dict):
        parts.append(f"HTTP {data['http']['status']}")  # type: ignore[index]
    return " · ".join(parts)


def status_of(results: list[ProbeResult]) -> Status:
    return worst_status(results)


def host_facing(results: list[ProbeResult]) -> list[ProbeResult]:
    """The probes that show what the IIS host itself serves: its origins, or else the public name
    when no CDN answered there (a CDN edge presents its own certificate, not the host's)."""
    origins = [r for r in results if r.target.via == "origin"]
    if origins:
        return origins
    return [r for r in results if not (r.http and r.http.cache)]
