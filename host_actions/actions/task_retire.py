"""retire-task: disable a task the audit flagged and rename its scripts."""

from __future__ import annotations

import datetime as dt

from host_actions import validate
from host_actions.actions.result import ActionResult
from host_actions.actions.task_audit import audited
from host_actions.errors import HostActionError
from host_actions.inventory import require
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession


def retire_task(host: Host, task_path: str, *, today: dt.date | None = None) -> ActionResult:
    path = validate.task_path(task_path)
    date = (today or dt.datetime.now(dt.UTC).date()).strftime("%Y%m%d")
    with HostSession(host, "retire-task") as session:
        tasks = audited(host, session.run([Part("tasks")]))
        match = next((a for a in tasks if a.task.path.lower() == path.lower()), None)
        if match is None:
            raise HostActionError(
                "script_failed", f"{host.name}: the task audit reported no task {path}.", host=host.name
            )
        if not match.flags:
            raise HostActionError(
                "script_failed",
                f"{host.name}: {path} has no problem flags, so certops will not retire it.",
                host=host.name,
            )
        scripts = [s for s in match.scripts if _is_safe_path(s)]
        params = {"TaskFolder": match.task.folder, "TaskName": match.task.name, "Scripts": scripts, "Date": date}
        results = session.run([Part("retire_task", params), Part("tasks")])
        done = require(results, "retire_task", host.name)
        after = next((a for a in audited(host, results[1:]) if a.task.path.lower() == path.lower()), None)
    disabled = after is not None and not after.task.enabled
    renamed = [r for r in done.get("renamed") or () if isinstance(r, dict)]
    summary = f"{host.name}: {path} is {'disabled' if disabled else 'NOT disabled'}" + (
        f"; renamed {', '.join(str(r.get('to')) for r in renamed)}." if renamed else "."
    )
    return ActionResult(
        "retire-task",
        host.name,
        disabled,
        summary,
        {"task": path, "flags": [f.code for f in match.flags], "renamed": renamed, "state": done.get("state")},
        session.stats.round_trips,
    )


def _is_safe_path(path: str) -> bool:
    try:
        validate.windows_path(path)
    except HostActionError:
        return False
    return True
