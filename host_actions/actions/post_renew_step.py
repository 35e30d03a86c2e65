"""add-post-renew-step: the Layer 3 script as a win-acme Script step after the IIS step, and the
report configuration it reports with (host_actions.actions.layer_files)."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import ntpath
from typing import Any

from host_actions import validate
from host_actions.actions.layer_files import (
    LOCKED_SIDS,
    Change,
    acl_locked,
    describe,
    file_change,
    missing_report_settings,
    report_changes,
    report_params,
    report_problems,
    report_settings,
)
from host_actions.actions.result import ActionResult
from host_actions.errors import HostActionError
from host_actions.inventory import require
from host_actions.layers import layer_script
from host_actions.model import Renewal
from host_actions.parsers import (
    PLUGIN_IIS,
    PLUGIN_SCRIPT,
    parse_renewal,
    renewal_days_of,
)
from host_actions.scripts import Part
from host_actions.target import Host
from host_actions.winrm_client import HostSession

POST_RENEW_SCRIPT = "certops_post_renew.ps1"


def post_renew_script_path(host: Host) -> str:
    """Next to wacs.exe, in the Scripts folder win-acme ships for installation scripts."""
    return ntpath.join(ntpath.dirname(host.wacs_path), "Scripts", POST_RENEW_SCRIPT)


def with_script_step(text: str, script_path: str) -> str:
    """The renewal JSON with our Script step placed right after the (last) IIS step."""
    data = json.loads(text)
    steps = list(data.get("InstallationPluginOptions") or [])
    iis = [i for i, s in enumerate(steps) if str(s.get("Plugin", "")).lower() == PLUGIN_IIS]
    if not iis:
        raise ValueError("no IIS installation step")
    step = {"Script": script_path, "ScriptParameters": "-Thumbprint {CertThumbprint}", "Plugin": PLUGIN_SCRIPT}
    steps.insert(iis[-1] + 1, step)
    data["InstallationPluginOptions"] = steps
    return json.dumps(data, indent=2, ensure_ascii=False)


# the protected ACL add_post_renew_step.ps1 puts on the script: SYSTEM and Administrators only
SCRIPT_ACL = LOCKED_SIDS


def add_post_renew_step(
    host: Host, renewal_id: str, *, now: dt.datetime | None = None, what_if: bool = False
) -> ActionResult:
    """Layer 3 (host_actions.layers: layer_script("post-renew")) as the renewal's Script step,
    and report.json/report.key when the host has report_url and report_secret, so that the step
    reports every renewal. A step in place whose script is current is left alone; an older copy
    of the script is replaced, and so is report configuration that differs."""
    rid = validate.renewal_id(renewal_id)
    script_path = validate.windows_path(post_renew_script_path(host))
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H%M%S")
    settings = report_settings(host)  # None without the config; refused here if the secret is unreadable
    script = layer_script("post-renew")
    winacme = Part("winacme", {"WacsPath": validate.windows_path(host.wacs_path)})
    state_params: dict[str, Any] = {"Paths": [script_path]}
    if settings is not None:
        state_params["ReportKeySha256"] = settings.key_sha256
    state = Part("layer_state", state_params)
    with HostSession(host, "add-post-renew-step") as session:
        results = session.run([winacme, state])
        _refuse_while_wacs_runs(host, require(results, "winacme", host.name))
        before, text = _renewal(host, results, rid)
        layer = require(results, "layer_state", host.name)
        script_change = file_change(_file_doc(layer, script_path), script_path, script)
        report = report_changes(layer, settings) if settings is not None else None
        report_write = report_params(report, settings) if settings is not None and report is not None else None
        ours = [s for s in before.steps if s.name == "Script" and (s.script or "").lower() == script_path.lower()]
        if ours and ours[0].script_exists and not script_change.changed:
            if report_write is None or settings is None:
                return ActionResult(
                    "add-post-renew-step",
                    host.name,
                    True,
                    f"{host.name}: renewal {rid} already runs {script_path} after the IIS step; nothing changed."
                    + _report_note(host, report, would=what_if),
                    {
                        "renewal": rid,
                        "changed": False,
                        "what_if": what_if,
                        "reports": settings is not None,
                        "changes": _changes(script_change, report),
                    },
                    session.stats.round_trips,
                )
            # the step is in place: only the report configuration differs
            if what_if:
                return ActionResult(
                    "add-post-renew-step",
                    host.name,
                    True,
                    f"Would leave renewal {rid} as it is (it runs {script_path} after the IIS step) on {host.name}."
                    + _report_note(host, report, would=True),
                    {
                        "what_if": True,
                        "renewal": rid,
                        "changed": False,
                        "reports": True,
                        "changes": _changes(script_change, report),
                    },
                    session.stats.round_trips,
                )
            results = session.run([Part("report_config", report_write), state])
            require(results, "report_config", host.name)
            problems = report_problems(require(results, "layer_state", host.name), settings)
            return ActionResult(
                "add-post-renew-step",
                host.name,
                not problems,
                f"{host.name}: renewal {rid} already runs {script_path} after the IIS step."
                + _report_note(host, report, would=False)
                + (" But " + "; ".join(problems) + "." if problems else ""),
                {
                    "renewal": rid,
                    "changed": True,
                    "what_if": False,
                    "reports": True,
                    "changes": _changes(script_change, report),
                    "problems": problems,
                },
                session.stats.round_trips,
            )
        try:
            new_text = text if ours else with_script_step(text, script_path)
        except ValueError:
            raise HostActionError(
                "script_failed", f"{host.name}: renewal {rid} has no IIS installation step.", host=host.name
            ) from None
        path = validate.windows_path(before.path)
        backup = f"{path}.certops-{stamp}.bak"  # the name add_post_renew_step.ps1 gives it
        if what_if:
            return ActionResult(
                "add-post-renew-step",
                host.name,
                True,
                f"Would write {script_path} (SYSTEM and Administrators full control, inheritance off) and "
                f"replace {path} on {host.name} with the Script step after the IIS step, keeping the old file as "
                f"{backup}." + _report_note(host, report, would=True),
                {
                    "what_if": True,
                    "renewal": rid,
                    "changed": False,
                    "path": path,
                    "backup": backup,
                    "script": script_path,
                    "diff": _diff(text, new_text),
                    "reports": settings is not None,
                    "changes": _changes(script_change, report),
                },
                session.stats.round_trips,
            )
        params = {
            "RenewalPath": path,
            "ExpectedSha256": before.sha256,
            "NewText": new_text,
            "ScriptPath": script_path,
            "ScriptText": script,
            "Stamp": stamp,
        }
        writes = [Part("add_post_renew_step", params)]
        if report_write is not None:
            writes.append(Part("report_config", report_write))
        results = session.run([*writes, winacme, state])
        done = require(results, "add_post_renew_step", host.name)
        if report_write is not None:
            require(results, "report_config", host.name)
        after, after_text = _renewal(host, results, rid)
        layer_after = require(results, "layer_state", host.name)
    step = next((s for s in after.steps if s.name == "Script" and s.script == script_path), None)
    locked = acl_locked(done.get("script_acl"))
    problems = report_problems(layer_after, settings) if settings is not None else []
    if file_change(_file_doc(layer_after, script_path), script_path, script).changed:
        problems.append(f"{script_path} does not hold the script certops wrote")
    ok = step is not None and bool(step.script_exists) and locked and not problems
    if not locked:
        summary = f"{host.name}: {script_path} was written, but its permissions are not SYSTEM and Administrators only."
    elif step is None or not step.script_exists:
        summary = f"{host.name}: the Script step for renewal {rid} could not be verified after writing it."
    else:
        summary = f"{host.name}: renewal {rid} now runs {script_path} after the IIS step (backup {done.get('backup')})."
    summary += _report_note(host, report, would=False) + (" But " + "; ".join(problems) + "." if problems else "")
    return ActionResult(
        "add-post-renew-step",
        host.name,
        ok,
        summary,
        {
            "renewal": rid,
            "changed": True,
            "backup": done.get("backup"),
            "diff": _diff(text, after_text),
            "script_acl": done.get("script_acl"),
            "reports": settings is not None,
            "changes": _changes(script_change, report),
            "problems": problems,
        },
        session.stats.round_trips,
    )


def _file_doc(layer: dict[str, Any], path: str) -> dict[str, Any] | None:
    return next(
        (f for f in layer.get("files") or () if isinstance(f, dict) and str(f.get("path", "")).lower() == path.lower()),
        None,
    )


def _changes(script: Change, report: tuple[Change, ...] | None) -> list[dict[str, Any]]:
    return [c.to_json() for c in (script, *(report or ()))]


def _report_note(host: Host, report: tuple[Change, ...] | None, *, would: bool) -> str:
    """What becomes of the step's reports: the report files written (or unchanged), or the
    config keys to set before it can report at all."""
    if report is None:
        missing = " and ".join(missing_report_settings(host, explain=False))
        return f" The step will not report until {missing} are set; then run add-post-renew-step again."
    if not any(c.changed for c in report):
        return f" Its reports go to {host.report_url} (report.json and report.key unchanged)."
    return f" Its reports go to {host.report_url}: {describe(list(report), would=would, folder=report[0].item)}."


def _diff(old: str, new: str) -> list[str]:
    return list(difflib.unified_diff(old.splitlines(), new.splitlines(), "before", "after", lineterm="", n=1))


def _refuse_while_wacs_runs(host: Host, doc: dict[str, Any]) -> None:
    """win-acme rewrites a renewal file from memory when its run ends: a step added meanwhile
    would be lost, so nothing is written while wacs.exe (or certops's renew task) runs."""
    busy = [t for t in doc.get("renew_tasks") or () if isinstance(t, dict) and t.get("state") == "Running"]
    if busy:
        raise HostActionError(
            "script_failed",
            f"{host.name}: \\certops\\{busy[0].get('name')} is running wacs.exe; win-acme rewrites renewal files "
            "when a run ends, so a step added now would be lost. Try again when it has finished.",
            host=host.name,
        )
    pids = [str(p.get("pid")) for p in doc.get("wacs_processes") or () if isinstance(p, dict)]
    if pids:
        raise HostActionError(
            "script_failed",
            f"{host.name}: wacs.exe is running (process {', '.join(pids)}); win-acme rewrites renewal files when a "
            "run ends, so a step added now would be lost. Try again when it has finished.",
            host=host.name,
        )


def _renewal(host: Host, results: list[Any], rid: str) -> tuple[Renewal, str]:
    doc = require(results, "winacme", host.name)
    for r in doc.get("renewals") or ():
        renewal = parse_renewal(
            str(r.get("path")),
            str(r.get("text")),
            list(r.get("scripts") or ()),
            renewal_days_of(doc.get("renewal_days")),
        )
        if renewal.id == rid and not renewal.problem:
            return renewal, str(r.get("text"))
    raise HostActionError("script_failed", f"{host.name}: win-acme has no usable renewal {rid}.", host=host.name)
