"""audit-tasks: the scheduled tasks outside \\Microsoft\\ and what is wrong with each."""

from __future__ import annotations

from typing import Any

from host_actions.actions.result import ActionResult
from host_actions.audit import AuditedTask, audit_all, parse_tasks
from host_actions.errors import HostActionError
from host_actions.inventory import require
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession


def audited(host: Host, results: list[Any]) -> list[AuditedTask]:
    doc = require(results, "tasks", host.name)
    try:
        tasks, services = parse_tasks(doc)
    except (KeyError, TypeError, ValueError):
        raise HostActionError("bad_output", f"{host.name}: unexpected task data.", host=host.name) from None
    return audit_all(tasks, services)


def task_json(a: AuditedTask) -> dict[str, Any]:
    t = a.task
    return {
        "path": t.path,
        "state": t.state,
        "user": t.user,
        "last_run": t.last_run,
        "last_result": a.result_hex,
        "meaning": a.result_meaning,
        "next_run": t.next_run,
        "actions": [f"{x.execute} {x.arguments}".strip() for x in t.actions],
        "flags": [{"code": f.code, "detail": f.detail} for f in a.flags],
        "wacs": t.is_wacs,
    }


def audit_tasks(host: Host) -> ActionResult:
    with HostSession(host, "audit-tasks") as session:
        tasks = audited(host, session.run([Part("tasks")]))
    flagged = [a for a in tasks if a.flags and a.task.enabled]
    summary = f"{host.name}: {len(tasks)} task(s) outside \\Microsoft\\, {len(flagged)} flagged" + (
        ": " + ", ".join(a.task.path for a in flagged) if flagged else "."
    )
    return ActionResult(
        "audit-tasks",
        host.name,
        not flagged,
        summary,
        {"tasks": [task_json(a) for a in tasks]},
        session.stats.round_trips,
    )
