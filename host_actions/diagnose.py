"""Judgement: from an inventory (and optionally an outside probe) to findings and proposals.

Everything here is pure Python over plain data, so every rule is tested without a host.
Each finding proposes at most one action, named as on the command line and in chat buttons.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from host_actions.audit import audit_all, unexpanded
from host_actions.model import (
    Certificate,
    Inventory,
    Renewal,
    ScheduledTask,
    SiteBinding,
    SslBinding,
    to_jsonable,
)
from host_actions.parsers import PLUGIN_IIS, normal_ip, task_result
from host_actions.target import OVERDUE_GRACE_SECONDS

Severity = Literal["critical", "warning", "info"]
OVERDUE_GRACE = dt.timedelta(seconds=OVERDUE_GRACE_SECONDS)
EXPIRY_URGENT = dt.timedelta(days=7)
WILDCARD_IP = "0.0.0.0"  # noqa: S104 - how netsh names an IIS "*" binding; nothing listens here
WILDCARD_IPV6 = "::"  # netsh's [::]:port, the IPv6 wildcard entry

FINDING_CODES = (
    "newest_cert_key_unusable",
    "binding_not_newest",
    "binding_cert_missing",
    "no_https_binding",
    "served_not_newest",
    "renewal_failing",
    "renewal_overdue",
    "renewal_lacks_script_step",
    "post_renew_step_failed",  # a Script installation step failed; win-acme still recorded success
    "wacs_task_missing_or_disabled",
    "legacy_task_failing",
    "legacy_task_missing_target",
    "iis_unreadable",  # beyond the list: IIS's configuration could not be read
    "tasks_unreadable",  # the scheduled tasks, or some of them, could not be read
    "renewals_unreadable",  # win-acme's renewal folder, or part of it, could not be read
    "certops_check_failing",  # certops's own hourly check (Layer 2) reports a problem
)


class _ServedCertificate(Protocol):
    @property
    def sha1(self) -> str: ...


class _Target(Protocol):
    @property
    def hostname(self) -> str: ...


class ProbeLike(Protocol):
    """What diagnose reads from a bot.probe ProbeResult (kept structural to avoid coupling)."""

    @property
    def target(self) -> _Target: ...

    @property
    def certificate(self) -> _ServedCertificate | None: ...


@dataclass(frozen=True)
class Proposal:
    action: str  # one of bot.config.model.HOST_ACTIONS
    args: tuple[str, ...] = ()

    def command(self, host: str) -> str:
        return " ".join(["certops host", self.action, host, *self.args])


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    proposal: Proposal | None = None
    names: tuple[str, ...] = ()  # the DNS names it concerns (a site's card); () for the host as a whole

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": to_jsonable(self.evidence),
            "proposal": {"action": self.proposal.action, "args": list(self.proposal.args)} if self.proposal else None,
            "names": list(self.names),
        }


def diagnose(
    inv: Inventory,
    probe: ProbeLike | None = None,
    *,
    now: dt.datetime | None = None,
    overdue_grace: dt.timedelta = OVERDUE_GRACE,
) -> list[Finding]:
    """`overdue_grace`: how long after its due date a renewal that has not run is overdue
    ([[hosts]] renewal_grace)."""
    now = now or inv.taken_at
    findings: list[Finding] = []
    findings += _keys(inv)
    if inv.iis_available:
        findings += _bindings(inv)
        findings += _coverage(inv)
        if inv.iis_errors:
            findings.append(
                Finding(
                    "iis_unreadable",
                    "warning",
                    f"Part of IIS's configuration could not be read, so {len(inv.iis_errors)} site(s) or "
                    f"binding(s) were not checked: {inv.iis_errors[0]}.",
                    {"errors": list(inv.iis_errors), "partial": True},
                )
            )
    else:
        # without IIS's view every binding rule would misfire; say that instead
        findings.append(
            Finding(
                "iis_unreadable",
                "warning",
                "IIS configuration could not be read on this host, so bindings were not checked"
                + (f": {inv.iis_error}" if inv.iis_error else "."),
                {"error": inv.iis_error},
            )
        )
    if probe is not None:
        findings += _served(inv, probe)
    findings += _renewals(inv, now, overdue_grace)
    findings += _tasks(inv)
    findings += _unreadable(inv)
    return [replace(f, names=concerns(inv, f)) for f in findings]


def concerns(inv: Inventory, finding: Finding) -> tuple[str, ...]:
    """The DNS names a finding is about, from its evidence: a certificate's names, a binding's
    host (or, bound without one, its certificate's names), a renewal's hosts. A legacy task or an
    unreadable part is about the host as a whole: ()."""
    evidence = finding.evidence
    if "names" in evidence:
        return tuple(evidence["names"])
    if "hostname" in evidence:
        return (str(evidence["hostname"]),)
    if "renewal" in evidence:
        renewal = inv.renewal(str(evidence["renewal"]))
        return tuple(renewal.hosts) if renewal else ()
    if "endpoint" in evidence:
        host = str(evidence["endpoint"]).rpartition(":")[0]
        if host and normal_ip(host) is None:  # a host name, not "*" or an IP address
            return (host,)
        bound = inv.certificate(str(evidence.get("bound") or ""))
        return tuple(bound.names) if bound else ()
    return ()


def _unreadable(inv: Inventory) -> list[Finding]:
    """One part of the host that could not be read is a finding; the rest is still judged."""
    out = []
    if not inv.tasks_available or inv.tasks_errors:
        what = (
            "Scheduled tasks could not be read" if not inv.tasks_available else "Some scheduled tasks could not be read"
        )
        out.append(
            Finding(
                "tasks_unreadable",
                "warning",
                f"{what}, so they were not audited" + (f": {inv.tasks_errors[0]}." if inv.tasks_errors else "."),
                {"errors": list(inv.tasks_errors), "partial": inv.tasks_available},
            )
        )
    if not inv.renewals_available or inv.renewals_errors:
        what = (
            "win-acme's renewals could not be read"
            if not inv.renewals_available
            else "Part of win-acme's folder could not be read"
        )
        out.append(
            Finding(
                "renewals_unreadable",
                "warning",
                f"{what}, so some renewals may not have been checked"
                + (f": {inv.renewals_errors[0]}." if inv.renewals_errors else "."),
                {"errors": list(inv.renewals_errors), "partial": inv.renewals_available},
            )
        )
    return out


def hostnames(inv: Inventory) -> list[str]:
    """Every name the host is meant to serve: IIS host headers and win-acme renewal names."""
    names = [b.host for b in inv.site_bindings if b.protocol == "https" and b.host]
    names += [h.lower() for r in inv.renewals for h in r.hosts]
    return list(dict.fromkeys(n for n in names if n and "*" not in n))


def _name_store(inv: Inventory, name: str) -> str | None:
    """The store the https binding for this name takes its certificate from, if one names it:
    with the same thumbprint in My and WebHosting, that copy's key is the one schannel uses."""
    for b in inv.site_bindings:
        if b.protocol == "https" and b.host == name and not b.ccs:
            store = bound_store(inv, b)
            if store:
                return store
    return None


def _keys(inv: Inventory) -> list[Finding]:
    out, seen = [], set()
    for name in hostnames(inv):
        newest = inv.newest_for(name, store=_name_store(inv, name))
        if newest is None or newest.usable or (newest.thumbprint, newest.store) in seen:
            continue
        seen.add((newest.thumbprint, newest.store))
        # certutil -repairstore relinks to the key that matches the certificate, when one exists
        repairable = newest.key_status in ("missing_keyset", "no_key_provider_info", "error", "key_mismatch")
        detail = {
            "ok": "",
            "missing_keyset": "its key link points at a key that is missing (Missing stored keyset)",
            "no_key_provider_info": "it has no link to a private key (no key provider information)",
            "access_denied": "its private key cannot be opened (access denied)",
            "error": f"its private key cannot be used ({newest.key_hresult or 'unknown error'})",
            "key_mismatch": "its key link points at an existing key that is not this certificate's key",
            "user_key": "its private key is in a user's key store, where IIS cannot use it; re-import it "
            "into the machine store",
            "key_unopenable": "its key container exists but cannot be opened "
            f"({newest.key_hresult or 'unknown error'}); check the key file's permissions",
        }[newest.key_status]
        who = f" (tested as {newest.as_identity})" if newest.as_identity else ""
        out.append(
            Finding(
                "newest_cert_key_unusable",
                "critical",
                f"The newest certificate for {name} ({_short(newest.thumbprint)}, in {newest.store}) "
                f"cannot be used for TLS: {detail}{who}.",
                {
                    "thumbprint": newest.thumbprint,
                    "store": newest.store,
                    "key_status": newest.key_status,
                    "hresult": newest.key_hresult,
                    "names": list(newest.names),
                    "as_identity": newest.as_identity,
                    "key_source": newest.key_source,
                    "winrm_key_status": newest.winrm_key_status,
                },
                Proposal("repair-store", (newest.thumbprint,)) if repairable else None,
            )
        )
    return out


def http_sys_binding(inv: Inventory, binding: SiteBinding) -> SslBinding | None:
    """The http.sys entry that serves an IIS binding: SNI by host:port, otherwise by IP:port.

    Addresses are compared in one form (IPv6 with or without brackets, any spelling). IIS's "*"
    is written by IIS as 0.0.0.0:port; an http.sys entry [::]:port is the IPv6 wildcard, which
    serves a "*" binding too when there is no 0.0.0.0 entry, and an IIS binding on [::] itself.
    """
    if binding.sni:
        return next(
            (s for s in inv.ssl_bindings if s.kind == "hostname" and s.host == binding.host and s.port == binding.port),
            None,
        )
    by_ip = {normal_ip(s.host): s for s in inv.ssl_bindings if s.kind == "ip" and s.port == binding.port}
    ip = normal_ip(binding.ip)
    wanted = [WILDCARD_IP, WILDCARD_IPV6] if ip == "*" else [ip]
    return next((by_ip[w] for w in wanted if w in by_ip), None)


def bound_store(inv: Inventory, binding: SiteBinding) -> str | None:
    """The store the binding names: http.sys's Certificate Store Name, else IIS's."""
    http_sys = http_sys_binding(inv, binding)
    return (http_sys.store if http_sys and http_sys.thumbprint else None) or binding.store


def _bindings(inv: Inventory) -> list[Finding]:
    out = []
    for b in inv.site_bindings:
        if b.protocol != "https" or b.ccs or b.error:  # an unreadable binding is reported as such
            continue
        http_sys = http_sys_binding(inv, b)
        bound = (http_sys.thumbprint if http_sys else None) or b.thumbprint
        endpoint = f"{b.host or b.ip}:{b.port}"
        store = bound_store(inv, b)
        current = inv.certificate(bound, store) if bound else None
        names = [b.host] if b.host else list(current.names if current else ())
        newest = newest_certificate(inv, names, store=store)
        if current is None:
            target = newest if newest and newest.usable else _newest_usable(inv, names)
            out.append(
                Finding(
                    "binding_cert_missing",
                    "critical",
                    f"Site {b.site} binding {endpoint} uses certificate {_short(bound)}, which is in "
                    "neither the My nor the WebHosting store.",
                    {"site": b.site, "endpoint": endpoint, "bound": bound, "newest": _tp(target)},
                    Proposal("rebind", (b.site, target.thumbprint)) if target else None,
                )
            )
        elif newest is not None and newest.thumbprint != current.thumbprint:
            # the newest by date, usable or not: an unusable newest is repaired first, then bound
            out.append(
                Finding(
                    "binding_not_newest",
                    "warning" if current.usable else "critical",
                    f"Site {b.site} binding {endpoint} uses {_short(current.thumbprint)} "
                    f"(expires {_day(current.not_after)}), not the newest certificate "
                    f"{_short(newest.thumbprint)} (expires {_day(newest.not_after)})"
                    + ("." if newest.usable else ", whose key must be repaired first."),
                    {"site": b.site, "endpoint": endpoint, "bound": current.thumbprint, "newest": newest.thumbprint},
                    Proposal("rebind", (b.site, newest.thumbprint)) if newest.usable else None,
                )
            )
    return _dedupe(out)


def newest_certificate(
    inv: Inventory, names: list[str], *, usable: bool = False, store: str | None = None
) -> Certificate | None:
    """The certificate bindings for these names should use (Inventory.newest_for: a renewal's last
    thumbprint first, never staging or non-serverAuth), the latest of the names' picks."""
    picks = [c for n in names if n and (c := inv.newest_for(n, usable=usable, store=store)) is not None]
    return max(picks, key=lambda c: (c.not_before or _EPOCH, c.not_after or _EPOCH), default=None)


_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


def _newest_usable(inv: Inventory, names: list[str]) -> Certificate | None:
    return newest_certificate(inv, names, usable=True)


def _coverage(inv: Inventory) -> list[Finding]:
    out = []
    https = [b for b in inv.site_bindings if b.protocol == "https"]
    for name in hostnames(inv):
        served = any(b.host == name for b in https) or any(
            (cert := inv.certificate(s.thumbprint or "")) is not None and cert.covers(name)
            for s in inv.ssl_bindings
            if s.kind in ("ip", "ccs")
        )
        if not served:
            out.append(
                Finding(
                    "no_https_binding",
                    "warning",
                    f"No https binding on this host serves {name}.",
                    {"hostname": name},
                    Proposal("verify-binding"),
                )
            )
    return out


def _served(inv: Inventory, probe: ProbeLike) -> list[Finding]:
    served = probe.certificate
    name = probe.target.hostname.lower()
    newest = newest_certificate(inv, [name])
    if served is None or newest is None or served.sha1.upper() == newest.thumbprint:
        return []
    site = next((b.site for b in inv.site_bindings if b.host == name), None)
    return [
        Finding(
            "served_not_newest",
            "warning",
            f"{name} serves certificate {_short(served.sha1)} on the wire, but the newest one in the store is "
            f"{_short(newest.thumbprint)}.",
            {"hostname": name, "served": served.sha1.upper(), "newest": newest.thumbprint},
            Proposal("rebind", (site, newest.thumbprint)) if site and newest.usable else Proposal("verify-binding"),
        )
    ]


def _renewals(inv: Inventory, now: dt.datetime, overdue_grace: dt.timedelta) -> list[Finding]:
    out = []
    for r in inv.renewals:
        if r.problem:
            out.append(
                Finding(
                    "renewal_failing",
                    "warning",
                    f"win-acme renewal file {r.path} cannot be used: {r.problem}.",
                    {"renewal": r.id, "path": r.path},
                )
            )
            continue
        last = r.last
        if last is not None and not last.success:
            expires = _expires(inv, r)
            urgent = expires is not None and expires - now < EXPIRY_URGENT
            out.append(
                Finding(
                    "renewal_failing",
                    "critical" if urgent else "warning",
                    f"win-acme renewal {r.friendly_name or r.id} failed on {_day(last.date)}"
                    + (f": {last.errors[0]}" if last.errors else "."),
                    {"renewal": r.id, "errors": list(last.errors), "date": last.date, "expires": expires},
                    Proposal("renew", (r.id,)),
                )
            )
        elif r.due is not None and now - r.due > overdue_grace:
            out.append(
                Finding(
                    "renewal_overdue",
                    "warning",
                    f"win-acme renewal {r.friendly_name or r.id} was due on {_day(r.due)} and has not run "
                    "since; check its scheduled task.",
                    {"renewal": r.id, "due": r.due},
                    Proposal("renew", (r.id,)),
                )
            )
        out += _post_renew_step(r)
        out += _script_step(r)
    if inv.renewals and inv.tasks_available:  # unread tasks are tasks_unreadable, not "missing"
        out += _wacs_task(inv)
    return out


INSTALL_STEP_ERROR = re.compile(r"Installation plugin .* encountered an error", re.I)


def _post_renew_step(r: Renewal) -> list[Finding]:
    """win-acme 2.2 records a failed Script (or other installation) step as `Success: true` with an
    error message, after it has already removed the previous certificate, so this is not
    `renewal_failing` and a rebind to the old thumbprint is no longer possible."""
    last = r.last
    if last is None or not last.success:
        return []
    errors = [e for e in last.errors if INSTALL_STEP_ERROR.search(e)]
    if not errors:
        return []
    return [
        Finding(
            "post_renew_step_failed",
            "warning",
            f"win-acme renewal {r.friendly_name or r.id} renewed on {_day(last.date)} but an installation step "
            f"failed: {errors[0]}. win-acme still recorded the renewal as successful and removed the previous "
            "certificate; check the Script step's output in win-acme's log.",
            {"renewal": r.id, "errors": list(last.errors), "date": last.date, "thumbprint": last.thumbprint},
        )
    ]


def _script_step(r: Renewal) -> list[Finding]:
    if not any(s.plugin == PLUGIN_IIS for s in r.steps):
        return []
    scripts = [s for s in r.steps if s.name == "Script"]
    # win-acme expands %VAR% in Script itself (ScriptClient: ExpandEnvironmentVariables); a path
    # the host did not expand was not really looked for, so it is not reported missing
    if scripts and all(s.script_exists is not False or unexpanded(s.script or "") for s in scripts):
        return []
    if scripts:
        why = f"its Script step runs {scripts[0].script}, which does not exist"
    elif any(s.script for s in r.steps):
        why = "its Script fields sit under the IIS plugin, so win-acme ignores them"
    else:
        why = "it has no Script step after the IIS step"
    return [
        Finding(
            "renewal_lacks_script_step",
            "warning",
            f"win-acme renewal {r.friendly_name or r.id} installs into IIS but nothing repairs or verifies "
            f"the certificate afterwards: {why}.",
            {"renewal": r.id, "steps": [s.name for s in r.steps]},
            Proposal("add-post-renew-step", (r.id,)),
        )
    ]


def _wacs_task(inv: Inventory) -> list[Finding]:
    tasks = inv.wacs_tasks
    if not tasks:
        message = "win-acme has no scheduled task on this host, so nothing renews automatically."
    elif not any(t.enabled for t in tasks):
        message = f"win-acme's scheduled task {tasks[0].path} is disabled, so nothing renews automatically."
    else:
        return []
    return [
        Finding(
            "wacs_task_missing_or_disabled",
            "critical",
            message + " Run wacs.exe --setuptaskscheduler on the host.",
            {"tasks": [t.path for t in tasks], "wacs_exists": inv.wacs_exists},
        )
    ]


def _tasks(inv: Inventory) -> list[Finding]:
    out = []
    for audited in audit_all(inv.tasks, inv.services):
        task = audited.task
        if task.is_certops:
            out += _certops_check(inv, task)
            continue
        if task.is_wacs or not task.enabled or not audited.flags:
            continue
        missing = [f for f in audited.flags if f.code != "failing"]
        code = "legacy_task_missing_target" if missing else "legacy_task_failing"
        details = "; ".join(f.detail for f in audited.flags)
        out.append(
            Finding(
                code,
                "warning",
                f"Scheduled task {task.path}: {details}.",
                {
                    "task": task.path,
                    "flags": [f.code for f in audited.flags],
                    "last_result": audited.result_hex,
                    "last_run": task.last_run,
                    "actions": [f"{a.execute} {a.arguments}".strip() for a in task.actions],
                },
                Proposal("retire-task", (task.path,)),
            )
        )
    return out


def _certops_check(inv: Inventory, task: ScheduledTask) -> list[Finding]:
    """certops's own hourly check is never a legacy task: its failing result is its report."""
    failed, hex_code, meaning = task_result(task.last_result)
    if not task.enabled or not failed or task.last_run is None:
        return []
    problems = list(inv.layer2.problems) if inv.layer2 else []
    return [
        Finding(
            "certops_check_failing",
            "warning",
            f"certops's hourly host check {task.path} reports a problem (last result {hex_code})"
            + (f": {problems[0]}." if problems else f": {meaning}; see Application events from source certops."),
            {
                "task": task.path,
                "last_result": hex_code,
                "last_run": task.last_run,
                "problems": problems,
                "reported_at": inv.layer2.at if inv.layer2 else None,
            },
        )
    ]


def _expires(inv: Inventory, r: Renewal) -> dt.datetime | None:
    dates = [c.not_after for h in r.hosts if (c := inv.newest_for(h)) and c.not_after]
    return min(dates, default=None)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in findings:
        key = (f.code, f.evidence.get("site"), f.evidence.get("endpoint"))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _short(thumbprint: str | None) -> str:
    # in full: a finding is where a person compares it with IIS Manager or the certificates console
    return thumbprint or "(none)"


def _tp(cert: Certificate | None) -> str | None:
    return cert.thumbprint if cert else None


def _day(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "an unknown date"
