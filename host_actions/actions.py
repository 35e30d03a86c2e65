"""The host actions, one function each. Every value is validated before the first request;
every action opens one shell, runs at most a few commands in it, and verifies its own effect.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import ntpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from host_actions import validate
from host_actions.audit import AuditedTask, audit_all, parse_tasks
from host_actions.diagnose import (
    WILDCARD_IP,
    Finding,
    ProbeLike,
    diagnose,
    http_sys_binding,
    newest_certificate,
)
from host_actions.errors import HostActionError, InvalidParameter
from host_actions.inventory import build_inventory, inventory_parts, require
from host_actions.model import Certificate, Inventory, Renewal, SiteBinding, a_label, to_jsonable
from host_actions.parsers import (
    PLUGIN_IIS,
    PLUGIN_SCRIPT,
    certutil_outcome,
    parse_certificate,
    parse_certutil_store,
    parse_netsh_sslcert,
    parse_renewal,
    parse_site_bindings,
    renewal_days_of,
)
from host_actions.scripts import Part, script_text
from host_actions.target import Host
from host_actions.winrm_client import HostSession

POST_RENEW_SCRIPT = "certops_post_renew.ps1"
# the console with --verbose writes [EROR]/[WARN]/[FATL]; the log file writes [ERR]/[WRN]/[FTL]
RELEVANT_WACS_LINE = re.compile(
    r"\[(EROR|ERR|WARN|WRN|FATL|FTL)\]|Script |Renewing|Installing|Store with|Updating|encountered an error",
    re.I,
)


@dataclass(frozen=True)
class ActionResult:
    action: str
    host: str
    ok: bool
    summary: str  # one or two sentences for chat and the terminal
    details: dict[str, Any] = field(default_factory=dict)
    round_trips: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "host": self.host,
            "ok": self.ok,
            "summary": self.summary,
            "details": to_jsonable(self.details),
            "round_trips": self.round_trips,
        }


# -- diagnose -------------------------------------------------------------------------------


def diagnose_host(host: Host, probe: ProbeLike | None = None) -> tuple[Inventory, list[Finding], ActionResult]:
    parts = inventory_parts(host)
    with HostSession(host, "diagnose") as session:
        inv = build_inventory(host.name, session.run(parts))
    findings = diagnose(inv, probe, overdue_grace=dt.timedelta(seconds=host.renewal_grace))
    worst = [f for f in findings if f.severity == "critical"]
    summary = (
        f"{host.name}: {len(findings)} finding(s), {len(worst)} critical."
        if findings
        else f"{host.name}: certificates, bindings, renewals and tasks look healthy."
    )
    result = ActionResult(
        "diagnose",
        host.name,
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
        session.stats.round_trips,
    )
    return inv, findings, result


# -- repair-store ---------------------------------------------------------------------------


def repair_store(host: Host, thumbprint: str) -> ActionResult:
    tp = validate.thumbprint(thumbprint)
    with HostSession(host, "repair-store") as session:
        before = _one_cert(host, session.run([Part("certs", {"Thumbprint": tp})]), tp)
        results = session.run(
            [Part("repair_store", {"Store": before.store, "Thumbprint": tp}), Part("certs", {"Thumbprint": tp})]
        )
        repair = require(results, "repair_store", host.name)
        after = _one_cert(host, results[1:], tp)
    output = str(repair.get("repair_output") or "")
    certutil_ok, hresult = certutil_outcome(output, int(repair.get("repair_exit") or 0))
    view = parse_certutil_store(str(repair.get("store_output") or "")).get(tp)
    ok = after.usable
    if ok:
        summary = f"{host.name}: repaired the key link of {tp} in {before.store} ({before.key_status} -> ok)."
    else:
        summary = (
            f"{host.name}: certutil -repairstore {'ran' if certutil_ok else 'failed'}"
            + (f" ({hresult})" if hresult else "")
            + f"; the key of {tp} is still {after.key_status}."
        )
    return ActionResult(
        "repair-store",
        host.name,
        ok,
        summary,
        {
            "thumbprint": tp,
            "store": before.store,
            "before": before.key_status,
            "after": after.key_status,
            "certutil_ok": certutil_ok,
            "certutil_hresult": hresult,
            "certutil_view": view,
            "certutil_output": _tail(output, 20),
        },
        session.stats.round_trips,
    )


def _one_cert(host: Host, results: list[Any], tp: str) -> Certificate:
    doc = require(results, "certs", host.name)
    certs = [parse_certificate(c) for c in doc.get("certs") or ()]
    if not certs:
        raise HostActionError(
            "script_failed", f"{host.name}: certificate {tp} is in neither My nor WebHosting.", host=host.name
        )
    return certs[0]


# -- verify-binding / rebind ----------------------------------------------------------------


def binding_report(inv: Inventory, site: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for b in inv.site_bindings:
        if b.protocol != "https" or (site and b.site.lower() != site.lower()):
            continue
        http_sys = http_sys_binding(inv, b)
        bound = (http_sys.thumbprint if http_sys else None) or b.thumbprint
        current = inv.certificate(bound) if bound else None
        names = [b.host] if b.host else list(current.names if current else ())
        newest = newest_certificate(inv, names)
        if http_sys is None and not b.ccs:
            status = "no_http_sys_binding"
        elif current is None:
            status = "cert_missing"
        elif not current.usable:
            status = "key_unusable"
        elif newest is not None and newest.thumbprint != current.thumbprint:
            status = "not_newest"
        else:
            status = "ok"
        rows.append(
            {
                "site": b.site,
                "endpoint": f"{b.host or b.ip}:{b.port}",
                "sni": b.sni,
                "bound": bound,
                "iis_hash": b.thumbprint,
                "http_sys_hash": http_sys.thumbprint if http_sys else None,
                "newest": newest.thumbprint if newest else None,
                "status": status,
            }
        )
    return rows


def verify_binding(host: Host, site: str | None = None) -> ActionResult:
    site_name = validate.site_name(site) if site else None
    parts = inventory_parts(host)
    with HostSession(host, "verify-binding") as session:
        inv = build_inventory(host.name, session.run(parts))
    if site_name and site_name.lower() not in (s.lower() for s in inv.sites()):
        raise HostActionError("script_failed", f"{host.name}: IIS has no site named {site_name}.", host=host.name)
    rows = binding_report(inv, site_name)
    bad = [r for r in rows if r["status"] != "ok"]
    if not rows:
        summary = f"{host.name}: no https bindings" + (f" on site {site_name}." if site_name else ".")
    elif bad:
        summary = f"{host.name}: {len(bad)} of {len(rows)} https binding(s) need attention: " + ", ".join(
            f"{r['endpoint']} {r['status']}" for r in bad
        )
    else:
        summary = f"{host.name}: all {len(rows)} https binding(s) use the newest usable certificate."
    return ActionResult(
        "verify-binding", host.name, not bad and bool(rows), summary, {"bindings": rows}, session.stats.round_trips
    )


def rebind(
    host: Host,
    site: str,
    thumbprint: str,
    *,
    bindings: Sequence[str] | None = None,
    shared_socket: bool = False,
) -> ActionResult:
    """Point the https bindings of `site` whose host name the certificate covers (or exactly the
    `bindings` named: "IP:port:host", "host:port" or a host name) at the certificate.

    Never a Central Certificate Store binding (SslFlags & 2: it takes no hash). A non-SNI binding
    whose IP:port socket another binding shares is refused unless `shared_socket` is given, since
    http.sys keeps one certificate per socket. The script replaces each binding (win-acme #371);
    afterwards each changed binding, and each one sharing its socket, is read back and must be
    bound to a certificate that covers its host name.
    """
    site_name, tp = validate.site_name(site), validate.thumbprint(thumbprint)
    named = [_binding_selector(b) for b in bindings or ()]
    with HostSession(host, "rebind") as session:
        before = _certs_and_bindings(host, session.run([Part("certs"), Part("bindings")]))
        cert = before.certificate(tp)
        if cert is None or not cert.usable:
            raise HostActionError(
                "script_failed",
                f"{host.name}: refusing to bind {tp}: "
                + ("it is not in My or WebHosting." if cert is None else f"its private key is {cert.key_status}."),
                host=host.name,
            )
        if site_name.lower() not in (s.lower() for s in before.sites()):
            raise HostActionError("script_failed", f"{host.name}: IIS has no site named {site_name}.", host=host.name)
        selected, skipped = _select_bindings(host, before, site_name, cert, named)
        _refuse_shared_sockets(host, before, selected, shared_socket)
        infos = [b.information for b in selected]
        results = session.run(
            [
                Part("rebind", {"Site": site_name, "Thumbprint": tp, "Store": cert.store, "Bindings": infos}),
                Part("certs"),
                Part("bindings"),
            ]
        )
        require(results, "rebind", host.name)
        after = _certs_and_bindings(host, results[1:])
    checked, problems = _verify_rebind(after, selected, tp)
    hosts = ", ".join(f"{b.host or b.ip}:{b.port}" for b in selected)
    if problems:
        summary = f"{host.name}: after rebinding {site_name} to {tp}: " + " ".join(problems)
    else:
        summary = (
            f"{host.name}: site {site_name} now serves {tp} on {len(selected)} https binding(s) ({hosts}); "
            "each one's certificate covers its host name."
        )
        if skipped:
            summary += f" Left alone: {len(skipped)} binding(s) (" + "; ".join(r["reason"] for r in skipped) + ")."
    return ActionResult(
        "rebind",
        host.name,
        not problems,
        summary,
        {
            "before": binding_report(before, site_name),
            "after": binding_report(after, site_name),
            "changed": infos,
            "skipped": skipped,
            "verified": checked,
            "problems": problems,
        },
        session.stats.round_trips,
    )


_SELECTOR = re.compile(r"^[^\s'\"`$;|&<>(){}]{1,300}$")


def _binding_selector(value: str) -> str:
    if not isinstance(value, str) or not _SELECTOR.fullmatch(value):
        raise InvalidParameter("A binding is named as IP:port:host, host:port or a host name; this value was refused.")
    return value


def _endpoint(b: SiteBinding) -> str:
    return f"{b.host or b.ip}:{b.port}"


def _named(b: SiteBinding, selector: str) -> bool:
    sel = selector.lower()
    if b.information.lower() == sel or _endpoint(b).lower() == sel:
        return True
    return bool(b.host) and ":" not in sel and b.host == a_label(sel)


def _select_bindings(
    host: Host, inv: Inventory, site: str, cert: Certificate, named: list[str]
) -> tuple[list[SiteBinding], list[dict[str, Any]]]:
    """Which bindings to replace, decided here, not on the host; and which were left alone, why."""
    https = [b for b in inv.site_bindings if b.protocol == "https" and b.site.lower() == site.lower()]
    selected: list[SiteBinding] = []
    skipped: list[dict[str, Any]] = []

    def refuse(sentence: str) -> HostActionError:
        return HostActionError("script_failed", f"{host.name}: refusing to rebind {site}: {sentence}", host=host.name)

    if named:
        for sel in named:
            found = [b for b in https if _named(b, sel)]
            if not found:
                raise refuse(f"it has no https binding {sel}.")
            for b in found:
                if b.ccs:
                    raise refuse(f"{b.information} uses the Central Certificate Store, which takes no hash.")
                if b.host and not cert.covers(b.host):
                    raise refuse(f"certificate {cert.thumbprint} does not cover {b.host}.")
                if b not in selected:
                    selected.append(b)
        return selected, skipped
    # a site bound only without host names (the classic *:443:) serves every name through them
    hostless_site = all(not b.host for b in https if not b.ccs)
    for b in https:
        if b.ccs:
            skipped.append({"binding": b.information, "reason": f"{_endpoint(b)} uses the Central Certificate Store"})
        elif not b.host and hostless_site:
            selected.append(b)
        elif not b.host:
            reason = f"{_endpoint(b)} has no host name; name it to rebind it"
            skipped.append({"binding": b.information, "reason": reason})
        elif not cert.covers(b.host):
            skipped.append({"binding": b.information, "reason": f"the certificate does not cover {b.host}"})
        else:
            selected.append(b)
    if not selected:
        raise refuse(f"certificate {cert.thumbprint} covers the host name of none of its https bindings.")
    return selected, skipped


def _socket(b: SiteBinding) -> tuple[str, int | None]:
    return (WILDCARD_IP if b.ip in ("*", "") else b.ip.strip("[]").lower(), b.port)


def _sharing(inv: Inventory, b: SiteBinding) -> list[SiteBinding]:
    """Other non-SNI bindings (of any site) served by the same http.sys IP:port entry as `b`."""
    if b.sni or b.ccs:
        return []
    return [
        o
        for o in inv.site_bindings
        if o is not b
        and o.protocol == "https"
        and not o.sni
        and not o.ccs
        and _socket(o) == _socket(b)
        and (o.site, o.information) != (b.site, b.information)
    ]


def _refuse_shared_sockets(host: Host, inv: Inventory, selected: list[SiteBinding], allowed: bool) -> None:
    if allowed:
        return
    keys = {(b.site, b.information) for b in selected}
    for b in selected:
        others = [o for o in _sharing(inv, b) if (o.site, o.information) not in keys]
        if others:
            ip, port = _socket(b)
            names = ", ".join(f"{o.site} {_endpoint(o)}" for o in others)
            raise HostActionError(
                "script_failed",
                f"{host.name}: refusing to rebind {b.site} {_endpoint(b)}: it has no SNI, so it shares the "
                f"http.sys socket {ip}:{port} with {names}, which would serve the new certificate too. "
                "Ask for it explicitly (shared socket) to do it anyway.",
                host=host.name,
            )


def _verify_rebind(inv: Inventory, selected: list[SiteBinding], tp: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Each changed binding, and each binding that shares its socket, read back from the host:
    bound to a certificate that covers its host name (and the changed ones to `tp`)."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for old in selected:
        now = next((b for b in inv.site_bindings if (b.site, b.information) == (old.site, old.information)), None)
        if now is None:
            problems.append(f"binding {old.information} of {old.site} is gone.")
            continue
        for b, changed in [(now, True), *((o, False) for o in _sharing(inv, now))]:
            if (b.site, b.information) in seen:
                continue
            seen.add((b.site, b.information))
            http_sys = http_sys_binding(inv, b)
            bound = (http_sys.thumbprint if http_sys else None) or b.thumbprint
            current = inv.certificate(bound) if bound else None
            covers = None if not b.host else bool(current and current.covers(b.host))
            rows.append(
                {
                    "site": b.site,
                    "binding": b.information,
                    "changed": changed,
                    "iis_hash": b.thumbprint,
                    "http_sys_hash": http_sys.thumbprint if http_sys else None,
                    "covers_host": covers,
                }
            )
            where = f"{b.site} {_endpoint(b)}"
            if changed and (b.thumbprint != tp or (http_sys is not None and http_sys.thumbprint != tp)):
                problems.append(f"{where} is bound to {bound or 'no certificate'}, not {tp}.")
            elif covers is False:
                problems.append(f"{where} is served {bound or 'no certificate'}, which does not cover {b.host}.")
    return rows, problems


def _certs_and_bindings(host: Host, results: list[Any]) -> Inventory:
    certs = require(results, "certs", host.name)
    bindings = require(results, "bindings", host.name)
    try:
        return Inventory(
            host=host.name,
            taken_at=dt.datetime.now(dt.UTC),
            certificates=tuple(parse_certificate(c) for c in certs.get("certs") or ()),
            ssl_bindings=tuple(parse_netsh_sslcert(str(bindings.get("netsh") or ""))),
            site_bindings=tuple(parse_site_bindings(list(bindings.get("sites") or ()))),
            iis_available=bool(bindings.get("iis_available")),
            renewals=(),
            tasks=(),
            services=(),
            wacs_exists=False,
        )
    except (KeyError, TypeError, ValueError):
        raise HostActionError("bad_output", f"{host.name}: unexpected binding data.", host=host.name) from None


# -- renew ----------------------------------------------------------------------------------


def renew(host: Host, renewal_id: str | None = None, *, force: bool = False) -> ActionResult:
    rid = validate.renewal_id(renewal_id) if renewal_id else ""
    wacs = validate.windows_path(host.wacs_path)
    if not wacs.lower().endswith("\\wacs.exe"):
        raise InvalidParameter("wacs_path must name wacs.exe.")
    parts = inventory_parts(host)
    with HostSession(host, "renew") as session:
        before = build_inventory(host.name, session.run(parts))
        if rid and before.renewal(rid) is None:
            raise HostActionError(
                "script_failed", f"{host.name}: win-acme has no renewal with id {rid}.", host=host.name
            )
        if not before.wacs_exists:
            raise HostActionError("script_failed", f"{host.name}: wacs.exe is not at {wacs}.", host=host.name)
        results = session.run([Part("renew", {"WacsPath": wacs, "RenewalId": rid, "Force": force}), *parts])
        run = require(results, "renew", host.name)
        after = build_inventory(host.name, results[1:])
    exit_code = int(run.get("exit") or 0)
    lines = [ln.strip() for ln in str(run.get("output") or "").splitlines() if RELEVANT_WACS_LINE.search(ln)]
    new_certs = [c for c in after.certificates if before.certificate(c.thumbprint) is None]
    ok = exit_code == 0
    summary = f"{host.name}: wacs.exe exited with {exit_code}" + (
        f"; new certificate(s): {', '.join(c.thumbprint for c in new_certs)}." if new_certs else "; no new certificate."
    )
    return ActionResult(
        "renew",
        host.name,
        ok,
        summary,
        {
            "exit_code": exit_code,
            "log": lines[-30:],
            "new_certificates": [c.thumbprint for c in new_certs],
            "new_key_status": {c.thumbprint: c.key_status for c in new_certs},
            "bindings_before": binding_report(before),
            "bindings_after": binding_report(after),
            "findings_after": [f.to_json() for f in diagnose(after)],
        },
        session.stats.round_trips,
    )


# -- audit-tasks / retire-task --------------------------------------------------------------


def _audit(host: Host, results: list[Any]) -> list[AuditedTask]:
    doc = require(results, "tasks", host.name)
    try:
        tasks, services = parse_tasks(doc)
    except (KeyError, TypeError, ValueError):
        raise HostActionError("bad_output", f"{host.name}: unexpected task data.", host=host.name) from None
    return audit_all(tasks, services)


def _task_json(a: AuditedTask) -> dict[str, Any]:
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
        audited = _audit(host, session.run([Part("tasks")]))
    flagged = [a for a in audited if a.flags and a.task.enabled]
    summary = f"{host.name}: {len(audited)} task(s) outside \\Microsoft\\, {len(flagged)} flagged" + (
        ": " + ", ".join(a.task.path for a in flagged) if flagged else "."
    )
    return ActionResult(
        "audit-tasks",
        host.name,
        not flagged,
        summary,
        {"tasks": [_task_json(a) for a in audited]},
        session.stats.round_trips,
    )


def retire_task(host: Host, task_path: str, *, today: dt.date | None = None) -> ActionResult:
    path = validate.task_path(task_path)
    date = (today or dt.datetime.now(dt.UTC).date()).strftime("%Y%m%d")
    with HostSession(host, "retire-task") as session:
        audited = _audit(host, session.run([Part("tasks")]))
        match = next((a for a in audited if a.task.path.lower() == path.lower()), None)
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
        after = next((a for a in _audit(host, results[1:]) if a.task.path.lower() == path.lower()), None)
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


# -- add-post-renew-step --------------------------------------------------------------------


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


def _tail(text: str, lines: int) -> list[str]:
    return [ln.rstrip() for ln in text.strip().splitlines()[-lines:]]
