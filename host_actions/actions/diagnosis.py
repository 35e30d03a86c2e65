"""diagnose: one read-only inventory, judged in Python."""

from __future__ import annotations

import datetime as dt

from host_actions.actions.result import ActionResult
from host_actions.diagnose import Finding, ProbeLike, diagnose
from host_actions.inventory import build_inventory, inventory_parts
from host_actions.model import Inventory
from host_actions.target import Host
from host_actions.winrm_client import HostSession


def diagnose_host(host: Host, probe: ProbeLike | None = None) -> tuple[Inventory, list[Finding], ActionResult]:
    parts = inventory_parts(host)
    with HostSession(host, "diagnose") as session:
        inv = build_inventory(host.name, session.run(parts))
    findings = diagnose(inv, probe, overdue_grace=dt.timedelta(seconds=host.renewal_grace))
    worst = [f for f in findings if f.severity == "critical"]
    summary = (
        f"{host.name}: {len(findings)} finding(s), {len(worst)} critical."
        if findings
        else f"{host.name}: certificates, bindings, renewals and tasks look healthy."
    )
    result = ActionResult(
        "diagnose",
        host.name,
        not worst,
        summary,
        {
            "findings": [f.to_json() for f in findings],
            "counts": {
                "certificates": len(inv.certificates),
                "http_sys_bindings": len(inv.ssl_bindings),
                "renewals": len(inv.renewals),
                "tasks": len(inv.tasks),
            },
        },
        session.stats.round_trips,
    )
    return inv, findings, result


def diagnosis_result(host: Host) -> ActionResult:
    """diagnose as the registry runs it: the result alone."""
    return diagnose_host(host)[2]
