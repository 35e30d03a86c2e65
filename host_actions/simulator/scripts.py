"""What each of our scripts would print on a host in the state of the model, and what it changes.

Each handler mirrors one file in host_actions/ps/ (same parameter names, same JSON shape).
The PowerShell itself cannot run here; these handlers are the executable half of the contract.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import ntpath
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from host_actions.parsers import split_binding_information
from host_actions.simulator.model import (
    CERTOPS_TASK,
    DEFAULT_BASE_URI,
    LAYER2_STATE,
    PLUGIN_IIS,
    PLUGIN_SCRIPT,
    SELF_HEAL_TASK,
    SOFTWARE_KSP,
    SYSTEM_IDENTITY,
    DefinedTask,
    HostModel,
    HttpBinding,
    SimCert,
    SiteBinding,
    Task,
    TaskAction,
    mint_certificate,
    sim_cert,
)
from host_actions.simulator.model import Renewal as SimRenewal

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
        # Get-CertopsChain: X509Chain.Build (machine context, revocation not checked)
        "chain": {"built": c.chain_trusted, "status": [] if c.chain_trusted else ["UntrustedRoot"]},
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
            name = split_binding_information(b.information)[2].lower()
            if not name:
                continue
            # Test-CertopsCovers (a wildcard covers one label) and Test-CertopsServerCert
            covering = [c for c in model.certs if _covers(c, name) and _server_cert(c)]
            if not covering:
                problems.append(f"{name}: no certificate for this name")
                continue
            newest = max(covering, key=lambda c: c.not_before)
            # the copy in the store the binding names, when the thumbprint is in both
            newest = model.cert(newest.thumbprint, "My" if b.store.upper() == "MY" else b.store) or newest
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


def _covers(c: SimCert, name: str) -> bool:
    parent = name[name.find(".") :] if "." in name else None
    return any(n.lower() == name or (parent and n.lower() == "*" + parent) for n in c.sans)


def _server_cert(c: SimCert) -> bool:
    """Not staging (issuer or untrusted chain), and an EKU that allows serverAuth."""
    if not c.chain_trusted or re.search(r"\(STAGING\)|\bFake LE\b", c.issuer, re.I):
        return False
    try:
        eku = x509.load_der_x509_certificate(c.der).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (x509.ExtensionNotFound, ValueError):
        return True  # no EKU extension: any purpose (or no RawData to read it from)
    return ExtendedKeyUsageOID.SERVER_AUTH in eku.value


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
    for token in (expand_variables(model, t) for t in tokens):  # tasks.ps1: ExpandEnvironmentVariables
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


def expand_variables(model: HostModel, text: str) -> str:
    """[Environment]::ExpandEnvironmentVariables: %NAME% case-insensitively; unknown ones stay."""
    known = {k.lower(): v for k, v in model.environment.items()}
    return re.sub(r"%([^%]+)%", lambda m: known.get(m.group(1).lower(), m.group(0)), text)


def winacme(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """As winacme.ps1: every base-URI folder under the configuration root (renewals anywhere
    else are invisible, as they are to wacs), settings.json, wacs processes, certops renew tasks."""
    renewals = []
    denied = [d.rstrip("\\").lower() + "\\" for d in model.access_denied_folders]
    errors = [{"path": d, "error": f"Access to the path '{d}' is denied."} for d in model.access_denied_folders]
    root = model.config_root
    folders: list[str] = []
    for r in model.renewals:
        folder = _base_folder_of(model, r.path)
        if folder is None:
            continue
        folders.append(folder)
        if any(r.path.lower().startswith(d) for d in denied):
            continue
        scripts = [
            {"path": step["Script"], "exists": model.file_exists(step["Script"])}
            for step in r.data.get("InstallationPluginOptions", [])
            if step.get("Script")
        ]
        renewals.append({"path": r.path, "text": r.text(), "scripts": scripts, "base_folder": folder})
    wacs = str(params.get("WacsPath") or model.wacs_path)
    settings = _wacs_settings(model, wacs)
    client = settings.get("Client") or {}
    acme = settings.get("Acme") or {}
    return {
        "renewals": renewals,
        "wacs_exists": model.file_exists(wacs),
        "renewal_days": _renewal_days(model, wacs),
        "errors": errors,
        "config_root": root,
        "base_folders": sorted(set(folders), key=str.lower),
        "settings": {
            "configuration_path": client.get("ConfigurationPath") or None,
            "log_path": client.get("LogPath") or None,
            "client_name": client.get("ClientName") or "win-acme",
            "default_base_uri": acme.get("DefaultBaseUri"),
            "default_base_uri_test": acme.get("DefaultBaseUriTest"),
        },
        "wacs_processes": [{"pid": 4711, "path": model.wacs_path}] if _wacs_runs(model) else [],
        "renew_tasks": [_renew_task_doc(t) for t in model.tasks if _is_renew_task(t)],
        "now": _iso(model.now),
    }


def _base_folder_of(model: HostModel, path: str) -> str | None:
    """The folder right under the configuration root a file lives in; None outside the root."""
    root = model.config_root.lower() + "\\"
    if not path.lower().startswith(root):
        return None
    rest = path[len(root) :]
    return rest.split("\\", 1)[0] if "\\" in rest else None


def _wacs_settings(model: HostModel, wacs: str) -> dict[str, Any]:
    """settings.json next to wacs.exe, with the model's ConfigurationPath in it."""
    text = model.files.get((wacs.rsplit("\\", 1)[0] + "\\settings.json").lower())
    settings: dict[str, Any] = json.loads(text) if text else {}
    if model.configuration_path:
        settings.setdefault("Client", {})["ConfigurationPath"] = model.configuration_path
    return settings


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
        "environment": {k: model.environment.get(k) for k in _TASKS_ENVIRONMENT},
    }


_TASKS_ENVIRONMENT = ("windir", "SystemRoot", "ProgramFiles", "ProgramFiles(x86)", "ProgramW6432", "ProgramData")


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
    ip, port, hostname = split_binding_information(b.information)  # "[2001:db8::1]:443:host" too
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


RENEW_TASK_FOLDER = "\\certops\\"
TASK_RUNNING = 0x41301


def _is_renew_task(t: Task) -> bool:
    return t.path.lower() == RENEW_TASK_FOLDER and t.name.lower().startswith("certops renew ")


def _wacs_runs(model: HostModel) -> bool:
    """Get-Process wacs: someone's run, or the one certops's renew task is running now."""
    return model.wacs_running or any(_is_renew_task(t) and t.state == "Running" for t in model.tasks)


def _renew_task_doc(t: Task) -> dict[str, Any]:
    return {
        "name": t.name,
        "state": t.state,
        "last_run": _iso(t.last_run),
        "last_result": t.last_result,
        "arguments": t.actions[0].arguments if t.actions else "",
    }


def renew(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """As renew.ps1. 'start' registers \\certops\\<TaskName> (SYSTEM, wacs.exe with win-acme's own
    arguments narrowed to one renewal) and starts it; 'follow' reads it. The run ends on the
    model.renew_task_polls-th status read after its start (at once when 0): only then do wacs's
    effect and the rest of its log lines land. An ended task is unregistered when read."""
    full = RENEW_TASK_FOLDER + str(params["TaskName"])
    started_at = None
    if params.get("Mode", "start") == "start":
        args = f'--renew --baseuri "{params.get("BaseUri") or DEFAULT_BASE_URI}"'
        args += f" --id {params['RenewalId']}" if params.get("RenewalId") else ""
        args += " --force --verbose" if params.get("Force") else " --verbose"
        model.tasks = [t for t in model.tasks if t.full_path.lower() != full.lower()]  # -Force
        task: Task | None = Task(
            RENEW_TASK_FOLDER,
            str(params["TaskName"]),
            "Running",
            "SYSTEM",
            [TaskAction(str(params["WacsPath"]), args)],
            model.now,
            TASK_RUNNING,
            polls_left=model.renew_task_polls,
        )
        assert task is not None
        model.tasks.append(task)
        model.log.append(f"start {full}: {args}")
        _wacs_log(model, args, "INF", "A simple Windows ACMEv2 client (WACS)")
        started_at = model.now
        if task.polls_left <= 0:
            _end_run(model, task)
    else:
        task = model.task(full)
        if task is not None and task.state == "Running":
            task.polls_left -= 1
            if task.polls_left <= 0:
                _end_run(model, task)
    doc: dict[str, Any] = {
        "task": full,
        "exists": task is not None,
        "now": _iso(model.now),
        "started_at": None,
        "log": [],
        "log_missing": [],
        "events": [],
        "collected": False,
    }
    if task is None:
        return doc
    since = started_at or task.last_run or model.now
    doc.update(
        state=task.state,
        last_result=task.last_result,
        arguments=task.actions[0].arguments,
        last_run=_iso(task.last_run),
        started_at=_iso(since),
    )
    path = f"{str(params['LogFolder']).rstrip(chr(92))}\\log-{since:%Y%m%d}.txt"
    text = model.files.get(path.lower())
    if text is None:
        doc["log_missing"] = [path]
    else:
        doc["log"] = [{"path": path, "text": text}]
    if task.state != "Running":
        model.tasks.remove(task)
        doc["collected"] = True
    return doc


def _end_run(model: HostModel, task: Task) -> None:
    """The task's wacs.exe run, from start to end, as the task's command line asks."""
    code = run_wacs(model, task.actions[0].arguments)
    task.state, task.last_result, task.polls_left = "Ready", code & 0xFFFFFFFF, 0


def _wacs_log(model: HostModel, args: str, level: str, message: str) -> None:
    """One line of wacs's disk log: "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {Message}"."""
    match = re.search(r'--baseuri "([^"]+)"', args)
    path = model.log_file(match.group(1) if match else DEFAULT_BASE_URI).lower()
    stamp = model.now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.000 +00:00")
    model.files[path] = model.files.get(path, "") + f"{stamp} [{level}] {message}\r\n"


def _unreadable(r: SimRenewal) -> str | None:
    """Why RenewalStoreDisk.Read would skip this file (it logs an error and goes on)."""
    data = r.data
    if data.get("Id") != r.path.rsplit("\\", 1)[-1].removesuffix(".renewal.json"):
        return f"mismatch between filename and id {data.get('Id')}"
    for key, what in (("TargetPluginOptions", "source"), ("ValidationPluginOptions", "validation")):
        if not (data.get(key) or {}).get("Plugin"):
            return f"missing {what} plugin options"
    for key, what in (("StorePluginOptions", "store"), ("InstallationPluginOptions", "installation")):
        if data.get(key) is None:
            return f"missing {what} plugin options"
    return None


def run_wacs(model: HostModel, args: str) -> int:
    """wacs.exe --renew [--baseuri "U"] [--id X] [--force]: reads the renewals of U's folder only
    (the default server's without --baseuri), writes its day log, returns its exit code. An id
    it does not find is an error line and exit code 0, as in RenewalManager.CheckRenewals."""
    match = re.search(r'--baseuri "([^"]+)"', args)
    folder = model.base_folder_path(match.group(1) if match else DEFAULT_BASE_URI).lower() + "\\"
    id_match = re.search(r"--id (\S+)", args)
    rid = id_match.group(1) if id_match else ""
    force = "--force" in args.split()
    readable = []
    for r in model.renewals:
        if not r.path.lower().startswith(folder):
            continue
        problem = _unreadable(r)
        if problem:
            _wacs_log(model, args, "ERR", f"Unable to read renewal {r.path.rsplit(chr(92), 1)[-1]}: {problem}")
            continue
        readable.append(r)
    selected = [r for r in readable if not rid or r.id == rid]
    if rid and not selected:
        _wacs_log(model, args, "ERR", "No renewals found that match the filter parameters --id and/or --friendlyname.")
        return 0
    exit_code = 0
    for r in selected:
        name = str(r.data.get("LastFriendlyName") or r.data["FriendlyName"])
        if not force and not _due(model, r.data):
            _wacs_log(model, args, "VRB", f"Checking {name}")
            continue
        _wacs_log(model, args, "INF", f"Force renewing {name}" if force else f"Renewing {name}")
        if model.next_renewal_fails:
            error = "Authorization failed for http-01 validation"
            r.data["History"].append(model.history_entry(False, "", days_ago=0, error=error))
            _wacs_log(model, args, "ERR", f"Renewal for {name} failed, will retry on next run")
            exit_code = -1
            continue
        if model.next_renewal_no_certificate:
            _reuse_cached_certificate(model, args, r.data, name)
            continue
        for level, line in _install_new_certificate(model, r.data):
            _wacs_log(model, args, level, line)
    return exit_code


def _reuse_cached_certificate(model: HostModel, args: str, data: dict[str, Any], name: str) -> None:
    """OrderProcessor.GetFromCache: a cached certificate younger than Cache.ReuseDays is used
    again, --force or not; the install steps run with the certificate already installed."""
    _wacs_log(
        model, args, "WRN", f"Using cache for {name}. To get a new certificate within 1 days, run with --nocache."
    )
    last = next((h for h in reversed(data.get("History", [])) if h.get("Success")), None)
    thumbprint = str(((last or {}).get("OrderResults") or [{}])[0].get("Thumbprint") or "")
    data["History"].append(model.history_entry(True, thumbprint, days_ago=0))


def _install_new_certificate(model: HostModel, data: dict[str, Any]) -> list[tuple[str, str]]:
    hosts = list(data["TargetPluginOptions"].get("IncludeHosts") or [])
    store = (data.get("StorePluginOptions") or [{}])[0].get("StoreName") or "WebHosting"
    minted = mint_certificate(hosts, model.now, 90, model.next_renewal_key_alg)
    cert = sim_cert(minted, store, model.next_renewal_key_state)
    model.certs.append(cert)
    lines = [("INF", f"Store with CertificateStore... {store}")]
    errors: list[str] = []
    for step in data.get("InstallationPluginOptions", []):
        if step.get("Plugin") == PLUGIN_IIS:
            for site_id in data["TargetPluginOptions"].get("IncludeSiteIds") or [step["SiteId"]]:
                _rebind_site(model, int(site_id), cert.thumbprint, store)
            lines.append(("INF", "Updating existing https bindings"))
        elif step.get("Plugin") == PLUGIN_SCRIPT:
            script = str(step.get("Script", ""))
            lines.append(("INF", f"Script {script} starting"))
            content = model.files.get(script.lower())
            if content is None:
                lines.append(("ERR", f"Script {script} not found"))
            elif is_layer3(content):
                # what our Layer 3 script does: the shared key test (as SYSTEM), and certutil
                # -repairstore only when it fails
                if not key_usable_on_host(key_facts(cert, SYSTEM_IDENTITY)):
                    model.log.append(f"certutil -repairstore {cert.store} {cert.thumbprint}")
                    if not cert.key_lost and cert.key_state != "user_store":
                        cert.key_state, cert.system_key_state = "ok", None
                lines.append(("INF", "Script finished"))
            if model.next_script_exit:
                # win-acme 2.2: logged, then the renewal is still recorded as a success
                lines.append(("ERR", f"Script finished with exit code {model.next_script_exit}"))
                lines.append(("ERR", "Installation plugin Script encountered an error"))
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
    renamed, skipped = [], []
    env = {k.lower(): v for k, v in model.environment.items()}
    protected = [env[k].rstrip("\\").lower() + "\\" for k in _PROTECTED if env.get(k)]
    for path in params.get("Scripts") or []:
        full = ntpath.normpath(str(path)).lower()  # [IO.Path]::GetFullPath
        under = next((p for p in protected if full.startswith(p)), None)
        if under is not None:  # the script's own guard: never under %windir% or Program Files
            skipped.append({"path": path, "reason": f"it is under {under}"})
            continue
        content = model.files.pop(str(path).lower(), None)
        if content is None:
            continue
        new = f"{path}.deprecated.{params['Date']}"
        model.files[new.lower()] = content
        renamed.append({"from": path, "to": new})
    model.log.append(f"retire {task.full_path}")
    return {"state": task.state, "renamed": renamed, "skipped": skipped}


_PROTECTED = ("windir", "systemroot", "programfiles", "programfiles(x86)", "programw6432")


POST_RENEW_ACL = ("S-1-5-18:FullControl:Allow", "S-1-5-32-544:FullControl:Allow")  # SYSTEM, Administrators


def add_post_renew_step(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """As add_post_renew_step.ps1: refuses while wacs runs, writes the script with a protected
    ACL, and the renewal file through a temporary file and File.Replace (old text as backup)."""
    if model.wacs_running:
        raise ScriptError(
            "wacs.exe is running (process 4711); win-acme rewrites renewal files when a run ends, "
            "so the step would be lost"
        )
    busy = next((t for t in model.tasks if _is_renew_task(t) and t.state == "Running"), None)
    if busy is not None:
        raise ScriptError(f"certops task {busy.name} is running wacs.exe; try again when it has ended")
    path = str(params["RenewalPath"])
    renewal = next((r for r in model.renewals if r.path.lower() == path.lower()), None)
    if renewal is None:
        raise ScriptError(f"Could not find file '{path}'.", 0x80070002)
    actual = hashlib.sha256(renewal.text().encode("utf-8")).hexdigest()
    if actual != params["ExpectedSha256"]:
        raise ScriptError("the renewal file changed since certops read it")
    new_data = json.loads(str(params["NewText"]))
    script = str(params["ScriptPath"]).lower()
    model.files[script] = str(params["ScriptText"])
    model.file_acls[script] = ",".join(POST_RENEW_ACL)
    backup = f"{path}.certops-{params['Stamp']}.bak"
    model.files[backup.lower()] = renewal.text()
    renewal.data = new_data
    model.log.append(f"add-post-renew-step {renewal.id}")
    return {
        "backup": backup,
        "script": params["ScriptPath"],
        "script_acl": {"protected": True, "rules": list(POST_RENEW_ACL)},
    }


def is_layer3(content: str) -> bool:
    """Whether a Script step's file is certops's post-renew script: the text add-post-renew-step
    installs (host_actions.layers), or an older copy that names itself as the earlier one did."""
    if "certops-script: certops_post_renew" in content:
        return True
    try:
        from host_actions.layers import layer_script

        return content == layer_script("post-renew")
    except (ImportError, KeyError, OSError):
        return False


# -- certops's own folder, the report configuration and Layer 2 -------------------------------

CERTOPS_ACL = ("S-1-5-18:FullControl:Allow", "S-1-5-32-544:FullControl:Allow")
# what a file or folder under %ProgramData% has when nobody set its ACL: ProgramData's, inherited
INHERITED_ACL = (
    "S-1-5-18:FullControl:Allow",
    "S-1-5-32-544:FullControl:Allow",
    "S-1-3-0:268435456:Allow",
    "S-1-5-32-545:ReadAndExecute, Synchronize:Allow",
)


OLD_LAYER2_SCRIPT = "certops-hourly-check.ps1"  # what the old \certops\certops hourly check task ran


def certops_folder(model: HostModel) -> str:
    """%ProgramData%\\certops as the host resolves it."""
    return expand_variables(model, "%ProgramData%\\certops")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _folder_exists(model: HostModel, folder: str) -> bool:
    key = folder.lower()
    return key in model.file_acls or any(path.startswith(key + "\\") for path in model.files)


def _acl_doc(model: HostModel, path: str, exists: bool) -> dict[str, Any] | None:
    """Get-CertopsAclFacts: a protected ACL a script set, else the one inherited from ProgramData."""
    if not exists:
        return None
    rules = model.file_acls.get(path.lower())
    if rules is None:
        return {"protected": False, "rules": list(INHERITED_ACL)}
    return {"protected": True, "rules": rules.split(",")}


def _file_doc(model: HostModel, path: str) -> dict[str, Any]:
    text = model.files.get(path.lower())
    exists = text is not None
    return {
        "path": path,
        "exists": exists,
        "sha256": _sha256(text) if text is not None else None,
        "acl": _acl_doc(model, path, exists),
    }


def _task_definition(model: HostModel, full_path: str) -> dict[str, Any] | None:
    """Get-CertopsTaskDoc. A plain Task (the old hourly check, one a scenario wrote) has a daily
    trigger, limited privileges and the 72-hour default time limit: not certops's self-heal task."""
    task = model.task(full_path)
    if task is None:
        return None
    defined = task if isinstance(task, DefinedTask) else None
    trigger = {
        "kind": "MSFT_TaskTimeTrigger" if defined else "MSFT_TaskDailyTrigger",
        "enabled": True,
        "every_minutes": defined.every_minutes if defined else None,
        "for_minutes": None,
    }
    return {
        "path": task.full_path,
        "state": task.state,
        "user": task.user,
        "run_level": defined.run_level if defined else "Limited",
        "actions": [{"execute": a.execute, "arguments": a.arguments} for a in task.actions],
        "triggers": [trigger],
        "multiple_instances": defined.multiple_instances if defined else "IgnoreNew",
        "time_limit_minutes": defined.time_limit_minutes if defined else 4320.0,
    }


def layer_state(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """As layer_state.ps1: read only."""
    folder = certops_folder(model)
    key_path = folder + "\\report.key"
    key_text = model.files.get(key_path.lower())
    wanted = str(params.get("ReportKeySha256") or "")
    exists = _folder_exists(model, folder)
    return {
        "folder": {"path": folder, "exists": exists, "acl": _acl_doc(model, folder, exists)},
        "self_heal": _file_doc(model, folder + "\\self-heal.ps1"),
        "report_json": _file_doc(model, folder + "\\report.json"),
        "report_key": {
            "path": key_path,
            "exists": key_text is not None,
            "matches": (_sha256(key_text) == wanted) if key_text is not None and wanted else None,
            "acl": _acl_doc(model, key_path, key_text is not None),
        },
        "files": [_file_doc(model, str(p)) for p in params.get("Paths") or []],
        "task": _task_definition(model, SELF_HEAL_TASK),
        "old_task": _task_definition(model, CERTOPS_TASK),
        "old_script": _file_doc(model, folder + "\\" + OLD_LAYER2_SCRIPT),
    }


def _lock_folder(model: HostModel, folder: str) -> bool:
    """Initialize-CertopsFolder: True when it had to create the folder."""
    created = not _folder_exists(model, folder)
    model.file_acls[folder.lower()] = ",".join(CERTOPS_ACL)
    return created


def _write_locked(model: HostModel, path: str, text: str) -> None:
    """Write-CertopsLockedFile; the log names the file, never its content (report.key is a secret)."""
    model.files[path.lower()] = text
    model.file_acls[path.lower()] = ",".join(CERTOPS_ACL)
    model.log.append(f"write {path}")


def report_config(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """As report_config.ps1: report.json and report.key, each only when passed."""
    folder = certops_folder(model)
    created = _lock_folder(model, folder)
    written = []
    for name, param in (("report.json", "ReportJson"), ("report.key", "ReportKey")):
        if params.get(param):
            _write_locked(model, f"{folder}\\{name}", str(params[param]))
            written.append(name)
    return {"folder": folder, "folder_created": created, "written": written}


def install_self_heal(model: HostModel, params: Mapping[str, Any]) -> dict[str, Any]:
    """As install_self_heal.ps1: the script and the task when passed (Register-ScheduledTask
    -Force replaces a task of that name), and the old hourly-check task and its script removed
    when present."""
    folder = certops_folder(model)
    done = {
        "folder_created": _lock_folder(model, folder),
        "script_written": False,
        "task_registered": False,
        "old_task_removed": False,
    }
    if params.get("ScriptText"):
        _write_locked(model, folder + "\\self-heal.ps1", str(params["ScriptText"]))
        done["script_written"] = True
    if params.get("Arguments"):
        arguments = str(params["Arguments"])
        model.tasks = [t for t in model.tasks if t.full_path.lower() != SELF_HEAL_TASK.lower()]
        model.tasks.append(
            DefinedTask(
                path="\\certops\\",
                name="certops self-heal",
                user="SYSTEM",
                actions=[TaskAction("powershell.exe", arguments)],
                next_run=model.now + dt.timedelta(minutes=1),
                run_level="Highest",
                every_minutes=float(int(str(params.get("IntervalMinutes") or "60"))),
                multiple_instances="IgnoreNew",
                time_limit_minutes=10.0,
            )
        )
        model.log.append(f"register {SELF_HEAL_TASK}: powershell.exe {arguments}")
        done["task_registered"] = True
    old = model.task(CERTOPS_TASK)
    if old is not None:
        model.tasks.remove(old)
        model.log.append(f"unregister {CERTOPS_TASK}")
        done["old_task_removed"] = True
    old_script = f"{folder}\\{OLD_LAYER2_SCRIPT}".lower()
    done["old_script_removed"] = model.files.pop(old_script, None) is not None
    model.file_acls.pop(old_script, None)
    return done


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
    "layer_state": layer_state,
    "report_config": report_config,
    "install_self_heal": install_self_heal,
}
