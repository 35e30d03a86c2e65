"""What a host's own scripts say about it: a failed run is an incident, a repair is news, and a
self-heal task that falls silent is an incident too (docs/report-api.md).

A report arrives verified (bot.web_reports checks the signature) and parsed (bot.reports.model);
everything here is decisions on the store, in the calling thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from bot.config.model import Config, Host
from bot.core.describe import span
from bot.core.incidents import IncidentCore
from bot.core.model import (
    Cause,
    HostReport,
    Incident,
    MessageKind,
    NewMessage,
    Severity,
    report_subject,
    silent_subject,
)
from bot.probe.text import printable, short_thumbprint
from bot.reports.model import Repaired, Report

ACTOR = "host report"
SILENCE_FACTOR = 2  # a self-heal task silent for this many of its intervals is an incident


class ReportDesk:
    def __init__(self, incidents: IncidentCore) -> None:
        self.incidents = incidents
        self.store = incidents.store
        self.config: Config = incidents.config

    def receive(self, report: Report) -> Incident | None:
        """Keeps the report, opens, updates or resolves the incident it speaks to, and tells the
        channel about a repair. -> the open incident it left, if any."""
        now = self.incidents.clock()
        self.store.save_report(report.host, report.kind, now, report.ok, report.to_json())
        self.store.audit(
            f"host:{report.host}",
            "report",
            f"{report.kind} on {report.host}",
            "ok" if report.ok else "failed",
            _one_line(report),
        )
        if report.kind == "self-heal":
            self._close(silent_subject(report.host), f"The self-heal task on {report.host} reports again.")
        if report.ok:
            self._close(
                report_subject(report.host, report.kind),
                f"The {report.task} on {report.host} reports that nothing is wrong any more.",
            )
            if report.repaired:
                self._notice(f"{report.host} healed itself: {_repairs(report.repaired)} ({_run(report)})")
            return None
        return self._failed(report)

    def check_heartbeats(self) -> list[Incident]:
        """Opens an incident for each host whose self-heal task reported before and has since
        been silent for twice its report_interval. -> the incidents opened now."""
        now = self.incidents.clock()
        last = {r.host: r for r in self.store.host_reports() if r.kind == "self-heal"}
        opened = []
        for host in self.config.hosts:
            report = last.get(host.name)
            if report is None or now - report.received_at <= dt.timedelta(
                seconds=SILENCE_FACTOR * host.report_interval
            ):
                continue
            subject = silent_subject(host.name)
            if self.store.open_incidents(subject):
                continue
            incident, fresh = self.incidents.open(
                subject,
                "self_heal_silent",
                Severity.WARNING,
                f"the {_every(host)} self-heal task on {host.name} has not reported since "
                f"{report.received_at:%H:%M} UTC",
                (
                    f"last report {report.received_at:%Y-%m-%d %H:%M} UTC "
                    f"({'ok' if report.ok else 'failed'}), {span(now - report.received_at)} ago",
                    f"expected every {span(dt.timedelta(seconds=host.report_interval))} "
                    f"(report_interval); check the task \\certops\\certops self-heal on {host.name}",
                    *self._sites_line(host.name),
                ),
                ACTOR,
                host=host.name,
            )
            if fresh:
                opened.append(incident)
        return opened

    # --------------------------------------------------------------------------------------------

    def _failed(self, report: Report) -> Incident:
        subject = report_subject(report.host, report.kind)
        problems = report.errors or ("it reported ok = false without saying why",)
        summary = f"{report.host}: the {report.task} reports {printable(problems[0], 200)}" + (
            f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        )
        details = (
            *(f"🔴 {printable(p, 300)}" for p in problems[:20]),
            *([f"🔧 {_repairs(report.repaired)}"] if report.repaired else []),
            f"{_run(report)}: {_checked(report)}",
            *self._sites_line(report.host),
        )
        open_now = next(iter(self.store.open_incidents(subject)), None)
        if open_now is None:
            incident, _fresh = self.incidents.open(
                subject,
                f"{report.kind.replace('-', '_')}_failed",
                Severity.CRITICAL,
                summary,
                details,
                ACTOR,
                host=report.host,
            )
            return incident
        changes: dict[str, object] = {"details": details, "summary": summary} if details != open_now.details else {}
        return self.incidents.revise(open_now, Severity.CRITICAL, changes, summary, Cause.REPORT, ACTOR)

    def _close(self, subject: str, why: str) -> None:
        for incident in self.store.open_incidents(subject):
            self.incidents.resolve(incident.id, why, Cause.REPORT, ACTOR)

    def _notice(self, text: str) -> None:
        messages = [NewMessage(p, MessageKind.NOTICE, None, {"text": text}) for p in self.incidents.platforms()]
        if messages:
            self.store.enqueue(messages, self.incidents.clock())
            self.incidents.on_message()

    def _sites_line(self, host: str) -> Sequence[str]:
        sites = [s.name for s in self.config.sites if s.host == host]
        return [f"sites on {host}: {', '.join(sites)}"] if sites else []


def layer_status(reports: dict[str, HostReport]) -> str:
    heal = reports.get("self-heal")
    if heal is None:
        return "Layer 2 not installed"
    said = "ok" if heal.ok else "failed"
    return f"Layer 2 reported {said} at {heal.received_at:%Y-%m-%d %H:%M} UTC"


def _repairs(repaired: Sequence[Repaired]) -> str:
    parts = []
    for r in repaired[:5]:
        what = (
            "the key link" if r.what == "key_link" else "the binding" if r.what == "binding" else printable(r.what, 40)
        )
        of = f" of {short_thumbprint(r.thumbprint)}" if r.thumbprint else ""
        where = f" in {printable(r.store, 20)}" if r.store else ""
        parts.append(f"repaired {what}{of}{where}")
    more = f" and {len(repaired) - 5} more" if len(repaired) > 5 else ""
    return ", ".join(parts) + more


def _run(report: Report) -> str:
    return f"{report.kind} at {report.started:%H:%M} UTC"


def _checked(report: Report) -> str:
    bindings = sum(len(c.bindings) for c in report.checked)
    return f"checked {len(report.checked)} certificate(s) and {bindings} binding(s)"


def _one_line(report: Report) -> str:
    parts = [_checked(report)]
    if report.repaired:
        parts.append(_repairs(report.repaired))
    if report.errors:
        parts.append(f"{len(report.errors)} problem(s): {printable(report.errors[0], 200)}")
    return "; ".join(parts)


def _every(host: Host) -> str:
    return "hourly" if host.report_interval == 3600 else f"every-{span(dt.timedelta(seconds=host.report_interval))}"
