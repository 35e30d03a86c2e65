"""retire-task: disable a task the audit flagged and rename the scripts only it uses.

A script is renamed only when nothing else on the host may run it: not another task (its
actions, or the text of the scripts they run), not a win-acme renewal's Script step, and not a
file under %windir% or Program Files, which belong to Windows and installed programs. Whatever
is left alone is reported with the reason. `what_if=True` does every read and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import ntpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from host_actions import validate
from host_actions.actions.result import ActionResult
from host_actions.actions.task_audit import audited
from host_actions.audit import AuditedTask
from host_actions.errors import HostActionError
from host_actions.inventory import require
from host_actions.model import Renewal
from host_actions.parsers import parse_renewal
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession, PartResult

# where Windows keeps these when tasks.ps1 did not say (an older script, or a variable unset)
DEFAULT_FOLDERS = {
    "windir": "C:\\Windows",
    "SystemRoot": "C:\\Windows",
    "ProgramFiles": "C:\\Program Files",
    "ProgramFiles(x86)": "C:\\Program Files (x86)",
    "ProgramW6432": "C:\\Program Files",
}
_VARIABLE = re.compile(r"%([^%\\\s]+)%")


@dataclass(frozen=True)
class LeftAlone:
    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class RenamePlan:
    rename: tuple[str, ...]
    left_alone: tuple[LeftAlone, ...]


def retire_task(host: Host, task_path: str, *, today: dt.date | None = None, what_if: bool = False) -> ActionResult:
    path = validate.task_path(task_path)
    date = (today or dt.datetime.now(dt.UTC).date()).strftime("%Y%m%d")
    reads = [Part("tasks"), Part("winacme", {"WacsPath": validate.windows_path(host.wacs_path)})]
    with HostSession(host, "retire-task") as session:
        results = session.run(reads)
        tasks = audited(host, results)
        match = _flagged(host, tasks, path)
        plan = plan_renames(match, tasks, *_host_facts(host, results))
        if what_if:
            return _would(host, match, plan, date, session.stats.round_trips)
        params = {
            "TaskFolder": match.task.folder,
            "TaskName": match.task.name,
            "Scripts": list(plan.rename),
            "Date": date,
        }
        results = session.run([Part("retire_task", params), Part("tasks")])
        done = require(results, "retire_task", host.name)
        after = next((a for a in audited(host, results[1:]) if a.task.path.lower() == path.lower()), None)
    disabled = after is not None and not after.task.enabled
    renamed = [r for r in done.get("renamed") or () if isinstance(r, dict)]
    # the script's own guard (a protected folder the host resolves differently) is reported too
    left = [*plan.left_alone, *_skipped_on_host(done)]
    summary = f"{host.name}: {path} is {'disabled' if disabled else 'NOT disabled'}" + (
        f"; renamed {', '.join(str(r.get('to')) for r in renamed)}." if renamed else "."
    )
    summary += _left_alone_sentence(left)
    return ActionResult(
        "retire-task",
        host.name,
        disabled,
        summary,
        {
            "task": path,
            "flags": [f.code for f in match.flags],
            "renamed": renamed,
            "left_alone": [x.to_json() for x in left],
            "state": done.get("state"),
            "what_if": False,
        },
        session.stats.round_trips,
    )


def _flagged(host: Host, tasks: list[AuditedTask], path: str) -> AuditedTask:
    match = next((a for a in tasks if a.task.path.lower() == path.lower()), None)
    if match is None:
        raise HostActionError("script_failed", f"{host.name}: the task audit reported no task {path}.", host=host.name)
    if not match.flags:
        raise HostActionError(
            "script_failed",
            f"{host.name}: {path} has no problem flags, so certops will not retire it.",
            host=host.name,
        )
    return match


def _would(host: Host, match: AuditedTask, plan: RenamePlan, date: str, round_trips: int) -> ActionResult:
    renames = [{"from": p, "to": f"{p}.deprecated.{date}"} for p in plan.rename]
    summary = f"Would disable {match.task.path} on {host.name}" + (
        " and rename " + ", ".join(f"{r['from']} to {ntpath.basename(r['to'])}" for r in renames) + "."
        if renames
        else "; no script would be renamed."
    )
    summary += _left_alone_sentence(plan.left_alone)
    return ActionResult(
        "retire-task",
        host.name,
        True,
        summary,
        {
            "task": match.task.path,
            "flags": [f.code for f in match.flags],
            "state": match.task.state,
            "would_disable": match.task.path,
            "would_rename": renames,
            "left_alone": [x.to_json() for x in plan.left_alone],
            "what_if": True,
        },
        round_trips,
    )


def _left_alone_sentence(left: Iterable[LeftAlone]) -> str:
    items = list(left)
    if not items:
        return ""
    return " Left alone: " + "; ".join(f"{x.path} ({x.reason})" for x in items) + "."


def _skipped_on_host(done: Mapping[str, Any]) -> list[LeftAlone]:
    return [
        LeftAlone(str(s.get("path")), str(s.get("reason") or "refused on the host"))
        for s in done.get("skipped") or ()
        if isinstance(s, dict)
    ]


def _host_facts(host: Host, results: list[PartResult]) -> tuple[list[Renewal], Mapping[str, str], list[str]]:
    """Renewals, the host's folder variables, and what could not be read (tasks or renewals):
    an unread task or renewal may be the one that uses a script, so nothing is renamed then."""
    tasks_doc = require(results, "tasks", host.name)
    env = {str(k): str(v) for k, v in (tasks_doc.get("environment") or {}).items() if v}
    unread = []
    if tasks_doc.get("errors"):
        unread.append(f"{len(tasks_doc['errors'])} scheduled task(s) could not be read")
    winacme = next((r for r in results if r.name == "winacme"), None)
    renewals: list[Renewal] = []
    if winacme is None or not winacme.ok or not isinstance(winacme.result, dict):
        unread.append("win-acme's renewals could not be read")
    else:
        if winacme.result.get("errors"):
            unread.append("part of win-acme's folder could not be read")
        for r in winacme.result.get("renewals") or ():
            if isinstance(r, dict):
                renewals.append(parse_renewal(str(r.get("path", "")), str(r.get("text", "")), []))
    return renewals, env, unread


def plan_renames(
    target: AuditedTask,
    tasks: list[AuditedTask],
    renewals: list[Renewal],
    environment: Mapping[str, str],
    unread: list[str],
) -> RenamePlan:
    """Which of the task's scripts may be renamed, and why each of the others is left alone."""
    rename: list[str] = []
    left: list[LeftAlone] = []
    for script in dict.fromkeys(target.scripts):
        reason = _why_keep(script, target, tasks, renewals, environment, unread)
        if reason:
            left.append(LeftAlone(script, reason))
        else:
            rename.append(script)
    return RenamePlan(tuple(rename), tuple(left))


def _why_keep(
    script: str,
    target: AuditedTask,
    tasks: list[AuditedTask],
    renewals: list[Renewal],
    environment: Mapping[str, str],
    unread: list[str],
) -> str | None:
    try:
        validate.windows_path(script)
    except HostActionError:
        return "not a path certops passes to the host"
    key = _normal(script)
    folder = _protected_folder(key, environment)
    if folder:
        return f"it is under {folder}, which belongs to Windows or an installed program"
    for other in tasks:
        if other.task.path.lower() == target.task.path.lower():
            continue
        used = _task_use(key, other)
        if used:
            return f"task {other.task.path} {used}"
    for r in renewals:
        for step in r.steps:
            if step.script and _normal(expand(step.script, environment)) == key:
                return f"win-acme renewal {r.friendly_name or r.id} runs it as its Script step"
    if unread:
        return unread[0] + ", so certops cannot tell whether something else runs it"
    return None


def _task_use(key: str, other: AuditedTask) -> str | None:
    """How another task uses the script: runs it, or names it in its arguments or scripts."""
    for action in other.task.actions:
        if any(_normal(f.path) == key for f in action.files):
            return "runs it too"
        texts = [action.execute, action.arguments, *(f.text or "" for f in action.files)]
        if any(key in _normal_text(t) for t in texts):
            return "names it in its command or in a script it runs"
    return None


def _protected_folder(key: str, environment: Mapping[str, str]) -> str | None:
    folders = {**DEFAULT_FOLDERS, **{k: v for k, v in environment.items() if k in DEFAULT_FOLDERS}}
    for name, folder in folders.items():
        base = _normal(folder).rstrip("\\") + "\\"
        if key.startswith(base):
            return f"%{name}% ({folder})"
    return None


def expand(path: str, environment: Mapping[str, str]) -> str:
    """%VAR% as Windows expands it (names are case-insensitive; unknown ones stay as they are)."""
    lower = {k.lower(): v for k, v in environment.items()}
    return _VARIABLE.sub(lambda m: lower.get(m.group(1).lower(), m.group(0)), path)


def _normal(path: str) -> str:
    # "..\" and doubled separators resolved, as the host's GetFullPath would; case-insensitive
    return ntpath.normpath(path.strip().strip('"')).lower()


def _normal_text(text: str) -> str:
    return text.replace("/", "\\").lower()
