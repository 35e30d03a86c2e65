"""add-post-renew-step: the Layer 3 script as a win-acme Script step after the IIS step."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import ntpath
from typing import Any

from host_actions import validate
from host_actions.actions.result import ActionResult
from host_actions.errors import HostActionError
from host_actions.inventory import require
from host_actions.model import Renewal
from host_actions.parsers import (
    PLUGIN_IIS,
    PLUGIN_SCRIPT,
    parse_renewal,
    renewal_days_of,
)
from host_actions.scripts import Part, script_text
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
SCRIPT_ACL = {"S-1-5-18", "S-1-5-32-544"}


def add_post_renew_step(
    host: Host, renewal_id: str, *, now: dt.datetime | None = None, what_if: bool = False
) -> ActionResult:
    rid = validate.renewal_id(renewal_id)
    script_path = validate.windows_path(post_renew_script_path(host))
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H%M%S")
    winacme = Part("winacme", {"WacsPath": validate.windows_path(host.wacs_path)})
    with HostSession(host, "add-post-renew-step") as session:
        results = session.run([winacme])
        _refuse_while_wacs_runs(host, require(results, "winacme", host.name))
        before, text = _renewal(host, results, rid)
        ours = [s for s in before.steps if s.name == "Script" and (s.script or "").lower() == script_path.lower()]
        if ours and ours[0].script_exists:
            return ActionResult(
                "add-post-renew-step",
                host.name,
                True,
                f"{host.name}: renewal {rid} already runs {script_path} after the IIS step; nothing changed.",
                {"renewal": rid, "changed": False, "what_if": what_if},
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
                f"{backup}.",
                {
                    "what_if": True,
                    "renewal": rid,
                    "changed": False,
                    "path": path,
                    "backup": backup,
                    "script": script_path,
                    "diff": _diff(text, new_text),
                },
                session.stats.round_trips,
            )
        params = {
            "RenewalPath": path,
            "ExpectedSha256": before.sha256,
            "NewText": new_text,
            "ScriptPath": script_path,
            "ScriptText": script_text("certops_post_renew"),
            "Stamp": stamp,
        }
        results = session.run([Part("add_post_renew_step", params), winacme])
        done = require(results, "add_post_renew_step", host.name)
        after, after_text = _renewal(host, results[1:], rid)
    step = next((s for s in after.steps if s.name == "Script" and s.script == script_path), None)
    locked = _acl_locked(done.get("script_acl"))
    ok = step is not None and bool(step.script_exists) and locked
    if not locked:
        summary = f"{host.name}: {script_path} was written, but its permissions are not SYSTEM and Administrators only."
    elif ok:
        summary = f"{host.name}: renewal {rid} now runs {script_path} after the IIS step (backup {done.get('backup')})."
    else:
        summary = f"{host.name}: the Script step for renewal {rid} could not be verified after writing it."
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
        },
        session.stats.round_trips,
    )


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


def _acl_locked(acl: Any) -> bool:
    """Protected (no inherited entries) and granting only SYSTEM and Administrators."""
    if not isinstance(acl, dict) or not acl.get("protected"):
        return False
    who = {str(rule).split(":", 1)[0] for rule in acl.get("rules") or ()}
    return bool(who) and who <= SCRIPT_ACL


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
