"""Scheduled-task audit: which tasks fail, point at nothing, or restart services that are gone.

The mission's migration procedure: after a move (nginx to IIS), every task, hook and script of
the old architecture is listed and deleted, rewritten or knowingly kept. This is the listing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from host_actions.model import FileFact, ScheduledTask, TaskAction
from host_actions.parsers import parse_time, task_result

_SERVICE_REFERENCES = (
    re.compile(r"\bnet(?:\.exe)?\s+(?:stop|start)\s+\"?([\w.$-]+)", re.I),
    re.compile(r"\bsc(?:\.exe)?\s+(?:stop|start)\s+\"?([\w.$-]+)", re.I),
    re.compile(r"\b(?:Restart|Start|Stop)-Service\s+(?:-Name\s+)?[\"']?([\w.$-]+)", re.I),
)
_OPTION = re.compile(r"^-")
# %VAR% left in a path: the host could not expand it (tasks.ps1 runs ExpandEnvironmentVariables,
# which leaves unknown variables as they are), so whether the file exists is unknown, not "no"
UNEXPANDED = re.compile(r"%[^%\\\s]+%")


def unexpanded(path: str) -> bool:
    return bool(UNEXPANDED.search(path))


@dataclass(frozen=True)
class TaskFlag:
    code: str  # failing | missing_program | missing_script | missing_service | missing_user
    detail: str


@dataclass(frozen=True)
class AuditedTask:
    task: ScheduledTask
    result_hex: str
    result_meaning: str
    flags: tuple[TaskFlag, ...]

    @property
    def scripts(self) -> tuple[str, ...]:
        """Script files the task runs that exist: what retire-task renames."""
        return tuple(
            f.path
            for a in self.task.actions
            for f in a.files
            if f.exists and re.search(r"\.(ps1|bat|cmd|vbs|js)$", f.path, re.I)
        )


def parse_tasks(doc: dict[str, Any]) -> tuple[list[ScheduledTask], list[str]]:
    tasks = []
    for t in doc.get("tasks") or ():
        actions = tuple(
            TaskAction(
                execute=str(a.get("execute") or ""),
                arguments=str(a.get("arguments") or ""),
                working_directory=str(a.get("working_directory") or ""),
                files=tuple(
                    FileFact(
                        token=str(f.get("token") or ""),
                        path=str(f.get("path") or ""),
                        exists=bool(f.get("exists")),
                        text=f.get("text"),
                    )
                    for f in a.get("files") or ()
                ),
            )
            for a in t.get("actions") or ()
        )
        tasks.append(
            ScheduledTask(
                path=str(t["path"]),
                state=str(t.get("state") or ""),
                last_run=parse_time(t.get("last_run")),
                last_result=int(t.get("last_result") or 0),
                next_run=parse_time(t.get("next_run")),
                actions=actions,
                user=t.get("user"),
                user_resolves=t.get("user_resolves"),
                missed_runs=int(t.get("missed_runs") or 0),
            )
        )
    services = [str(s) for s in doc.get("services") or ()]
    return tasks, services


def referenced_services(text: str) -> list[str]:
    names = []
    for pattern in _SERVICE_REFERENCES:
        names += [m.group(1) for m in pattern.finditer(text) if not _OPTION.match(m.group(1))]
    return list(dict.fromkeys(names))


def audit(task: ScheduledTask, services: list[str]) -> AuditedTask:
    failed, hex_code, meaning = task_result(task.last_result)
    if task.is_certops:
        # certops's own hourly check exits 1 while a problem remains: that is its report, not a
        # legacy task to retire (diagnose reports its result as certops_check_failing)
        return AuditedTask(task, hex_code, meaning, ())
    flags = []
    if failed and task.last_run is not None:
        flags.append(TaskFlag("failing", f"last result {hex_code}: {meaning}"))
    known = {s.lower() for s in services}
    for action in task.actions:
        for index, fact in enumerate(action.files):
            if fact.exists or unexpanded(fact.path):
                continue
            code = "missing_program" if index == 0 else "missing_script"
            flags.append(TaskFlag(code, f"{fact.token} does not exist on the host"))
        texts = [action.arguments, *(f.text or "" for f in action.files)]
        for name in referenced_services("\n".join(texts)):
            if known and name.lower() not in known:
                flags.append(TaskFlag("missing_service", f"it names service {name}, which does not exist"))
    if task.user and task.user_resolves is False:
        flags.append(TaskFlag("missing_user", f"it runs as {task.user}, who no longer exists"))
    unique = tuple(dict.fromkeys(flags))
    return AuditedTask(task, hex_code, meaning, unique)


def audit_all(
    tasks: list[ScheduledTask] | tuple[ScheduledTask, ...], services: list[str] | tuple[str, ...]
) -> list[AuditedTask]:
    return [audit(t, list(services)) for t in tasks]
