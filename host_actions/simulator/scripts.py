"""What each of our scripts would print on a host in the state of the model, and what it changes.

Each handler mirrors one file in host_actions/ps/ (same parameter names, same JSON shape).
The PowerShell itself cannot run here; these handlers are the executable half of the contract.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from host_actions.simulator.model import (
    CERTOPS_TASK,
    LAYER2_STATE,
    PLUGIN_IIS,
    PLUGIN_SCRIPT,
    SOFTWARE_KSP,
    SYSTEM_IDENTITY,
    HostModel,
    HttpBinding,
    SimCert,
    SiteBinding,
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
    out = [
        cert_doc(model, c, model.winrm_identity)
        for c in model.certs
        if c.store in stores and not (thumbprint and c.thumbprint != thumbprint)
    ]
    return {"certs": out, "errors": [], "layer2": model.files.get(LAYER2_STATE.lower())}


def cert_doc(model: HostModel, c: SimCert, identity: str) -> dict[str, Any]:
    return {
        "store": c.store,
        "thumbprint": c.thumbprint,
        "raw": base64.b64encode(c.der).decode("ascii"),
        "subject": c.subject,
        # DnsNameList: on non-English Windows PowerShell 5.1 it finds no SAN, only the CN
        "sans": [c.subject.removeprefix("CN=")] if model.localised else list(c.sans),
        "friendly_name": c.friendly_name,
        "not_before": _iso(c.not_before),
        "not_after": _iso(c.not_after),
        "issuer": c.issuer,
        "serial": c.serial,
        "has_private_key": c.key_state != "no_key_provider_info",
        "key": key_facts(c, identity),
    }


def key_facts(c: SimCert, identity: str) -> dict[str, Any]:
    """What Get-CertopsKeyFacts (the shared key test) collects for this key, run as `identity`."""
    state = c.system_key_state if identity == SYSTEM_IDENTITY and c.system_key_state else c.key_state
    facts: dict[str, Any] = {
        "opened": False,
        "signed": False,
        "verified": None,
        "algorithm": "RSA" if c.key_alg == "rsa" else "ECDSA",
        "hresult": None,
        "message": None,
        "key_class": None,
        "provider": None,
        "container": None,
        "is_machine_key": None,
        "link": None,
        "container_exists": None,
        "exists_hresult": None,
        "files": [],
        "file": None,
        "file_exists": None,
        "identity": identity,
    }
    if c.key_state == "no_key_provider_info":
        return facts
    machine = state != "user_store"
    facts["link"] = {
        "container": c.link_container,
        "provider": c.provider,
        "provider_type": 12 if c.provider_kind == "capi" else 0,
        "machine_keyset": machine,
    }
    if state in ("ok", "wrong_key", "user_store"):
        # GetRSAPrivateKey opens a CAPI key through CNG too: RSACng, whose provider is the KSP
        facts.update(
            opened=True,
            signed=True,
            verified=state != "wrong_key",
            key_class="RSACng" if c.key_alg == "rsa" else "ECDsaCng",
            provider=SOFTWARE_KSP,
            container=c.container,
            is_machine_key=machine,
            container_exists=True,
        )
        if machine:
            home = "RSA\\MachineKeys" if c.provider_kind == "capi" else "Keys"
        else:
            home = "user RSA" if c.provider_kind == "capi" else "user Keys"
        files = [
            {"folder": folder, "path": f"{base}\\{c.container}", "exists": folder == home}
            for folder, base in KEY_FOLDERS
        ]
        found = next(f for f in files if f["exists"])
        facts.update(files=files, file=found["path"], file_exists=True)
    elif state == "missing_keyset":
        facts["container_exists"] = False
        if c.provider_kind == "capi":
            facts.update(exists_hresult="0x80090016", hresult="0x80090016", message="Keyset does not exist")
        elif c.key_alg == "rsa":  # the CAPI fallback on a KSP key
            facts.update(hresult="0x80090014", message="Invalid provider type specified.")
        else:  # CngKey.Open(null)
            facts.update(hresult="0x80004003", message="Value cannot be null.\r\nParameter name: keyHandle")
    elif state == "access_denied":
        facts.update(exists_hresult="0x80070005", hresult="0x80070005", message="Access is denied.")
    return facts


KEY_FOLDERS = (
    ("RSA\\MachineKeys", "C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys"),
    ("Keys", "C:\\ProgramData\\Microsoft\\Crypto\\Keys"),
    ("SystemKeys", "C:\\ProgramData\\Microsoft\\Crypto\\SystemKeys"),
    ("user RSA", "C:\\Users\\certops\\AppData\\Roaming\\Microsoft\\Crypto\\RSA\\S-1-5-21-1-2-3-1001"),
    ("user Keys", "C:\\Users\\certops\\AppData\\Roaming\\Microsoft\\Crypto\\Keys"),
)


def key_usable_on_host(facts: Mapping[str, Any]) -> bool:
    """Test-CertopsKey in the Layer 2 and Layer 3 scripts: the one judgement made on the host."""
    return bool(facts["signed"]) and facts["verified"] is not False and facts["is_machine_key"] is not False


def hourly_check(model: HostModel) -> int:
    """certops-hourly-check.ps1 run as SYSTEM: tests the newest certificate of every https host
    name, repairs what certutil can, writes its state file and returns its exit code."""
    problems: list[str] = []
    notes: list[str] = []
    tested: dict[str, dict[str, Any]] = {}
    for site in model.sites if model.mwa_loads_by != "none" else []:
        for b in site.bindings:
            if b.protocol != "https" or b.ssl_flags & 2:
                continue
            name = b.information.split(":")[-1].lower()
            if not name:
                continue
            covering = [c for c in model.certs if name in {n.lower() for n in c.sans}]
            if not covering:
                problems.append(f"{name}: no certificate for this name")
                continue
            newest = max(covering, key=lambda c: c.not_before)
            facts = key_facts(newest, SYSTEM_IDENTITY)
            if not key_usable_on_host(facts):
                if not newest.key_lost and newest.key_state in ("missing_keyset", "wrong_key"):
                    newest.key_state, newest.system_key_state = "ok", None
                    model.log.append(f"certutil -repairstore {newest.store} {newest.thumbprint}")
                facts = key_facts(newest, SYSTEM_IDENTITY)
                if key_usable_on_host(facts):
                    notes.append(f"{name}: repaired the key link of {newest.thumbprint}")
                else:
                    problems.append(f"{name}: key of {newest.thumbprint} still unusable after certutil -repairstore")
            tested[newest.thumbprint] = {
                "store": newest.store,
                "thumbprint": newest.thumbprint,
                "has_private_key": newest.key_state != "no_key_provider_info",
                "key": facts,
            }
            if b.thumbprint != newest.thumbprint:
                problems.append(f"{name}: binding uses {b.thumbprint}, newest certificate is {newest.thumbprint}")
    state = {
        "at": model.now.astimezone(dt.UTC).isoformat(),
        "identity": SYSTEM_IDENTITY,
        "certs": list(tested.values()),
        "problems": problems,
        "notes": notes,
    }
    model.files[LAYER2_STATE.lower()] = json.dumps(state, separators=(",", ":"))
    result = 1 if problems else 0
    for task in model.tasks:
        if task.full_path.lower() == CERTOPS_TASK.lower():
            task.last_result, task.last_run = result, model.now
    return result


def render_netsh(model: HostModel) -> str:
    """`netsh http show sslcert` as Windows prints it: lower-case hashes, padded labels."""
    lines = ["", "SSL Certificate bindings:", "-------------------------", ""]
    labels = {"ip": "IP:port", "hostname": "Hostname:port", "ccs": "Central Certificate Store"}
    for b in model.http_bindings:
        rows = [
            (labels[b.kind], b.endpoint),
            ("Certificate Hash", b.thumbprint.lower() or "(null)"),  # CCS entries carry no hash
            ("Application ID", "{4dc3e181-e14b-4a21-b022-59fc669b0914}"),
            ("Certificate Store Name", b.store if b.thumbprint else "(null)"),
            ("Verify Client Certificate Revocation", "Enabled"),
            ("Ctl Identifier", "(null)"),
            ("Negotiate Client Certificate", "Disabled"),
        ]
        lines += [f"    {k:<29}: {v}" for k, v in rows] + [""]
    return "\r\n".join(lines) + "\r\n"


def bindings(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    available = model.iis_available and model.mwa_loads_by != "none"
    sites, errors = [], []
    for s in model.sites if available else []:
        docs = []
        for b in s.bindings:
            doc: dict[str, Any] = {
                "protocol": b.protocol,
                "binding_information": b.information,
                "ssl_flags": b.ssl_flags,
                "certificate_hash": "" if b.hash_getter_throws else b.thumbprint,
                "certificate_store": "" if b.hash_getter_throws else b.store,
                "error": None,
            }
            if b.hash_getter_throws:
                doc["error"] = HASH_GETTER_ERROR
                errors.append({"site": s.name, "binding": b.information, "error": HASH_GETTER_ERROR})
            docs.append(doc)
        sites.append({"name": s.name, "id": s.id, "bindings": docs})
    iis_error = None
    if not model.iis_available:
        iis_error = "Could not load file or assembly 'Microsoft.Web.Administration'"
    elif not available:
        iis_error = (
            "Microsoft.Web.Administration could not be loaded: Could not load file or assembly "
            "'file:///C:\\Windows\\System32\\inetsrv\\Microsoft.Web.Administration.dll' or one of its "
            "dependencies. The system cannot find the file specified. / Could not load file or assembly "
            "'Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35' "
            "or one of its dependencies. The system cannot find the file specified."
        )
    return {
        "netsh": render_netsh(model),
        "netsh_exit": 0,
        "iis_available": available,
        "iis_error": iis_error,
        "mwa_loaded_by": model.mwa_loads_by if available else None,
        "errors": errors,
        "sites": sites,
    }


HASH_GETTER_ERROR = "Value does not fall within the expected range."
TASK_XML_ERROR = "The task XML contains a value which is incorrectly formatted or out of range."


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
    denied = [d.rstrip("\\").lower() + "\\" for d in model.access_denied_folders]
    errors = [{"path": d, "error": f"Access to the path '{d}' is denied."} for d in model.access_denied_folders]
    for r in model.renewals:
        if any(r.path.lower().startswith(d) for d in denied):
            continue
        scripts = [
            {"path": step["Script"], "exists": model.file_exists(step["Script"])}
            for step in r.data.get("InstallationPluginOptions", [])
            if step.get("Script")
        ]
        renewals.append({"path": r.path, "text": r.text(), "scripts": scripts})
    wacs = str(params.get("WacsPath") or model.wacs_path)
    return {
        "renewals": renewals,
        "wacs_exists": model.file_exists(wacs),
        "renewal_days": _renewal_days(model, wacs),
        "errors": errors,
    }


def _renewal_days(model: HostModel, wacs: str) -> int | None:
    text = model.files.get((wacs.rsplit("\\", 1)[0] + "\\settings.json").lower())
    if text is None:
        return None
    days = (json.loads(text).get("ScheduledTask") or {}).get("RenewalDays")
    return int(days) if days is not None else None


def tasks(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    listed = [t for t in model.tasks if not t.xml_malformed]
    return {
        "tasks": [_task_doc(model, t) for t in listed if not t.path.lower().startswith("\\microsoft\\")],
        "services": sorted(model.services),
        # Get-ScheduledTask's error record for a malformed task does not name the task
        "errors": [{"task": None, "error": TASK_XML_ERROR} for t in model.tasks if t.xml_malformed],
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
        if cert.key_state != "user_store":  # relinking cannot move a key out of a user's store
            cert.key_state, cert.system_key_state = "ok", None
        repair = (
            f"================ Certificate 0 ================\r\n"
            f"Serial Number: {cert.serial.lower()}\r\n"
            f"Cert Hash(sha1): {cert.thumbprint.lower()}\r\n"
            f"  Key Container = {cert.container}\r\n"
            f"  Provider = {cert.provider}\r\n"
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
        body = f"  Key Container = {cert.container}\r\n  Provider = {cert.provider}\r\n"
        body += "Encryption test passed\r\n"
    else:
        body = f"  Key Container = {cert.container}\r\n  Provider = {cert.provider}\r\n"
        body += "Missing stored keyset\r\n"
    return head + body + "CertUtil: -store command completed successfully.\r\n"


def rebind(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """As rebind.ps1 does through MWA: each named binding is replaced (removed, and re-added with
    the same protocol, binding information and SslFlags, bound to the new hash and store), never
    mutated; a CCS binding or one the site does not have stops the script before any commit.
    On commit IIS writes each binding's http.sys entry, so a non-SNI IP:port entry changes for
    every binding that shares the socket."""
    site_name, thumbprint, store = str(params["Site"]), str(params["Thumbprint"]), str(params["Store"])
    if model.cert(thumbprint, store) is None:
        raise ScriptError(f"certificate {thumbprint} is not in LocalMachine\\{store}")
    site = model.site(site_name)
    if site is None:
        raise ScriptError(f"IIS has no site named {site_name}")
    wanted = [str(b) for b in params.get("Bindings") or []]
    if not wanted:
        raise ScriptError("no binding to replace was named")
    found: list[SiteBinding] = []
    for info in wanted:
        match = next(
            (b for b in site.bindings if b.protocol == "https" and b.information.lower() == info.lower()), None
        )
        if match is None:
            raise ScriptError(f"site {site_name} has no https binding {info}")
        if match.ssl_flags & 2:
            raise ScriptError(f"binding {info} uses the Central Certificate Store; it takes no hash")
        found.append(match)
    iis_store = "MY" if store == "My" else store
    changed = []
    for old in found:
        site.bindings.remove(old)
        site.bindings.append(SiteBinding(old.protocol, old.information, old.ssl_flags, thumbprint, iis_store))
        changed.append(old.information)
    for new in site.bindings[-len(found) :]:  # CommitChanges: IIS writes the http.sys entries
        _write_http_sys(model, new, thumbprint, iis_store)
    model.log.append(f"rebind {site_name} {thumbprint} {' '.join(changed)}")
    return {"changed": changed, "replaced": True}


def _write_http_sys(model: HostModel, b: SiteBinding, thumbprint: str, store: str) -> None:
    ip, port, hostname = b.information.split(":", 2)
    kind: Literal["ip", "hostname"] = "hostname" if b.ssl_flags & 1 else "ip"
    endpoint = f"{hostname}:{port}" if kind == "hostname" else f"{'0.0.0.0' if ip == '*' else ip}:{port}"  # noqa: S104 - http.sys's wildcard address
    for h in model.http_bindings:
        if h.endpoint.lower() == endpoint.lower():
            h.thumbprint, h.store = thumbprint, store
            return
    model.http_bindings.append(HttpBinding(kind, endpoint, thumbprint, store))


def _rebind_site(model: HostModel, site_id: int, thumbprint: str, store: str) -> list[str]:
    site = next(s for s in model.sites if s.id == site_id)
    changed = []
    for b in site.bindings:
        if b.protocol != "https" or b.ssl_flags & 2:
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
    # the console with --verbose: " [{Level:u4}] {Message}", so [INFO], [WARN], [EROR], [FATL]
    lines = [" [INFO] A simple Windows ACMEv2 client (WACS)"]
    exit_code = 0
    selected = [r for r in model.renewals if not renewal_id or r.id == renewal_id]
    if renewal_id and not selected:
        lines.append(f" [EROR] No renewals matched --id {renewal_id}")
        return {"exit": -1, "output": "\r\n".join(lines)}
    for r in selected:
        if not force and not _due(model, r.data):
            lines.append(f" [INFO] Renewal {r.data['FriendlyName']} is due later")
            continue
        lines.append(f" [INFO] Renewing {r.data['FriendlyName']}")
        if model.next_renewal_fails:
            error = "Authorization failed for http-01 validation"
            r.data["History"].append(model.history_entry(False, "", days_ago=0, error=error))
            lines.append(f" [EROR] Renewal for {r.data['FriendlyName']} failed, will retry on next run")
            exit_code = -1
            continue
        lines += _install_new_certificate(model, r.data)
    return {"exit": exit_code, "output": "\r\n".join(lines) + "\r\n"}


def _install_new_certificate(model: HostModel, data: dict[str, Any]) -> list[str]:
    hosts = list(data["TargetPluginOptions"].get("IncludeHosts") or [])
    store = (data.get("StorePluginOptions") or [{}])[0].get("StoreName") or "WebHosting"
    minted = mint_certificate(hosts, model.now, 90, model.next_renewal_key_alg)
    cert = sim_cert(minted, store, model.next_renewal_key_state)
    model.certs.append(cert)
    lines = [f" [INFO] Store with CertificateStore... {store}"]
    errors: list[str] = []
    for step in data.get("InstallationPluginOptions", []):
        if step.get("Plugin") == PLUGIN_IIS:
            for site_id in data["TargetPluginOptions"].get("IncludeSiteIds") or [step["SiteId"]]:
                _rebind_site(model, int(site_id), cert.thumbprint, store)
            lines.append(" [INFO] Updating existing https bindings")
        elif step.get("Plugin") == PLUGIN_SCRIPT:
            script = str(step.get("Script", ""))
            lines.append(f" [INFO] Script {script} starting")
            content = model.files.get(script.lower())
            if content is None:
                lines.append(f" [EROR] Script {script} not found")
            elif "certops-script: certops_post_renew" in content:
                # what our Layer 3 script does: the shared key test (as SYSTEM), and certutil
                # -repairstore only when it fails
                if not key_usable_on_host(key_facts(cert, SYSTEM_IDENTITY)):
                    model.log.append(f"certutil -repairstore {cert.store} {cert.thumbprint}")
                    if not cert.key_lost and cert.key_state != "user_store":
                        cert.key_state, cert.system_key_state = "ok", None
                lines.append(" [INFO] Script finished")
            if model.next_script_exit:
                # win-acme 2.2: logged, then the renewal is still recorded as a success
                lines.append(f" [EROR] Script finished with exit code {model.next_script_exit}")
                lines.append(" [EROR] Installation plugin Script encountered an error")
                errors.append("Installation plugin Script encountered an error")
    entry = model.history_entry(True, cert.thumbprint, days_ago=0)
    entry["ErrorMessages"] = list(errors)
    entry["OrderResults"][0]["ErrorMessages"] = list(errors)
    data["History"].append(entry)
    data["LastFriendlyName"] = data.get("FriendlyName")
    return lines


def _due(model: HostModel, data: dict[str, Any]) -> bool:
    for entry in reversed(data.get("History", [])):
        if entry.get("Success"):
            due = (entry.get("OrderResults") or [{}])[0].get("DueDate")
            if isinstance(due, dict):  # 2.2.3+: only when ACME Renewal Info moved the date
                due = due.get("End") or due.get("Start")
            if due is None:  # 2.2.3+: RenewalDays after the last success
                days = _renewal_days(model, model.wacs_path) or 55
                return dt.datetime.fromisoformat(entry["Date"]) + dt.timedelta(days=days) <= model.now
            return dt.datetime.fromisoformat(due) <= model.now
    return True


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
