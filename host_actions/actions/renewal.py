"""renew: one win-acme run as a one-shot scheduled task running as SYSTEM, followed to its end.

wacs is not run inside the WinRM command: a command cut at its deadline could stop a renewal
between "stored" and "bound", and it would run as the WinRM account instead of SYSTEM, which
win-acme's own task uses. renew.ps1 registers `\\certops\\certops renew <id>`, starts it and
returns at once; this module polls it within the action's deadline and, if it is still running
when the deadline nears, says so; a later renew of the same renewal follows that task instead
of starting another. The outcome is judged here, from the task's last result, the day's wacs
log (or its Application events), the renewal's history and a fresh inventory.
"""

from __future__ import annotations

import datetime as dt
import ntpath
import re
import time
from dataclasses import dataclass
from typing import Any

from host_actions import validate
from host_actions.actions.binding_check import binding_report
from host_actions.actions.result import ActionResult
from host_actions.diagnose import diagnose
from host_actions.errors import HostActionError, InvalidParameter
from host_actions.inventory import build_inventory, inventory_parts, require
from host_actions.model import Inventory, Renewal
from host_actions.parsers import (
    NO_RENEWALS_FOUND,
    parse_time,
    parse_winacme_renewals,
    task_result,
    wacs_event_lines,
    wacs_log_since,
)
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession

RELEVANT_WACS_LINE = re.compile(
    r"\[(EROR|ERR|WARN|WRN|FATL|FTL)\]|Script |Renewing|Installing|Store with|Updating|encountered an error",
    re.I,
)  # the console with --verbose writes [EROR]/[WARN]/[FATL]; the log file writes [ERR]/[WRN]/[FTL]

TASK_FOLDER = "\\certops\\"
ALL_DUE = "(all due)"
STILL_RUNNING = {0x41301, 0x41303}  # running; registered but not started yet
# an ended task nobody read (a renew that returned "still running") is followed, not restarted,
# for this long: its result is the answer, and a second forced run would cost a certificate
FOLLOW_WINDOW = dt.timedelta(hours=3)
START_SLACK = dt.timedelta(seconds=5)  # log stamps and LastRunTime come from the same clock


@dataclass(frozen=True)
class Plan:
    """What renew will run, worked out from one read of the host before anything changes."""

    renewal_id: str
    task_name: str
    base_uri: str
    base_folder: str
    log_folder: str
    force: bool
    wacs: str
    follow: dict[str, Any] | None  # the host's record of a certops renew task to follow

    @property
    def task(self) -> str:
        return TASK_FOLDER + self.task_name

    @property
    def command(self) -> str:
        words = [f'"{self.wacs}"', "--renew", "--baseuri", f'"{self.base_uri}"']
        words += ["--id", self.renewal_id] if self.renewal_id else []
        words += ["--force"] if self.force else []
        return " ".join([*words, "--verbose"])

    def params(self, mode: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "Mode": mode,
            "WacsPath": self.wacs,
            "TaskName": self.task_name,
            "LogFolder": self.log_folder,
        }
        if mode == "start":
            params.update(BaseUri=self.base_uri, RenewalId=self.renewal_id, Force=self.force)
        return params


def renew(
    host: Host,
    renewal_id: str | None = None,
    *,
    force: bool = False,
    what_if: bool = False,
    poll_every: float = 5.0,
) -> ActionResult:
    rid = validate.renewal_id(renewal_id) if renewal_id else ""
    if force and not rid:
        raise InvalidParameter(
            "renew --force needs a renewal id: forcing every renewal at once could hit the ACME server's rate limits."
        )
    wacs = validate.windows_path(host.wacs_path)
    if not wacs.lower().endswith("\\wacs.exe"):
        raise InvalidParameter("wacs_path must name wacs.exe.")
    parts = inventory_parts(host)
    with HostSession(host, "renew") as session:
        results = session.run(parts)
        before = build_inventory(host.name, results)
        doc = require(results, "winacme", host.name)
        plan = _plan(host, before, doc, rid, force, wacs)
        if what_if:
            return _would(host, plan, session.stats.round_trips)
        status = _run(session, plan)
        status = _poll(session, plan, status, poll_every)
        if _running(status):
            return _still_running(host, plan, status, session.stats.round_trips)
        after = build_inventory(host.name, session.run(parts))
    return _ended(host, plan, status, before, after, session.stats.round_trips)


# -- before anything runs -----------------------------------------------------------------


def _plan(host: Host, before: Inventory, doc: dict[str, Any], rid: str, force: bool, wacs: str) -> Plan:
    """Every refusal happens here, on what the host reported, before any change."""
    renewals = parse_winacme_renewals(doc, before.tasks)
    if not before.wacs_exists:
        raise HostActionError("script_failed", f"{host.name}: wacs.exe is not at {wacs}.", host=host.name)
    target = _target(host, renewals, rid)
    if target.base_uri is None:
        raise HostActionError(
            "script_failed",
            f"{host.name}: certops cannot tell which ACME server the folder {target.base_folder} belongs to "
            "(no win-acme task names it with --baseuri), and wacs reads only the folder of its --baseuri.",
            host=host.name,
        )
    task_name = f"certops renew {rid or ALL_DUE}"
    follow = next((t for t in doc.get("renew_tasks") or () if str(t.get("name")) == task_name), None)
    if follow is not None and not _worth_following(follow, parse_time(doc.get("now"))):
        follow = None  # an old, ended run: starting again re-registers the task (-Force)
    return Plan(
        renewal_id=rid,
        task_name=task_name,
        base_uri=validate.base_uri(target.base_uri),
        base_folder=target.base_folder,
        log_folder=validate.windows_path(_log_folder(doc, target.base_folder)),
        force=force,
        wacs=wacs,
        follow=follow,
    )


def _target(host: Host, renewals: tuple[Renewal, ...], rid: str) -> Renewal:
    """The renewal to run (with an id), or one standing for its folder (without one)."""
    if rid:
        found = [r for r in renewals if r.id == rid]
        if not found:
            raise HostActionError(
                "script_failed", f"{host.name}: win-acme has no renewal with id {rid}.", host=host.name
            )
        if len({r.base_folder.lower() for r in found}) > 1:
            folders = ", ".join(r.base_folder for r in found)
            raise HostActionError(
                "script_failed",
                f"{host.name}: renewal {rid} is in several ACME server folders ({folders}).",
                host=host.name,
            )
        if found[0].problem:
            raise HostActionError(
                "script_failed", f"{host.name}: win-acme ignores renewal {rid}: {found[0].problem}.", host=host.name
            )
        return found[0]
    by_folder = {r.base_folder.lower(): r for r in renewals}
    if not by_folder:
        raise HostActionError("script_failed", f"{host.name}: win-acme has no renewals on this host.", host=host.name)
    if len(by_folder) > 1:
        names = ", ".join(r.base_folder for r in by_folder.values())
        raise InvalidParameter(
            f"{host.name}: renewals live under several ACME servers ({names}); renew them one by id."
        )
    return next(iter(by_folder.values()))


def _log_folder(doc: dict[str, Any], base_folder: str) -> str:
    """Where wacs writes its day logs for this server (SettingsService.ChooseLogPath)."""
    settings = doc.get("settings") if isinstance(doc.get("settings"), dict) else None
    log_path = str((settings or {}).get("log_path") or "")
    if log_path:
        return ntpath.join(log_path, base_folder)
    return ntpath.join(str(doc.get("config_root") or "C:\\ProgramData\\win-acme"), base_folder, "Log")


def _worth_following(task: dict[str, Any], now: dt.datetime | None) -> bool:
    if _running(task):
        return True
    last_run = parse_time(task.get("last_run"))
    return last_run is not None and now is not None and now - last_run <= FOLLOW_WINDOW


def _would(host: Host, plan: Plan, round_trips: int) -> ActionResult:
    if plan.follow is not None:
        what = f"follow {plan.task}, which already runs wacs.exe ({plan.follow.get('arguments')}), and start nothing"
    else:
        what = f"start the scheduled task {plan.task} as SYSTEM, running {plan.command}"
    return ActionResult(
        "renew",
        host.name,
        True,
        f"Would {what} on {host.name}.",
        {
            "what_if": True,
            "task": plan.task,
            "command": plan.command,
            "base_uri": plan.base_uri,
            "log_folder": plan.log_folder,
            "follow": plan.follow is not None,
        },
        round_trips,
    )


# -- the run ------------------------------------------------------------------------------


def _run(session: HostSession, plan: Plan) -> dict[str, Any]:
    mode = "follow" if plan.follow is not None else "start"
    return require(session.run([Part("renew", plan.params(mode))]), "renew", session.host.name)


def _running(status: dict[str, Any]) -> bool:
    """Task Scheduler's view: Running/Queued, or a result meaning "running" or "not started yet"."""
    if status.get("exists") is False:
        return False
    code = int(status.get("last_result") or 0) & 0xFFFFFFFF
    return str(status.get("state")) in ("Running", "Queued") or code in STILL_RUNNING


def _poll(session: HostSession, plan: Plan, status: dict[str, Any], every: float) -> dict[str, Any]:
    """Reads the task again until it ends, keeping time for the inventory that judges the run."""
    reserve = max(2.0, min(30.0, session.host.timeout * 0.25))
    while _running(status) and session.deadline.remaining() - every > reserve:
        time.sleep(every)
        status = require(session.run([Part("renew", plan.params("follow"))]), "renew", session.host.name)
    return status


# -- the judgement ------------------------------------------------------------------------


def _lines(status: dict[str, Any]) -> list[str]:
    """What wacs logged since the run began: the day's log file, else its Application events."""
    since = parse_time(status.get("started_at"))
    since = since - START_SLACK if since else None
    texts = [str(log.get("text") or "") for log in status.get("log") or () if isinstance(log, dict)]
    lines = wacs_log_since(texts, since)
    return lines or wacs_event_lines(list(status.get("events") or ()), since)


def _still_running(host: Host, plan: Plan, status: dict[str, Any], round_trips: int) -> ActionResult:
    lines = _lines(status)
    return ActionResult(
        "renew",
        host.name,
        False,  # not done: nothing is known yet about the certificate
        f"{host.name}: {plan.task} is still running wacs.exe (started {status.get('started_at')}); "
        f"run {' '.join(['renew', *([plan.renewal_id] if plan.renewal_id else [])])} again to follow it to its end.",
        {
            "running": True,
            "task": plan.task,
            "command": status.get("arguments") or plan.command,
            "started_at": status.get("started_at"),
            "log": lines[-30:],
        },
        round_trips,
    )


def _exit_code(status: dict[str, Any]) -> int:
    """The task's last result as wacs's exit code (0xFFFFFFFF is wacs's -1)."""
    value = int(status.get("last_result") or 0) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _new_thumbprints(plan: Plan, status: dict[str, Any], before: Inventory, after: Inventory) -> list[str]:
    """Certificates this run produced: new in the store since this call began, or (for a run an
    earlier call started) recorded in the renewal's history since the run began."""
    found = [c.thumbprint for c in after.certificates if before.certificate(c.thumbprint) is None]
    since = parse_time(status.get("started_at"))
    if since is not None:
        for r in after.renewals:
            if plan.renewal_id and r.id != plan.renewal_id:
                continue
            older = [h.thumbprint for h in r.history if h.success and h.date and h.date < since - START_SLACK]
            found += [
                h.thumbprint
                for h in r.history
                if h.success and h.thumbprint and h.date and h.date >= since - START_SLACK and h.thumbprint not in older
            ]
    return [tp for tp in dict.fromkeys(found) if after.certificate(tp) is not None]


def _ended(
    host: Host, plan: Plan, status: dict[str, Any], before: Inventory, after: Inventory, round_trips: int
) -> ActionResult:
    exit_code = _exit_code(status)
    failed, hex_code, meaning = task_result(exit_code)
    lines = _lines(status)
    new = _new_thumbprints(plan, status, before, after)
    forced = "--force" in str(status.get("arguments") or "").split() or (plan.follow is None and plan.force)
    problem = _problem(plan, status, exit_code, meaning, lines, forced, bool(new))
    if problem:
        summary = f"{host.name}: {problem}"
    else:
        summary = f"{host.name}: wacs.exe exited with 0" + (
            f"; new certificate(s): {', '.join(new)}." if new else "; no new certificate (nothing was due)."
        )
    return ActionResult(
        "renew",
        host.name,
        problem is None,
        summary,
        {
            "running": False,
            "task": plan.task,
            "command": status.get("arguments") or plan.command,
            "base_uri": plan.base_uri,
            "followed": plan.follow is not None,
            "exit_code": exit_code,
            "task_result": hex_code,
            "task_failed": failed,
            "log": [ln for ln in lines if RELEVANT_WACS_LINE.search(ln)][-30:],
            "log_missing": list(status.get("log_missing") or ()),
            "new_certificates": new,
            "new_key_status": {tp: c.key_status for tp in new if (c := after.certificate(tp))},
            "bindings_before": binding_report(before),
            "bindings_after": binding_report(after),
            "findings_after": [f.to_json() for f in diagnose(after)],
        },
        round_trips,
    )


def _problem(
    plan: Plan, status: dict[str, Any], exit_code: int, meaning: str, lines: list[str], forced: bool, new: bool
) -> str | None:
    """Why an ended run is not a success, in one sentence; None when it is one."""
    if status.get("exists") is False:
        return f"{plan.task} is gone before certops read its result (another renew may have read it)."
    if exit_code != 0:
        return f"wacs.exe exited with {exit_code} ({meaning})."
    if any(NO_RENEWALS_FOUND in line for line in lines):
        what = f"renewal {plan.renewal_id}" if plan.renewal_id else "any renewal"
        return f"wacs.exe exited with 0 but found no {what} under {plan.base_uri} (No renewals found)."
    if forced and plan.renewal_id and not new:
        return (
            f"wacs.exe exited with 0 but renewal {plan.renewal_id} produced no new certificate although it was "
            "forced (win-acme may have reused its cached certificate; see the log)."
        )
    return None
