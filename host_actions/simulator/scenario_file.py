"""Scenario files: a simulated IIS host written in TOML, and a simulated host rebuilt from a capture.

The file maps onto the HostModel dataclasses by field name: every top-level key is a HostModel
field, every key of a `[[tasks]]` table a Task field, and so on, with each value checked against
the field's type. Certificates, renewals and history entries are made by the model's own helpers
(HostModel.add_cert, add_renewal, history_entry), whose parameters are keys too, read from their
signatures. So a field or helper parameter added to the model later is a scenario key at once,
with no change here. The few keys that are neither (a certificate's `id`, by which bindings and
renewals name it in place of a thumbprint) are the `_EXTRA_*` tables below. The format, every
key and a complete example: docs/simulator.md.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import inspect
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from host_actions.capture import CaptureDoc, read_bounded
from host_actions.parsers import key_status, parse_netsh_sslcert, parse_time, thumbprint_of
from host_actions.simulator import scripts as sim_scripts
from host_actions.simulator.model import (
    CERTOPS_TASK,
    LAYER2_STATE,
    WINACME_ROOT,
    HostModel,
    HttpBinding,
    KeyState,
    Renewal,
    SimCert,
    Site,
    SiteBinding,
    Task,
    TaskAction,
    leaf_key,
    mint_certificate,
    sim_cert,
)
from host_actions.simulator.tls import ModelTLSServer

MAX_SCENARIO_BYTES = 4 * 1024 * 1024
# HostModel fields that are the simulator's own bookkeeping, not a host's state
_NOT_SCENARIO = frozenset({"now", "log"})
# HostModel fields that are arrays of tables with keys of their own (built below, not generically)
_SECTIONS = ("certs", "http_bindings", "sites", "renewals", "tasks")
_NOT_GENERIC = _NOT_SCENARIO | frozenset(_SECTIONS)
# keys that are no field of the dataclass they sit in: what the builder computes from them
_EXTRA_TOP: dict[str, Any] = {"description": str, "renewal_days": int, "hourly_check": bool}
_EXTRA_CERT: dict[str, Any] = {"id": str, "days_left": float}
_MINTED = frozenset({"pem", "thumbprint", "subject", "sans", "not_before", "not_after", "issuer", "serial", "der"})
_EXTRA_CERT_REF: dict[str, Any] = {"cert": str}
_EXTRA_SITE_BINDING: dict[str, Any] = {"cert": str, "http_sys": bool}
_EXTRA_RENEWAL: dict[str, Any] = {"site": str, "cert": str}
STORES = ("My", "WebHosting")  # the stores certs.ps1 reads
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:\\")


class ScenarioError(ValueError):
    """A scenario file that cannot be used: one sentence naming the key path and the fix."""


def _fail(path: str, sentence: str) -> ScenarioError:
    return ScenarioError(f"{path} {sentence}")


# -- reading ---------------------------------------------------------------------------------


def load_scenario(path: str | os.PathLike[str], *, now: dt.datetime | None = None) -> HostModel:
    """A HostModel from a scenario file; ScenarioError naming the file and the key otherwise."""
    data = read_bounded(path, MAX_SCENARIO_BYTES, "a scenario file (TOML)", ScenarioError)
    return parse_scenario(data, source=str(path), now=now)


def parse_scenario(text: str | bytes, *, source: str = "scenario", now: dt.datetime | None = None) -> HostModel:
    try:
        raw = text.decode("utf-8") if isinstance(text, bytes) else text
        data = tomllib.loads(raw)
    except UnicodeDecodeError:
        raise ScenarioError(f"{source} is not UTF-8 text; save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source} is not valid TOML ({exc}); fix that line.") from None
    try:
        return scenario_model(data, now=now)
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None


def scenario_model(data: Mapping[str, Any], *, now: dt.datetime | None = None) -> HostModel:
    """A HostModel from a parsed scenario (TOML tables as dicts)."""
    clock = now or dt.datetime.now(dt.UTC)
    sections = dict.fromkeys(_SECTIONS, list[dict[str, Any]])
    values, extras = _read(data, "", HostModel, {**_settable(HostModel, _NOT_GENERIC), **sections}, _EXTRA_TOP, clock)
    section_values = {name: values.pop(name, []) for name in _SECTIONS}
    # files, file_acls: the model keeps paths in lower case, as Windows compares them
    for name, value in values.items():
        if isinstance(value, dict):
            values[name] = {k.lower() if _WINDOWS_PATH.match(k) else k: v for k, v in value.items()}
    model = HostModel(now=clock, **values)
    certs = dict(_certs(model, section_values["certs"]))
    for i, table in enumerate(section_values["http_bindings"]):
        model.http_bindings.append(_http_binding(model, table, f"http_bindings[{i}]", certs))
    for i, table in enumerate(section_values["sites"]):
        model.sites.append(_site(model, table, f"sites[{i}]", certs, i))
    for i, table in enumerate(section_values["renewals"]):
        model.renewals.append(_renewal(model, table, f"renewals[{i}]", certs))
    for i, table in enumerate(section_values["tasks"]):
        model.tasks.append(_task(model, table, f"tasks[{i}]"))
    if "renewal_days" in extras:
        model.set_wacs_settings(extras["renewal_days"])
    if extras.get("hourly_check"):
        # certops's Layer 2 task, run once as SYSTEM: its state file then holds the key verdicts
        # as SYSTEM sees them (system_key_state), and it repairs what certutil can, as it would
        if model.task(CERTOPS_TASK) is None:
            model.add_certops_task()
        sim_scripts.hourly_check(model)
    return model


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _settable(cls: type, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    hints = _hints(cls)
    return {f.name: hints[f.name] for f in _init_fields(cls) if f.name not in skip}


def _read(
    table: Any, path: str, cls: type, settable: Mapping[str, Any], extra: Mapping[str, Any], now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The table's keys converted to their types and split into dataclass fields and extras;
    an unknown key is refused with the keys allowed there."""
    if not isinstance(table, dict):
        raise _fail(path or "the file", f"must be a table of keys ({_what(cls)}), not {_shown(table)}.")
    allowed = {**settable, **extra}
    for key in table:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise _fail(where, f"is not a key of {_what(cls)}; use one of: {', '.join(sorted(allowed))}.")
    values = {k: _convert(v, settable[k], _join(path, k), now) for k, v in table.items() if k in settable}
    extras = {k: _convert(v, extra[k], _join(path, k), now) for k, v in table.items() if k in extra}
    return values, extras


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _what(cls: type) -> str:
    return {
        HostModel: "a scenario",
        SimCert: "a certificate",
        HttpBinding: "an http.sys binding",
        Site: "an IIS site",
        SiteBinding: "a site binding",
        Renewal: "a win-acme renewal",
        Task: "a scheduled task",
        TaskAction: "a task action",
        dict: "a history entry",
    }.get(cls, cls.__name__)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return json.dumps(value, default=str)


def _convert(value: Any, hint: Any, path: str, now: dt.datetime) -> Any:
    """`value` as the type `hint` names, or ScenarioError saying what is expected there."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if value in args:
            return value
        raise _fail(path, f"must be one of {', '.join(json.dumps(a) for a in args)}, not {_shown(value)}.")
    if origin in (Union, types.UnionType):
        # TOML has no null: an optional field is simply left out, so only its other type is written
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(value, options[0], path, now)
        for option in options:
            try:
                return _convert(value, option, path, now)
            except ScenarioError:
                continue
        raise _fail(path, f"must be one of these types: {', '.join(map(_type_name, options))}.")
    if hint is bool:
        return _expect(isinstance(value, bool), value, path, "true or false", value)
    if hint is int:
        return _expect(isinstance(value, int) and not isinstance(value, bool), value, path, "a whole number", value)
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return _expect(ok, value, path, "a number", float(value) if ok else value)
    if hint is str:
        return _expect(isinstance(value, str), value, path, "text in quotes", value)
    if hint is dt.datetime:
        return _datetime(value, path, now)
    if origin in (list, set, tuple) and args:
        if not isinstance(value, list):
            raise _fail(path, f"must be a list in brackets, such as [...], not {_shown(value)}.")
        items = [_convert(v, args[0], f"{path}[{i}]", now) for i, v in enumerate(value)]
        return set(items) if origin is set else tuple(items) if origin is tuple else items
    if origin is dict and len(args) == 2:
        if not isinstance(value, dict):
            raise _fail(path, f"must be a table, not {_shown(value)}.")
        return {k: _convert(v, args[1], f"{path}.{json.dumps(k)}", now) for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _build(hint, value, path, now)
    raise _fail(path, "cannot be written in a scenario file (the model's type for it has no TOML form).")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _expect(ok: bool, value: Any, path: str, what: str, converted: Any) -> Any:
    if not ok:
        raise _fail(path, f"must be {what}, not {_shown(value)}.")
    return converted


def _datetime(value: Any, path: str, now: dt.datetime) -> dt.datetime:
    """A TOML date-time (an offset one, or a local one taken as UTC), or a number of days from the
    scenario's clock (negative: in the past), so that a scenario does not age."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return now + dt.timedelta(days=value)
    raise _fail(
        path, f"must be a date-time such as 2026-01-31T08:00:00Z, or days from now such as -1.5, not {_shown(value)}."
    )


def _build(cls: type, table: Any, path: str, now: dt.datetime) -> Any:
    """A dataclass straight from a table: every init field is a key, required ones must be given."""
    values, _extras = _read(table, path, cls, _settable(cls), {}, now)
    _require(cls, values, path)
    return cls(**values)


def _require(cls: type, values: Mapping[str, Any], path: str, *, given: frozenset[str] = frozenset()) -> None:
    for f in _init_fields(cls):
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing and f.name not in values and f.name not in given:
            raise _fail(_join(path, f.name), f"is required in {_what(cls)}; add it.")


# -- sections --------------------------------------------------------------------------------


def _certs(model: HostModel, tables: list[Any]) -> list[tuple[str, SimCert]]:
    """Each certificate minted by HostModel.add_cert: its parameters are keys (so one added to it
    is a key too), and so is every SimCert field it does not set, applied after minting."""
    helper = _helper_params(HostModel.add_cert)
    fields = _settable(SimCert, _MINTED | frozenset(helper))
    out: list[tuple[str, SimCert]] = []
    for i, table in enumerate(tables):
        path = f"certs[{i}]"
        values, extras = _read(table, path, SimCert, fields, {**helper, **_EXTRA_CERT}, model.now)
        given = {k: v for k, v in extras.items() if k in helper}
        if not given.get("names"):
            raise _fail(f"{path}.names", 'is required: the names the certificate covers, such as ["www.example.com"].')
        cert_id = extras.get("id") or f"cert{i}"
        if any(cert_id == seen for seen, _c in out):
            raise _fail(f"{path}.id", f"{json.dumps(cert_id)} is the id of another certificate; ids must be unique.")
        if given.setdefault("store", "WebHosting") not in STORES:
            shown = _shown(given["store"])
            raise _fail(f"{path}.store", f"must be {' or '.join(json.dumps(s) for s in STORES)}, not {shown}.")
        if given.get("key_alg") == "ecdsa" and given.get("provider_kind") == "capi":
            raise _fail(f"{path}.provider_kind", 'cannot be "capi" for an ECDSA key (it is a CNG key); remove it.')
        if "days_left" in extras:
            if "days_old" in given:
                raise _fail(f"{path}.days_left", "and days_old say the same thing twice; keep one of them.")
            valid = given.get("days_valid", _default(HostModel.add_cert, "days_valid"))
            given["days_old"] = valid - extras["days_left"]
        cert = model.add_cert(**given)
        for name, value in values.items():  # system_key_state, key_lost, container and any later field
            setattr(cert, name, value)
        out.append((cert_id, cert))
    return out


def _helper_params(func: Any) -> dict[str, Any]:
    """A model helper's parameters and their types, read from its signature."""
    hints = get_type_hints(func)
    return {name: hints[name] for name in inspect.signature(func).parameters if name != "self"}


def _default(func: Any, name: str) -> Any:
    return inspect.signature(func).parameters[name].default


def _cert_ref(certs: Mapping[str, SimCert], ref: str, path: str) -> SimCert:
    cert = certs.get(ref)
    if cert is None:
        known = ", ".join(json.dumps(c) for c in certs) or "none yet"
        raise _fail(path, f"names no certificate {json.dumps(ref)}; give the id of a [[certs]] entry ({known}).")
    return cert


def _iis_store(cert: SimCert) -> str:
    return "MY" if cert.store == "My" else cert.store  # how IIS and netsh spell the personal store


def _http_binding(model: HostModel, table: Any, path: str, certs: Mapping[str, SimCert]) -> HttpBinding:
    values, extras = _read(table, path, HttpBinding, _settable(HttpBinding), _EXTRA_CERT_REF, model.now)
    if "cert" in extras:
        if "thumbprint" in values:
            raise _fail(f"{path}.cert", "and thumbprint both name the certificate; keep one of them.")
        cert = _cert_ref(certs, extras["cert"], f"{path}.cert")
        values["thumbprint"] = cert.thumbprint
        values.setdefault("store", _iis_store(cert))
    elif values.get("kind") == "ccs":
        values.setdefault("thumbprint", "")  # a Central Certificate Store entry has no hash
    _require(HttpBinding, values, path)
    if values["thumbprint"]:
        values["thumbprint"] = _thumbprint(values["thumbprint"], f"{path}.thumbprint")
    return HttpBinding(**values)


def _thumbprint(value: str, path: str) -> str:
    tp = thumbprint_of(value)
    if tp is None:
        raise _fail(path, f"must be 40 hexadecimal characters, not {_shown(value)}; or name a certificate with cert.")
    return tp


def _site(model: HostModel, table: Any, path: str, certs: Mapping[str, SimCert], index: int) -> Site:
    settable = _settable(Site)
    settable["bindings"] = list[dict[str, Any]]  # each one read below, with its certificate reference
    values, _extras = _read(table, path, Site, settable, {}, model.now)
    tables = values.pop("bindings", [])
    values.setdefault("id", index + 1)
    _require(Site, values, path)
    site = Site(**values)
    for i, binding in enumerate(tables):
        site.bindings.append(_site_binding(model, binding, f"{path}.bindings[{i}]", certs))
    return site


def _site_binding(model: HostModel, table: Any, path: str, certs: Mapping[str, SimCert]) -> SiteBinding:
    values, extras = _read(table, path, SiteBinding, _settable(SiteBinding), _EXTRA_SITE_BINDING, model.now)
    values.setdefault("protocol", "https")
    if "cert" in extras:
        if "thumbprint" in values:
            raise _fail(f"{path}.cert", "and thumbprint both name the certificate; keep one of them.")
        cert = _cert_ref(certs, extras["cert"], f"{path}.cert")
        values["thumbprint"] = cert.thumbprint
        values.setdefault("store", _iis_store(cert))
    elif values.get("thumbprint"):
        values["thumbprint"] = _thumbprint(values["thumbprint"], f"{path}.thumbprint")
    _require(SiteBinding, values, path)
    binding = SiteBinding(**values)
    ip, port, hostname = _information(binding.information, f"{path}.information")
    if binding.protocol == "https" and extras.get("http_sys", True):
        _add_http_sys(model, binding, ip, port, hostname)
    return binding


def _information(info: str, path: str) -> tuple[str, str, str]:
    """bindingInformation "IP:port:host"; the host has no colon, an IPv6 address is in brackets."""
    rest, sep, hostname = info.rpartition(":")
    ip, sep2, port = rest.rpartition(":")
    if not sep or not sep2 or not port.isdigit() or not ip or (":" in ip and not ip.startswith("[")):
        raise _fail(
            path,
            'must be "IP:port:host" as IIS writes it, such as "*:443:www.example.com" or "[2001:db8::1]:443:", '
            f"not {_shown(info)}.",
        )
    return ip, port, hostname


def _add_http_sys(model: HostModel, b: SiteBinding, ip: str, port: str, hostname: str) -> None:
    """The http.sys entry IIS writes for an https binding, unless one is there (an explicit
    [[http_bindings]] entry, or an earlier binding on the same non-SNI socket) already."""
    kind: Literal["ip", "hostname", "ccs"]
    if b.ssl_flags & 2:
        kind, endpoint, thumbprint = "ccs", port, ""
    elif not b.thumbprint:
        return  # IIS writes no entry for a binding without a certificate
    elif b.ssl_flags & 1:
        kind, endpoint, thumbprint = "hostname", f"{hostname}:{port}", b.thumbprint
    else:
        wildcard = "0.0.0.0"  # noqa: S104 - how netsh names IIS's "*"; nothing listens here
        kind, endpoint, thumbprint = "ip", f"{wildcard if ip == '*' else ip}:{port}", b.thumbprint
    if not any(h.endpoint.lower() == endpoint.lower() and h.kind == kind for h in model.http_bindings):
        model.http_bindings.append(HttpBinding(kind, endpoint, thumbprint, b.store or "MY"))


def _renewal(model: HostModel, table: Any, path: str, certs: Mapping[str, SimCert]) -> Renewal:
    """Written by HostModel.add_renewal, whose parameters are keys (site_id and thumbprint may also
    be named by site and cert); the Renewal fields path and data replace what it wrote."""
    helper = {k: v for k, v in _helper_params(HostModel.add_renewal).items() if k != "renewal_id"}
    helper["history"] = list[dict[str, Any]]  # each entry read below, with its certificate reference
    values, extras = _read(table, path, Renewal, _settable(Renewal), {**helper, **_EXTRA_RENEWAL}, model.now)
    _require(Renewal, values, path, given=frozenset({"path", "data"}))
    given = {k: v for k, v in extras.items() if k in helper}
    if not given.get("hosts"):
        raise _fail(f"{path}.hosts", 'is required: the host names the renewal covers, such as ["www.example.com"].')
    given["thumbprint"] = _renewal_thumbprint(extras, path, certs)
    given["site_id"] = _site_id(model, extras, path)
    if "history" in given:
        given["history"] = [
            _history(model, entry, f"{path}.history[{i}]", certs, given["thumbprint"])
            for i, entry in enumerate(given["history"])
        ]
    renewal = model.add_renewal(values["id"], **given)
    model.renewals.remove(renewal)  # the caller appends it, in file order
    if "path" in values:
        renewal.path = values["path"]
    if "data" in values:  # keys of the renewal file that replace what add_renewal wrote
        renewal.data.update(values["data"])
    return renewal


def _renewal_thumbprint(extras: Mapping[str, Any], path: str, certs: Mapping[str, SimCert]) -> str:
    if "cert" in extras and "thumbprint" in extras:
        raise _fail(f"{path}.cert", "and thumbprint both name the certificate; keep one of them.")
    if "cert" in extras:
        return _cert_ref(certs, extras["cert"], f"{path}.cert").thumbprint
    if "thumbprint" in extras:
        return _thumbprint(extras["thumbprint"], f"{path}.thumbprint")
    return ""


def _site_id(model: HostModel, extras: Mapping[str, Any], path: str) -> int:
    if "site" in extras and "site_id" in extras:
        raise _fail(f"{path}.site", "and site_id both name the site; keep one of them.")
    if "site" in extras:
        site = model.site(extras["site"])
        if site is None:
            known = ", ".join(json.dumps(s.name) for s in model.sites) or "none"
            raise _fail(f"{path}.site", f"names no [[sites]] entry {json.dumps(extras['site'])} (sites: {known}).")
        return site.id
    return int(extras.get("site_id", model.sites[0].id if model.sites else 1))


def _history(model: HostModel, entry: Any, path: str, certs: Mapping[str, SimCert], default_tp: str) -> dict[str, Any]:
    """One History entry as win-acme writes it, by HostModel.history_entry, whose parameters are
    the keys (the certificate may be named by cert): its DueDate is an ISO string or, with
    due_date_style "2.2.3", an object only when ari_due says."""
    helper = _helper_params(HostModel.history_entry)
    _values, keys = _read(entry, path, dict, {}, {**helper, **_EXTRA_CERT_REF}, model.now)
    if "success" not in keys:
        raise _fail(f"{path}.success", "is required in a history entry (true or false); add it.")
    given = {k: v for k, v in keys.items() if k in helper}
    given["thumbprint"] = _renewal_thumbprint(keys, path, certs) or default_tp
    given.setdefault("days_ago", 0.0)
    return model.history_entry(**given)


def _task(model: HostModel, table: Any, path: str) -> Task:
    values, _extras = _read(table, path, Task, _settable(Task), {}, model.now)
    _require(Task, values, path)
    folder = values["path"]
    if not (folder.startswith("\\") and folder.endswith("\\")):
        raise _fail(f"{path}.path", f"must be a task folder such as '\\' or '\\Ops\\', not {_shown(folder)}.")
    # as HostModel.add_task: it ran five hours ago and runs again in nineteen, unless the file says
    values.setdefault("last_run", model.now - dt.timedelta(hours=5))
    values.setdefault("next_run", model.now + dt.timedelta(hours=19))
    return Task(**values)


# -- from a capture --------------------------------------------------------------------------

# What the simulator can show of each key status certops reads. Two have no simulator state of
# their own: key_unopenable (the container exists but does not open) and error (anything else)
# are both shown as access_denied, the nearest key that exists and cannot be used.
_KEY_STATES: dict[str, KeyState] = {
    "ok": "ok",
    "missing_keyset": "missing_keyset",
    "no_key_provider_info": "no_key_provider_info",
    "access_denied": "access_denied",
    "key_mismatch": "wrong_key",
    "user_key": "user_store",
    "key_unopenable": "access_denied",
    "error": "access_denied",
}


def model_from_capture(doc: CaptureDoc) -> HostModel:
    """A simulated host that prints what the captured host printed, as near as the model can.

    Certificates come from their RawData when it is there and matches the thumbprint (so names,
    dates and thumbprints are the captured ones), else from the printed fields; key states from
    the captured key facts, judged as certops judges them; bindings, renewals, tasks, services
    and the Layer 2 state file from the captured documents. A part that failed outright cannot
    fail in the simulator: a failed bindings part becomes "IIS unavailable", a failed winacme or
    tasks part an empty one. The simulator's clock is the real one, so dates that were near
    (expiry, overdue renewals, a fresh Layer 2 verdict) may be judged differently than in the
    capture; diagnose_capture() judges at the capture's time."""
    winacme = doc.part("winacme")
    params = winacme.params if winacme is not None else {}
    wacs_path = str(params.get("WacsPath") or HostModel.wacs_path)
    model = HostModel(wacs_path=wacs_path)
    _captured_certs(model, doc.document("certs") or {})
    _captured_bindings(model, doc.document("bindings"))
    _captured_winacme(model, doc.document("winacme"), wacs_path)
    _captured_tasks(model, doc.document("tasks"))
    return model


def _captured_certs(model: HostModel, doc: Mapping[str, Any]) -> None:
    localised = False
    for c in doc.get("certs") or ():
        if not isinstance(c, dict) or thumbprint_of(c.get("thumbprint")) is None:
            continue
        key: dict[str, Any] = c["key"] if isinstance(c.get("key"), dict) else {}
        has_key = bool(c.get("has_private_key"))
        state = _KEY_STATES[key_status(has_key, key)]
        link: dict[str, Any] = key["link"] if isinstance(key.get("link"), dict) else {}
        provider = "cng" if link.get("provider_type") == 0 else "capi" if link.get("provider_type") else None
        cert = _captured_cert(c, state, provider)
        chain = c.get("chain")
        cert.chain_trusted = not (isinstance(chain, dict) and chain.get("built") is False)
        if key.get("container"):
            cert.container = str(key["container"])
        printed = [str(s).lower() for s in c.get("sans") or ()]
        if cert.der and printed != [s.lower() for s in cert.sans] and printed == [_cn(str(c.get("subject") or ""))]:
            localised = True  # DnsNameList showed only the CN: a non-English Windows
        model.certs.append(cert)
    model.localised = localised
    if isinstance(doc.get("layer2"), str):
        model.files[LAYER2_STATE.lower()] = doc["layer2"]


def _cn(subject: str) -> str:
    """The CN of a subject as Windows or RFC 4514 prints it ("CN=www.example.com, O=Example")."""
    for part in subject.split(","):
        key, _, value = part.strip().partition("=")
        if key.upper() == "CN":
            return value.strip().lower()
    return ""


def _captured_cert(c: Mapping[str, Any], state: KeyState, provider: Any) -> SimCert:
    tp = thumbprint_of(c.get("thumbprint")) or ""
    store, friendly = str(c.get("store") or "My"), str(c.get("friendly_name") or "")
    der = _der(c.get("raw"), tp)
    pem = b""
    if der is not None:
        cert = x509.load_der_x509_certificate(der)
        try:
            cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            return sim_cert(cert, store, state, friendly, provider)
        except x509.ExtensionNotFound:  # sim_cert reads the SANs; a certificate without any is built here
            pem = cert.public_bytes(serialization.Encoding.PEM)
    fallback = dt.datetime.now(dt.UTC)
    alg: Literal["rsa", "ecdsa"] = (
        "ecdsa" if str((c.get("key") or {}).get("algorithm") or "").upper() == "ECDSA" else "rsa"
    )
    return SimCert(
        store=store,
        pem=pem,
        thumbprint=tp,
        subject=str(c.get("subject") or ""),
        sans=[str(s) for s in c.get("sans") or ()] if der is None else [],
        not_before=parse_time(c.get("not_before")) or fallback,
        not_after=parse_time(c.get("not_after")) or fallback,
        issuer=str(c.get("issuer") or ""),
        serial=str(c.get("serial") or ""),
        friendly_name=friendly,
        key_state=state,
        der=der or b"",
        key_alg=alg,
        provider_kind="cng" if alg == "ecdsa" else provider or "capi",
    )


def _der(raw: Any, thumbprint: str) -> bytes | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        der = base64.b64decode(raw, validate=True)
        x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return None
    sha1 = hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - Windows thumbprints are SHA-1
    return der if sha1 == thumbprint else None  # RawData of another certificate is not this one


def _captured_bindings(model: HostModel, doc: Mapping[str, Any] | None) -> None:
    if doc is None:
        model.iis_available = False
        return
    for b in parse_netsh_sslcert(str(doc.get("netsh") or "")):
        model.http_bindings.append(HttpBinding(b.kind, b.endpoint, b.thumbprint or "", b.store or "MY"))
    if not doc.get("iis_available"):
        # the two ways the scripts say IIS could not be read: no IIS at all, or MWA would not load
        not_loaded = str(doc.get("iis_error") or "").startswith("Microsoft.Web.Administration could not be loaded")
        if not_loaded:
            model.mwa_loads_by = "none"
        else:
            model.iis_available = False
        return
    loaded_by = doc.get("mwa_loaded_by")
    model.mwa_loads_by = loaded_by if loaded_by in ("path", "full_name") else "path"
    for s in doc.get("sites") or ():
        site = Site(str(s.get("name") or ""), int(s.get("id") or 0))
        for b in s.get("bindings") or ():
            site.bindings.append(
                SiteBinding(
                    protocol=str(b.get("protocol") or ""),
                    information=str(b.get("binding_information") or ""),
                    ssl_flags=int(b.get("ssl_flags") or 0),
                    thumbprint=thumbprint_of(b.get("certificate_hash")) or "",
                    store=str(b.get("certificate_store") or ""),
                    hash_getter_throws=bool(b.get("error")),
                )
            )
        model.sites.append(site)


def _captured_winacme(model: HostModel, doc: Mapping[str, Any] | None, wacs_path: str) -> None:
    if doc is None:
        return
    if not doc.get("wacs_exists"):
        model.files.pop(wacs_path.lower(), None)
    model.wacs_running = bool(doc.get("wacs_processes"))
    settings: dict[str, Any] = doc["settings"] if isinstance(doc.get("settings"), dict) else {}
    model.configuration_path = str(settings.get("configuration_path") or "")
    if doc.get("renewal_days") is not None:
        model.set_wacs_settings(int(doc["renewal_days"]))
    for r in doc.get("renewals") or ():
        if not isinstance(r, dict):
            continue
        try:
            data = json.loads(str(r.get("text")).lstrip("\ufeff"))
        except ValueError:
            continue  # the model keeps renewals as data; a file that is not JSON cannot be one
        if not isinstance(data, dict):
            continue
        path = str(r.get("path") or f"{WINACME_ROOT}\\unknown.renewal.json")
        renewal_id = str(data.get("Id") or path.rsplit("\\", 1)[-1].removesuffix(".renewal.json"))
        model.renewals.append(Renewal(renewal_id, path, data))
        for script in r.get("scripts") or ():
            if isinstance(script, dict) and script.get("exists") and script.get("path"):
                model.files.setdefault(str(script["path"]).lower(), "")
    for error in doc.get("errors") or ():
        # the simulator's one way to fail a folder: access denied (other errors read the same way)
        if isinstance(error, dict) and error.get("path"):
            model.access_denied_folders.append(str(error["path"]))


def _captured_tasks(model: HostModel, doc: Mapping[str, Any] | None) -> None:
    if doc is None:
        return
    model.services = {str(s) for s in doc.get("services") or ()}
    for t in doc.get("tasks") or ():
        full = str(t.get("path") or "\\")
        cut = full.rfind("\\") + 1
        user = str(t.get("user") or "")
        actions = []
        for a in t.get("actions") or ():
            actions.append(
                TaskAction(
                    str(a.get("execute") or ""), str(a.get("arguments") or ""), str(a.get("working_directory") or "")
                )
            )
            for f in a.get("files") or ():
                if f.get("exists") and f.get("path"):
                    model.files.setdefault(str(f["path"]).lower(), str(f.get("text") or ""))
        if t.get("user_resolves") is False:
            model.users.discard(user)
        elif user:
            model.users.add(user)
        model.tasks.append(
            Task(
                full[:cut],
                full[cut:],
                state=str(t.get("state") or "Ready"),
                user=user,
                actions=actions,
                last_run=parse_time(t.get("last_run")),
                last_result=int(t.get("last_result") or 0),
                next_run=parse_time(t.get("next_run")),
            )
        )
    for i, _error in enumerate(doc.get("errors") or ()):
        # Get-ScheduledTask's error for a malformed task names no task: a stand-in that fails the same way
        model.tasks.append(Task("\\", f"unreadable task {i + 1}", xml_malformed=True))


# -- TLS -------------------------------------------------------------------------------------


class StandInTLSServer(ModelTLSServer):
    """ModelTLSServer for any model, captured ones included.

    A captured certificate comes without its private key, so it cannot be served. In its place
    the server presents a stand-in minted with the same names, the same validity dates and the
    same key type, signed by the simulated issuer: a probe sees the right names and dates but
    another thumbprint and issuer. A broken key still resets the handshake, and a repair over
    WinRM shows at once. The simulator's own certificates are served as they are."""

    def __init__(self, model: HostModel, *, binding_port: int = 443) -> None:
        super().__init__(model, binding_port=binding_port)
        self._stand_ins: dict[str, SimCert] = {}

    def bound_certificate(self, server_name: str | None) -> SimCert | None:
        cert = super().bound_certificate(server_name)
        if cert is None or _servable(cert):
            return cert
        stand_in = self._stand_ins.get(cert.thumbprint)
        if stand_in is None:
            days = max((cert.not_after - cert.not_before).total_seconds() / 86400, 1 / 86400)
            names = [n for n in cert.sans if n] or [_cn(cert.subject) or "certops-sim.invalid"]
            minted = mint_certificate(names, cert.not_before, days, cert.key_alg)
            stand_in = sim_cert(minted, cert.store, cert.key_state)
            self._stand_ins[cert.thumbprint] = stand_in
        stand_in.key_state = cert.key_state  # follows the real one: a repair over WinRM shows at once
        return stand_in


def _servable(cert: SimCert) -> bool:
    """The certificate's public key is the simulator's leaf key, so the server can present it."""
    if not cert.pem:
        return False
    public = x509.load_pem_x509_certificate(cert.pem).public_key()
    ours = leaf_key(cert.key_alg).public_key()
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public.public_bytes(*fmt) == ours.public_bytes(*fmt)
