"""diagnose: one read-only inventory, judged in Python; a capture is judged by the same `judge`."""

from __future__ import annotations

import datetime as dt

from host_actions.actions.result import ActionResult
from host_actions.diagnose import OVERDUE_GRACE, Finding, ProbeLike, diagnose
from host_actions.inventory import build_inventory, inventory_parts
from host_actions.model import Inventory
from host_actions.target import Host
from host_actions.winrm_client import HostSession, PartResult


def diagnose_host(host: Host, probe: ProbeLike | None = None) -> tuple[Inventory, list[Finding], ActionResult]:
    with HostSession(host, "diagnose") as session:
        results = session.run(inventory_parts(host))
    grace = dt.timedelta(seconds=host.renewal_grace)
    return judge(host.name, results, probe, grace, round_trips=session.stats.round_trips)


def judge(
    host_name: str,
    results: list[PartResult],
    probe: ProbeLike | None = None,
    overdue_grace: dt.timedelta = OVERDUE_GRACE,
    *,
    now: dt.datetime | None = None,
    round_trips: int = 0,
) -> tuple[Inventory, list[Finding], ActionResult]:
    """The inventory scripts' results judged into findings and the `diagnose` ActionResult: the
    one judgement of a live host (diagnose_host) and of a capture (diagnose_capture).
    `now`: when the results were read (None: now); `round_trips`: the session's, 0 offline."""
    inv = build_inventory(host_name, results, now)
    findings = diagnose(inv, probe, overdue_grace=overdue_grace)
    worst = [f for f in findings if f.severity == "critical"]
    summary = (
        f"{host_name}: {len(findings)} finding(s), {len(worst)} critical."
        if findings
        else f"{host_name}: certificates, bindings, renewals and tasks look healthy."
    )
    result = ActionResult(
        "diagnose",
        host_name,
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
        round_trips,
    )
    return inv, findings, result


def diagnosis_result(host: Host) -> ActionResult:
    """diagnose as the registry runs it: the result alone."""
    return diagnose_host(host)[2]
