"""Readers for what Windows prints: netsh, certutil, task results, win-acme renewal files.

Native tools print localised labels, so these key on structure (line order, value shapes)
wherever they can, and say so where they fall back on English words.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from host_actions.model import (
    SYSTEM_IDENTITY,
    Certificate,
    HistoryEntry,
    InstallStep,
    KeyStatus,
    Layer2Report,
    Renewal,
    ScheduledTask,
    SiteBinding,
    SslBinding,
    a_label,
)

PLUGINS_INSTALL = {
    "ea6a5be3-f8de-4d27-a6bd-750b619b2ee2": "IIS",
    "3bb22c70-358d-4251-86bd-11858363d913": "Script",
    "aecc502c-5f75-43d2-b578-f95d50c79ea1": "None",
}
PLUGINS_STORE = {
    "e30adc8e-d756-4e16-a6f2-450f784b1a97": "CertificateStore",
}
PLUGIN_IIS = "ea6a5be3-f8de-4d27-a6bd-750b619b2ee2"
PLUGIN_SCRIPT = "3bb22c70-358d-4251-86bd-11858363d913"

MAX_JSON_DEPTH = 64  # ConvertTo-Json -Depth 6 inside our wrapper never nests past ~10
MAX_JSON_VALUES = 500_000  # a host with thousands of certificates stays far below; each value costs ~50-100 B

_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
# a whole JSON string (unrolled, so linear), or one comma or opening bracket outside strings
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[,\[{]', re.S)
_JSON_TOKENS_B = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[,\[{]', re.S)
_KV = re.compile(r"^\s*(?P<key>\S.*?)\s*:\s+(?P<value>\S.*?)\s*$")
_MS_DATE = re.compile(r"^/Date\((-?\d+)\)/$")


class JSONRefused(ValueError):
    """JSON from a host that is not read at all: its shape would cost more than it can be worth."""


def load_json(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, max_values: int = MAX_JSON_VALUES) -> Any:
    """json.loads for what a host sends, with its width and nesting held to limits.

    json.loads recurses once per level (50,000 nested brackets raise RecursionError), and a few
    MB of `[[],[],...]` become hundreds of MB of objects, so the width is checked before parsing:
    counting commas and brackets, strings included, is an upper bound that costs no memory;
    only past it are the tokens outside strings counted one by one. Raises JSONRefused (a
    ValueError) with a short reason, or ValueError for JSON that is simply invalid.
    """
    if isinstance(data, bytes):
        opens = data.count(b"[") + data.count(b"{")
        upper = data.count(b",") + opens + 1
        wide = upper > max_values and _count_to(_JSON_TOKENS_B.finditer(data), max_values) > max_values
    else:
        opens = data.count("[") + data.count("{")
        upper = data.count(",") + opens + 1
        wide = upper > max_values and _count_to(_JSON_TOKENS.finditer(data), max_values) > max_values
    if wide:
        raise JSONRefused(f"it holds more than {max_values:,} values")
    try:
        value = json.loads(data)
    except RecursionError:
        raise JSONRefused(f"it is nested deeper than {max_depth} levels") from None
    if opens > max_depth and _deeper_than(value, max_depth):
        raise JSONRefused(f"it is nested deeper than {max_depth} levels")
    return value


def _count_to(matches: Iterator[object], limit: int) -> int:
    """How many values the tokens stand for (one per string, comma or opening bracket, plus
    one), counted no further than one past `limit`."""
    count = 1
    for _ in matches:
        count += 1
        if count > limit:
            break
    return count


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        children = current.values() if isinstance(current, dict) else current if isinstance(current, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def thumbprint_of(text: str | None) -> str | None:
    """A thumbprint in Windows form from netsh/certutil/IIS text, or None if it is not one."""
    if not text:
        return None
    joined = re.sub(r"\s+", "", text)
    return joined.upper() if _HEX40.match(joined) else None


def parse_time(value: Any) -> dt.datetime | None:
    """ISO 8601 from `.ToString('o')`, or PowerShell 5.1's "/Date(ms)/" if one slips through."""
    if not isinstance(value, str) or not value:
        return None
    try:  # the common case, and the cheap one: 3.11 reads 'Z' and our own offsets directly
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except ValueError:
        pass
    text = value.strip().replace("\\/", "/")
    match = _MS_DATE.match(text)
    if match:
        return dt.datetime.fromtimestamp(int(match.group(1)) / 1000, dt.UTC)
    # .NET writes seven fractional digits; Python reads at most six
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# -- netsh http show sslcert ---------------------------------------------------------------


def parse_netsh_sslcert(text: str) -> list[SslBinding]:
    """Bindings from `netsh http show sslcert`, in any UI language.

    Each block's first three key/value lines are, in every build we know: the endpoint
    (IP:port, Hostname:port or CCS port), the certificate hash, the application id; the fourth
    is the store name. Labels are localised, so this reads positions and value shapes.
    """
    bindings = []
    for block in re.split(r"\r?\n\s*\r?\n", text):
        pairs = [m.groups() for line in block.splitlines() if (m := _KV.match(line))]
        if len(pairs) < 2:
            continue
        label, endpoint = pairs[0]
        parsed = _endpoint(label, endpoint)
        if parsed is None:
            continue
        kind, host, port = parsed
        hash_value = pairs[1][1]
        app_id = pairs[2][1] if len(pairs) > 2 and pairs[2][1].startswith("{") else None
        store = pairs[3][1] if len(pairs) > 3 else None
        bindings.append(
            SslBinding(
                kind=kind,
                endpoint=endpoint,
                host=host,
                port=port,
                thumbprint=thumbprint_of(hash_value),
                store=None if store in (None, "(null)") else store,
                app_id=app_id,
            )
        )
    return bindings


def _endpoint(label: str, value: str) -> tuple[Any, str | None, int | None] | None:
    if value.isdigit():  # a Central Certificate Store binding names only a port
        return "ccs", None, int(value)
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if " " in host or not host:
            return None
        return "hostname", a_label(host), int(port)
    return "ip", host, int(port)


# -- IIS bindings --------------------------------------------------------------------------


# bindingInformation is "IP:port:host"; an IPv6 address is bracketed and holds colons itself
_BINDING_INFORMATION = re.compile(r"^(\[[^\]]*\]|[^:]*):([^:]*):(.*)$", re.S)


def split_binding_information(text: str) -> tuple[str, str, str]:
    """(ip, port, host) of IIS bindingInformation: "*:443:www.example.com",
    "[2001:db8::1]:443:www.example.com"; ("", "", "") when it has another shape."""
    match = _BINDING_INFORMATION.match(text)
    return (match.group(1), match.group(2), match.group(3)) if match else ("", "", "")


def normal_ip(text: str | None) -> str | None:
    """An address as http.sys and IIS may both spell it, compared in one form: "[2001:DB8:0::1]"
    and "2001:db8::1" are the same; "*" (IIS's "All Unassigned") and "" stay "*"; None when
    it is not an address."""
    value = (text or "").strip()
    if value in ("*", ""):
        return "*"
    try:
        return ipaddress.ip_address(value.removeprefix("[").removesuffix("]")).compressed
    except ValueError:
        return None


def parse_site_bindings(sites: list[dict[str, Any]]) -> list[SiteBinding]:
    out = []
    for site in sites:
        for b in site.get("bindings") or []:
            ip, port, host = split_binding_information(str(b.get("binding_information", "")))
            flags = int(b.get("ssl_flags") or 0)
            out.append(
                SiteBinding(
                    site=str(site.get("name", "")),
                    site_id=int(site.get("id") or 0),
                    protocol=str(b.get("protocol", "")).lower(),
                    ip=ip,
                    port=int(port) if port.isdigit() else None,
                    host=a_label(host) if host else "",
                    sni=bool(flags & 1),
                    ccs=bool(flags & 2),
                    thumbprint=thumbprint_of(b.get("certificate_hash")),
                    store=b.get("certificate_store") or None,
                    error=str(b["error"]) if b.get("error") else None,
                    information=str(b.get("binding_information", "")),
                )
            )
    return out


# -- certutil ------------------------------------------------------------------------------


def certutil_outcome(output: str, exit_code: int) -> tuple[bool, str | None]:
    """(succeeded, HRESULT) for any certutil verb, from its last line and its exit code."""
    failed = re.search(r"command FAILED:\s*(0x[0-9a-fA-F]+)", output)
    if failed:
        return False, "0x" + failed.group(1)[2:].upper().zfill(8)
    if "command completed successfully" in output and exit_code == 0:
        return True, None
    if exit_code != 0:
        return False, f"0x{exit_code & 0xFFFFFFFF:08X}"
    return False, None


def parse_certutil_store(output: str) -> dict[str, KeyStatus | None]:
    """Key status per certificate in `certutil -store` / `-repairstore` output.

    The hash line is found by shape (40 hex digits, joined or space-separated, as older
    certutil prints them). The verdict lines are English; under another UI language the status
    is None (unknown), and the real key test decides.
    """
    result: dict[str, KeyStatus | None] = {}
    current: str | None = None
    for line in output.splitlines():
        _, sep, value = line.partition(":")
        tp = thumbprint_of(value) if sep else None
        if tp:
            current = tp
            result.setdefault(current, None)
            continue
        if current is None:
            continue
        text = line.strip()
        if text == "Missing stored keyset":
            result[current] = "missing_keyset"
        elif text.startswith("No key provider information"):
            result[current] = "no_key_provider_info"
        elif text in ("Encryption test passed", "Signature test passed"):
            result[current] = "ok"
    return result


# -- key test ------------------------------------------------------------------------------

HRESULT_MISSING_KEYSET = {"0x80090016", "0x8009000D"}  # NTE_BAD_KEYSET, NTE_NO_KEY
HRESULT_ACCESS_DENIED = {"0x80070005", "0x80090010"}  # E_ACCESSDENIED, NTE_PERM
# What .NET Framework gives for a key that is gone, by key type (facts/windows-host-2.md #5): a
# CNG RSA key falls back to the CAPI path (NTE_BAD_PROV_TYPE, or a null key), an ECDSA key
# reaches CngKey.Open(null) (E_POINTER). They mean "missing" only when the container is absent.
HRESULT_GONE_BY_KEY_TYPE = {"0x80090014", "0x80004003"}


def key_status(has_private_key: bool, key: dict[str, Any]) -> KeyStatus:
    """The verdict on one key test (the facts Get-CertopsKeyFacts collects).

    Order matters: a key that signs but whose signature the certificate's public key does not
    verify is someone else's key; a key in a user store is useless to IIS even when it works
    for the account that tested it; a failure is "missing" when the container the key link
    names does not exist, whatever the HRESULT says.
    """
    if not has_private_key:
        return "no_key_provider_info"
    link: dict[str, Any] = key["link"] if isinstance(key.get("link"), dict) else {}
    machine = key.get("is_machine_key")
    if machine is None and link:
        machine = link.get("machine_keyset")
    if key.get("signed"):
        if key.get("verified") is False:
            return "key_mismatch"
        if machine is False:
            return "user_key"
        return "ok"
    if link and link.get("machine_keyset") is False:
        return "user_key"
    hresult = _hresult(key.get("hresult"))
    if hresult in HRESULT_ACCESS_DENIED or _hresult(key.get("exists_hresult")) in HRESULT_ACCESS_DENIED:
        return "access_denied"
    exists = key.get("container_exists")
    if exists is None:
        files = [f for f in key.get("files") or () if isinstance(f, dict)]
        if files:
            exists = any(f.get("exists") for f in files)
    if exists is False:
        return "missing_keyset"
    if exists is True:
        return "key_unopenable"
    if hresult in HRESULT_MISSING_KEYSET:
        return "missing_keyset"
    return "error"


def _hresult(value: Any) -> str:
    text = str(value or "").strip()
    return "0x" + text[2:].upper() if text.lower().startswith("0x") else text.upper()


class RawCertificate:
    """What certops reads from a certificate's RawData itself, in any Windows UI language.

    Windows PowerShell's DnsNameList finds SANs by matching the English "DNS Name=" in the
    localised extension text, so on a French or Japanese server it shows only the CN.
    """

    def __init__(self, der: bytes) -> None:
        cert = x509.load_der_x509_certificate(der)
        self.sha1 = hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - Windows thumbprints are SHA-1
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            self.sans: tuple[str, ...] = tuple(a_label(n) for n in san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            self.sans = ()
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.cn = str(cns[0].value) if cns else ""
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            self.eku: tuple[str, ...] | None = tuple(o.dotted_string for o in eku)
        except x509.ExtensionNotFound:
            self.eku = None
        self.issuer = cert.issuer.rfc4514_string()
        self.not_before = cert.not_valid_before_utc
        self.not_after = cert.not_valid_after_utc
        self.serial = format(cert.serial_number, "X")


def read_raw(value: Any) -> RawCertificate | None:
    """RawData (base64 DER) as the certs script ships it, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return RawCertificate(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return None


def parse_certificate(doc: dict[str, Any]) -> Certificate:
    key = doc.get("key") or {}
    has_key = bool(doc.get("has_private_key"))
    tp = thumbprint_of(doc.get("thumbprint"))
    if tp is None:
        raise ValueError("certificate without a thumbprint")
    raw = read_raw(doc.get("raw"))
    if raw is not None and raw.sha1 != tp:
        raw = None  # RawData of another certificate: trust nothing in it
    link: dict[str, Any] = key["link"] if isinstance(key.get("link"), dict) else {}
    machine = key.get("is_machine_key")
    return Certificate(
        store=str(doc.get("store", "")),
        thumbprint=tp,
        subject=str(doc.get("subject") or ""),
        sans=raw.sans if raw else tuple(str(s) for s in doc.get("sans") or () if s),
        friendly_name=str(doc.get("friendly_name") or ""),
        not_before=raw.not_before if raw else parse_time(doc.get("not_before")),
        not_after=raw.not_after if raw else parse_time(doc.get("not_after")),
        issuer=raw.issuer if raw else str(doc.get("issuer") or ""),
        serial=str(doc.get("serial") or (raw.serial if raw else "")),
        has_private_key=has_key,
        key_status=key_status(has_key, key),
        key_hresult=key.get("hresult"),
        key_message=key.get("message"),
        provider=key.get("provider") or link.get("provider"),
        container=key.get("container") or link.get("container"),
        key_file_exists=key.get("file_exists"),
        key_algorithm=key.get("algorithm"),
        is_machine_key=machine if machine is not None else link.get("machine_keyset"),
        as_identity=key.get("identity"),
        eku=raw.eku if raw else None,
        cn=raw.cn if raw else None,
        key_link=_link_id(key),
        chain_trusted=chain_trusted(doc.get("chain")),
    )


# X509ChainStatusFlags names (not localised) that mean the chain ends at no trusted root
UNTRUSTED_CHAIN = {"UntrustedRoot", "PartialChain", "ExplicitDistrust"}


def chain_trusted(chain: Any) -> bool | None:
    """certs.ps1's X509Chain facts ({built, status: [flag names]}, revocation not checked): False
    when the chain does not reach a trusted root, True when it does, None when not reported.
    An expired or not-yet-valid certificate still counts as trusted here: that is not what makes
    a certificate a staging one."""
    if not isinstance(chain, dict) or "status" not in chain:
        return None
    status = {str(s) for s in chain.get("status") or ()}
    return not (status & UNTRUSTED_CHAIN)


def _link_id(key: dict[str, Any]) -> str | None:
    """The key link (KeyProvInfo) a test was about, as "provider|container"."""
    link = key.get("link")
    if not isinstance(link, dict) or not link.get("container"):
        return None
    return f"{link.get('provider') or ''}|{link['container']}".lower()


# -- the Layer 2 task's verdicts ------------------------------------------------------------

LAYER2_MAX_AGE = dt.timedelta(hours=2)  # the task runs hourly; older verdicts may be stale


def parse_layer2(text: Any) -> tuple[Layer2Report | None, dict[str, dict[str, Any]]]:
    """Layer 2's state file (self-heal.ps1 writes it as SYSTEM, as the older hourly check did):
    its report, and its key facts per thumbprint. Anything unreadable is simply no report."""
    if not isinstance(text, str) or not text.strip():
        return None, {}
    try:
        data = load_json(text.lstrip("\ufeff"))
    except ValueError:
        return None, {}
    if not isinstance(data, dict):
        return None, {}
    report = Layer2Report(
        at=parse_time(data.get("at")),
        identity=str(data.get("identity") or SYSTEM_IDENTITY),
        problems=tuple(str(p) for p in data.get("problems") or () if p),
        notes=tuple(str(n) for n in data.get("notes") or () if n),
    )
    keys = {}
    for entry in data.get("certs") or ():
        tp = thumbprint_of(entry.get("thumbprint")) if isinstance(entry, dict) else None
        if tp and isinstance(entry.get("key"), dict):
            keys[tp] = {"has_private_key": bool(entry.get("has_private_key", True)), "key": entry["key"]}
    return report, keys


def prefer_layer2(
    cert: Certificate, report: Layer2Report | None, entry: dict[str, Any] | None, now: dt.datetime
) -> Certificate:
    """schannel uses the key as SYSTEM; the WinRM account's test only approximates that. When
    the hourly task (SYSTEM) tested this very key link recently, its verdict is the one kept."""
    if report is None or entry is None or report.at is None:
        return cert
    if not dt.timedelta(minutes=-5) <= now - report.at <= LAYER2_MAX_AGE:
        return cert
    key = entry["key"]
    if _link_id(key) != cert.key_link:
        return cert  # the link changed since (a repair, a re-import): the older verdict is not about this key
    status = key_status(bool(entry["has_private_key"]), key)
    return replace(
        cert,
        key_status=status,
        key_hresult=key.get("hresult"),
        key_message=key.get("message"),
        as_identity=str(key.get("identity") or report.identity),
        key_source="layer2",
        winrm_key_status=cert.key_status,
    )


# -- scheduled task results ----------------------------------------------------------------

_TASK_CODES = {
    0: "completed successfully",
    0x41300: "ready to run",
    0x41301: "running",
    0x41302: "disabled",
    0x41303: "has not run yet",
    0x41306: "terminated by a user",
    0x8004131F: "an instance was already running",
    0x80070002: "the program or a file it needs was not found",
    0x80070005: "access denied",
    0x800710E0: "the operator or administrator refused the request",
    0xFFFFFFFF: "the program exited with code -1 (win-acme's failure code)",
}
NOT_FAILED = {0, 0x41300, 0x41301, 0x41302, 0x41303}


def task_result(code: int) -> tuple[bool, str, str]:
    """(failed, hex, meaning) for a LastTaskResult; schtasks prints some of them signed."""
    value = code & 0xFFFFFFFF
    meaning = _TASK_CODES.get(value)
    if meaning is None:
        meaning = f"the program exited with code {value}" if value < 0x10000 else "error"
    return value not in NOT_FAILED, f"0x{value:X}", meaning


# -- win-acme renewals ---------------------------------------------------------------------


RENEWAL_DAYS_DEFAULT = 55  # win-acme's ScheduledTask.RenewalDays when settings.json does not say


def renewal_days_of(value: Any) -> int:
    """`ScheduledTask.RenewalDays` as winacme.ps1 read it from settings.json; 55 when absent or odd."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return RENEWAL_DAYS_DEFAULT
    try:
        days = int(value)
    except ValueError:
        return RENEWAL_DAYS_DEFAULT
    return days if 0 < days < 10000 else RENEWAL_DAYS_DEFAULT


def due_date_of(value: Any) -> dt.datetime | None:
    """`OrderResults[].DueDate`: an ISO string before 2.2.3, an object {Start, End, Source} since."""
    if isinstance(value, dict):
        return parse_time(value.get("End")) or parse_time(value.get("Start"))
    return parse_time(value)


def parse_renewal(
    path: str, text: str, scripts: list[dict[str, Any]], renewal_days: int = RENEWAL_DAYS_DEFAULT
) -> Renewal:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    file_id = re.sub(r"\.renewal\.json$", "", path.rsplit("\\", 1)[-1], flags=re.I)
    try:
        data = load_json(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except JSONRefused as exc:
        return Renewal(file_id, path, "", (), (), None, (), (), digest, f"not read: {exc}")
    except ValueError:
        return Renewal(file_id, path, "", (), (), None, (), (), digest, "not valid JSON")
    exists = {str(s.get("path", "")).lower(): bool(s.get("exists")) for s in scripts}
    target = data.get("TargetPluginOptions") or {}
    hosts = [str(h) for h in target.get("IncludeHosts") or ()]
    if not hosts and target.get("CommonName"):
        hosts = [str(target["CommonName"])]
    stores = [s for s in data.get("StorePluginOptions") or () if isinstance(s, dict)]
    steps = []
    for step in data.get("InstallationPluginOptions") or ():
        if not isinstance(step, dict):
            continue
        plugin = str(step.get("Plugin", "")).lower()
        script = step.get("Script")
        steps.append(
            InstallStep(
                plugin=plugin,
                name=PLUGINS_INSTALL.get(plugin, "unknown"),
                script=str(script) if script else None,
                script_parameters=step.get("ScriptParameters"),
                script_exists=exists.get(str(script).lower()) if script else None,
            )
        )
    problem = None
    if data.get("Id") != file_id:
        problem = "its Id differs from its file name, so win-acme ignores it"
    return Renewal(
        id=str(data.get("Id") or file_id),
        path=path,
        friendly_name=str(data.get("LastFriendlyName") or data.get("FriendlyName") or ""),
        hosts=tuple(hosts),
        store_plugins=tuple(PLUGINS_STORE.get(str(s.get("Plugin", "")).lower(), "other") for s in stores),
        store_name=next((str(s["StoreName"]) for s in stores if s.get("StoreName")), None),
        steps=tuple(steps),
        history=tuple(_history(h, renewal_days) for h in (data.get("History") or [])[-5:] if isinstance(h, dict)),
        sha256=digest,
        problem=problem,
    )


def _history(entry: dict[str, Any], renewal_days: int = RENEWAL_DAYS_DEFAULT) -> HistoryEntry:
    orders = [o for o in entry.get("OrderResults") or () if isinstance(o, dict)]
    main = orders[0] if orders else {}
    # legacy files carry Thumbprint(s)/ExpireDate at the top level instead of OrderResults
    thumbprint = main.get("Thumbprint") or entry.get("Thumbprint")
    if not thumbprint and entry.get("Thumbprints"):
        thumbprint = entry["Thumbprints"][0]
    errors = [*(entry.get("ErrorMessages") or ()), *(main.get("ErrorMessages") or ())]
    for order in orders[1:]:
        errors += order.get("ErrorMessages") or ()
    date = parse_time(entry.get("Date"))
    success = bool(entry.get("Success"))
    # since 2.2.3 win-acme stores DueDate only when ACME Renewal Info moved it; otherwise the
    # renewal is due RenewalDays after the last success, as win-acme itself computes it
    due = due_date_of(main.get("DueDate"))
    if due is None and success and date is not None:
        due = date + dt.timedelta(days=renewal_days)
    return HistoryEntry(
        date=date,
        success=success,
        thumbprint=thumbprint_of(thumbprint),
        expires=parse_time(main.get("ExpireDate") or entry.get("ExpireDate")),
        due=due,
        errors=tuple(dict.fromkeys(str(e) for e in errors if e)),
    )


# -- win-acme base URIs, runs and log files ------------------------------------------------

DEFAULT_BASE_URI = "https://acme-v02.api.letsencrypt.org/"  # settings.json Acme.DefaultBaseUri
DEFAULT_BASE_URI_TEST = "https://acme-staging-v02.api.letsencrypt.org/"  # Acme.DefaultBaseUriTest
# Path.GetInvalidFileNameChars() on Windows: what win-acme's CleanPath removes from a folder name
_INVALID_FILE_NAME = re.compile(r'[\x00-\x1f"<>|:*?\\/]')
_BASEURI_ARG = re.compile(r'--baseuri\s+(?:"([^"]+)"|(\S+))', re.I)
# a host name whose last label could be a TLD (no digits): "acme.zerossl.comv2DV90" is not one
_HOST_LIKE = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]+)$")
NO_RENEWALS_FOUND = "No renewals found that match the filter"  # RenewalManager.CheckRenewals, exit code 0


def clean_uri(uri: str) -> str:
    """win-acme's CleanUri: the folder name under the configuration root that holds the renewals
    of one ACME server ("https://acme-v02.api.letsencrypt.org/" -> "acme-v02.api.letsencrypt.org")."""
    text = re.sub(r"^(https?://)[^/@]*@", r"\1", uri)
    text = text.replace("https://", "").replace("http://", "")
    return _INVALID_FILE_NAME.sub("", text)


def base_uris_named(doc: dict[str, Any], tasks: tuple[ScheduledTask, ...] = ()) -> list[str]:
    """The ACME servers this host names: the --baseuri of win-acme's own tasks (one per server),
    the defaults in settings.json, then Let's Encrypt's, which win-acme uses when settings say nothing."""
    found = []
    for task in tasks:
        for action in task.actions if task.is_wacs else ():
            found += [m.group(1) or m.group(2) for m in _BASEURI_ARG.finditer(action.arguments)]
    settings: dict[str, Any] = doc["settings"] if isinstance(doc.get("settings"), dict) else {}
    found += [str(settings[k]) for k in ("default_base_uri", "default_base_uri_test") if settings.get(k)]
    return list(dict.fromkeys([*found, DEFAULT_BASE_URI, DEFAULT_BASE_URI_TEST]))


def base_uri_for(folder: str, named: list[str]) -> str | None:
    """The --baseuri that makes wacs read this folder. CleanUri drops '/' and ':', so a URI with a
    path (ZeroSSL's https://acme.zerossl.com/v2/DV90) cannot be read back from its folder name:
    only a named URI whose folder matches is trusted; a bare host name is taken as https://host/."""
    for uri in named:
        if clean_uri(uri).lower() == folder.lower():
            return uri
    if _HOST_LIKE.fullmatch(folder):
        return f"https://{folder.lower()}/"
    return None


def parse_winacme_renewals(doc: dict[str, Any], tasks: tuple[ScheduledTask, ...] = ()) -> tuple[Renewal, ...]:
    """The renewals winacme.ps1 listed, each tagged with its base-URI folder and --baseuri."""
    named = base_uris_named(doc, tasks)
    days = renewal_days_of(doc.get("renewal_days"))
    out = []
    for r in doc.get("renewals") or ():
        renewal = parse_renewal(str(r.get("path")), str(r.get("text")), list(r.get("scripts") or ()), days)
        folder = str(r.get("base_folder") or "")
        out.append(replace(renewal, base_folder=folder, base_uri=base_uri_for(folder, named) if folder else None))
    return tuple(out)


_LOG_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s?([+-]\d{2}:?\d{2}|Z)?\s+\[")
_EVENT_LEVELS = {1: "FTL", 2: "ERR", 3: "WRN"}  # Windows event levels: critical, error, warning


def wacs_log_since(texts: list[str], since: dt.datetime | None) -> list[str]:
    """Lines of win-acme's day log files written at or after `since` (the run's start), oldest
    first. The file template is "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {Message}";
    a line without a stamp (an exception's stack) belongs to the entry above it."""
    out: list[str] = []
    keep = since is None
    for text in texts:
        for line in text.splitlines():
            match = _LOG_STAMP.match(line)
            if match:
                at = parse_time(match.group(1).replace(" ", "T") + (match.group(2) or ""))
                keep = since is None or (at is not None and at >= since)
            if keep and line.strip():
                out.append(line.rstrip())
    return out


def wacs_event_lines(events: list[Any], since: dt.datetime | None) -> list[str]:
    """Application events from source win-acme (Get-WinEvent gives them newest first) as log lines."""
    rows = []
    for e in events:
        if not isinstance(e, dict):
            continue
        at = parse_time(e.get("at"))
        if since is not None and (at is None or at < since):
            continue
        level = _EVENT_LEVELS.get(int(e.get("level") or 4), "INF")
        rows.append((at or dt.datetime.min.replace(tzinfo=dt.UTC), f"{e.get('at')} [{level}] {e.get('message')}"))
    return [line for _at, line in sorted(rows, key=lambda row: row[0])]
