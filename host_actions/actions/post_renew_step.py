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


def add_post_renew_step(host: Host, renewal_id: str, *, now: dt.datetime | None = None) -> ActionResult:
    rid = validate.renewal_id(renewal_id)
    script_path = validate.windows_path(post_renew_script_path(host))
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d%H%M%S")
    winacme = Part("winacme", {"WacsPath": validate.windows_path(host.wacs_path)})
    with HostSession(host, "add-post-renew-step") as session:
        before, text = _renewal(host, session.run([winacme]), rid)
        ours = [s for s in before.steps if s.name == "Script" and (s.script or "").lower() == script_path.lower()]
        if ours and ours[0].script_exists:
            return ActionResult(
                "add-post-renew-step",
                host.name,
                True,
                f"{host.name}: renewal {rid} already runs {script_path} after the IIS step; nothing changed.",
                {"renewal": rid, "changed": False},
                session.stats.round_trips,
            )
        try:
            new_text = text if ours else with_script_step(text, script_path)
        except ValueError:
            raise HostActionError(
                "script_failed", f"{host.name}: renewal {rid} has no IIS installation step.", host=host.name
            ) from None
        params = {
            "RenewalPath": validate.windows_path(before.path),
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
    ok = step is not None and bool(step.script_exists)
    diff = list(difflib.unified_diff(text.splitlines(), after_text.splitlines(), "before", "after", lineterm="", n=1))
    summary = (
        f"{host.name}: renewal {rid} now runs {script_path} after the IIS step (backup {done.get('backup')})."
        if ok
        else f"{host.name}: the Script step for renewal {rid} could not be verified after writing it."
    )
    return ActionResult(
        "add-post-renew-step",
        host.name,
        ok,
        summary,
        {"renewal": rid, "changed": True, "backup": done.get("backup"), "diff": diff},
        session.stats.round_trips,
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
