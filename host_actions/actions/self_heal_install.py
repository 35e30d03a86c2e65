"""install-self-heal: Layer 2, the host's own self-heal task, installed over WinRM.

It writes %ProgramData%\\certops\\self-heal.ps1 (host_actions.layers: layer_script("self-heal")),
report.json and report.key, each SYSTEM and Administrators only, registers the task
\\certops\\certops self-heal (powershell.exe running that script as SYSTEM with highest
privileges, every [[hosts]] report_interval rounded to whole minutes, a new run skipped while one
still runs, stopped after 10 minutes; `repair=True` adds -Repair) and removes the old
\\certops\\certops hourly check task it replaces, and the certops-hourly-check.ps1 it ran.

One layer_state read comes first; Python compares it with what it wants (each file's SHA-256 and
ACL, report.key by a digest compared on the host, the task's definition) and sends only what
differs, so a second install sends nothing more and reports every item "unchanged". The same
read after the writes verifies them. A host without report_url or report_secret is refused
before anything is sent. `what_if=True` does the read and says what would change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from host_actions.actions.layer_files import (
    FOLDER,
    SELF_HEAL_TASK,
    Change,
    ReportSettings,
    describe,
    file_change,
    interval_minutes,
    report_changes,
    report_params,
    require_report_settings,
)
from host_actions.actions.result import ActionResult
from host_actions.inventory import require
from host_actions.layers import layer_script
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession

ACTION = "install-self-heal"
OLD_TASK = "\\certops\\certops hourly check"  # Layer 2 before self-heal (install-certops-tasks.ps1)
OLD_SCRIPT = f"{FOLDER}\\certops-hourly-check.ps1"  # what it ran
SCRIPT_NAME = "self-heal.ps1"
TIME_LIMIT_MINUTES = 10
_SYSTEM = {"system", "nt authority\\system", "s-1-5-18"}


def task_arguments(repair: bool) -> str:
    """The task's arguments to powershell.exe; Task Scheduler expands %ProgramData% when it runs."""
    arguments = f'-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{FOLDER}\\{SCRIPT_NAME}"'
    return arguments + (" -Repair" if repair else "")


def task_differences(doc: Mapping[str, Any], arguments: str, minutes: int) -> list[str]:
    """How a registered task's definition differs from the one install_self_heal.ps1 registers."""
    out = []
    actions = [a for a in doc.get("actions") or () if isinstance(a, dict)]
    if len(actions) != 1 or str(actions[0].get("execute") or "").strip('"').lower() != "powershell.exe":
        out.append("its program")
    else:
        had = str(actions[0].get("arguments") or "")
        if had != arguments:
            if had.replace(" -Repair", "") == arguments.replace(" -Repair", ""):
                out.append("-Repair added" if arguments.endswith(" -Repair") else "-Repair removed")
            else:
                out.append("its arguments")
    if str(doc.get("user") or "").lower() not in _SYSTEM:
        out.append(f"it ran as {doc.get('user') or 'nobody'}, not SYSTEM")
    if str(doc.get("run_level") or "") != "Highest":
        out.append("its privileges")
    triggers = [t for t in doc.get("triggers") or () if isinstance(t, dict)]
    if (
        len(triggers) != 1
        or not triggers[0].get("enabled")
        or _minutes(triggers[0].get("every_minutes")) != minutes
        or not _for_ever(triggers[0].get("for_minutes"))
    ):
        every = _minutes(triggers[0].get("every_minutes")) if len(triggers) == 1 else None
        out.append(f"its schedule (every {every} min)" if every else "its schedule")
    if str(doc.get("multiple_instances") or "") != "IgnoreNew":
        out.append("what it does while a run still runs")
    if _minutes(doc.get("time_limit_minutes")) != TIME_LIMIT_MINUTES:
        out.append("its time limit")
    if str(doc.get("state") or "").lower() == "disabled":
        out.append("it was disabled")
    return out


def _for_ever(minutes: Any) -> bool:
    """A repetition without an end (no duration, or PT0S), or one of a year or more (ten years,
    as install_self_heal.ps1 and register-self-heal.ps1 register it)."""
    value = _minutes(minutes)
    return value is None or value == 0 or value >= 365 * 24 * 60


def _minutes(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return round(value)


@dataclass(frozen=True)
class Plan:
    """What differs from what install-self-heal wants, from one layer_state read."""

    report: tuple[Change, Change, Change]  # the folder, report.json, report.key
    script: Change
    task: Change
    old: tuple[Change, ...]  # the hourly-check task and its script, when they are there: removed

    @property
    def changes(self) -> list[Change]:
        return [*self.report, self.script, self.task, *self.old]

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.changes)


def plan(doc: Mapping[str, Any], settings: ReportSettings, script: str, arguments: str, minutes: int) -> Plan:
    report = report_changes(doc, settings)
    script_doc = doc.get("self_heal") or {}
    script_change = file_change(script_doc, str(script_doc.get("path") or f"{report[0].item}\\{SCRIPT_NAME}"), script)
    task_doc = doc.get("task")
    if not isinstance(task_doc, dict):
        task = Change(SELF_HEAL_TASK, "created")
    else:
        differences = task_differences(task_doc, arguments, minutes)
        task = (
            Change(SELF_HEAL_TASK, "updated", "; ".join(differences))
            if differences
            else Change(SELF_HEAL_TASK, "unchanged")
        )
    old = []
    if isinstance(doc.get("old_task"), dict):
        old.append(Change(OLD_TASK, "removed", "self-heal replaces it"))
    old_script = doc.get("old_script") or {}
    if old_script.get("exists"):
        old.append(Change(str(old_script.get("path") or OLD_SCRIPT), "removed", "only the old task ran it"))
    return Plan(report, script_change, task, tuple(old))


def install_self_heal(host: Host, *, repair: bool = False, what_if: bool = False) -> ActionResult:
    settings = require_report_settings(host, ACTION)  # refused before anything is sent
    script = layer_script("self-heal")
    minutes = interval_minutes(host.report_interval)
    arguments = task_arguments(repair)
    read = Part("layer_state", {"ReportKeySha256": settings.key_sha256})
    with HostSession(host, ACTION) as session:
        before = plan(require(session.run([read]), "layer_state", host.name), settings, script, arguments, minutes)
        if what_if or not before.changed:
            return _result(host, before, repair, minutes, session.stats.round_trips, what_if=what_if)
        parts = []
        report = report_params(before.report, settings)
        if report is not None:
            parts.append(Part("report_config", report))
        install: dict[str, Any] = {}
        if before.script.changed:
            install["ScriptText"] = script
        if before.task.changed:
            install.update(Arguments=arguments, IntervalMinutes=str(minutes))
        if install or before.old:
            parts.append(Part("install_self_heal", install))
        results = session.run([*parts, read])
        for part in parts:
            require(results, part.name, host.name)
        after = plan(require(results, "layer_state", host.name), settings, script, arguments, minutes)
    problems = [
        f"{c.item} is still there" if c.outcome == "removed" else f"{c.item} is not as wanted ({c.detail or c.outcome})"
        for c in after.changes
        if c.changed
    ]
    return _result(host, before, repair, minutes, session.stats.round_trips, problems=problems)


def _result(
    host: Host,
    done: Plan,
    repair: bool,
    minutes: int,
    round_trips: int,
    *,
    what_if: bool = False,
    problems: list[str] | None = None,
) -> ActionResult:
    how = f"every {minutes} min as SYSTEM, {'check and repair (-Repair)' if repair else 'check only'}"
    folder = done.report[0].item
    changed = [c for c in done.changes if c.changed]
    said = describe(done.changes, would=what_if, folder=folder)
    if what_if and changed:
        summary = f"Would install self-heal on {host.name} ({how}) in {folder}: {said}."
    elif what_if:
        summary = f"{host.name}: self-heal is installed as asked ({how}); nothing would change."
    elif not changed:
        summary = f"{host.name}: self-heal is already installed as asked ({how}); nothing changed."
    elif problems:
        summary = f"{host.name}: self-heal was installed ({said}), but " + "; ".join(problems) + "."
    else:
        summary = f"{host.name}: installed self-heal ({how}) in {folder}: {said}."
    return ActionResult(
        ACTION,
        host.name,
        not problems,
        summary,
        {
            "what_if": what_if,
            "changed": bool(changed) and not what_if,
            "repair": repair,
            "interval_minutes": minutes,
            "task": SELF_HEAL_TASK,
            "arguments": task_arguments(repair),
            "folder": folder,
            "changes": [c.to_json() for c in done.changes],
            "problems": problems or [],
        },
        round_trips,
    )
