"""What each of our scripts would print on a host in the state of the model, and what it changes.

Each handler mirrors one file in host_actions/ps/ (same parameter names, same JSON shape).
The PowerShell itself cannot run here; these handlers are the executable half of the contract.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from host_actions.simulator.model import (
    PLUGIN_IIS,
    PLUGIN_SCRIPT,
    SCHANNEL_CSP,
    HostModel,
    SimCert,
    Task,
    mint_certificate,
    sim_cert,
)

Handler = Callable[[HostModel, Mapping[str, Any]], Any]
MACHINE_KEYS = "C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys"


class ScriptError(Exception):
    """A terminating error inside a script: the bootstrap reports it as ok=false."""

    def __init__(self, message: str, hresult: int = 0x80131500) -> None:
        super().__init__(message)
        self.hresult = hresult


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def certs(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    stores = [str(s) for s in params.get("Stores") or ["My", "WebHosting"]]
    thumbprint = str(params.get("Thumbprint") or "")
    out = []
    for c in model.certs:
        if c.store not in stores or (thumbprint and c.thumbprint != thumbprint):
            continue
        out.append(
            {
                "store": c.store,
                "thumbprint": c.thumbprint,
                "subject": c.subject,
                "sans": list(c.sans),
                "friendly_name": c.friendly_name,
                "not_before": _iso(c.not_before),
                "not_after": _iso(c.not_after),
                "issuer": c.issuer,
                "serial": c.serial,
                "has_private_key": c.key_state != "no_key_provider_info",
                "key": _key_facts(c),
            }
        )
    return {"certs": out}


def _key_facts(c: SimCert) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "opened": False,
        "signed": False,
        "hresult": None,
        "message": None,
        "provider": None,
        "container": None,
        "file": None,
        "file_exists": None,
    }
    if c.key_state == "ok":
        facts.update(
            opened=True,
            signed=True,
            provider=SCHANNEL_CSP,
            container=c.container,
            file=f"{MACHINE_KEYS}\\{c.container}",
            file_exists=True,
        )
    elif c.key_state == "missing_keyset":
        facts.update(hresult="0x80090016", message="Keyset does not exist")
    elif c.key_state == "access_denied":
        facts.update(hresult="0x80070005", message="Access is denied.")
    return facts


def render_netsh(model: HostModel) -> str:
    """`netsh http show sslcert` as Windows prints it: lower-case hashes, padded labels."""
    lines = ["", "SSL Certificate bindings:", "-------------------------", ""]
    labels = {"ip": "IP:port", "hostname": "Hostname:port", "ccs": "Central Certificate Store"}
    for b in model.http_bindings:
        rows = [
            (labels[b.kind], b.endpoint),
            ("Certificate Hash", b.thumbprint.lower()),
            ("Application ID", "{4dc3e181-e14b-4a21-b022-59fc669b0914}"),
            ("Certificate Store Name", b.store),
            ("Verify Client Certificate Revocation", "Enabled"),
            ("Ctl Identifier", "(null)"),
            ("Negotiate Client Certificate", "Disabled"),
        ]
        lines += [f"    {k:<29}: {v}" for k, v in rows] + [""]
    return "\r\n".join(lines) + "\r\n"


def bindings(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    sites = [
        {
            "name": s.name,
            "id": s.id,
            "bindings": [
                {
                    "protocol": b.protocol,
                    "binding_information": b.information,
                    "ssl_flags": b.ssl_flags,
                    "certificate_hash": b.thumbprint,
                    "certificate_store": b.store,
                }
                for b in s.bindings
            ],
        }
        for s in model.sites
    ]
    return {
        "netsh": render_netsh(model),
        "netsh_exit": 0,
        "iis_available": model.iis_available,
        "iis_error": None if model.iis_available else "Could not load file or assembly 'Microsoft.Web.Administration'",
        "sites": sites if model.iis_available else [],
    }


def _task_doc(model: HostModel, t: Task) -> dict[str, Any]:
    return {
        "path": t.full_path,
        "state": t.state,
        "user": t.user,
        "user_resolves": t.user in model.users or t.user.upper() in _WELL_KNOWN,
        "last_run": _iso(t.last_run),
        "last_result": t.last_result,
        "next_run": _iso(t.next_run),
        "missed_runs": 0,
        "actions": [
            {
                "execute": a.execute,
                "arguments": a.arguments,
                "working_directory": a.working_directory,
                "files": _file_facts(model, a.execute, a.arguments),
            }
            for a in t.actions
        ],
    }


_WELL_KNOWN = {"SYSTEM", "NT AUTHORITY\\SYSTEM", "LOCAL SERVICE", "NETWORK SERVICE"}
_PATH_ON_PATH = {"powershell.exe", "cmd.exe", "net.exe", "schtasks.exe", "certutil.exe"}


def _file_facts(model: HostModel, execute: str, arguments: str) -> list[dict[str, Any]]:
    tokens = [execute.strip('"')]
    for match in re.finditer(r'"[^"]+"|\S+', arguments):
        token = match.group(0).strip('"')
        if re.search(r"\.(ps1|bat|cmd|exe|vbs|js)$", token, re.I):
            tokens.append(token)
    facts = []
    for token in tokens:
        path = token
        rooted = bool(re.match(r"^[A-Za-z]:\\", token))
        if not rooted and token.lower() in _PATH_ON_PATH:
            path, rooted = f"C:\\Windows\\System32\\{token}", True
        exists = rooted and (model.file_exists(path) or token.lower() in _PATH_ON_PATH)
        text = None
        if exists and re.search(r"\.(ps1|bat|cmd|vbs|js)$", path, re.I):
            text = model.files.get(path.lower(), "")[:16384]
        facts.append({"token": token, "path": path, "exists": exists, "text": text})
    return facts


def winacme(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    renewals = []
    for r in model.renewals:
        scripts = [
            {"path": step["Script"], "exists": model.file_exists(step["Script"])}
            for step in r.data.get("InstallationPluginOptions", [])
            if step.get("Script")
        ]
        renewals.append({"path": r.path, "text": r.text(), "scripts": scripts})
    wacs = str(params.get("WacsPath") or model.wacs_path)
    return {"renewals": renewals, "wacs_exists": model.file_exists(wacs)}


def tasks(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "tasks": [_task_doc(model, t) for t in model.tasks if not t.path.lower().startswith("\\microsoft\\")],
        "services": sorted(model.services),
    }


def repair_store(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    store, thumbprint = str(params["Store"]), str(params["Thumbprint"])
    cert = model.cert(thumbprint, store)
    if cert is None:
        repair = (
            "CertUtil: -repairstore command FAILED: 0x80092004 (-2146885628 CRYPT_E_NOT_FOUND)\r\n"
            "CertUtil: Cannot find object or property.\r\n"
        )
        return {"repair_output": repair, "repair_exit": -2146885628, "store_output": repair, "store_exit": -2146885628}
    if cert.key_lost:
        repair = (
            f"================ Certificate 0 ================\r\n"
            f"Serial Number: {cert.serial.lower()}\r\n"
            "CertUtil: -repairstore command FAILED: 0x80090016 (-2146893802 NTE_BAD_KEYSET)\r\n"
            "CertUtil: Keyset does not exist\r\n"
        )
        code = -2146893802
    else:
        cert.key_state = "ok"
        repair = (
            f"================ Certificate 0 ================\r\n"
            f"Serial Number: {cert.serial.lower()}\r\n"
            f"Cert Hash(sha1): {cert.thumbprint.lower()}\r\n"
            f"  Key Container = {cert.container}\r\n"
            f"  Provider = {SCHANNEL_CSP}\r\n"
            "Encryption test passed\r\n"
            "CertUtil: -repairstore command completed successfully.\r\n"
        )
        code = 0
    model.log.append(f"certutil -repairstore {store} {thumbprint}")
    return {"repair_output": repair, "repair_exit": code, "store_output": certutil_store_view(cert), "store_exit": 0}


def certutil_store_view(cert: SimCert) -> str:
    head = (
        f"{cert.store}\r\n================ Certificate 0 ================\r\n"
        f"Serial Number: {cert.serial.lower()}\r\nIssuer: {cert.issuer}\r\n"
        f"Subject: {cert.subject}\r\n"
        f"Cert Hash(sha1): {cert.thumbprint.lower()}\r\n"
    )
    if cert.key_state == "no_key_provider_info":
        body = "No key provider information\r\nCannot find the certificate and private key for decryption.\r\n"
    elif cert.key_state == "ok":
        body = f"  Key Container = {cert.container}\r\n  Provider = {SCHANNEL_CSP}\r\n"
        body += "Encryption test passed\r\n"
    else:
        body = f"  Key Container = {cert.container}\r\n  Provider = {SCHANNEL_CSP}\r\n"
        body += "Missing stored keyset\r\n"
    return head + body + "CertUtil: -store command completed successfully.\r\n"


def rebind(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    site_name, thumbprint, store = str(params["Site"]), str(params["Thumbprint"]), str(params["Store"])
    if model.cert(thumbprint, store) is None:
        raise ScriptError(f"certificate {thumbprint} is not in LocalMachine\\{store}")
    site = model.site(site_name)
    if site is None:
        raise ScriptError(f"IIS has no site named {site_name}")
    changed = _rebind_site(model, site.id, thumbprint, store)
    model.log.append(f"rebind {site_name} {thumbprint}")
    return {"changed": changed}


def _rebind_site(model: HostModel, site_id: int, thumbprint: str, store: str) -> list[str]:
    site = next(s for s in model.sites if s.id == site_id)
    changed = []
    for b in site.bindings:
        if b.protocol != "https":
            continue
        b.thumbprint, b.store = thumbprint, store
        changed.append(b.information)
        _ip, port, hostname = b.information.split(":", 2)
        endpoint = f"{hostname}:{port}" if b.ssl_flags & 1 else f"0.0.0.0:{port}"
        for h in model.http_bindings:
            if h.endpoint.lower() == endpoint.lower():
                h.thumbprint, h.store = thumbprint, store
    return changed


def renew(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    renewal_id = str(params.get("RenewalId") or "")
    force = bool(params.get("Force"))
    lines = [f"{_stamp(model)} [INF] A simple Windows ACMEv2 client (WACS)"]
    exit_code = 0
    selected = [r for r in model.renewals if not renewal_id or r.id == renewal_id]
    if renewal_id and not selected:
        lines.append(f"{_stamp(model)} [ERR] No renewals matched --id {renewal_id}")
        return {"exit": -1, "output": "\r\n".join(lines)}
    for r in selected:
        if not force and not _due(model, r.data):
            lines.append(f"{_stamp(model)} [INF] Renewal {r.data['FriendlyName']} is due later")
            continue
        lines.append(f"{_stamp(model)} [INF] Renewing {r.data['FriendlyName']}")
        if model.next_renewal_fails:
            error = "Authorization failed for http-01 validation"
            r.data["History"].append(model.history_entry(False, "", days_ago=0, error=error))
            lines.append(f"{_stamp(model)} [ERR] Renewal for {r.data['FriendlyName']} failed, will retry on next run")
            exit_code = -1
            continue
        lines += _install_new_certificate(model, r.data)
    return {"exit": exit_code, "output": "\r\n".join(lines) + "\r\n"}


def _install_new_certificate(model: HostModel, data: dict[str, Any]) -> list[str]:
    hosts = list(data["TargetPluginOptions"].get("IncludeHosts") or [])
    store = (data.get("StorePluginOptions") or [{}])[0].get("StoreName") or "WebHosting"
    cert = sim_cert(mint_certificate(hosts, model.now, 90), store, model.next_renewal_key_state)
    model.certs.append(cert)
    lines = [f"{_stamp(model)} [INF] Store with CertificateStore... {store}"]
    for step in data.get("InstallationPluginOptions", []):
        if step.get("Plugin") == PLUGIN_IIS:
            for site_id in data["TargetPluginOptions"].get("IncludeSiteIds") or [step["SiteId"]]:
                _rebind_site(model, int(site_id), cert.thumbprint, store)
            lines.append(f"{_stamp(model)} [INF] Updating existing https bindings")
        elif step.get("Plugin") == PLUGIN_SCRIPT:
            script = str(step.get("Script", ""))
            lines.append(f"{_stamp(model)} [INF] Script {script} starting")
            content = model.files.get(script.lower())
            if content is None:
                lines.append(f"{_stamp(model)} [ERR] Script {script} not found")
            elif "certops-script: certops_post_renew" in content:
                cert.key_state = "ok"  # what our Layer 3 script does with certutil -repairstore
                lines.append(f"{_stamp(model)} [INF] Script finished")
    data["History"].append(model.history_entry(True, cert.thumbprint, days_ago=0))
    data["LastFriendlyName"] = data.get("FriendlyName")
    return lines


def _due(model: HostModel, data: dict[str, Any]) -> bool:
    for entry in reversed(data.get("History", [])):
        if entry.get("Success"):
            due = (entry.get("OrderResults") or [{}])[0].get("DueDate")
            return due is None or dt.datetime.fromisoformat(due) <= model.now
    return True


def _stamp(model: HostModel) -> str:
    return model.now.strftime("%Y-%m-%d %H:%M:%S.000 +00:00")


def retire_task(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    task = model.task(str(params["TaskFolder"]) + str(params["TaskName"]))
    if task is None:
        raise ScriptError("The system cannot find the file specified.", 0x80070002)
    task.state = "Disabled"
    renamed = []
    for path in params.get("Scripts") or []:
        content = model.files.pop(str(path).lower(), None)
        if content is None:
            continue
        new = f"{path}.deprecated.{params['Date']}"
        model.files[new.lower()] = content
        renamed.append({"from": path, "to": new})
    model.log.append(f"retire {task.full_path}")
    return {"state": task.state, "renamed": renamed}


def add_post_renew_step(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    path = str(params["RenewalPath"])
    renewal = next((r for r in model.renewals if r.path.lower() == path.lower()), None)
    if renewal is None:
        raise ScriptError(f"Could not find file '{path}'.", 0x80070002)
    actual = hashlib.sha256(renewal.text().encode("utf-8")).hexdigest()
    if actual != params["ExpectedSha256"]:
        raise ScriptError("the renewal file changed since certops read it")
    new_data = json.loads(str(params["NewText"]))
    model.files[str(params["ScriptPath"]).lower()] = str(params["ScriptText"])
    backup = f"{path}.certops-{params['Stamp']}.bak"
    model.files[backup.lower()] = renewal.text()
    renewal.data = new_data
    model.log.append(f"add-post-renew-step {renewal.id}")
    return {"backup": backup, "script": params["ScriptPath"]}


HANDLERS: dict[str, Handler] = {
    "certs": certs,
    "bindings": bindings,
    "winacme": winacme,
    "tasks": tasks,
    "repair_store": repair_store,
    "rebind": rebind,
    "renew": renew,
    "retire_task": retire_task,
    "add_post_renew_step": add_post_renew_step,
}
